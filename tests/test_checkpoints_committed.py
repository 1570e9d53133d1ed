"""The checkpoints committed under checkpoints/ load with no flags and carry a complete card."""

from pathlib import Path

import numpy as np
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
    assert (ROOT / name / WEIGHTS_FILE).stat().st_size < 10 * 2**20


@pytest.mark.parametrize("name", COMMITTED)
@pytest.mark.parametrize("split", ["val", "test"])
def test_card_numbers_agree_with_each_other(name, split):
    """Every number of a split's metrics, recomputed here from the card's confusion matrix (rows:
    true class, columns: predicted), and the split's photo counts from its data section. Before: a
    check that the accuracy lay in [0, 1]."""
    card = read_card(ROOT / name)
    m, d = card["metrics"][split], card["data"]["splits"][split]
    classes = card["classes"]
    cm = np.asarray(m["confusion"], dtype=float)
    assert cm.shape == (len(classes), len(classes)) and (cm >= 0).all()
    n = cm.sum()
    assert m["n"] == d["n"] == n > 0
    assert m["accuracy"] == pytest.approx(np.trace(cm) / n, abs=1e-9)
    f1s = []
    for i, c in enumerate(classes):
        tp, support, predicted = cm[i, i], cm[i].sum(), cm[:, i].sum()
        precision = tp / predicted if predicted else 0.0
        recall = tp / support if support else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        got = m["per_class"][c]
        assert got["support"] == support == d["per_class"][c], f"{name} {split} {c}: support"
        assert (got["precision"], got["recall"], got["f1"]) == pytest.approx((precision, recall, f1), abs=1e-9), f"{name} {split} {c}"
        f1s.append(f1)
    assert m["macro_f1"] == pytest.approx(np.mean(f1s), abs=1e-9)
    # per source: the counts are the data section's, and the photo-weighted accuracies give the overall one
    per_source = m["per_source"]
    assert {k: v["n"] for k, v in per_source.items()} == d["per_source"]
    correct = sum(v["n"] * v["accuracy"] for v in per_source.values())
    assert correct == pytest.approx(np.trace(cm), abs=1e-6)


HAR3 = ROOT.parent.parent / "shared" / "data" / "har3" / "manifest.csv"


@pytest.mark.parametrize("name", ["cnn_base", "fnn"])
def test_a_card_accuracy_is_what_its_checkpoint_scores_on_its_test_split(name):
    """The card's test accuracy and confusion matrix, recomputed: the committed weights on the
    photos of the card's test split (har3, seeded group-aware split), predictions counted here."""
    card = read_card(ROOT / name)
    if not HAR3.is_file():
        pytest.skip(f"data absent: {HAR3}")
    from har_demo.data.datasets import load_dataset
    from har_demo.data.splits import split_samples

    data = card["data"]
    assert Path(data["path"]).name == "manifest.csv" and not data["holdout_sources"]  # what makes the split reproducible
    test = split_samples(load_dataset(str(HAR3)), data["split_fractions"], seed=data["split_seed"])["test"]
    assert len(test) == data["splits"]["test"]["n"]
    model = load_model(name)
    from har_demo.data.io import load_image

    probs = np.concatenate([model.predict_proba([load_image(s.path) for s in test[i : i + 16]]) for i in range(0, len(test), 16)])
    truth = np.array([card["classes"].index(s.label) for s in test])
    pred = probs.argmax(1)
    cm = np.zeros((3, 3), int)
    np.add.at(cm, (truth, pred), 1)
    assert cm.tolist() == card["metrics"]["test"]["confusion"]
    assert float((pred == truth).mean()) == pytest.approx(card["metrics"]["test"]["accuracy"], abs=1e-9)


@pytest.mark.parametrize("name", COMMITTED)
def test_loads_by_name_and_predicts(name, monkeypatch, capsys):
    monkeypatch.delenv("HAR_CHECKPOINT_DIR", raising=False)
    model = load_model(name)
    assert model.input_size == read_card(ROOT / name)["config"].get("input_size", model.input_size)
    assert main(["predict", str(EXAMPLE), "--model", name, "--json"]) == 0
    assert '"label"' in capsys.readouterr().out
