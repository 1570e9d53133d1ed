"""Temperature scaling (Guo et al. 2017) fitted on validation logits, and calibration metrics."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

T_MIN, T_MAX = 0.05, 20.0


def _as_tensors(logits, labels) -> tuple[torch.Tensor, torch.Tensor]:
    return torch.as_tensor(np.asarray(logits), dtype=torch.float64), torch.as_tensor(np.asarray(labels), dtype=torch.long)


def nll(logits, labels, temperature: float = 1.0) -> float:
    """Mean negative log-likelihood of ``softmax(logits / temperature)``."""
    z, y = _as_tensors(logits, labels)
    if len(y) == 0:
        return float("nan")
    return float(F.cross_entropy(z / float(temperature), y))


def fit_temperature(logits, labels, max_iter: int = 50) -> float:
    """The temperature T > 0 minimising validation NLL of ``softmax(logits / T)`` (LBFGS on log T).

    Returns 1.0 when there is nothing to fit or the fit does not lower the NLL."""
    z, y = _as_tensors(logits, labels)
    if len(y) == 0:
        return 1.0
    log_t = torch.zeros(1, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([log_t], lr=0.5, max_iter=max_iter, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = F.cross_entropy(z / log_t.exp(), y)
        loss.backward()
        return loss

    opt.step(closure)
    t = float(log_t.detach().exp().clamp(T_MIN, T_MAX))
    if not np.isfinite(t) or nll(z, y, t) > nll(z, y, 1.0):
        return 1.0
    return t


def softmax(logits, temperature: float = 1.0) -> np.ndarray:
    z, _ = _as_tensors(logits, np.zeros(len(np.asarray(logits)), dtype=int))
    return torch.softmax(z / float(temperature), dim=-1).numpy()


def expected_calibration_error(probs, labels, n_bins: int = 15) -> float:
    """ECE with ``n_bins`` equal-width confidence bins: sum_b |acc_b - conf_b| * n_b / n."""
    probs, labels = np.asarray(probs, dtype=np.float64), np.asarray(labels, dtype=int)
    if len(labels) == 0:
        return float("nan")
    conf = probs.max(1)
    correct = (probs.argmax(1) == labels).astype(np.float64)
    bins = np.minimum((conf * n_bins).astype(int), n_bins - 1)
    ece = 0.0
    for b in range(n_bins):
        m = bins == b
        if m.any():
            ece += abs(correct[m].mean() - conf[m].mean()) * m.sum() / len(labels)
    return float(ece)


def calibration_summary(logits, labels, temperature: float) -> dict:
    """NLL and ECE before (T = 1) and after temperature scaling, on one split."""
    return {
        "n": len(np.asarray(labels)),
        "nll_before": nll(logits, labels, 1.0),
        "nll_after": nll(logits, labels, temperature),
        "ece_before": expected_calibration_error(softmax(logits, 1.0), labels),
        "ece_after": expected_calibration_error(softmax(logits, temperature), labels),
    }
