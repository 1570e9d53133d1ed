"""Vision-only ViT (timm ``vit_base_patch32_224``, ImageNet weights) with a new 3-class head, plus
the transformer helpers the CLIP family shares: ``ViTSpec`` for timm trunks, position-embedding
resizing that always interpolates from the native embedding, and layer-wise LR decay groups.

Config keys (all optional, stored in ``model.config`` so checkpoints rebuild the same model):
``model_name`` (timm architecture), ``weights`` (local file or timm hub name; see ``sources``),
``timm_kwargs`` (architecture overrides, e.g. a tiny test ViT; without ``weights`` this means a
random init and needs nothing from the hub), ``mean``/``std`` (normalisation; default: the timm
pretrained config's), ``drop_rate``, ``image_size`` (run at another resolution; position embeddings
interpolated at build time so checkpoints rebuild with matching shapes).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

import torch
from torch import nn

from ..errors import ConfigError, ModelUnavailable
from ..labels import CLASSES
from . import sources
from .base import HarModel, ViTSpec

# ---- shared transformer helpers ----------------------------------------------------------------
_BLOCK_RE = re.compile(r"(?:^|\.)(?:resblocks|blocks)\.(\d+)\.")
_EMBED_PARTS = {
    "conv1",
    "class_embedding",
    "positional_embedding",
    "ln_pre",
    "patch_embed",
    "cls_token",
    "reg_token",
    "pos_embed",
    "norm_pre",
}


def layer_depth(name: str, n_blocks: int, head_prefixes: Iterable[str]) -> int:
    """Depth of a parameter: 0 = embeddings, i+1 = block i, n+1 = final norm/pool/projection,
    n+2 = the new classification head."""
    if any(name.startswith(p) for p in head_prefixes):
        return n_blocks + 2
    match = _BLOCK_RE.search(name)
    if match:
        return int(match.group(1)) + 1
    parts = set(name.split("."))
    if parts & _EMBED_PARTS and "attn_pool" not in parts:
        return 0
    return n_blocks + 1


def layerwise_param_groups(
    model: nn.Module, n_blocks: int, head_prefixes: Iterable[str], base_lr: float, decay: float
) -> list[dict]:
    """Optimizer param groups with layer-wise LR decay: the head gets ``base_lr``, each step
    towards the input multiplies by ``decay``. Only trainable parameters; ordered input -> head."""
    if not 0 < decay <= 1:
        raise ValueError(f"layer-wise LR decay must be in (0, 1], got {decay}")
    head_prefixes = tuple(head_prefixes)
    by_depth: dict[int, list[nn.Parameter]] = {}
    for name, param in model.named_parameters():
        if param.requires_grad:
            by_depth.setdefault(layer_depth(name, n_blocks, head_prefixes), []).append(param)
    top = n_blocks + 2
    return [
        {"params": params, "lr": base_lr * decay ** (top - depth), "layer": depth, "name": f"layer_{depth}"}
        for depth, params in sorted(by_depth.items())
    ]


class NativePosEmbed:
    """The position embedding other input sizes are interpolated from.

    It is the embedding the model had before the first resize, and it is re-anchored whenever the
    current embedding is not the one this helper last produced (it was trained, loaded from a
    checkpoint or replaced), so training at any size and then resizing never reverts training.
    Going back to the anchor size restores the anchor bit-exactly."""

    def __init__(self) -> None:
        self.size: int | None = None
        self.tensor: torch.Tensor | None = None
        self._made: tuple[nn.Parameter, int] | None = None

    def sync(self, current_size: int, current: nn.Parameter) -> None:
        ours = self._made is not None and self._made[0] is current and self._made[1] == current._version
        if self.tensor is None or not ours:
            self.size, self.tensor = int(current_size), current.detach().clone()

    def made(self, param: nn.Parameter) -> None:
        self._made = (param, param._version)


def _replace_param(owner: nn.Module, name: str, value: torch.Tensor) -> nn.Parameter:
    old = getattr(owner, name)
    new = nn.Parameter(value.detach().clone().to(old.device, old.dtype), requires_grad=old.requires_grad)
    setattr(owner, name, new)
    return new


def resize_timm_vit(trunk: nn.Module, size: int, keep: NativePosEmbed) -> None:
    """Run a timm VisionTransformer at ``size`` x ``size`` (position embeddings interpolated)."""
    from timm.layers import resample_abs_pos_embed

    size = int(size)
    current = int(trunk.patch_embed.img_size[0])
    if size == current:
        return
    if getattr(trunk, "pos_embed", None) is None:  # e.g. RoPE trunks: nothing to interpolate
        trunk.set_input_size(img_size=(size, size))
        return
    keep.sync(current, trunk.pos_embed)
    trunk.set_input_size(img_size=(size, size))
    if size == keep.size:
        new = keep.tensor
    else:
        patch = int(trunk.patch_embed.patch_size[0])
        prefix = 0 if getattr(trunk, "no_embed_class", False) else int(trunk.num_prefix_tokens)
        g0, g = keep.size // patch, size // patch
        new = resample_abs_pos_embed(keep.tensor, new_size=(g, g), old_size=(g0, g0), num_prefix_tokens=prefix)
    keep.made(_replace_param(trunk, "pos_embed", new))


def timm_vit_spec(trunk: nn.Module, set_input_size, **extra) -> ViTSpec:
    """ViTSpec of a timm VisionTransformer (``blocks[i].attn`` / ``.norm1``; tokens (B, N, D))."""
    blocks = list(trunk.blocks)
    return ViTSpec(
        blocks=blocks,
        attn=[b.attn for b in blocks],
        norm1=[b.norm1 for b in blocks],
        num_prefix_tokens=int(getattr(trunk, "num_prefix_tokens", 1)),
        patch_size=int(trunk.patch_embed.patch_size[0]),
        tokens_batch_first=True,
        set_input_size=set_input_size,
        extra={
            "backend": "timm",
            "pool": getattr(trunk, "global_pool", "token"),
            "final_norm": trunk.norm,
            # the MAP head (SigLIP): a learned latent query attends over the tokens (LeGrad
            # differentiates its attention); None for class-token / average pooling
            "attn_pool": getattr(trunk, "attn_pool", None),
            **extra,
        },
    )


# ---- the vit model -----------------------------------------------------------------------------
class TimmViT(HarModel):
    """A timm VisionTransformer whose ``head`` is a new ``len(CLASSES)``-way linear layer.

    Checkpoints: ``partial_state_keys()`` are the head + temperature; everything else comes from
    the base weights. A full fine-tune changes the backbone, so the trainer saves the full state
    unless it froze the backbone.
    """

    family = "vit"

    def __init__(self, vit: nn.Module, mean, std, config: dict, source: str):
        super().__init__(int(vit.patch_embed.img_size[0]), mean, std, config)
        self.vit = vit
        self.source = source
        self._native_pos = NativePosEmbed()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.vit(x)

    def set_input_size(self, size: int) -> None:
        resize_timm_vit(self.vit, size, self._native_pos)
        super().set_input_size(size)

    def vit_spec(self) -> ViTSpec:
        return timm_vit_spec(self.vit, self.set_input_size)

    def _head_params(self) -> list[nn.Parameter]:
        return list(self.vit.get_classifier().parameters())

    def param_groups(self) -> dict[str, list[nn.Parameter]]:
        head = [p for p in self._head_params() if p.requires_grad]
        ids = {id(p) for p in self._head_params()}
        return {"head": head, "backbone": [p for p in self.parameters() if p.requires_grad and id(p) not in ids]}

    def layerwise_groups(self, base_lr: float, decay: float = 0.75) -> list[dict]:
        """Param groups with layer-wise LR decay (head: ``base_lr``; block i: smaller for smaller i)."""
        return layerwise_param_groups(self, len(self.vit.blocks), ("vit.head.",), base_lr, decay)

    def partial_state_keys(self) -> list[str]:
        """State keys not in the base weights: the new head and the calibration temperature."""
        return [k for k in self.state_dict() if k.startswith("vit.head.") or k == "temperature"]

    def describe(self) -> dict:
        return {**super().describe(), "backbone_source": self.source}


# the builder's options and their types (``build_vit.options``: ``--config vit.KEY=V`` is checked against it)
VIT_OPTIONS: dict[str, Any] = {
    "model_name": str | None, "weights": str | None, "timm_kwargs": dict | None, "mean": list[float] | None,
    "std": list[float] | None, "drop_rate": float, "image_size": int | None,
}
_VIT_KEYS = set(VIT_OPTIONS)


def _check_keys(config: dict, allowed: set[str], what: str) -> None:
    unknown = sorted(set(config) - allowed)
    if unknown:
        raise ConfigError(f"{what}: unknown option(s) {', '.join(unknown)}; expected: {', '.join(sorted(allowed))}")


def _vit_source(config: dict) -> sources.VitSource:
    return sources.resolve_vit(config.get("model_name"), config.get("weights"), config.get("timm_kwargs"))


def check_vit(**config) -> str | None:
    """None when the ViT's weights can be had here; else one line naming ``HAR_VIT_WEIGHTS``."""
    return sources.vit_unavailable(_vit_source(config))


