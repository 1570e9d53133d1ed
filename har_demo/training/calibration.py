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


def reliability_bins(probs, labels, n_bins: int = 10) -> list[dict]:
    """The reliability diagram's data: per equal-width confidence bin, its range, photo count,
    mean confidence and accuracy (empty bins kept with n = 0, so every card has the same bins)."""
    probs, labels = np.asarray(probs, dtype=np.float64), np.asarray(labels, dtype=int)
    conf = probs.max(1) if len(labels) else np.zeros(0)
    correct = (probs.argmax(1) == labels) if len(labels) else np.zeros(0, bool)
    idx = np.minimum((conf * n_bins).astype(int), n_bins - 1)
    out = []
    for b in range(n_bins):
        m = idx == b
        out.append({"lo": b / n_bins, "hi": (b + 1) / n_bins, "n": int(m.sum()),
                    "confidence": round(float(conf[m].mean()), 4) if m.any() else None,
                    "accuracy": round(float(correct[m].mean()), 4) if m.any() else None})  # fmt: skip
    return out


def _halves(groups: list[str], weights: dict[str, int]) -> tuple[list[str], list[str]]:
    """Sources split into two halves of similar size: largest first, each to the lighter half."""
    a: list[str] = []
    b: list[str] = []
    for g in sorted(groups, key=lambda g: (-weights[g], g)):
        (a if sum(weights[x] for x in a) <= sum(weights[x] for x in b) else b).append(g)
    return a, b


def unseen_calibration(logits, labels, sources, n_bins: int = 10) -> dict:
    """Temperature scaling for photos from sources the model never saw.

    ``logits`` are out-of-source predictions (leave-one-source-out: each photo scored by the fold
    that never saw its source; several seeds may be stacked), ``sources`` each photo's source. The
    temperature is fitted on all of them, and **shipped only if a cross-check says it helps on
    sources it was not fitted on**: the sources are split into two halves, a temperature fitted on
    one half must lower the NLL on the other, both ways round. The before/after numbers (NLL, ECE,
    reliability bins) are the cross-check's - each half scored with the temperature fitted on the
    other - so they estimate what the shipped temperature does on a new source, not on its own fit."""
    z = np.asarray(logits, dtype=np.float64)
    y = np.asarray(labels, dtype=int)
    src = np.asarray(sources)
    names = sorted(set(src.tolist()))
    t_all = fit_temperature(z, y)
    record: dict = {"method": "temperature scaling on leave-one-source-out predictions, cross-checked over source halves",
                    "n": len(y), "sources": {s: int((src == s).sum()) for s in names}, "fitted_temperature": t_all}  # fmt: skip
    if len(names) < 2:
        record.update(shipped=False, temperature=1.0, reason="needs >= 2 sources for the cross-check")
        return record
    half_a, half_b = _halves(names, record["sources"])
    cross_probs = np.zeros_like(z)
    checks = []
    for fit_on, score_on in ((half_a, half_b), (half_b, half_a)):
        fm, sm = np.isin(src, fit_on), np.isin(src, score_on)
        t = fit_temperature(z[fm], y[fm])
        cross_probs[sm] = softmax(z[sm], t)
        checks.append({"fit_on": fit_on, "score_on": score_on, "temperature": t,
                       "nll_before": nll(z[sm], y[sm], 1.0), "nll_after": nll(z[sm], y[sm], t),
                       "ece_before": expected_calibration_error(softmax(z[sm], 1.0), y[sm]),
                       "ece_after": expected_calibration_error(softmax(z[sm], t), y[sm])})  # fmt: skip
    helps = all(c["nll_after"] < c["nll_before"] for c in checks)
    before = softmax(z, 1.0)
    record.update({
        "cross_check": checks,
        "shipped": bool(helps),
        "temperature": t_all if helps else 1.0,
        "reason": ("the temperature fitted on one half of the sources lowered the NLL on the other half, both ways"
                   if helps else "not shipped: a temperature fitted on one half of the sources did not lower the NLL on the other half both ways"),
        "unseen": {
            "nll_before": nll(z, y, 1.0),
            "nll_after": float(-np.mean(np.log(np.clip(cross_probs[np.arange(len(y)), y], 1e-12, None)))),
            "ece_before": expected_calibration_error(before, y),
            "ece_after": expected_calibration_error(cross_probs, y),
        },
        "reliability": {"before": reliability_bins(before, y, n_bins), "after": reliability_bins(cross_probs, y, n_bins)},
    })  # fmt: skip
    return record


def val_fit_policy(logits, labels, temperatures) -> dict:
    """What the previous policy did on unseen sources: each held-out photo divided by the temperature
    its fold fitted on its own ~100 validation photos (``temperatures``, one per photo)."""
    z = np.asarray(logits, dtype=np.float64)
    y = np.asarray(labels, dtype=int)
    t = np.asarray(temperatures, dtype=np.float64)[:, None]
    probs = softmax(z / t, 1.0)
    return {"nll": float(-np.mean(np.log(np.clip(probs[np.arange(len(y)), y], 1e-12, None)))),
            "ece": expected_calibration_error(probs, y), "temperature_mean": float(t.mean())}  # fmt: skip
