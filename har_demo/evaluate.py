"""Prediction and evaluation over a data set - the one home the CLI (``evaluate``, ``explain-eval``),
the UI batch tab and the trainer all call.

* ``Prediction`` / ``predictions_from_probs`` - labelled probabilities (CLI ``predict``);
* ``classification_report`` - accuracy, macro P/R/F1, per class, confusion (scikit-learn);
* ``predict_dataset`` - decode samples once per chunk, run every given model on the chunk
  (unreadable images skipped and named, or raised);
* ``evaluate_model`` - one model over labelled samples;
* ``evaluate_maps`` / ``evaluate_maps_many`` - explanation quality (deletion/insertion AUC vs a random map,
  drift, person_share against chance, pointing) over samples, for one model or several at once.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image
from sklearn.metrics import accuracy_score, confusion_matrix, precision_recall_fscore_support

from .data.datasets import Sample
from .data.io import DecodeBudgetExceeded, load_image
from .errors import DataError, HarError, ImageLoadError
from .explain.base import explain_full
from .explain.metrics import DEFAULT_STEPS, drift_score, faithfulness
from .labels import CLASSES
from .models.base import HarModel


def classification_report(y_true: Sequence[int], y_pred: Sequence[int]) -> dict:
    """accuracy, macro precision/recall/F1, per-class metrics, confusion matrix (rows = truth), n."""
    labels = list(range(len(CLASSES)))
    y_true, y_pred = np.asarray(y_true, dtype=int), np.asarray(y_pred, dtype=int)
    p, r, f, s = precision_recall_fscore_support(y_true, y_pred, labels=labels, zero_division=0)
    mp, mr, mf, _ = precision_recall_fscore_support(y_true, y_pred, labels=labels, average="macro", zero_division=0)
    return {
        "n": len(y_true),
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


# ---- predictions -------------------------------------------------------------------------------
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


Predictor = Callable[[list[Image.Image]], np.ndarray]  # images -> probabilities (N, C)


def predict_dataset(
    predictors: Mapping[str, Predictor],
    samples: Sequence[Sample],
    chunk: int = 32,
    skip_unreadable: bool = False,
    display_name: Callable[[Sample], str] | None = None,
    progress: Callable[[float, str], None] | None = None,
    max_side: int | None = None,
    before_chunk: Callable[[int, int], None] | None = None,
) -> tuple[list[Sample], list[str], dict[str, np.ndarray]]:
    """(kept samples, one line per skipped image, name -> probabilities (N_kept, C)). Images are
    decoded once per chunk of ``chunk`` samples (bounded memory; reduced to ``max_side`` while
    decoding when given), every predictor sees the chunk, and the chunk is dropped. An unreadable
    image raises ``ImageLoadError`` naming it, or with ``skip_unreadable`` is left out.
    ``before_chunk(done, total)`` runs before each chunk, and inside a chunk before each photo's
    decode and each model's predict (e.g. raises when the client went away: a batch stops within
    one photo or one model call, not after a whole chunk of up to ``chunk`` photos)."""
    kept: list[Sample] = []
    skipped: list[str] = []
    probs: dict[str, list[np.ndarray]] = {name: [] for name in predictors}
    for start in range(0, len(samples), chunk):
        if before_chunk is not None:
            before_chunk(len(kept), len(samples))
        part, images = [], []
        for s in samples[start : start + chunk]:
            if before_chunk is not None and part:
                before_chunk(len(kept) + len(part), len(samples))
            try:
                images.append(load_image(s.path, name=display_name(s) if display_name else None, max_side=max_side))
                part.append(s)
            except DecodeBudgetExceeded:
                raise  # the request's budget, not this image: stop
            except HarError as err:
                if not skip_unreadable:
                    raise
                skipped.append(str(err))
        if images:
            for name, predict in predictors.items():
                if before_chunk is not None:
                    before_chunk(len(kept), len(samples))
                probs[name].append(predict(images))
        kept += part
        del images
        if progress:
            progress(min(1.0, (start + chunk) / len(samples)), f"{len(kept)} / {len(samples)} images")
    out = {n: (np.concatenate(p) if p else np.zeros((0, len(CLASSES)), np.float32)) for n, p in probs.items()}
    return kept, skipped, out


def evaluate_model(model: HarModel, samples: Sequence[Sample], batch_size: int = 32,
                   progress: Callable[[float, str], None] | None = None) -> dict:
    """Classification report of ``model`` on labelled ``samples`` (+ ``probs``). Person-centred
    models also report ``person_found``: photos where the person finder found someone (the others
    were judged on the whole photo) and ``people``: how many people the multi-person finder sees in
    the photos (the labels are per photo, so the most prominent person is still the one judged).
    ``progress(fraction, text)`` after each chunk."""
    found = 0
    counts: list[int] = []

    def predict(images):
        nonlocal found
        views = model.views(images)
        found += sum(v.person is not None for v in views)
        if model.needs_person:
            from .person.multi import find_people_or_empty

            counts.extend(len(find_people_or_empty(im)) for im in images)
        return model.predict_views(views, batch_size=batch_size)

    _, _, probs = predict_dataset({"model": predict}, samples, batch_size, progress=progress)
    y_true = [CLASSES.index(s.label) for s in samples]
    report = classification_report(y_true, probs["model"].argmax(1))
    if model.needs_person:
        report["person_found"] = {"found": found, "n": len(samples), "rate": round(found / max(1, len(samples)), 4)}
        report["people"] = people_counts(counts)
    report["probs"] = probs["model"]
    return report


def people_counts(counts: Sequence[int]) -> dict:
    """``evaluate``'s people summary from per-photo people counts: total people, photos with
    nobody / one / several people found."""
    c = np.asarray(counts, dtype=int)
    return {"people": int(c.sum()), "none": int((c == 0).sum()), "one": int((c == 1).sum()), "several": int((c > 1).sum()),
            "n": int(c.size)}  # fmt: skip


def format_report(report: dict) -> str:
    """Human-readable table of a classification report."""
    lines = [
        (f"n={report['n']}  accuracy={report['accuracy']:.3f}  macro P={report['macro_precision']:.3f} "
        f"R={report['macro_recall']:.3f} F1={report['macro_f1']:.3f}"),
        "",
        f"{'class':<16}{'precision':>10}{'recall':>10}{'f1':>10}{'support':>9}",
    ]
    for c, m in report["per_class"].items():
        lines.append(f"{c:<16}{m['precision']:>10.3f}{m['recall']:>10.3f}{m['f1']:>10.3f}{m['support']:>9d}")
    lines += ["", "confusion (rows = true, cols = predicted): " + " ".join(CLASSES)]
    for c, row in zip(CLASSES, report["confusion"]):
        lines.append(f"{c:<16}" + "".join(f"{v:>8d}" for v in row))
    if "person_found" in report:
        pf = report["person_found"]
        lines += ["", f"person found in {pf['found']} of {pf['n']} photos ({pf['rate']:.0%}); the others were judged on the whole photo"]
    if "people" in report:
        pc = report["people"]
        lines.append(f"people found (every person): {pc['people']} in {pc['n']} photos - {pc['several']} photos with several "
                     f"(the most prominent one is judged: the labels are per photo), {pc['one']} with one, {pc['none']} with none")  # fmt: skip
    return "\n".join(lines)


# ---- explanation quality over a data set ---------------------------------------------------------
def _person_mask(instances: str | None, path: str):
    if not instances:
        return None
    from .data.coco import person_mask

    try:
        mask = person_mask(instances, Path(path).name)
    except DataError:  # image not annotated
        return None
    return mask if mask.any() else None


def evaluate_maps(model, samples: Sequence, method: str, opts: dict, steps: int = DEFAULT_STEPS, seed: int = 0,
                  coco_instances: str | None = None, explain_class: str = "predicted",
                  progress: Callable[[int], None] | None = None) -> dict:
    """Mean deletion/insertion AUC (and the random baseline), mean drift (COCO masks) and the means
    of ``explain.metrics.drift_scores`` (each map's ``person_share`` on the person the finder
    found, its chance and lift, the same in the person box; ``pointing``: the hit rate) over
    ``samples``. ``progress(1)`` is called after each image."""
    return evaluate_maps_many([(model, method)], samples, opts, steps, seed, coco_instances, explain_class, progress)[0]


def evaluate_maps_many(models: Sequence[tuple], samples: Sequence, opts: dict, steps: int = DEFAULT_STEPS, seed: int = 0,
                       coco_instances: str | None = None, explain_class: str = "predicted",
                       progress: Callable[[int], None] | None = None) -> list[dict]:
    """``evaluate_maps`` for several ``(model, method)`` pairs at once, photo by photo: each photo
    is decoded, and its person found, once for all models (the finder's cache holds only the
    last few dozen photos, so model by model it would run again for every model on a large set)."""
    rows: list[list[dict]] = [[] for _ in models]
    skipped: list[str] = []
    for s in samples:
        try:
            image = load_image(s.path)
        except ImageLoadError as err:
            skipped.append(str(err))
        else:
            mask = _person_mask(coco_instances, s.path)
            for (model, method), model_rows in zip(models, rows):
                model_rows.append(_map_row(model, method, s, image, mask, opts, steps, seed, explain_class))
        if progress:
            progress(1)
    if not rows[0]:  # no readable image
        raise DataError(f"no readable images ({skipped[0] if skipped else 'empty dataset'})")
    return [_map_report(model, method, model_rows, len(skipped), steps) for (model, method), model_rows in zip(models, rows)]


def _map_row(model, method: str, s, image, mask, opts: dict, steps: int, seed: int, explain_class: str) -> dict:
    """One photo's map scores for one model."""
    from .explain.metrics import drift_scores
    from .person import find_person_or_none

    classes = list(model.classes)
    target = s.label if explain_class == "label" and s.label in classes else None
    exp = explain_full(model, image, method, target, **opts)
    row = {"path": s.path, "label": s.label or None, "prediction": classes[exp.predicted], "target": classes[exp.target]}
    row.update(faithfulness(model, image, exp.saliency, exp.target, steps, seed))
    row["drift"] = drift_score(exp.saliency, mask) if mask is not None else None
    found = exp.person if exp.person is not None else find_person_or_none(image)  # None: n/a (no person / no finder)
    row["person_found"] = found is not None
    row.update(drift_scores(exp.saliency, found, exp.view_box))  # against chance over the model's view
    return row


