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
