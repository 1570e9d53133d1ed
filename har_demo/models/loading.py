"""A registry model ready to use: its committed (or given) checkpoint, or - for zero-shot models -
its pretrained weights; and, without loading anything, whether that would work here and why not.

Sits above ``registry`` (what a model is) and ``checkpoint`` (the file format), so neither of
those imports the other's caller: registry <- checkpoint <- loading.
"""

from __future__ import annotations

from pathlib import Path

from .. import settings
from ..errors import ModelUnavailable
from .base import HarModel
from .checkpoint import CARD_FILE, WEIGHTS_FILE, load_checkpoint, read_card
from .registry import build_model, get_spec

PACKAGE_ROOT = Path(__file__).resolve().parents[2]


def checkpoint_root() -> Path:
    """Where committed checkpoints live (``$HAR_CHECKPOINT_DIR`` overrides)."""
    return Path(settings.get("HAR_CHECKPOINT_DIR"))


def default_checkpoint(name: str) -> Path:
    return checkpoint_root() / name


def availability(name: str, checkpoint: str | Path | None = None) -> tuple[bool, str]:
    """(True, where-from) when ``load_model(name, checkpoint)`` would succeed, else (False, why)."""
    spec = get_spec(name)
    ckpt = Path(checkpoint) if checkpoint else default_checkpoint(name)
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
