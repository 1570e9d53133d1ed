"""CLI parts of issues 12/15: person_share in `explain --json` and `explain-eval` (per model),
`explain` writing to a git-ignored default, `evaluate --split/--splits`, progress bars that stay
off stdout (and off entirely when stderr is not a terminal)."""

from __future__ import annotations

import json
import sys

import pytest
import torch

from har_demo.cli import main
from har_demo.commands import common
from har_demo.data.datasets import load_dataset
from har_demo.data.splits import save_splits, split_samples
from har_demo.models.checkpoint import save_checkpoint
from har_demo.models.registry import build_tiny
from tests.test_ui_support import example_photo


@pytest.fixture
def ckpt_root(tmp_path, monkeypatch):
    torch.manual_seed(0)
    for name in ("cnn_base", "fnn"):
        save_checkpoint(build_tiny(name), tmp_path / "ck" / name)
    monkeypatch.setenv("HAR_CHECKPOINT_DIR", str(tmp_path / "ck"))
    return tmp_path / "ck"


def test_explain_json_has_person_share_and_a_default_out(ckpt_root, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    photo = example_photo()
    assert main(["explain", photo, "--model", "cnn_base", "--json", "--steps", "2"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert res["overlay"] == "runs/explain/standing_woods_cnn_base_gradcam.png"
    assert (tmp_path / res["overlay"]).is_file()
    assert {"person_share", "box_share", "share_from", "person"} <= set(res)
    if res["person"]["found"]:  # mediapipe installed: the woods photo has a person
        assert 0.0 <= res["person_share"] <= 1.0 and res["share_from"] == "person finder"
        assert len(res["person"]["box"]) == 4
    assert main(["explain", photo, "--model", "cnn_base", "--json", "--steps", "0", "--box", "200,80,340,330"]) == 0
    boxed = json.loads(capsys.readouterr().out)
    assert boxed["share_from"] == "box" and boxed["person_share"] is None and 0.0 <= boxed["box_share"] <= 1.0


def test_explain_eval_reports_mean_person_share_per_model(ckpt_root, tmp_path, capsys):
    import shutil

    data = tmp_path / "data"
    for cls, photo in (("standing", "standing_woods.jpg"), ("sitting", "sitting_table.jpg")):
        (data / cls).mkdir(parents=True)
        shutil.copy(example_photo(photo), data / cls / photo)
    assert main(["explain-eval", "--data", str(data), "--model", "cnn_base,fnn", "--steps", "2", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert [r["model"] for r in doc["models"]] == ["cnn_base", "fnn"]
    assert set(doc["person_share"]) == {"cnn_base", "fnn"}
    for rep in doc["models"]:
        assert 0.0 <= rep["person_found"] <= 1.0
        shares = [r["person_share"] for r in rep["rows"] if r["person_share"] is not None]
        assert rep["person_share"] == (pytest.approx(sum(shares) / len(shares), abs=1e-5) if shares else None)
    assert main(["explain-eval", "--data", str(data), "--model", "cnn_base,fnn", "--steps", "2"]) == 0
    text = capsys.readouterr().out
    assert "mean person_share per model" in text and "looked at the person" in text or "person_share: n/a" in text


def test_evaluate_scores_only_the_split_asked_for(ckpt_root, tiny_manifest, tmp_path, capsys):
    parts = split_samples(load_dataset(tiny_manifest), seed=0)
    splits = save_splits(parts, tmp_path / "run" / "splits.json")
    assert main(["evaluate", "--data", str(tiny_manifest), "--model", "cnn_base", "--split", "test", "--splits", str(splits), "--json"]) == 0
    rep = json.loads(capsys.readouterr().out)
    assert rep["n"] == len(parts["test"]) and rep["split"] == "test"
    assert main(["evaluate", "--data", str(tiny_manifest), "--model", "cnn_base", "--splits", str(splits)]) == 2
    assert "--splits needs --split" in capsys.readouterr().err


def test_a_run_split_is_cut_to_the_data_asked_for(ckpt_root, tiny_manifest, tmp_path, capsys):
    """A run trained on two data sets: ``--data`` one of them scores only that one's held-out photos."""
    samples = load_dataset(tiny_manifest)
    parts = split_samples(samples, seed=0)
    splits = save_splits(parts, tmp_path / "run" / "splits.json")
    half = tmp_path / "half.csv"
    keep = {s.path for s in parts["test"][: len(parts["test"]) // 2]}
    rows = [s for s in samples if s.path in keep]
    half.write_text("path,label\n" + "".join(f"{s.path},{s.label}\n" for s in rows))
    assert main(["evaluate", "--data", str(half), "--model", "cnn_base", "--split", "test", "--splits", str(splits), "--json"]) == 0
    captured = capsys.readouterr()
    assert json.loads(captured.out)["n"] == len(rows) < len(parts["test"])
    assert f"--data holds {len(rows)} of the {len(parts['test'])} test photos" in captured.err
    other = tmp_path / "other.csv"
    other.write_text("path,label\n" + "".join(f"{s.path},{s.label}\n" for s in parts["train"]))
    assert main(["evaluate", "--data", str(other), "--model", "cnn_base", "--split", "test", "--splits", str(splits)]) == 2
    assert "none of the" in capsys.readouterr().err


def test_progress_bar_only_on_a_terminal(monkeypatch, capsys):
    class Tty:
        def __init__(self):
            self.text = ""

        def isatty(self):
            return True

        def write(self, s):
            self.text += s

        def flush(self):
            pass

    with common.Progress(3, "x") as step:  # pytest's stderr is not a terminal: no bar
        step(3)
    assert capsys.readouterr().err == ""
    fake = Tty()
    monkeypatch.setattr(sys, "stderr", fake)
    with common.Progress(3, "demo") as step:
        step(3)
    assert "demo" in fake.text
    fake.text = ""
    with common.Progress(3, "demo", quiet=True) as step:
        step(3)
    assert fake.text == ""
