"""Calibration on photos from unseen sources (issue 19.5): a temperature fitted on leave-one-source-out
predictions, shipped only when a cross-check over source halves says it lowers the NLL on sources
it was not fitted on; the app applies a temperature only when shipped; the card's reliability data
and diagram. Checked against re-implementations written here (grid-search NLL, plain binning)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from har_demo.models.checkpoint import applied_temperature, is_calibrated
from har_demo.training.calibration import reliability_bins, unseen_calibration


def _nll(z, y, t):  # independent: log-softmax by hand
    a = z / t
    a = a - a.max(1, keepdims=True)
    return float(-(a[np.arange(len(y)), y] - np.log(np.exp(a).sum(1))).mean())


def _draw(rng, n, scale, sharp):
    """Logits whose true class probabilities are softmax(logits / sharp): sharp > 1 = overconfident."""
    z = rng.normal(0, scale, size=(n, 3))
    p = np.exp(z / sharp)
    p /= p.sum(1, keepdims=True)
    y = np.array([rng.choice(3, p=q) for q in p])
    return z, y


def test_overconfident_everywhere_ships_the_temperature_that_minimises_nll():
    rng = np.random.default_rng(0)
    parts = [_draw(rng, 300, 4.0, 2.5) for _ in range(4)]
    z = np.concatenate([p[0] for p in parts])
    y = np.concatenate([p[1] for p in parts])
    src = np.repeat(["a", "b", "c", "d"], 300)
    rec = unseen_calibration(z, y, src)
    grid = np.exp(np.linspace(np.log(0.2), np.log(10), 2001))
    best = grid[np.argmin([_nll(z, y, t) for t in grid])]
    assert rec["shipped"] is True and rec["temperature"] == pytest.approx(best, rel=0.01)
    assert 2.0 < rec["temperature"] < 3.2  # near the 2.5 the logits were drawn with
    # the cross-check: two halves of two sources each, each temperature fitted on one half, scored on the other
    (c1, c2) = rec["cross_check"]
    assert sorted(c1["fit_on"] + c1["score_on"]) == ["a", "b", "c", "d"] and c1["fit_on"] == c2["score_on"]
    for c in rec["cross_check"]:
        m = np.isin(src, c["score_on"])
        assert c["nll_before"] == pytest.approx(_nll(z[m], y[m], 1.0), abs=1e-9)
        assert c["nll_after"] == pytest.approx(_nll(z[m], y[m], c["temperature"]), abs=1e-9)
        assert c["nll_after"] < c["nll_before"]
    u = rec["unseen"]
    assert u["nll_after"] < u["nll_before"] and u["ece_after"] < u["ece_before"]
    assert rec["n"] == 1200 and rec["sources"] == {"a": 300, "b": 300, "c": 300, "d": 300}


def test_not_shipped_when_halves_disagree_by_construction():
    """Two sources only: one overconfident, one underconfident - each fit hurts the other."""
    rng = np.random.default_rng(2)
    (za, ya), (zb, yb) = _draw(rng, 500, 4.0, 3.0), _draw(rng, 500, 1.0, 0.3)
    rec = unseen_calibration(np.concatenate([za, zb]), np.concatenate([ya, yb]), ["over"] * 500 + ["under"] * 500)
    assert {tuple(c["fit_on"]) for c in rec["cross_check"]} == {("over",), ("under",)}
    assert rec["shipped"] is False and rec["temperature"] == 1.0
    assert all(c["nll_after"] > c["nll_before"] for c in rec["cross_check"])
    assert rec["unseen"]["nll_after"] > rec["unseen"]["nll_before"]  # the honest "after" is worse


def test_reliability_bins_match_plain_counting():
    probs = np.array([[0.95, 0.03, 0.02], [0.55, 0.45, 0.0], [0.1, 0.85, 0.05], [0.4, 0.35, 0.25], [0.05, 0.05, 0.9]])
    labels = np.array([0, 1, 1, 2, 2])
    bins = reliability_bins(probs, labels, n_bins=10)
    assert len(bins) == 10 and [b["lo"] for b in bins] == pytest.approx([k / 10 for k in range(10)])
    expect = {9: (2, (0.95 + 0.9) / 2, 1.0), 5: (1, 0.55, 0.0), 8: (1, 0.85, 1.0), 4: (1, 0.4, 0.0)}
    for k, b in enumerate(bins):
        if k in expect:
            n, conf, acc = expect[k]
            assert (b["n"], b["confidence"], b["accuracy"]) == (n, pytest.approx(conf, abs=1e-4), pytest.approx(acc))
        else:
            assert b["n"] == 0 and b["confidence"] is None


def test_the_app_applies_only_a_shipped_temperature(tmp_path):
    from har_demo.models.checkpoint import load_checkpoint, save_checkpoint
    from har_demo.models.registry import build_model

    assert applied_temperature({"temperature": 0.64}) == 1.0  # an old card's val fit: not applied
    assert applied_temperature({"temperature": 0.64, "calibration_unseen": {"shipped": False, "temperature": 1.0, "fitted_temperature": 0.7}}) == 1.0
    assert applied_temperature({"calibration_unseen": {"shipped": True, "temperature": 1.8}}) == 1.8
    assert not is_calibrated({"temperature": 0.64}) and is_calibrated({"calibration_unseen": {"shipped": True, "temperature": 1.8}})
    model = build_model("fnn", input_size=16, hidden=[8])
    model.temperature.fill_(0.64)  # stored in the weights too, as the old runner did
    save_checkpoint(model, tmp_path / "a")
    assert float(load_checkpoint(tmp_path / "a").temperature) == 1.0
    card = json.loads((tmp_path / "a" / "card.json").read_text())
    card["calibration_unseen"] = {"shipped": True, "temperature": 1.8}
    (tmp_path / "a" / "card.json").write_text(json.dumps(card))
    assert float(load_checkpoint(tmp_path / "a").temperature) == pytest.approx(1.8)


def test_loso_summary_calibrates_on_held_out_logits_and_export_writes_the_card(tmp_path):
    from types import SimpleNamespace

    from har_demo.models.checkpoint import read_card, write_card
    from har_demo.training.loso import attach_unseen_accuracy, render_loso, summarise_loso

    rng = np.random.default_rng(3)
    per_fold, sizes = {}, {}
    for src in ("s1", "s2", "s3", "s4"):
        z, y = _draw(rng, 200, 4.0, 2.5)
        probs = np.exp(z) / np.exp(z).sum(1, keepdims=True)
        run = {"seed": 0, "reports": {"test_cross": {"accuracy": float((z.argmax(1) == y).mean())}},
               "predictions": {"test_cross": {"y_true": y.tolist(), "probs": probs.tolist(), "logits": z.tolist()}}}
        per_fold[src] = [SimpleNamespace(entry=SimpleNamespace(label="m"), skipped=None, runs=[run])]
        sizes[src] = {"n": 200, "per_class": {}}
    doc = summarise_loso(per_fold, sizes, [0], "python train.py ...")
    (row,) = doc["rows"]
    cal = row["calibration_unseen"]
    allz = np.concatenate([np.array(f[0].runs[0]["predictions"]["test_cross"]["logits"]) for f in per_fold.values()])
    ally = np.concatenate([f[0].runs[0]["predictions"]["test_cross"]["y_true"] for f in per_fold.values()])
    assert cal["n"] == 800 and cal["shipped"] is True
    assert cal["unseen"]["nll_before"] == pytest.approx(_nll(allz, ally, 1.0), abs=1e-9)
    assert "Calibration on unseen sources" in render_loso(doc) and "yes, T = " in render_loso(doc)
    (tmp_path / "m").mkdir()
    write_card(tmp_path / "m", {"model": "m", "classes": ["sitting", "standing", "walking_running"], "temperature": 0.64})
    assert attach_unseen_accuracy(doc, tmp_path) == ["m"]
    card = read_card(tmp_path / "m")
    assert card["temperature"] == pytest.approx(cal["temperature"]) and card["calibration_unseen"]["shipped"] is True
    assert applied_temperature(card) == pytest.approx(cal["temperature"])


def test_reliability_diagram_and_card_sentence_from_a_card():
    from har_demo.training.plots import reliability_figure
    from har_demo.ui.cards import calibration_line

    rng = np.random.default_rng(4)
    z = np.concatenate([_draw(rng, 300, 4.0, 2.5)[0] for _ in range(2)])
    y = np.concatenate([_draw(rng, 300, 4.0, 2.5)[1] for _ in range(2)])
    rec = unseen_calibration(z, y, ["a"] * 300 + ["b"] * 300)
    card = {"calibration_unseen": rec}
    fig = reliability_figure(card, "m")
    ax = fig.axes[0]
    lines = ax.get_lines()
    assert len(lines) == 3  # the diagonal, before, after
    before = [b for b in rec["reliability"]["before"] if b["n"]]
    np.testing.assert_allclose(lines[1].get_xdata(), [b["confidence"] for b in before])
    np.testing.assert_allclose(lines[1].get_ydata(), [b["accuracy"] for b in before])
    assert reliability_figure({"temperature": 0.64}) is None
    assert rec["shipped"] is True
    assert "calibrated on photos from sources the model never saw" in calibration_line(card)
    assert "uncalibrated" in calibration_line({"temperature": 0.64})
    assert "uncalibrated" in calibration_line({"calibration_unseen": {**rec, "shipped": False, "temperature": 1.0}})


def test_val_fit_policy_scores_each_photo_with_its_folds_temperature():
    from har_demo.training.calibration import val_fit_policy

    rng = np.random.default_rng(5)
    z, y = _draw(rng, 200, 3.0, 1.0)
    t = np.where(np.arange(200) < 100, 0.5, 2.0)
    rec = val_fit_policy(z, y, t)
    by_hand = (_nll(z[:100], y[:100], 0.5) + _nll(z[100:], y[100:], 2.0)) / 2
    assert rec["nll"] == pytest.approx(by_hand, abs=1e-9) and rec["temperature_mean"] == pytest.approx(1.25)


def test_cards_tab_reliability_plot_reads_the_models_card():
    from types import SimpleNamespace

    from har_demo.ui.cards import reliability_plot

    rng = np.random.default_rng(6)
    z, y = _draw(rng, 400, 4.0, 2.5)
    card = {"calibration_unseen": unseen_calibration(z, y, ["a"] * 200 + ["b"] * 200)}
    bank = SimpleNamespace(entries={"m": SimpleNamespace(name="m", model=SimpleNamespace(card=card)),
                                    "bare": SimpleNamespace(name="bare", model=SimpleNamespace(card={"temperature": 0.64}))})  # fmt: skip
    fig = reliability_plot(bank, "m")
    assert fig is not None and "shipped T = " in fig.axes[0].get_title()
    assert reliability_plot(bank, "bare") is None and reliability_plot(bank, None) is None and reliability_plot(bank, "nope") is None
