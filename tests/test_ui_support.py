"""Shared helpers of the UI tests (tiny checkpoints, a bank, a built app) + checks of the helpers.

The tiny models are real registry models saved as real checkpoints under a temporary
``HAR_CHECKPOINT_DIR``, so the app loads them through ``availability`` / ``load_model`` exactly as
in production; every other registry model is unavailable there (``HF_HUB_OFFLINE=1``).
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from har_demo.models.checkpoint import save_checkpoint
from har_demo.models.registry import build_model, get_spec
from har_demo.ui.process import free_port

REPO = Path(__file__).resolve().parents[1]
EXAMPLES = REPO / "examples"
TINY = {name: get_spec(name).tiny_config() for name in ("cnn_base", "fnn")}


def write_tiny_checkpoints(root: Path, names=tuple(TINY)) -> Path:
    """Seeded tiny checkpoints for ``names`` under ``root`` (a checkpoint root)."""
    import torch

    for name in names:
        torch.manual_seed(0)
        save_checkpoint(build_model(name, pretrained=False, **TINY[name]), root / name, card={"data": {"source": "tiny test"}})
    return root


@contextmanager
def tiny_env(root: Path) -> Iterator[Path]:
    """HAR_CHECKPOINT_DIR -> ``root`` (run folders: ``root/runs``), hub offline, for the duration."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HAR_CHECKPOINT_DIR", str(root))
        mp.setenv("HAR_RUNS_DIR", str(root / "runs"))
        mp.setenv("HF_HUB_OFFLINE", "1")
        mp.setenv("GRADIO_ANALYTICS_ENABLED", "False")
        yield root


def tiny_bank(root: Path):
    """A ``ModelBank`` loaded from tiny checkpoints under ``root`` (whole registry walked)."""
    from har_demo.ui.bank import ModelBank

    write_tiny_checkpoints(root)
    with tiny_env(root):
        return ModelBank.load()


def example_photo(name: str = "standing_woods.jpg") -> str:
    path = EXAMPLES / name
    if not path.is_file():
        pytest.skip(f"example photo missing: {path}")
    return str(path)


def card_values(out: dict, ui, name: str) -> dict:
    """The values a callback returned for one card, by part name."""
    card = ui.cards[name]
    return {part: out[getattr(card, part)] for part in ("column", "label", "overlay", "info", "method") if getattr(card, part) in out}


# ---- checks of the helpers themselves ------------------------------------------------------------
def test_tiny_bank_loads_exactly_the_tiny_checkpoints(bank):
    assert bank.available_names() == [n for n in bank.names() if n in TINY]
    assert set(bank.names()) - set(TINY) == {e.name for e in bank.unavailable()}


def test_free_port_is_bindable():
    port = free_port()
    with socket.socket() as s:
        s.bind(("127.0.0.1", port))
    assert 0 < port < 65536


def test_tiny_env_restores_environment(tmp_path):
    before = os.environ.get("HAR_CHECKPOINT_DIR")
    with tiny_env(tmp_path):
        assert os.environ["HAR_CHECKPOINT_DIR"] == str(tmp_path)
    assert os.environ.get("HAR_CHECKPOINT_DIR") == before
