import re
from pathlib import Path

import pytest

from har_demo.errors import ModelUnavailable, UnknownName
from har_demo.models.base import HarModel
from har_demo.models.loading import availability, load_model
from har_demo.models.registry import MODELS, build_model, get_spec

README = Path(__file__).resolve().parents[1] / "README.md"


def test_the_readme_models_table_lists_every_registry_line():
    """No hand-kept list: the README's "Models" table is checked against the registry itself."""
    text = README.read_text(encoding="utf-8")
    section = text[text.index("## Models") : text.index("## Command line")]
    listed = set(re.findall(r"`([a-z0-9_]+)`", "\n".join(line.split("|")[1] for line in section.splitlines() if line.startswith("| `"))))
    assert listed == set(MODELS)


def test_unknown_model_lists_the_valid_names():
    with pytest.raises(UnknownName, match="cnn_base"):
        get_spec("cnn_bse")


def test_built_models_carry_their_registry_name():
    m = build_model("fnn", input_size=16, hidden=[8])
    assert isinstance(m, HarModel) and m.name == "fnn" and m.describe()["name"] == "fnn"


def test_trainable_models_without_checkpoint_are_unavailable_with_reason(tmp_path, monkeypatch):
    monkeypatch.setenv("HAR_CHECKPOINT_DIR", str(tmp_path))
    ok, why = availability("cnn_base")
    assert not ok and "train.py" in why
    with pytest.raises(ModelUnavailable, match="no trained checkpoint"):
        load_model("cnn_base")


def test_availability_never_raises_for_any_entry(tmp_path, monkeypatch):
    monkeypatch.setenv("HAR_CHECKPOINT_DIR", str(tmp_path))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    for name in MODELS:
        ok, why = availability(name)
        assert isinstance(ok, bool) and why and "\n" not in why
