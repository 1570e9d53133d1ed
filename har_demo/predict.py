"""Prediction shared by the CLI, the UI and the tests: images in, labelled probabilities out."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from .data.io import ImageSource, load_image
from .labels import CLASSES
from .models.base import HarModel


@dataclass
class Prediction:
    label: str
    probs: dict[str, float]

    @property
    def margin(self) -> float:
        top = sorted(self.probs.values(), reverse=True)
        return float(top[0] - top[1])

    def to_json(self, **extra) -> dict:
        return {**extra, "label": self.label, "probs": {k: round(v, 6) for k, v in self.probs.items()}}


def predictions_from_probs(probs: np.ndarray) -> list[Prediction]:
    return [Prediction(CLASSES[int(p.argmax())], {c: float(v) for c, v in zip(CLASSES, p)}) for p in probs]


def predict(model: HarModel, images: Sequence[ImageSource], batch_size: int = 32) -> list[Prediction]:
    """Decode (robustly) and classify; raises ImageLoadError naming the first bad image."""
    pil = [load_image(im) for im in images]
    return predictions_from_probs(model.predict_proba(pil, batch_size=batch_size))
