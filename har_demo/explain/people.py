"""Everyone in the photo: a person-centred model's verdict, map, drift and pose sentence per person.

Person-centred models (``HarModel.needs_person``: ``effnet_person``, ``pose_mlp``, any
``person_crop`` model) look at one person, so they answer once per person found by
``person.multi.find_people``; whole-photo models keep one answer per photo (``per_person`` says
which). The drift numbers come from ``metrics.drift_scores`` - the same function the photo-level
explanation uses - applied to each person's own map, mask and the model's view of that person.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from PIL import Image

from ..labels import CLASSES
from ..models.base import HarModel
from ..person.geometry import describe_pose
from .base import make_explainer
from .metrics import drift_scores


def per_person(model: HarModel) -> bool:
    """Whether ``model`` answers per person (it looks at a person) or once per photo."""
    return bool(model.needs_person)


def person_rows(model: HarModel, image: Image.Image, people: Sequence[Any], probs: np.ndarray | None = None) -> list[dict]:
    """One record per person, numbered from 1 in ``people``'s order (most prominent first):
    ``{"index", "box", "score", "label", "probs": {class: p}, "pose"}``. ``probs`` (len(people), C)
    when already computed, else ``model.predict_people``."""
    if not per_person(model):
        raise ValueError("a whole-photo model has one answer per photo, not one per person")
    if probs is None:
        probs = model.predict_people(image, people)
    rows = []
    for i, (person, p) in enumerate(zip(people, probs), 1):
        rows.append({
            "index": i, "box": [int(v) for v in person.box], "score": round(float(person.score), 4),
            "label": CLASSES[int(np.argmax(p))], "probs": {c: round(float(v), 4) for c, v in zip(CLASSES, p)},
            "pose": describe_pose(person),
        })  # fmt: skip
    return rows


def explain_people(model: HarModel, image: Image.Image, people: Sequence[Any], method: str, **opts: Any) -> list[dict]:
    """``person_rows`` plus, per person, ``"saliency"`` (its map on the photo, (H, W) float32) and
    the drift fields of ``metrics.drift_scores`` for that map, that person and the model's view of them. The probabilities are
    the explainer's own forward pass (the same view, so the same numbers as ``predict_people``)."""
    explainer = make_explainer(method, model, **opts)
    exps = explainer.explain_people(model, image, people)  # one batched pass where the method has one (Grad-CAM)
    rows = person_rows(model, image, people, np.stack([e.probs for e in exps]) if exps else None)
    for row, person, exp in zip(rows, people, exps):
        row["saliency"] = exp.saliency
        row.update(drift_scores(exp.saliency, person, exp.view_box))
    return rows


def verdict_line(rows: Sequence[dict]) -> str:
    """The compact per-person list for the headline: "1: sitting 94 %, 2: standing 81 %"."""
    return ", ".join(f"{r['index']}: {r['label'].replace('_', '/')} {100 * r['probs'][r['label']]:.0f} %" for r in rows)
