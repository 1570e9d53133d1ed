"""CLI parts of issues 12/15: person_share in `explain --json` and `explain-eval` (per model),
`explain` writing to a git-ignored default, `evaluate --split/--splits`, progress bars that stay
off stdout (and off entirely when stderr is not a terminal)."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest
import torch

from har_demo.cli import main
from har_demo.commands import common
from har_demo.data.datasets import load_dataset
from har_demo.data.splits import save_splits, split_samples
from har_demo.models.checkpoint import save_checkpoint
from har_demo.models.registry import build_tiny
from har_demo.testing import PERSON_PHOTOS
from tests.test_ui_support import example_photo


@pytest.fixture
def ckpt_root(tmp_path, monkeypatch):
    torch.manual_seed(0)
    for name in ("cnn_base", "fnn"):
        save_checkpoint(build_tiny(name), tmp_path / "ck" / name)
    torch.manual_seed(0)  # (seeded: its Grad-CAM on the woods photo is not empty)
    crop = build_tiny("effnet_lite0", person_crop=True)  # a person-crop model: it sees the person box only
    assert crop.person_crop
    save_checkpoint(crop, tmp_path / "ck" / "effnet_lite0")
    monkeypatch.setenv("HAR_CHECKPOINT_DIR", str(tmp_path / "ck"))
    return tmp_path / "ck"


def _chance(photo: str, crop: bool) -> tuple[float, float]:
    """(person chance, box chance) recomputed here from the finder's mask and box: the body's (the
    box's) share of the photo, or of the box for a crop model - plain numpy, not the metric's code."""
    from har_demo.data.io import load_image
    from har_demo.person import find_person

    image = load_image(photo)
    person = find_person(image)
    body = np.asarray(person.mask) > 0.5
    x0, y0, x1, y1 = (int(v) for v in person.box)
    in_box = np.zeros(body.shape, bool)
    in_box[y0:y1, x0:x1] = True
    view = in_box if crop else np.ones(body.shape, bool)
    return (body & view).sum() / view.sum(), (in_box & view).sum() / view.sum()


@pytest.mark.parametrize("model, crop", [("cnn_base", False), ("effnet_lite0", True)])
def test_explain_json_has_drift_against_chance_and_a_default_out(ckpt_root, tmp_path, monkeypatch, capsys, model, crop):
    monkeypatch.chdir(tmp_path)
    photo = example_photo()
    assert main(["explain", photo, "--model", model, "--json", "--steps", "2"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert res["overlay"] == f"runs/explain/standing_woods_{model}_gradcam.png"
    assert (tmp_path / res["overlay"]).is_file()
    assert res["person"]["found"] is True and len(res["person"]["box"]) == 4  # the woods photo has one person
    assert res["share_from"] == "person finder" and isinstance(res["pointing"], bool)
    person_chance, box_chance = _chance(photo, crop)
    assert res["person_chance"] == pytest.approx(person_chance, abs=1e-5)
    assert res["box_chance"] == pytest.approx(box_chance, abs=1e-5)  # 1.0 for the crop: it sees only the box
    assert res["person_lift"] == pytest.approx(res["person_share"] / person_chance, rel=1e-4)
    assert res["box_lift"] == pytest.approx(res["box_share"] / box_chance, rel=1e-4)
    if crop:  # its map is zero outside its view: all of it in the box, exactly chance there
        assert res["box_share"] == pytest.approx(1.0) and res["box_lift"] == pytest.approx(1.0)
    assert main(["explain", photo, "--model", model, "--json", "--steps", "0", "--box", "200,80,340,330"]) == 0
    boxed = json.loads(capsys.readouterr().out)
    assert boxed["share_from"] == "box" and boxed["person_share"] is None and boxed["pointing"] is None
    assert boxed["box_lift"] == pytest.approx(boxed["box_share"] / boxed["box_chance"], rel=1e-4)
    assert main(["explain", photo, "--model", model, "--steps", "0"]) == 0
    text = capsys.readouterr().out
    assert f"which covers {person_chance:.0%} of what this model sees: {res['person_lift']:.1f}x chance" in text


def test_explain_eval_reports_mean_person_share_per_model(ckpt_root, tmp_path, capsys):
    import shutil

    data = tmp_path / "data"
    for cls in ("sitting", "standing"):  # photos where the finder finds one person (har_demo.testing.PERSON_PHOTOS)
        (data / cls).mkdir(parents=True)
        shutil.copy(PERSON_PHOTOS[cls], data / cls / PERSON_PHOTOS[cls].name)
    assert main(["explain-eval", "--data", str(data), "--model", "cnn_base,fnn,effnet_lite0", "--steps", "2", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert [r["model"] for r in doc["models"]] == ["cnn_base", "fnn", "effnet_lite0"]
    for rep in doc["models"]:
        found = [r["person_found"] for r in rep["rows"]]
        assert rep["person_found"] == pytest.approx(sum(found) / len(found))
        assert found == [True, True]
        for key in ("person_share", "person_chance", "person_lift", "box_share", "box_chance", "box_lift"):
            assert rep[key] == pytest.approx(np.mean([r[key] for r in rep["rows"]]), abs=1e-5), key
            assert doc[key][rep["model"]] == rep[key]
        assert rep["pointing"] == np.mean([r["pointing"] for r in rep["rows"]])
        assert all(isinstance(r["pointing"], bool) for r in rep["rows"])
    crop = doc["models"][2]
    assert crop["box_chance"] == pytest.approx(1.0) and crop["person_chance"] > doc["models"][0]["person_chance"]
    assert main(["explain-eval", "--data", str(data), "--model", "cnn_base,fnn", "--steps", "2"]) == 0
    text = capsys.readouterr().out
    assert "lift = share / chance" in text
    assert "looked at the person: person_share" in text and "person_share: n/a" not in text


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
