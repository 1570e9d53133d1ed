"""tools/loso_pooled.py: the README's "pooled over the 7 common sources" figures."""

from __future__ import annotations

import importlib.util
import json

import numpy as np
import pytest

from har_demo.testing import REPO_ROOT


def _tool():
    spec = importlib.util.spec_from_file_location("loso_pooled", REPO_ROOT / "tools" / "loso_pooled.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _fold(run, source, seed, probs, y):
    d = run / "loso" / source / "m" / f"seed{seed}"
    d.mkdir(parents=True)
    (d / "metrics.json").write_text(json.dumps({"predictions": {"test_cross": {"probs": probs, "y_true": y}}}))


def test_pools_only_the_named_sources_and_averages_seeds(tmp_path):
    # source a: 2 photos, both right; b: 3 photos, seed 0 and 1 disagree on the last, their mean decides
    _fold(tmp_path, "a", 0, [[0.9, 0.05, 0.05], [0.1, 0.8, 0.1]], [0, 1])
    _fold(tmp_path, "b", 0, [[0.2, 0.7, 0.1], [0.1, 0.1, 0.8], [0.6, 0.3, 0.1]], [1, 0, 1])
    _fold(tmp_path, "b", 1, [[0.2, 0.7, 0.1], [0.1, 0.1, 0.8], [0.1, 0.8, 0.1]], [1, 0, 1])
    _fold(tmp_path, "c", 0, [[0.0, 0.0, 1.0]], [0])  # not named: left out
    acc, (lo, hi), n = _tool().pooled(tmp_path, "m", ["a", "b"])
    # by hand: a 2/2; b photo 1 right, photo 2 wrong, photo 3 mean (0.35, 0.55, 0.1) -> class 1, right: 4 of 5
    assert n == 5 and acc == pytest.approx(0.8)
    assert lo <= 0.8 <= hi and lo < hi
    c = np.array([1, 1, 1, 0, 1])
    rng = np.random.default_rng(0)
    assert lo >= min(c[rng.integers(0, 5, 5)].mean() for _ in range(200)) - 1e-9


def test_a_missing_fold_is_one_line(tmp_path):
    _fold(tmp_path, "a", 0, [[1.0, 0.0, 0.0]], [0])
    with pytest.raises(SystemExit, match="no held-out predictions for m"):
        _tool().pooled(tmp_path, "m", ["a", "zz"])
