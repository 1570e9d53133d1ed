"""``train.py --leave-one-source-out``: one fold per source, each testing on a source its model
never saw, gathered into loso.md / loso.json."""

from __future__ import annotations

import json

import pytest

from har_demo.data.datasets import Sample
from har_demo.errors import DataError
from har_demo.training.cli import main as train_main
from har_demo.training.loso import loso_sources
from tests.test_training_end_to_end import make_manifest

TINY = ["fnn.input_size=16", "fnn.hidden=[8]", "train.epochs=2", "train.batch_size=8"]


def test_fold_sources_need_enough_photos():
    s = [Sample(f"{i}.jpg", "sitting", str(i), src) for i, src in enumerate(["a"] * 12 + ["b"] * 10 + ["c"] * 3)]
    assert loso_sources(s, 10) == ["a", "b"]
    assert loso_sources(s, 3) == ["a", "b", "c"]
    with pytest.raises(DataError, match="needs >= 2 sources"):
        loso_sources(s, 11)
    with pytest.raises(DataError, match="no source column"):
        loso_sources([Sample("x.jpg", "sitting", "g")], 1)


@pytest.fixture(scope="module")
def loso_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("loso")
    manifest = make_manifest(root, per_class=16)
    out = root / "run"
    rc = train_main(["--data", str(manifest), "--models", "fnn", "--seeds", "2", "--leave-one-source-out", "5",
                     "--out", str(out), "--quiet", "--config", *TINY])
    assert rc == 0
    return out


def test_each_fold_tests_only_on_its_unseen_source(loso_run):
    out = loso_run
    for src in ("src_a", "src_b"):
        cross = json.loads((out / "loso" / src / "splits_cross.json").read_text())["splits"]
        assert {s["source"] for s in cross["test"]} == {src}
        assert all(s["source"] != src for s in cross["train"] + cross["val"])
        assert len(cross["test"]) == 24  # every photo of the held-out source
        assert (out / "loso" / src / "results.md").is_file()


def test_summary_pools_every_held_out_photo(loso_run):
    out = loso_run
    doc = json.loads((out / "loso.json").read_text())
    assert doc["folds"] == ["src_a", "src_b"] and doc["seeds"] == [0, 1]
    (row,) = doc["rows"]
    assert row["label"] == "fnn" and row["status"] == "ok"
    assert row["pooled"]["n"] == 48
    per_source = [row["sources"][s]["accuracy"]["values"] for s in doc["folds"]]
    assert [len(v) for v in per_source] == [2, 2]  # one accuracy per seed and fold
    expected = sum(sum(v) / 2 for v in per_source) / 2  # equal fold sizes: pooled mean == macro mean
    assert row["pooled"]["accuracy"]["mean"] == pytest.approx(expected, abs=1e-9)
    assert row["macro_over_sources"]["mean"] == pytest.approx(expected, abs=1e-9)
    lo, hi = row["pooled"]["ci95"]
    assert 0.0 <= lo <= row["pooled"]["accuracy"]["mean"] <= hi <= 1.0
    md = (out / "loso.md").read_text()
    assert "| fnn |" in md and "src_a (n=24)" in md and "src_b (n=24)" in md and "Reproduce: `python train.py" in md


def test_loso_refuses_conflicting_split_options(tmp_path, capsys):
    manifest = make_manifest(tmp_path, per_class=4)
    rc = train_main(["--data", str(manifest), "--models", "fnn", "--leave-one-source-out", "--holdout-source", "src_a",
                     "--out", str(tmp_path / "r"), "--quiet"])
    assert rc == 2 and "--leave-one-source-out makes its own splits" in capsys.readouterr().err


def test_export_writes_unseen_source_accuracy_into_the_card(loso_run, tmp_path):
    from har_demo.models.checkpoint import read_card
    from har_demo.training.loso import attach_unseen_accuracy

    doc = json.loads((loso_run / "loso.json").read_text())
    export = tmp_path / "ckpt"
    (export / "fnn").mkdir(parents=True)
    fold_card = json.loads((loso_run / "loso" / "src_a" / "fnn" / "seed0" / "card.json").read_text())
    (export / "fnn" / "card.json").write_text(json.dumps(fold_card))
    assert attach_unseen_accuracy(doc, export) == ["fnn"]
    record = read_card(export / "fnn")["unseen_source_accuracy"]
    (row,) = doc["rows"]
    assert record["accuracy"] == pytest.approx(row["pooled"]["accuracy"]["mean"], abs=1e-4)
    assert record["n"] == 48 and set(record["per_source"]) == {"src_a", "src_b"}
    assert set(record["per_class_recall"]) == {"sitting", "standing", "walking_running"}
    assert "leave-one-source-out" in record["how"] and record["command"].startswith("python train.py")
    assert attach_unseen_accuracy(doc, tmp_path / "nothing_here") == []  # no exported checkpoint: nothing written
