"""Classification metrics (scikit-learn) shared by the CLI, the trainer and the UI batch tab."""

from __future__ import annotations

from typing import Sequence

import numpy as np
from sklearn.metrics import accuracy_score, confusion_matrix, precision_recall_fscore_support

from ..data.datasets import Sample
from ..data.io import load_image
from ..labels import CLASSES
from ..models.base import HarModel


def classification_report(y_true: Sequence[int], y_pred: Sequence[int]) -> dict:
    """accuracy, macro precision/recall/F1, per-class metrics, confusion matrix (rows = truth), n."""
    labels = list(range(len(CLASSES)))
    y_true, y_pred = np.asarray(y_true, dtype=int), np.asarray(y_pred, dtype=int)
    p, r, f, s = precision_recall_fscore_support(y_true, y_pred, labels=labels, zero_division=0)
    mp, mr, mf, _ = precision_recall_fscore_support(y_true, y_pred, labels=labels, average="macro", zero_division=0)
    return {
        "n": int(len(y_true)),
        "accuracy": float(accuracy_score(y_true, y_pred)) if len(y_true) else 0.0,
        "macro_precision": float(mp),
        "macro_recall": float(mr),
        "macro_f1": float(mf),
        "per_class": {
            c: {"precision": float(p[i]), "recall": float(r[i]), "f1": float(f[i]), "support": int(s[i])}
            for i, c in enumerate(CLASSES)
        },
        "confusion": confusion_matrix(y_true, y_pred, labels=labels).tolist(),
        "classes": list(CLASSES),
    }


def predict_samples(model: HarModel, samples: Sequence[Sample], batch_size: int = 32) -> np.ndarray:
    """Probabilities (N, C) for dataset samples, decoding in batches to bound memory."""
    out = []
    for i in range(0, len(samples), batch_size):
        chunk = [load_image(s.path) for s in samples[i : i + batch_size]]
        out.append(model.predict_proba(chunk, batch_size=batch_size))
    return np.concatenate(out) if out else np.zeros((0, len(CLASSES)), np.float32)


def evaluate_model(model: HarModel, samples: Sequence[Sample], batch_size: int = 32) -> dict:
    probs = predict_samples(model, samples, batch_size)
    y_true = [CLASSES.index(s.label) for s in samples]
    report = classification_report(y_true, probs.argmax(1))
    report["probs"] = probs
    return report


def format_report(report: dict) -> str:
    """Human-readable table of a classification report."""
    lines = [
        f"n={report['n']}  accuracy={report['accuracy']:.3f}  macro P={report['macro_precision']:.3f} "
        f"R={report['macro_recall']:.3f} F1={report['macro_f1']:.3f}",
        "",
        f"{'class':<16}{'precision':>10}{'recall':>10}{'f1':>10}{'support':>9}",
    ]
    for c, m in report["per_class"].items():
        lines.append(f"{c:<16}{m['precision']:>10.3f}{m['recall']:>10.3f}{m['f1']:>10.3f}{m['support']:>9d}")
    lines += ["", "confusion (rows = true, cols = predicted): " + " ".join(CLASSES)]
    for c, row in zip(CLASSES, report["confusion"]):
        lines.append(f"{c:<16}" + "".join(f"{v:>8d}" for v in row))
    return "\n".join(lines)