def _map_report(model, method: str, rows: list[dict], skipped: int, steps: int) -> dict:
    """The per-model summary of its rows."""

    def mean(key: str) -> float | None:
        vals = [r[key] for r in rows if r[key] is not None and not math.isnan(r[key])]
        return float(np.mean(vals)) if vals else None

    def beats(key: str, better: Callable[[float, float], bool]) -> float | None:
        pairs = [(r[key], r[f"{key}_random"]) for r in rows if r[key] is not None and not math.isnan(r[key])]
        return float(np.mean([better(a, b) for a, b in pairs])) if pairs else None

    def scored(prefix: str) -> list[dict]:  # the rows with a share (a person, a map with energy)
        return [r for r in rows if r[f"{prefix}_share"] is not None and not math.isnan(r[f"{prefix}_share"])]

    def drift_means(prefix: str) -> dict:
        got = scored(prefix)
        out = {}
        for k in ("share", "chance", "lift"):
            vals = [r[f"{prefix}_{k}"] for r in got if not math.isnan(r[f"{prefix}_{k}"])]
            out[f"{prefix}_{k}"] = float(np.mean(vals)) if vals else None
        return out

    drifts = [r["drift"] for r in rows if r["drift"] is not None and not math.isnan(r["drift"])]
    pointed = [r["pointing"] for r in scored("person")]
    return {
        "model": getattr(model, "name", "?"),
        "method": method,
        "images": len(rows),
        "skipped": skipped,
        "steps": steps,
        "reads_pixels": bool(model.uses_image),  # False: deletion/insertion do not apply (None)
        "deletion_auc": mean("deletion_auc"),
        "deletion_auc_random": mean("deletion_auc_random"),
        "insertion_auc": mean("insertion_auc"),
        "insertion_auc_random": mean("insertion_auc_random"),
        "deletion_beats_random": beats("deletion_auc", lambda a, b: a < b),
        "insertion_beats_random": beats("insertion_auc", lambda a, b: a > b),
        "drift": float(np.mean(drifts)) if drifts else None,
        "drift_images": len(drifts),
        **drift_means("person"),  # person_share / person_chance / person_lift: means over the photos with a person mask
        **drift_means("box"),
        "pointing": float(np.mean(pointed)) if pointed else None,  # pointing-game hit rate (the map's peak on the body)
        "person_images": len(pointed),
        "person_found": float(np.mean([r["person_found"] for r in rows])),
        "rows": rows,
    }


