"""Figures written next to the results tables (matplotlib, Agg backend: no display needed)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ..labels import CLASSES


def _pyplot():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def confusion_png(confusion: Sequence[Sequence[int]], path: str | Path, title: str = "") -> Path:
    """Counts (rows = true class, columns = predicted) with row-normalised shading; returns ``path``."""
    plt = _pyplot()
    cm = np.asarray(confusion, dtype=float)
    rows = cm.sum(1, keepdims=True)
    frac = np.divide(cm, rows, out=np.zeros_like(cm), where=rows > 0)
    fig, ax = plt.subplots(figsize=(4.6, 4.0), dpi=120)
    ax.imshow(frac, cmap="Blues", vmin=0.0, vmax=1.0)
    for i in range(cm.shape[0]):
        for j in range(cm.shape[1]):
            ax.text(j, i, f"{int(cm[i, j])}\n{frac[i, j]:.0%}", ha="center", va="center", fontsize=8, color="white" if frac[i, j] > 0.6 else "black")
    names = [c.replace("_", "/") for c in CLASSES]
    ax.set_xticks(range(len(CLASSES)), names, rotation=20)
    ax.set_yticks(range(len(CLASSES)), names)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    if title:
        ax.set_title(title, fontsize=9)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path


def reliability_figure(card: dict, title: str = ""):
    """The reliability diagram of a checkpoint card's ``calibration_unseen`` (photos from sources
    the model never saw): per confidence bin, accuracy against mean confidence, uncalibrated and
    after the cross-checked temperature, over the diagonal of perfect calibration, with each bin's
    photo count. Returns a matplotlib Figure (Agg), or None when the card has no such data."""
    cal = card.get("calibration_unseen") if isinstance(card, dict) else None
    rel = cal.get("reliability") if isinstance(cal, dict) else None
    if not isinstance(rel, dict) or not rel.get("before"):
        return None
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(4.2, 4.0), dpi=110)
    ax.plot([0, 1], [0, 1], color="0.6", lw=1, ls="--", label="perfectly calibrated")
    unseen = cal.get("unseen", {})
    styles = {"before": ("tab:red", "o", "uncalibrated (T = 1)"), "after": ("tab:blue", "s", "temperature, cross-checked")}
    for key, (color, marker, name) in styles.items():
        bins = [b for b in rel.get(key, []) if b.get("n")]
        if not bins:
            continue
        if key in ("before", "after") and f"ece_{key}" in unseen:
            name += f", ECE {unseen[f'ece_{key}']:.3f}"
        ax.plot([b["confidence"] for b in bins], [b["accuracy"] for b in bins], marker=marker, color=color, label=name)
        if key == "before":
            for b in bins:
                ax.annotate(str(b["n"]), (b["confidence"], b["accuracy"]), textcoords="offset points", xytext=(0, -11),
                            ha="center", fontsize=7, color="0.35")  # fmt: skip
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_xlabel("confidence (top class probability)")
    ax.set_ylabel("accuracy on unseen sources")
    state = f"shipped T = {cal['temperature']:.2f}" if cal.get("shipped") else "not shipped: the app shows T = 1 (uncalibrated)"
    ax.set_title((title + "\n" if title else "") + state, fontsize=8)
    ax.legend(fontsize=7, loc="upper left")
    fig.tight_layout()
    return fig
