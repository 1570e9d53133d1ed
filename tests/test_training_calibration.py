"""Temperature scaling, ECE and the bootstrap CI."""

from __future__ import annotations

import numpy as np
import pytest

from har_demo.training.calibration import calibration_summary, expected_calibration_error, fit_temperature, nll, softmax
from har_demo.training.stats import bootstrap_accuracy_ci, mean_std


def overconfident(n: int, seed: int):
    """Logits of a ~70%-accurate classifier, scaled x8 so its confidence is near 1."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, n)
    z = rng.normal(0, 1, (n, 3))
    z[np.arange(n), y] += 1.5
    return 8.0 * z, y


def test_temperature_scaling_lowers_nll_of_an_overconfident_model():
    val_z, val_y = overconfident(400, 0)
    test_z, test_y = overconfident(400, 1)
    t = fit_temperature(val_z, val_y)
    assert t > 2.0  # it has to soften the x8 logits
    assert nll(val_z, val_y, t) < nll(val_z, val_y, 1.0) - 0.5
    assert nll(test_z, test_y, t) < nll(test_z, test_y, 1.0)  # generalises to held-out data
    s = calibration_summary(test_z, test_y, t)
    assert s["ece_after"] < s["ece_before"]
    # scaling never changes the predicted class
    assert (softmax(test_z, t).argmax(1) == test_z.argmax(1)).all()


def test_temperature_of_a_calibrated_model_stays_near_one():
    rng = np.random.default_rng(2)
    z = rng.normal(0, 1.5, (3000, 3))
    p = softmax(z)
    y = np.array([rng.choice(3, p=row) for row in p])  # labels drawn from the model's own probabilities
    assert fit_temperature(z, y) == pytest.approx(1.0, abs=0.15)


def test_ece_perfect_and_worst_cases():
    y = np.array([0, 1, 2, 0])
    onehot = np.eye(3)[y]
    assert expected_calibration_error(onehot, y) == pytest.approx(0.0)
    wrong = np.eye(3)[(y + 1) % 3]
    assert expected_calibration_error(wrong, y) == pytest.approx(1.0)


def test_bootstrap_ci_contains_the_mean_and_narrows_with_more_images():
    rng = np.random.default_rng(0)
    small = rng.random((3, 40)) < 0.7
    large = rng.random((3, 640)) < 0.7
    lo, hi = bootstrap_accuracy_ci(small)
    assert 0.0 <= lo < small.mean() < hi <= 1.0
    lo2, hi2 = bootstrap_accuracy_ci(large)
    assert lo2 < large.mean() < hi2
    assert hi2 - lo2 < (hi - lo) / 2


def test_mean_std_uses_sample_std():
    assert mean_std([1.0, 3.0]) == (2.0, pytest.approx(np.sqrt(2.0)))
    assert mean_std([0.5]) == (0.5, 0.0)
