"""Checkpoints: ``model.safetensors`` + ``card.json`` in one directory. Nothing is ever unpickled.

The card records what is needed to rebuild the architecture (``model`` + ``config``), the class
names (checked on load), preprocessing, calibration temperature, and free-form provenance (data,
metrics, seed, command) written by the trainer.

A *partial* checkpoint (``"partial": true``) stores only the tensors that differ from the named
pretrained base weights (e.g. a CLIP fine-tune's head); the base is fetched by the builder.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import json
from pathlib import Path

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from ..errors import CheckpointError
from ..labels import CLASSES
from .base import HarModel
from .fast_init import skip_param_init
from .registry import build_model

CARD_FILE = "card.json"
WEIGHTS_FILE = "model.safetensors"
FORMAT_VERSION = 1


def read_card(directory: str | Path) -> dict:
    path = Path(directory) / CARD_FILE
    if not path.is_file():
        raise CheckpointError(f"checkpoint card not found: {path}")
    try:
        card = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise CheckpointError(f"checkpoint card {path} is not valid JSON: {err}") from None
    except RecursionError:
        raise CheckpointError(f"checkpoint card {path} is not usable JSON (nested too deeply)") from None
    if not isinstance(card, dict) or "model" not in card:
        raise CheckpointError(f"checkpoint card {path} has no 'model' field")
    classes = card.get("classes")
    if classes != list(CLASSES):
        raise CheckpointError(
            f"checkpoint card {path} has classes {classes}, expected {list(CLASSES)} (wrong or reordered class names)"
        )
    return card


def save_checkpoint(
    model: HarModel,
    directory: str | Path,
    card: dict | None = None,
    partial_keys: list[str] | None = None,
    half: bool = False,
) -> Path:
    """Write ``model.safetensors`` + ``card.json``. ``partial_keys`` stores only those tensors
    (relative to pretrained base weights); ``half`` stores float tensors as fp16."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    state = model.state_dict()
    if partial_keys is not None:
        state = {k: state[k] for k in partial_keys}
    tensors = {}
    for k, v in state.items():
        v = v.detach().cpu().contiguous()
        if half and v.is_floating_point() and k != "temperature":
            v = v.half()
        tensors[k] = v
    save_file(tensors, str(directory / WEIGHTS_FILE), metadata={"format": "pt"})
    full_card = {
        "format_version": FORMAT_VERSION,
        "model": model.name,
        "family": model.family,
        "config": model.config,
        "classes": list(CLASSES),
        "preprocessing": model.preprocessing_card(),
        "temperature": float(model.temperature),
        "partial": partial_keys is not None,
        "dtype": "float16" if half else "float32",
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }
    full_card.update(card or {})
    write_card(directory, full_card)
    return directory


def write_card(directory: str | Path, card: dict) -> Path:
    """``directory/card.json`` in the one format every writer uses (save, export, LOSO results)."""
    path = Path(directory) / CARD_FILE
    path.write_text(json.dumps(card, indent=2, default=str) + "\n", encoding="utf-8")
    return path


def applied_temperature(card: dict) -> float:
    """The temperature the app divides logits by: the one fitted on photos from sources the model
    never saw (leave-one-source-out) and shipped because it lowered the NLL on held-out sources
    (``calibration_unseen.shipped``); 1.0 (uncalibrated) otherwise - whatever a stored tensor or an
    older card's ``temperature`` says (a temperature fitted on ~100 validation photos made ECE worse)."""
    cal = card.get("calibration_unseen")
    if isinstance(cal, dict) and cal.get("shipped") is True:
        t = float(cal.get("temperature", 1.0))
        if np.isfinite(t) and t > 0:
            return t
    return 1.0


def is_calibrated(card: dict | None) -> bool:
    """True when the card ships a temperature calibrated on unseen sources (see ``applied_temperature``)."""
    return bool(card) and isinstance(card.get("calibration_unseen"), dict) and card["calibration_unseen"].get("shipped") is True


def load_checkpoint(directory: str | Path, expected_name: str | None = None) -> HarModel:
    """Rebuild the model named in the card and load its weights strictly."""
    directory = Path(directory)
    if not directory.is_dir():
        raise CheckpointError(f"checkpoint directory not found: {directory}")
    card = read_card(directory)
    name = card["model"]
    if expected_name and name != expected_name:
        raise CheckpointError(f"checkpoint {directory} holds model {name!r}, not {expected_name!r}")
    weights = directory / WEIGHTS_FILE
    if not weights.is_file():
        raise CheckpointError(f"checkpoint weights not found: {weights}")
    try:
        tensors = load_file(str(weights))
    except (SafetensorError, OSError, ValueError, RuntimeError) as err:
        raise CheckpointError(f"cannot read checkpoint weights {weights}: {err}") from None
    partial = bool(card.get("partial"))
    # a full checkpoint overwrites every parameter: skip the random init (most of a ViT's build time)
    with contextlib.nullcontext() if partial else skip_param_init():
        # A card records the model as trained: no person_crop key = trained on whole photos (cards
        # from before the option existed), whatever the registry's default is now.
        model = build_model(name, pretrained=partial, **{"person_crop": False, **card.get("config", {})})
    own = model.state_dict()
    problems = [k for k in tensors if k not in own]
    problems += [f"{k} {tuple(tensors[k].shape)} vs {tuple(own[k].shape)}" for k in tensors if k in own and tensors[k].shape != own[k].shape]
    if not partial:
        problems += [f"missing {k}" for k in own if k not in tensors]
    if problems:
        shown = "; ".join(problems[:3]) + (" ..." if len(problems) > 3 else "")
        raise CheckpointError(f"checkpoint {weights} does not fit model {name!r}: {shown}")
    with torch.no_grad():
        for k, v in tensors.items():
            own[k].copy_(v.to(own[k].dtype))
    model.temperature.fill_(applied_temperature(card))
    # Preprocess exactly as in training; cards written before letterboxing existed were squashed.
    model.set_resize((card.get("preprocessing") or {}).get("resize_mode", "squash"))
    model.card = card
    model.eval()
    return model
