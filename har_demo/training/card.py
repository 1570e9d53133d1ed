"""The card a trainer writes beside each checkpoint: the one definition of its fields.

``models.checkpoint.save_checkpoint`` writes the fields every checkpoint has (``format_version``,
``model``, ``family``, ``config``, ``classes``, ``preprocessing``, ``temperature``, ``partial``,
``dtype``, ``created``); a trained checkpoint adds the ``TrainingCard`` fields below (in this
order, in ``card.json``); ``export_best`` adds ``selected``. The UI's model cards and results tab
read these fields.
"""

from __future__ import annotations

import platform
from dataclasses import asdict, dataclass, field
from typing import Any

import torch

CARD_METRICS = ("n", "accuracy", "macro_precision", "macro_recall", "macro_f1", "per_class", "confusion", "per_source")
CALIBRATION_METHOD = "temperature scaling, LBFGS on val NLL"


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

    @staticmethod
    def card_metrics(reports: dict[str, dict]) -> dict[str, dict]:
        return {k: {m: r[m] for m in CARD_METRICS} for k, r in reports.items()}

    @staticmethod
    def calibration_of(temperature: float, reports: dict[str, dict]) -> dict[str, Any]:
        return {"method": CALIBRATION_METHOD, "temperature": temperature, **{k: r["calibration"] for k, r in reports.items()}}

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