def _load_timm_file(model: nn.Module, path: str) -> None:
    """Backbone weights from a local file (safetensors / torch tensors / big_vision npz); only the
    classifier may be missing or mismatched."""
    from timm.models import load_state_dict
    from timm.models.vision_transformer import checkpoint_filter_fn

    if path.endswith(".npz"):
        model.load_pretrained(path)
        return
    state = load_state_dict(path, weights_only=True)  # tensors only, never arbitrary pickles
    state = checkpoint_filter_fn(state, model)
    own = model.state_dict()
    head = {k for k in own if k.startswith("head.")}
    state = {k: v for k, v in state.items() if not (k in head and v.shape != own[k].shape)}
    missing, unexpected = model.load_state_dict(state, strict=False)
    bad = [k for k in missing if k not in head] + list(unexpected)
    if bad:
        raise ValueError(f"{len(bad)} tensors do not fit, e.g. {bad[0]}")


def build_vit(pretrained: bool | str = True, **config) -> TimmViT:
    """timm ViT with a 3-class head. ``pretrained=False``: architecture only (checkpoints supply
    the weights); a string is taken as the ``weights`` option."""
    import timm
    import timm.data

    _check_keys(config, _VIT_KEYS, "vit")
    if isinstance(pretrained, str):
        config = {**config, "weights": pretrained}
        pretrained = True
    src = _vit_source(config)
    kwargs = dict(config.get("timm_kwargs") or {})
    kwargs.setdefault("drop_rate", float(config.get("drop_rate", 0.0)))
    arch = src.model_name
    try:
        if pretrained and src.kind == "hub":
            reason = sources.vit_unavailable(src)
            if reason:
                raise ModelUnavailable(f"vit: {reason}")
            with sources.hub_access():
                net = timm.create_model(
                    arch, pretrained=True, num_classes=len(CLASSES), cache_dir=sources.hf_cache_dir(), **kwargs
                )
        else:
            net = timm.create_model(arch, pretrained=False, num_classes=len(CLASSES), **kwargs)
            if pretrained and src.kind == "file":
                path = sources.local_file(src.weights)
                if path is None:
                    raise ModelUnavailable(f"vit: weights file not found: {src.weights} (set {sources.ENV_VIT_WEIGHTS})")
                _load_timm_file(net, str(path))
    except ModelUnavailable:
        raise
    except Exception as err:  # noqa: BLE001 - one line for the user, not a traceback
        raise ModelUnavailable(
            f"vit: cannot build {src.describe()}: {str(err).splitlines()[0] if str(err) else type(err).__name__}"
        ) from None
    data_cfg = timm.data.resolve_data_config({}, model=net)
    mean = tuple(config.get("mean") or data_cfg["mean"])
    std = tuple(config.get("std") or data_cfg["std"])
    stored = {
        "model_name": arch,
        "weights": src.weights if src.kind == "file" else (arch if src.kind == "hub" else None),
        "mean": list(mean),
        "std": list(std),
    }
    if config.get("timm_kwargs"):
        stored["timm_kwargs"] = dict(config["timm_kwargs"])
    if "drop_rate" in config:
        stored["drop_rate"] = float(config["drop_rate"])
    if config.get("image_size"):
        stored["image_size"] = int(config["image_size"])
    model = TimmViT(net, mean, std, stored, src.describe())
    if config.get("image_size"):
        model.set_input_size(int(config["image_size"]))
    return model


build_vit.options = VIT_OPTIONS
