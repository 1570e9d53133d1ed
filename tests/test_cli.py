"""The CLI contract: `python -m har_demo models|predict|evaluate` (explain has its own tests)."""

import json
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from har_demo.cli import main
from har_demo.labels import CLASSES
from har_demo.models.checkpoint import save_checkpoint
from har_demo.models.registry import MODELS, build_model, get_spec

TINY = get_spec("cnn_base").tiny_config()


@pytest.fixture
def ckpt_root(tmp_path, monkeypatch):
    """A checkpoint root holding a tiny trained-looking cnn_base, used as the default location."""
    root = tmp_path / "checkpoints"
    torch.manual_seed(0)
    save_checkpoint(build_model("cnn_base", **TINY), root / "cnn_base")
    monkeypatch.setenv("HAR_CHECKPOINT_DIR", str(root))
    return root


@pytest.fixture
def images(tmp_path):
    rng = np.random.default_rng(0)
    paths = []
    for i, cls in enumerate(CLASSES):
        d = tmp_path / "data" / cls
        d.mkdir(parents=True)
        for j in range(2):
            p = d / f"img {i}{j}.jpg"  # spaces in names on purpose
            Image.fromarray(rng.integers(0, 255, (40, 30, 3), dtype=np.uint8)).save(p)
            paths.append(p)
    return paths


def test_models_lists_every_registry_entry_with_availability(ckpt_root, capsys):
    assert main(["models", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["name"] for r in rows] == list(MODELS)
    by = {r["name"]: r for r in rows}
    assert by["cnn_base"]["available"] and "checkpoint" in by["cnn_base"]["detail"]
    assert not by["cnn_gen"]["available"] and "train.py" in by["cnn_gen"]["detail"]


def test_predict_json_contract_uses_default_checkpoint(ckpt_root, images, capsys):
    assert main(["predict", str(images[0]), str(images[3]), "--model", "cnn_base", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert [o["path"] for o in out] == [str(images[0]), str(images[3])]
    for o in out:
        assert set(o) == {"path", "label", "probs"}
        assert list(o["probs"]) == list(CLASSES)
        assert o["label"] == max(o["probs"], key=o["probs"].get)
        assert sum(o["probs"].values()) == pytest.approx(1, abs=1e-4)


def test_predict_text_output(ckpt_root, images, capsys):
    assert main(["predict", str(images[1]), "--model", "cnn_base"]) == 0
    line = capsys.readouterr().out.strip()
    assert line.startswith(str(images[1])) and all(c in line for c in CLASSES)


def test_evaluate_json_contract(ckpt_root, images, capsys):
    assert main(["evaluate", "--data", str(images[0].parents[1]), "--model", "cnn_base", "--json"]) == 0
    rep = json.loads(capsys.readouterr().out)
    assert {"accuracy", "macro_f1", "per_class", "confusion", "n"} <= set(rep)
    assert rep["n"] == 6 and np.array(rep["confusion"]).sum() == 6
    assert rep["accuracy"] == pytest.approx(np.trace(rep["confusion"]) / 6)


@pytest.mark.parametrize(
    "argv, message",
    [
        (["predict", "{img}", "--model", "no_such_model"], "unknown model 'no_such_model'"),
        (["predict", "/nope/missing.jpg", "--model", "cnn_base"], "file not found"),
        (["predict", "{bad}", "--model", "cnn_base"], "not a recognised image"),
        (["predict", "{img}", "--model", "cnn_gen"], "no trained checkpoint"),
        (["predict", "{img}", "--model", "cnn_base", "--checkpoint", "/nope/dir"], "checkpoint directory not found"),
        (["evaluate", "--data", "/nope/data", "--model", "cnn_base"], "/nope/data"),
    ],
)
def test_errors_are_one_clear_line(ckpt_root, images, tmp_path, capsys, argv, message):
    bad = tmp_path / "bad.jpg"
    bad.write_text("this is text, not a JPEG")
    argv = [a.format(img=images[0], bad=bad) for a in argv]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err and err.count("\n") == 1


def test_module_entry_point_help_lists_subcommands():
    out = subprocess.run([sys.executable, "-m", "har_demo", "--help"], capture_output=True, text=True, check=True).stdout
    for cmd in ("models", "predict", "evaluate", "explain", "explain-eval", "bench"):
        assert cmd in out