def format_eval(report: dict) -> str:
    def f(v) -> str:
        return "n/a" if v is None else f"{v:.3f}"

    def pct(v) -> str:
        return "n/a" if v is None else f"{v:.0%}"

    lines = [f"{report['model']} / {report['method']}: {report['images']} images" + (f" ({report['skipped']} unreadable skipped)" if report["skipped"] else "")]
    if not report.get("reads_pixels", True):
        lines.append("deletion / insertion AUC: n/a (the model reads the pose vector, not pixels: deleting pixels cannot change its input)")
    else:
        lines += [
            f"deletion AUC  {f(report['deletion_auc'])}  (random {f(report['deletion_auc_random'])}; lower is better; beats random on {pct(report['deletion_beats_random'])})",
            f"insertion AUC {f(report['insertion_auc'])}  (random {f(report['insertion_auc_random'])}; higher is better; beats random on {pct(report['insertion_beats_random'])})",
        ]
    if report.get("person_share") is not None:
        lift = report["person_lift"]
        lines.append(f"looked at the person: person_share {f(report['person_share'])} against chance {f(report['person_chance'])}"
                     f" (a uniform map over what the model sees): lift {f(lift)} (> 1 = prefers the body); the map's peak on"
                     f" the body in {pct(report['pointing'])} (pointing game), over {report['person_images']} images with a person mask")
        lines.append(f"in the person box: box_share {f(report['box_share'])}, chance {f(report['box_chance'])}, lift {f(report['box_lift'])}"
                     f"; person found in {report['person_found']:.0%} of the images")
    else:
        lines.append("person_share: n/a (no person found, or the person finder is not installed)")
    if report["drift_images"]:
        lines.append(f"drift (share of map inside the person) {f(report['drift'])} over {report['drift_images']} images with a person mask")
    else:
        lines.append("drift: n/a (no person masks; pass --coco-instances)")
    return "\n".join(lines)
