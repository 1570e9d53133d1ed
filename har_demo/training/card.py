"""The card a trainer writes beside each checkpoint: the one definition of its fields.

``models.checkpoint.save_checkpoint`` writes the fields every checkpoint has (``format_version``,
``model``, ``family``, ``config``, ``classes``, ``preprocessing``, ``temperature``, ``partial``,
``dtype``, ``created``); a trained checkpoint adds the ``TrainingCard`` fields below (in this
order, in ``card.json``); ``export_best`` adds ``selected``; a leave-one-source-out run with
``--export`` adds ``unseen_source_accuracy`` (``unseen_source_record``). The UI's model cards,
headline verdict and results tab read these fields.
"""

from __future__ import annotations

import platform
from dataclasses import asdict, dataclass, field
from typing import Any

import torch

CARD_METRICS = ("n", "accuracy", "macro_precision", "macro_recall", "macro_f1", "per_class", "confusion", "per_source")
CALIBRATION_METHOD = "temperature scaling, LBFGS on val NLL - a diagnostic, not applied (the shipped one is calibration_unseen)"


@dataclass
class TrainingCard:
    label: str  # the results-table row (registry name, or an ablation variant)
    seed: int
    data: dict  # where the photos came from (``dataprep.RunData.info``)
    split_sizes: dict[str, int]
    metrics: dict[str, dict]  # split -> CARD_METRICS of its report
    calibration: dict  # method, temperature, split -> calibration summary
    wise_ft: dict | None  # WiSE-FT alpha chosen on val (``training.wise``), or None
    training: dict  # TrainConfig + fit result + pretrained, precision, device, processes, notes
    weights: dict  # storage (full / partial and why), stored_tensors, half, description
    command: str
    argv: list[str]
    environment: dict[str, str] = field(default_factory=lambda: {
        "python": platform.python_version(), "torch": torch.__version__, "platform": platform.platform(),
    })
    person_finder: dict | None = None  # person-crop / pose models: how often a person was found, per split
    input_importance: dict | None = None  # pose-only models: permutation importance of pose-vector groups on val

    @staticmethod
    def card_metrics(reports: dict[str, dict]) -> dict[str, dict]:
        return {k: {m: r[m] for m in CARD_METRICS} for k, r in reports.items()}

    @staticmethod
    def calibration_of(temperature: float, reports: dict[str, dict]) -> dict[str, Any]:
        return {"method": CALIBRATION_METHOD, "temperature": temperature, **{k: r["calibration"] for k, r in reports.items()}}

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def unseen_source_record(row: dict, folds: list[str], seeds: list[int], command: str) -> dict[str, Any]:
    """The card's ``unseen_source_accuracy``: how often the model's recipe is right on photos from
    a source it never saw (leave-one-source-out, pooled over every held-out photo; ``row`` is a
    ``training.loso.summarise_loso`` row)."""
    pooled = row["pooled"]
    return {
        "accuracy": round(float(pooled["accuracy"]["mean"]), 4),
        "std": round(float(pooled["accuracy"]["std"]), 4),
        "ci95": [round(float(v), 4) for v in pooled["ci95"]],
        "macro_f1": round(float(pooled["macro_f1"]["mean"]), 4),
        "per_class_recall": {c: round(float(v), 4) for c, v in pooled.get("per_class_recall", {}).items()},
        "n": int(pooled["n"]),
        "per_source": {src: {"n": int(v["n"]), "accuracy": round(float(v["accuracy"]["mean"]), 4)} for src, v in row["sources"].items()},
        "how": (f"leave-one-source-out: each of {len(folds)} sources ({', '.join(folds)}) held out in turn, the same recipe "
                f"trained on the others, {len(seeds)} seed(s); pooled over every held-out photo (mean over seeds, 95% CI by "
                "bootstrap over photos)"),
        "command": command,
    }
