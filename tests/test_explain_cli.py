"""`explain` / `explain-eval` through har_demo.commands.explain (argparse in, JSON/text out)."""

from __future__ import annotations

import argparse
import json

import numpy as np
import pytest
import torch
from PIL import Image

from har_demo.commands.explain import add_explain_args, add_explain_eval_args, cmd_explain, cmd_explain_eval
from har_demo.errors import HarError, UnknownName
from har_demo.labels import CLASSES
from har_demo.models.checkpoint import save_checkpoint
from har_demo.models.registry import build_tiny
from har_demo.testing import sample_image


@pytest.fixture
def ckpt(tmp_path):
    torch.manual_seed(0)
    return save_checkpoint(build_tiny("cnn_base"), tmp_path / "ckpt")


@pytest.fixture
def photo(tmp_path):
    path = tmp_path / "photo 1.png"
    sample_image(45, 30).save(path)
    return path


def run(add, cmd, argv):
    parser = argparse.ArgumentParser()
    add(parser)
    return cmd(parser.parse_args([str(a) for a in argv]))


def test_explain_json_writes_overlay_at_image_size(ckpt, photo, tmp_path, capsys):
    out = tmp_path / "out" / "overlay.png"
    argv = [photo, "--model", "cnn_base", "--checkpoint", ckpt, "--method", "gradcam", "--out", out,
            "--json", "--box", "0,0,20,15", "--steps", "4"]
    assert run(add_explain_args, cmd_explain, argv) == 0
    res = json.loads(capsys.readouterr().out)
    with Image.open(out) as im:
        assert im.size == (45, 30) and im.mode == "RGB"
    assert res["method"] == "gradcam" and res["overlay"] == str(out)
    assert list(res["probs"]) == list(CLASSES) and abs(sum(res["probs"].values()) - 1) < 1e-4
    assert res["prediction"] == max(res["probs"], key=res["probs"].get)
    assert res["target"] == res["prediction"]  # no --target: the predicted class
    assert set(res["faithfulness"]) == {"deletion_auc", "insertion_auc", "deletion_auc_random", "insertion_auc_random"}
    assert 0.0 <= res["drift"] <= 1.0
    assert set(res["ambiguity"]) >= {"margin", "flag", "top1", "top2"}


def test_explain_text_with_target_and_zero_opacity(ckpt, photo, tmp_path, capsys):
    out = tmp_path / "o.png"
    argv = [photo, "--model", "cnn_base", "--checkpoint", ckpt, "--target", "walking_running", "--opacity", "0",
            "--out", out, "--method", "occlusion", "--opt", "window=8", "--opt", "stride=8"]
    assert run(add_explain_args, cmd_explain, argv) == 0
    text = capsys.readouterr().out
    assert "map: occlusion for 'walking_running'" in text and "deletion AUC" in text and "insertion AUC" in text
    assert np.array_equal(np.asarray(Image.open(out)), np.asarray(Image.open(photo).convert("RGB")))


@pytest.mark.parametrize(
    "extra, error, message",
    [
        (["--method", "nope"], UnknownName, "unknown method 'nope'"),
        (["--method", "legrad"], HarError, "does not apply to model 'cnn_base'"),
        (["--target", "lying"], UnknownName, "unknown class 'lying'"),
        (["--box", "5,5,1,1"], HarError, "x0,y0,x1,y1"),
        (["--opt", "window"], HarError, "KEY=VALUE"),
        (["--method", "gradcam", "--opt", "steps=3"], HarError, "has no option steps"),
    ],
)
def test_explain_errors_are_one_line(ckpt, photo, tmp_path, extra, error, message):
    argv = [photo, "--model", "cnn_base", "--checkpoint", ckpt, "--out", tmp_path / "x.png", *extra]
    with pytest.raises(error, match=message) as info:
        run(add_explain_args, cmd_explain, argv)
    assert "\n" not in str(info.value)
    assert not (tmp_path / "x.png").exists()


