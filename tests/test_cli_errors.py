"""User errors vs bugs at the faces, the 'not applicable' message, the NumPy floor (issue 19, item 7).

A ``HarError`` (``har_demo/errors.py``) is a user error: one line, exit code 2. Anything else is
a bug and must surface as one - a traceback and a non-zero exit - not dressed up as a user error."""

from __future__ import annotations

import ast
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from har_demo import cli
from har_demo.errors import HarError
from har_demo.explain.base import make_explainer
from har_demo.models.registry import build_tiny
from har_demo.training import cli as train_cli

REPO = Path(__file__).resolve().parents[1]


def _boom(*_args, **_kwargs):
    raise ValueError("an internal bug")


def _refuse(*_args, **_kwargs):
    raise HarError("a user mistake")


def test_cli_internal_error_propagates(monkeypatch):
    monkeypatch.setattr(cli, "cmd_models", _boom)
    with pytest.raises(ValueError, match="an internal bug"):  # before: "error: an internal bug", exit 2
        cli.main(["models"])


def test_cli_user_error_is_one_line_and_exit_2(monkeypatch, capsys):
    monkeypatch.setattr(cli, "cmd_models", _refuse)
    assert cli.main(["models"]) == 2
    assert capsys.readouterr().err == "error: a user mistake\n"


def test_train_py_internal_error_propagates_and_user_error_is_one_line(monkeypatch, tmp_path, capsys):
    argv = ["--data", "x", "--out", str(tmp_path / "run"), "--models", "cnn_base"]
    monkeypatch.setattr(train_cli, "run", _boom)
    with pytest.raises(ValueError, match="an internal bug"):
        train_cli.main(argv)
    monkeypatch.setattr(train_cli, "run", _refuse)
    assert train_cli.main(argv) == 2
    assert capsys.readouterr().err == "error: a user mistake\n"


def test_a_bug_in_a_subprocess_shows_its_traceback_and_a_user_error_does_not():
    code = ("import sys, har_demo.cli as c\n"
            "def boom(args): raise ValueError('an internal bug')\n"
            "c.cmd_models = boom\n"
            "sys.exit(c.main(sys.argv[1:]))\n")
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    bug = subprocess.run([sys.executable, "-c", code, "models"], cwd=REPO, env=env, capture_output=True, text=True, timeout=300, check=False)
    assert bug.returncode == 1
    assert "Traceback (most recent call last)" in bug.stderr and bug.stderr.rstrip().endswith("ValueError: an internal bug")
    user = subprocess.run([sys.executable, "-m", "har_demo", "predict", "no_such_photo.jpg", "--model", "cnn_base"],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=300, check=False)
    assert user.returncode == 2 and "Traceback" not in user.stderr
    assert user.stderr.startswith("error: ") and user.stderr.count("\n") == 1


@pytest.mark.parametrize("method", ["integrated_gradients", "occlusion", "gradcam"])
def test_pixel_methods_on_pose_mlp_say_it_reads_no_pixels(method):
    with pytest.raises(HarError) as info:  # before: "(needs nothing)"
        make_explainer(method, build_tiny("pose_mlp"))
    msg = str(info.value)
    assert "needs nothing" not in msg
    assert f"method {method!r} does not apply to model 'pose_mlp' (it reads no pixels" in msg
    assert msg.endswith("applicable: landmarks")


def _numpy_floor() -> tuple[int, ...]:
    text = (REPO / "requirements.txt").read_text(encoding="utf-8")
    m = re.search(r"^numpy>=([\d.]+)", text, re.MULTILINE)
    assert m, "requirements.txt has no numpy floor"
    return tuple(int(p) for p in m.group(1).split("."))


NUMPY2_ONLY = {"trapezoid", "unstack", "cumulative_sum", "cumulative_prod", "bitwise_count", "isdtype", "concat",
               "permute_dims", "matrix_transpose", "vecdot", "astype"}  # added to the numpy namespace in 2.0


def _numpy2_names(source: str) -> set[str]:
    return {node.attr for node in ast.walk(ast.parse(source))
            if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in ("np", "numpy")
            and node.attr in NUMPY2_ONLY}


def test_the_numpy_floor_covers_the_numpy_api_the_code_uses():
    assert _numpy2_names("import numpy as np\nnp.trapezoid(y)\nnp.mean(y)") == {"trapezoid"}  # the scan sees it
    used = {f"{p.name}: np.{n}" for p in (REPO / "har_demo").rglob("*.py") for n in _numpy2_names(p.read_text(encoding="utf-8"))}
    # before: metrics.auc used np.trapezoid while requirements.txt allowed numpy>=1.26
    assert not used or _numpy_floor() >= (2, 0), f"numpy 2 API used ({sorted(used)}) but requirements.txt allows {_numpy_floor()}"
