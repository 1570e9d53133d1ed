"""The app's model bank: every registry model is loaded once or kept with its reason + hint."""

from __future__ import annotations

import pytest

from har_demo.errors import ModelUnavailable, UnknownName
from har_demo.explain.base import applicable_methods, default_method
from har_demo.models.registry import MODELS
from har_demo.ui.bank import ModelBank
from tests.test_ui_support import TINY, tiny_env, write_tiny_checkpoints


def test_bank_walks_the_whole_registry_in_order(bank):
    assert bank.names() == list(MODELS)


def test_available_models_come_from_checkpoints_with_registry_methods(bank):
    for name in TINY:
        entry = bank.get(name)
        assert entry.available and "checkpoint" in entry.source
        assert entry.methods == applicable_methods(entry.model)
        assert entry.default_method == default_method(entry.model) == MODELS[name].default_method
        assert not entry.model.training


def test_unavailable_models_keep_reason_and_how_to_enable(bank):
    unavailable = bank.unavailable()
    assert unavailable, "the tiny checkpoint root lacks most models"
    for entry in unavailable:
        assert entry.model is None and entry.source, entry.name
        assert entry.hint, f"no how-to-enable hint for family {entry.family!r}"
    trained = [e for e in unavailable if MODELS[e.name].needs_training]
    assert any("checkpoint" in e.source for e in trained)


def test_require_and_select(bank):
    with pytest.raises(ModelUnavailable, match="not available here"):
        bank.require(bank.unavailable()[0].name)
    with pytest.raises(UnknownName, match="unknown model 'nope'"):
        bank.select(["nope"])
    assert [e.name for e in bank.select(None)] == bank.available_names()
    assert [e.name for e in bank.select(["fnn"])] == ["fnn"]
    assert bank.select([bank.unavailable()[0].name]) == []


def test_a_model_that_fails_to_load_becomes_unavailable_not_an_exception(tmp_path):
    write_tiny_checkpoints(tmp_path, ["cnn_base"])
    (tmp_path / "cnn_base" / "model.safetensors").write_bytes(b"not a safetensors file")
    with tiny_env(tmp_path):
        b = ModelBank.load(["cnn_base", "fnn"])
    assert b.available_names() == []
    assert "cnn_base" in b.get("cnn_base").source and "model.safetensors" in b.get("cnn_base").source


def test_from_models_builds_a_bank_without_checkpoints(bank):
    b = ModelBank.from_models({"cnn_base": bank.get("cnn_base").model}, {"vit": "no weights"})
    assert b.available_names() == ["cnn_base"]
    assert b.get("vit").source == "no weights" and b.get("vit").hint
