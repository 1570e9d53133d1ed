"""The one small interface every registry model implements.

A ``HarModel`` is an ``nn.Module`` whose ``forward`` maps a preprocessed batch to logits over
``labels.CLASSES``. It also tells explainers what to hook:

* ``cam_layer()`` - the conv layer Grad-CAM uses (CNNs), or ``None``;
* ``vit_spec()`` - the transformer blocks LeGrad / rollout / ViT-Grad-CAM use, or ``None``.

Hooks themselves live in ``explain/`` (one wrapper); models only point at their layers.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch import nn

from ..data.transforms import IMAGENET_MEAN, IMAGENET_STD, check_resize_mode, eval_transform, to_batch
from ..labels import CLASSES


@dataclass
class ViTSpec:
    """Where a vision transformer keeps what attention-based explainers need.

    blocks:       residual blocks, in order.
    attn:         each block's attention module (``nn.MultiheadAttention`` for open_clip,
                  ``timm.models.vision_transformer.Attention`` for timm).
    norm1:        each block's pre-attention norm (ViT-Grad-CAM hooks the last one).
    num_prefix_tokens: class/register tokens before the patch tokens.
    patch_size:   pixels per patch side; the grid is input_size // patch_size.
    tokens_batch_first: False for open_clip blocks that run (L, B, D).
    """

    blocks: Sequence[nn.Module]
    attn: Sequence[nn.Module]
    norm1: Sequence[nn.Module]
    num_prefix_tokens: int
    patch_size: int
    tokens_batch_first: bool = True
    set_input_size: Callable[[int], None] | None = None  # interpolates position embeddings
    extra: dict[str, Any] = field(default_factory=dict)

    def grid(self, input_size: int) -> tuple[int, int]:
        g = input_size // self.patch_size
        return g, g


def pack_aux(x: torch.Tensor, aux: torch.Tensor) -> torch.Tensor:
    """(B, 3, S, S) images + (B, A) vectors -> (B, 4, S, S): the vector fills the start of plane 4
    (row-major), the rest of the plane is zero. ``HarModel.split_input`` undoes it."""
    b, _, h, w = x.shape
    if aux.shape[1] > h * w:
        raise ValueError(f"{aux.shape[1]} aux features do not fit a {h}x{w} plane")
    plane = torch.zeros((b, h * w), dtype=x.dtype, device=x.device)
    plane[:, : aux.shape[1]] = aux.to(x.dtype)
    return torch.cat([x, plane.view(b, 1, h, w)], dim=1)


TTA_MODES = ("none", "flip")  # test-time averaging (``HarModel.flip_tta``)


@dataclass
class View:
    """What a model sees of one photo: ``image`` (the photo or its person crop), ``box`` (where
    that lies in the photo, x0 y0 x1 y1) and the ``person`` found (or ``None``)."""

    image: Image.Image
    box: tuple[int, int, int, int]
    person: Any = None


class HarModel(nn.Module):
    """Base class. Subclasses set ``name``, ``family`` and implement ``forward``."""

    name: str = "base"
    family: str = "generic"  # cnn | mlp | effnet | clip | vit
    classes: tuple[str, ...] = CLASSES
    # Conv nets run ~2x faster on CPU with NHWC tensors; builders convert weights to match.
    channels_last: bool = False

    def __init__(self, input_size: int = 224, mean=IMAGENET_MEAN, std=IMAGENET_STD, config: dict | None = None):
        super().__init__()
        self.input_size = int(input_size)
        self.mean = tuple(float(m) for m in mean)
        self.std = tuple(float(s) for s in std)
        # Everything needed to rebuild this architecture (saved in the checkpoint card).
        self.config: dict = dict(config or {})
        # How a photo becomes a square input: "squash" or "pad" (letterbox); a builder option of
        # the models that offer it, so it lives in the config and the checkpoint card.
        self.resize: str = check_resize_mode(str(self.config.get("resize", "squash")))
        # Temperature for calibrated probabilities (fitted on validation by the trainer).
        self.register_buffer("temperature", torch.ones(()), persistent=True)
        self._transform = None

    # --- preprocessing -------------------------------------------------------------------------
    @property
    def transform(self):
        if self._transform is None:
            self._transform = eval_transform(self.input_size, self.mean, self.std, self.resize)
        return self._transform

    def set_input_size(self, size: int) -> None:
        self.input_size = int(size)
        self._transform = None

    def set_resize(self, mode: str) -> None:
        """Switch how photos become squares (``squash`` / ``pad``); recorded in ``config``."""
        mode = check_resize_mode(str(mode))
        if mode != self.resize:
            self.resize = mode
            self.config["resize"] = mode
            self._transform = None

    # --- the person view -----------------------------------------------------------------------
    # ``person_crop`` (a config option every model has): the model sees the person box found by
    # ``har_demo.person`` instead of the whole photo (the whole photo when no person is found).
    # ``aux_features > 0``: the model also takes a per-photo vector (pose geometry) computed from the
    # person; it rides in one extra input plane (``pack_aux`` / ``split_input``), so every trainer,
    # batcher and explainer keeps handling a single tensor.
    aux_features: int = 0
    uses_image: bool = True  # False for models that read only the aux vector (image methods do not apply)

    @property
    def flip_tta(self) -> bool:
        """``tta=flip`` (a config option every model has): ``predict_views`` averages the
        probabilities of the photo and of its mirror image (a second forward pass). Maps explain
        the photo as it is; their class is the averaged answer's."""
        return self.config.get("tta", "none") == "flip"

    @property
    def person_crop(self) -> bool:
        return bool(self.config.get("person_crop", False))

    def set_person_crop(self, on: bool) -> None:
        self.config["person_crop"] = bool(on)

    @property
    def needs_person(self) -> bool:
        return self.person_crop or self.aux_features > 0

    def views(self, images: Sequence[Image.Image]) -> list[View]:
        """What the model looks at in each photo: the photo or its person crop, where that lies in
        the photo, and the person found (``None`` when not needed or not found)."""
        if not self.needs_person:
            return [View(im, (0, 0, im.width, im.height), None) for im in images]
        from ..person.crop import person_view
        from ..person.finder import find_person_or_none

        out = []
        for im in images:
            if self.person_crop:
                out.append(View(*person_view(im)))
            else:  # the person for the aux vector only: the photo itself is the view (no crop made)
                out.append(View(im, (0, 0, im.width, im.height), find_person_or_none(im)))
        return out

    def person_view(self, image: Image.Image, person: Any) -> View:
        """What this model sees of one given ``person`` in ``image`` (one of ``person.multi.find_people``):
        its crop with ``person_crop``, else the photo with that person's pose vector. Only for
        models that ``needs_person``: a whole-photo model has one view per photo (``views``)."""
        if not self.needs_person:
            raise ValueError(f"{type(self).__name__} judges the whole photo: it has no per-person view")
        if self.person_crop:
            from ..person.crop import person_view

            return View(*person_view(image, person, find=False))
        return View(image, (0, 0, image.width, image.height), person)

    def predict_people(self, image: Image.Image, people: Sequence[Any], batch_size: int = 32) -> np.ndarray:
        """(len(people), C) probabilities: this person-centred model's answer for each person."""
        if not people:
            return np.zeros((0, len(CLASSES)), np.float32)
        return self.predict_views([self.person_view(image, p) for p in people], batch_size)

    def aux_vector(self, view: View) -> np.ndarray:
        """The per-photo vector of a model with ``aux_features`` (see ``pack_aux``)."""
        return np.zeros(self.aux_features, np.float32)

    def aux_baseline(self) -> torch.Tensor:
        """The "no evidence" aux vector attributions start from (the training mean for pose models)."""
        return torch.zeros(self.aux_features)

    def fit_input_stats(self, dataset) -> None:
        """Fit input statistics on the training split before training (a ``training.data.CachedDataset``;
        pose models standardise their vectors with it). Default: nothing to fit."""

    def mirrored_aux_vector(self, view: View) -> np.ndarray:
        """``aux_vector`` of the horizontally mirrored photo (flip augmentation)."""
        return self.aux_vector(view)

    def split_input(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Inverse of ``pack_aux``: (images (B, 3, S, S), vectors (B, A) or None)."""
        if not self.aux_features:
            return x, None
        return x[:, :3], x[:, 3].reshape(x.shape[0], -1)[:, : self.aux_features]

    def preprocess_views(self, views: Sequence[View], mirror: bool = False) -> torch.Tensor:
        """Views -> the model's input batch. ``mirror``: the horizontally mirrored input, made as
        training made its mirror view (the transformed image flipped, the pose vector of the
        mirrored photo: ``mirrored_aux_vector``), for flip test-time averaging."""
        x = to_batch([v.image for v in views], self.transform).to(self.device)
        if mirror:
            x = x.flip(-1)
        if self.aux_features:
            vector = self.mirrored_aux_vector if mirror else self.aux_vector
            aux = torch.from_numpy(np.stack([vector(v) for v in views]).astype(np.float32))
            x = pack_aux(x, aux.to(self.device))
        return x.contiguous(memory_format=torch.channels_last) if self.channels_last else x

    def preprocess(self, images: Sequence[Image.Image]) -> torch.Tensor:
        """RGB PIL images -> normalised (B, C, S, S) float tensor on the model's device (C = 3, or 4
        for models with ``aux_features``); person crops first when ``person_crop`` is on."""
        return self.preprocess_views(self.views(images))

    def preprocessing_card(self) -> dict:
        return {"resize": [self.input_size, self.input_size], "resize_mode": self.resize, "crop": "person" if self.person_crop else None,
                "person_crop": self.person_crop, "aux_features": self.aux_features, "mean": list(self.mean), "std": list(self.std)}  # fmt: skip

    @property
    def device(self) -> torch.device:
        for p in self.parameters():
            return p.device
        return torch.device("cpu")

    # --- inference -----------------------------------------------------------------------------
    def forward(self, x: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def predict_proba(self, images: Sequence[Image.Image], batch_size: int = 32) -> np.ndarray:
        """Calibrated class probabilities, shape (N, n_classes)."""
        return self.predict_views(self.views(images), batch_size)

    @torch.inference_mode()
    def predict_views(self, views: Sequence[View], batch_size: int = 32) -> np.ndarray:
        """``predict_proba`` on views already made (``views``): callers that also look at the
        person found (e.g. to count it) do not make them twice."""
        was_training = self.training
        self.eval()
        out = []
        for i in range(0, len(views), batch_size):
            chunk = views[i : i + batch_size]
            probs = torch.softmax(self(self.preprocess_views(chunk)).float() / self.temperature, dim=-1)
            if self.flip_tta:  # the mean of the photo's and its mirror's probabilities
                probs = (probs + torch.softmax(self(self.preprocess_views(chunk, mirror=True)).float() / self.temperature, dim=-1)) / 2
            out.append(probs.cpu().numpy())
        self.train(was_training)
        return np.concatenate(out, axis=0) if out else np.zeros((0, len(self.classes)), np.float32)

    # --- what explainers hook -----------------------------------------------------------------
    def cam_layer(self) -> nn.Module | None:
        return None

    def vit_spec(self) -> ViTSpec | None:
        return None

    # --- training support --------------------------------------------------------------------
    def head_split(self) -> tuple[Callable[[torch.Tensor], torch.Tensor], nn.Module] | None:
        """``(features, head)`` with ``forward(x) == head(features(x))``, for models whose
        pretrained backbone can stay frozen while only the head trains (the trainer then caches
        features: ``training.features``). ``None``: not offered."""
        return None

    def layerwise_groups(self, base_lr: float, decay: float = 0.75) -> list[dict] | None:
        """Backbone parameter groups with layer-wise decayed LRs (``[{"params", "lr"}, ...]``,
        input end first) for ``TrainConfig.lr_decay``; ``None``: not offered (one backbone LR)."""
        return None

    def partial_state_keys(self) -> list[str] | None:
        """State keys that are not part of the pretrained base weights (head, temperature ...),
        for partial checkpoints relative to the base; ``None``: not offered (full checkpoints)."""
        return None

    def param_groups(self) -> dict[str, list[nn.Parameter]]:
        """Named parameter groups for the optimiser: 'head' (new layers) and 'backbone'
        (pretrained layers, which get a smaller LR). Models without a backbone put all in 'head'."""
        return {"head": [p for p in self.parameters() if p.requires_grad], "backbone": []}

    def describe(self) -> dict:
        n_params = sum(p.numel() for p in self.parameters())
        return {
            "name": self.name,
            "family": self.family,
            "classes": list(self.classes),
            "input_size": self.input_size,
            "parameters": n_params,
            "config": dict(self.config),
        }
