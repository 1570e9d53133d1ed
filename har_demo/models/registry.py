"""The one registry of models: name -> builder (+ how to tell whether it can run here).

A new model = one builder function in its family file + one ``_register`` line below.
Builders are referenced as ``"module:function"`` strings and imported lazily, so listing the zoo
never imports open_clip or timm.

Builder contract: ``builder(pretrained: bool = True, **config) -> HarModel``. ``pretrained=False``
builds the architecture without fetching backbone weights (checkpoints supply them).
Availability contract: ``check(**config) -> str | None`` - ``None`` when the model's pretrained
weights can be obtained here, else a one-line reason with how to enable it.
"""

from __future__ import annotations

import importlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from ..errors import ModelUnavailable, UnknownName
from .base import HarModel

PACKAGE_ROOT = Path(__file__).resolve().parents[2]


def checkpoint_root() -> Path:
    """Where committed checkpoints live (``$HAR_CHECKPOINT_DIR`` overrides)."""
    return Path(os.environ.get("HAR_CHECKPOINT_DIR", PACKAGE_ROOT / "checkpoints"))


@dataclass(frozen=True)
class ModelSpec:
    name: str
    builder: str  # "module:function", relative to har_demo.models
    family: str  # cnn | mlp | effnet | clip | vit
    summary: str
    needs_training: bool  # True: meaningless without a trained checkpoint
    check: str | None = None  # "module:function" availability check, None = always available
    default_method: str = "gradcam"

    def resolve(self, ref: str) -> Callable:
        module, func = ref.split(":")
        return getattr(importlib.import_module(f"har_demo.models.{module}"), func)

    def unavailable_reason(self, **config) -> str | None:
        """None when the pretrained weights can be had here, else one line saying why not."""
        if not self.check:
            return None
        try:
            return self.resolve(self.check)(**config)
        except ImportError as err:
            return f"a package it needs is not installed ({err})"


MODELS: dict[str, ModelSpec] = {}


def _register(spec: ModelSpec) -> None:
    MODELS[spec.name] = spec


# ---- the zoo: one line per model ---------------------------------------------------------------
_register(ModelSpec("cnn_base", "cnn:build_cnn_base", "cnn", "Study baseline CNN: 3 conv blocks + 2-layer FC head", True))
_register(ModelSpec("cnn_gen", "cnn:build_cnn_gen", "cnn", "Baseline CNN with batch norm + dropout (trained with augmentation)", True))
_register(ModelSpec("fnn", "cnn:build_fnn", "mlp", "Flattened-pixel MLP baseline", True, default_method="integrated_gradients"))
_register(ModelSpec("effnet_lite0", "effnet:build_effnet_lite0", "effnet", "EfficientNet-Lite0, ImageNet-pretrained, new 3-class head", True, "effnet:check_effnet"))
_register(ModelSpec("clip_zeroshot", "clip:build_clip_zeroshot", "clip", "CLIP ViT-B/32 zero-shot, prompt-ensemble text head", False, "clip:check_clip", "legrad"))
_register(ModelSpec("clip_cs", "clip:build_clip_cs", "clip", "CLIP cosine similarities to class prompts -> small MLP", True, "clip:check_clip", "legrad"))
_register(ModelSpec("clip_em", "clip:build_clip_em", "clip", "Frozen CLIP image embedding -> MLP", True, "clip:check_clip", "legrad"))
_register(ModelSpec("clip_ft", "clip:build_clip_ft", "clip", "CLIP ViT-B/32 full fine-tune, head initialised from prompts", True, "clip:check_clip", "legrad"))
_register(ModelSpec("siglip_ft", "clip:build_siglip_ft", "clip", "SigLIP2 ViT-B/16 fine-tune, head initialised from prompts", True, "clip:check_siglip", "legrad"))
_register(ModelSpec("vit", "vit:build_vit", "vit", "Vision-only ViT-B/32 (timm, ImageNet) with a 3-class head", True, "vit:check_vit", "legrad"))


# ---- lookups ----------------------------------------------------------------------------------
def model_names() -> list[str]:
    return list(MODELS)


def get_spec(name: str) -> ModelSpec:
    try:
        return MODELS[name]
    except KeyError:
        raise UnknownName(f"unknown model {name!r}; available: {', '.join(MODELS)}") from None


def build_model(name: str, pretrained: bool = True, **config) -> HarModel:
    """Build a registry model (fresh head). Raises ModelUnavailable when weights can't be had."""
    spec = get_spec(name)
    if pretrained:
        reason = spec.unavailable_reason(**config)
        if reason:
            raise ModelUnavailable(f"{name}: {reason}")
    model = spec.resolve(spec.builder)(pretrained=pretrained, **config)
    model.name = name
    return model


def default_checkpoint(name: str) -> Path:
    return checkpoint_root() / name


def availability(name: str, checkpoint: str | Path | None = None) -> tuple[bool, str]:
    """(True, where-from) when ``load_model(name, checkpoint)`` would succeed, else (False, why)."""
    spec = get_spec(name)
    ckpt = Path(checkpoint) if checkpoint else default_checkpoint(name)
    from .checkpoint import CARD_FILE, WEIGHTS_FILE, read_card

    if (ckpt / CARD_FILE).is_file() and (ckpt / WEIGHTS_FILE).is_file():
        try:
            card = read_card(ckpt)
        except Exception as err:  # noqa: BLE001 - reported, not raised
            return False, str(err)
        if card.get("partial"):
            reason = spec.unavailable_reason(**card.get("config", {}))
            if reason:
                return False, f"checkpoint needs base weights: {reason}"
        return True, f"checkpoint {ckpt}"
    if checkpoint:
        return False, f"no checkpoint at {ckpt} (needs {CARD_FILE} and {WEIGHTS_FILE})"
    if spec.needs_training:
        msg = f"no trained checkpoint at {ckpt}; train one with `python train.py --models {name} ...`"
        reason = spec.unavailable_reason()
        return False, f"{reason} (and {msg})" if reason else msg
    reason = spec.unavailable_reason()
    if reason:
        return False, reason
    return True, "pretrained weights (no training needed)"


def load_model(name: str, checkpoint: str | Path | None = None) -> HarModel:
    """The model as the CLI/UI use it: the committed (or given) checkpoint, or - for zero-shot
    models - the pretrained weights. Raises ModelUnavailable/CheckpointError with one line."""
    from .checkpoint import load_checkpoint

    get_spec(name)  # an unknown name fails here, with the closest names
    ckpt = Path(checkpoint) if checkpoint else default_checkpoint(name)
    if checkpoint or ckpt.exists():
        return load_checkpoint(ckpt, expected_name=name)
    ok, reason = availability(name)
    if not ok:
        raise ModelUnavailable(f"{name}: {reason}")
    model = build_model(name)
    model.eval()
    return model
