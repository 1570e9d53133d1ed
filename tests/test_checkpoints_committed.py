"""The checkpoints committed under checkpoints/ load with no flags and carry a complete card."""

from pathlib import Path

import pytest

from har_demo.cli import main
from har_demo.models.checkpoint import CARD_FILE, WEIGHTS_FILE, read_card
from har_demo.models.loading import load_model
from har_demo.models.registry import MODELS

ROOT = Path(__file__).resolve().parents[1] / "checkpoints"
COMMITTED = sorted(p.name for p in ROOT.glob("*") if (p / CARD_FILE).is_file())
EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "standing_woods.jpg"


def test_at_least_the_pretrained_cnn_is_committed():
    assert "effnet_lite0" in COMMITTED


@pytest.mark.parametrize("name", COMMITTED)
def test_card_is_complete_and_weights_small(name):
    card = read_card(ROOT / name)
    assert card["model"] == name and name in MODELS
    for key in ("config", "classes", "preprocessing", "temperature", "data", "metrics", "seed", "command"):
        assert key in card, f"{name}: card lacks {key}"
    assert card["data"]["splits"]["test"]["n"] > 0
    assert 0 <= card["metrics"]["test"]["accuracy"] <= 1
    assert (ROOT / name / WEIGHTS_FILE).stat().st_size < 10 * 2**20


@pytest.mark.parametrize("name", COMMITTED)
def test_loads_by_name_and_predicts(name, monkeypatch, capsys):
    monkeypatch.delenv("HAR_CHECKPOINT_DIR", raising=False)
    model = load_model(name)
    assert model.input_size == read_card(ROOT / name)["config"].get("input_size", model.input_size)
    assert main(["predict", str(EXAMPLE), "--model", name, "--json"]) == 0
    assert '"label"' in capsys.readouterr().out