def test_explain_through_the_main_cli(ckpt, photo, tmp_path, capsys):
    from har_demo.cli import main

    assert main(["explain", str(photo), "--model", "cnn_base", "--checkpoint", str(ckpt), "--out", str(tmp_path / "m.png"), "--steps", "2"]) == 0
    assert (tmp_path / "m.png").is_file()
    assert main(["explain", str(photo), "--model", "cnn_base", "--checkpoint", str(ckpt), "--out", str(tmp_path / "m.png"), "--method", "rollout"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: method 'rollout' does not apply") and "\n" not in err


def test_explain_eval_on_a_manifest(ckpt, tiny_manifest, capsys):
    argv = ["--data", tiny_manifest, "--model", "cnn_base", "--checkpoint", ckpt, "--limit", "4", "--steps", "4", "--json"]
    assert run(add_explain_eval_args, cmd_explain_eval, argv) == 0
    rep = json.loads(capsys.readouterr().out)
    assert rep["images"] == 4 and len(rep["rows"]) == 4 and rep["method"] == "gradcam"
    from har_demo.explain.base import explain_full
    from har_demo.explain.metrics import faithfulness
    from har_demo.models.loading import load_model

    model = load_model("cnn_base", str(ckpt))
    first = rep["rows"][0]  # the first photo's numbers, recomputed through the library: the same
    exp = explain_full(model, first["path"], "gradcam")
    assert first["target"] == CLASSES[exp.target]
    for key, value in faithfulness(model, first["path"], exp.saliency, exp.target, steps=4, seed=0).items():
        assert first[key] == pytest.approx(value, abs=1e-5), key
    for key in ("deletion_auc", "insertion_auc", "deletion_auc_random", "insertion_auc_random"):
        assert rep[key] == pytest.approx(np.mean([r[key] for r in rep["rows"]]), abs=1e-5)
    assert rep["drift"] is None and rep["drift_images"] == 0  # no person masks given
    assert rep["deletion_beats_random"] == pytest.approx(np.mean([r["deletion_auc"] < r["deletion_auc_random"] for r in rep["rows"]]), abs=1e-6)


def test_explain_eval_text_with_label_targets_and_a_split(ckpt, tiny_manifest, capsys):
    argv = ["--data", tiny_manifest, "--model", "cnn_base", "--checkpoint", ckpt, "--split", "train",
            "--explain-class", "label", "--method", "integrated_gradients", "--opt", "steps=2", "--steps", "2"]
    assert run(add_explain_eval_args, cmd_explain_eval, argv) == 0
    text = capsys.readouterr().out
    assert "cnn_base / integrated_gradients" in text and "deletion AUC" in text and "drift: n/a" in text


def test_explain_eval_drift_with_coco_person_masks(ckpt, shared_file, capsys):
    from har_demo.data.coco import person_mask

    images = shared_file("coco/mini/val2017")
    instances = shared_file("coco/mini/annotations/instances_val2017.json")
    argv = ["--data", images, "--coco-instances", instances, "--model", "cnn_base", "--checkpoint", ckpt,
            "--limit", "6", "--steps", "2", "--json"]
    assert run(add_explain_eval_args, cmd_explain_eval, argv) == 0
    rep = json.loads(capsys.readouterr().out)
    with_person = [r for r in rep["rows"] if person_mask(str(instances), r["path"]).any()]
    assert rep["drift_images"] == len(with_person) > 0
    assert all(0.0 <= r["drift"] <= 1.0 for r in with_person)
    assert rep["drift"] == pytest.approx(np.mean([r["drift"] for r in with_person]), abs=1e-5)


def test_explain_eval_errors(ckpt, tmp_path):
    with pytest.raises(HarError, match="not found"):
        run(add_explain_eval_args, cmd_explain_eval, ["--data", tmp_path / "none.csv", "--model", "cnn_base", "--checkpoint", ckpt])
