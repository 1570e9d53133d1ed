"""Summary statistics over seeds: mean +- std and a bootstrap confidence interval on accuracy."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

BOOTSTRAP_METHOD = (
    "percentile bootstrap over test images (2000 resamples); each resample's statistic is the "
    "accuracy averaged over the seeds' predictions on the same resampled images (pooled test predictions)"
)


def mean_std(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (ddof=1; 0.0 for a single value)."""
    v = np.asarray(values, dtype=np.float64)
    if v.size == 0:
        return float("nan"), float("nan")
    return float(v.mean()), float(v.std(ddof=1)) if v.size > 1 else 0.0


def bootstrap_accuracy_ci(correct: np.ndarray, n_boot: int = 2000, level: float = 0.95, seed: int = 0) -> tuple[float, float]:
    """CI on mean accuracy from a (seeds, images) 0/1 matrix of correct predictions on one test set.

    Images are resampled with replacement (the same resample for every seed, so seed-to-seed
    variation is averaged, not mistaken for test-set variation); percentile interval."""
    c = np.atleast_2d(np.asarray(correct, dtype=np.float64))
    n = c.shape[1]
    if n == 0:
        return float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    per_image = c.mean(0)  # accuracy over seeds, per image: the statistic is linear in it
    idx = rng.integers(0, n, size=(n_boot, n))
    stats = per_image[idx].mean(1)
    alpha = (1.0 - level) / 2.0
    lo, hi = np.quantile(stats, [alpha, 1.0 - alpha])
    return float(lo), float(hi)
