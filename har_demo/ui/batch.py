"""The batch-evaluation tab without Gradio: files in -> metrics, confusion plot, misclassified
gallery, CSV.

Inputs are image files labelled by a class name in the file name (``sitting_01.jpg``,
``Walking-Running 3.png``) and/or zips of class folders (``data.zipdata.extract_zip_dataset``:
safe extraction into a temporary folder, removed afterwards). Images are decoded once per chunk
(``data.io.load_image``; an unreadable one is skipped and named) and every chosen model classifies
the chunk (``evaluate.predict_dataset``); metrics come from ``evaluate.classification_report``; maps of the
misclassified photos from ``explain.explain_full``.

Bounded per request: one ``ExtractBudget`` (images, uncompressed bytes) for all uploads, checked
while extracting; the images' header pixels summed against ``BATCH_MAX_PIXELS`` before any is
decoded; each image reduced to ``BATCH_SIDE`` while it is decoded (JPEG DCT scaling) and dropped
after its chunk is predicted; freed memory handed back to the OS after the batch. CSV cells that
a spreadsheet would read as a formula (``= + - @``) are prefixed with ``'``.
"""

from __future__ import annotations

import csv
import ctypes
import dataclasses
import gc
import logging
import os
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from ..data.datasets import Sample, is_image_file, normalize_class_name
from ..data.io import DECODE_FORMATS, decode_budget
from ..errors import DataError, HarError
from ..evaluate import classification_report, predict_dataset
from ..labels import CLASSES
from .analysis import Analysis, blend, run_card, working_image
from .bank import ModelBank
from .settings import BATCH_MAX_BYTES, BATCH_MAX_IMAGES, BATCH_MAX_PIXELS
from .text import msg, strings

log = logging.getLogger(__name__)

MAX_IMAGES = BATCH_MAX_IMAGES
CHUNK = 16
# Long side of a batch image as the models get it: reduced while decoding when larger (model inputs
# are far smaller, 224 px for the pretrained ones: each squashes or letterboxes its view - the photo,
# or the person box of a person_crop model - to its square input); smaller images are left as they
# are (no resampling cost).
BATCH_SIDE = 1024
MISCLASSIFIED_PER_MODEL = 4
GALLERY_OPACITY = 0.5
_OUTPUT_TTL_S = 3600

Progress = Callable[[float, str], None]
Cancelled = Callable[[], bool]  # True once the client that asked has gone away


class BatchCancelled(HarError):
    """The client went away: the rest of the batch is not computed."""


@dataclass
class BatchResult:
    reports: dict[str, dict]  # model -> classification_report (labelled images only)
    rows: list[list]  # the metrics table (strings.json "batch_columns")
    predictions: list[dict]  # one row per (image, model)
    gallery: list[tuple[np.ndarray, str]]  # misclassified overlays + captions
    csv_path: Path
    skipped: list[str] = field(default_factory=list)  # unreadable images, one line each
    unlabelled: int = 0
    seconds: float = 0.0

    def summary(self) -> dict:
        """JSON-friendly metrics per model (API)."""
        return {
            "models": {
                name: {k: rep[k] for k in ("n", "accuracy", "macro_f1", "macro_precision", "macro_recall", "per_class", "confusion", "classes")}
                for name, rep in self.reports.items()
            },
            "images": len({p["file"] for p in self.predictions}),
            "unlabelled": self.unlabelled,
            "skipped": self.skipped,
        }


# ---- inputs -------------------------------------------------------------------------------------
def label_from_name(filename: str) -> str | None:
    """The class named in a file name: the full class name, or one of its parts ('walking',
    'running'); None when no class (or more than one) is named."""
    stem = normalize_class_name(Path(filename).stem.replace(".", " "))
    tokens = set(stem.split("_"))
    found = set()
    for cls in CLASSES:
        if cls in stem or any(part in tokens for part in cls.split("_")):
            found.add(cls)
    return found.pop() if len(found) == 1 else None


def folder_label(path: Path) -> str | None:
    """The class named by the image's folder (``.../sitting/img1.jpg``), else None."""
    name = normalize_class_name(path.parent.name)
    return name if name in CLASSES else None


def read_label_csv(path: Path) -> dict[str, str]:
    """A labels CSV (``path,label``; a header row is optional) -> file name -> class. Rows are
    matched by file name, since uploads keep only the name. A bad class is one line naming the row."""
    from ..data.datasets import resolve_class_name

    labels: dict[str, str] = {}
    try:
        text = path.read_text(encoding="utf-8-sig", errors="replace")
    except OSError as err:
        raise DataError(f"{path.name}: cannot read ({err.strerror or err})") from None
    for i, row in enumerate(csv.reader(text.splitlines()), start=1):
        if len(row) < 2 or not row[0].strip():
            continue
        if i == 1 and row[0].strip().lower() in ("path", "file", "filename", "image") and row[1].strip().lower() == "label":
            continue
        name = row[0].strip().replace("\\", "/").rsplit("/", 1)[-1]
        labels[name] = resolve_class_name(row[1], f"{path.name} row {i}")
    if not labels:
        raise DataError(f"{path.name}: no 'path,label' rows found")
    return labels


def collect_samples(paths: Sequence[str | Path], workdir: str | Path) -> tuple[list[Sample], int]:
    """Samples from uploaded files (zips are extracted into ``workdir``); returns (samples, the
    number without a label). A label comes from an uploaded labels CSV (``path,label``), else the
    image's class folder, else a class named in its file name; unlabelled images get ``label=""``
    (predicted and listed, not scored)."""
    from ..data.zipdata import ExtractBudget, extract_zip_dataset

    samples: list[Sample] = []
    csv_labels: dict[str, str] = {}
    budget = ExtractBudget(MAX_IMAGES, BATCH_MAX_BYTES)
    for i, path in enumerate(paths):
        path = Path(path)
        if path.suffix.lower() == ".zip":
            samples += extract_zip_dataset(path, Path(workdir) / f"zip{i}", max_files=MAX_IMAGES, budget=budget)
        elif path.suffix.lower() == ".csv":
            budget.bytes_left -= path.stat().st_size if path.is_file() else 0
            if budget.bytes_left < 0:
                raise budget.over("bytes")
            csv_labels.update(read_label_csv(path))
        elif is_image_file(path):
            budget.files_left -= 1
            budget.bytes_left -= path.stat().st_size if path.is_file() else 0
            if budget.files_left < 0:
                raise DataError(msg("batch_too_many", n=len(samples) + 1, limit=MAX_IMAGES))
            if budget.bytes_left < 0:
                raise budget.over("bytes")
            label = folder_label(path) or label_from_name(path.name)
            samples.append(Sample(path=str(path), label=label or "", group=path.name))
        else:
            raise DataError(f"{path.name}: not an image, a .zip or a labels .csv; give images (JPEG, PNG, ...), a zip of class folders or a path,label CSV")
    if csv_labels:
        samples = [dataclasses.replace(s, label=csv_labels.get(_display_name(s), csv_labels.get(Path(s.path).name, s.label)))
                   for s in samples]
    if not samples:
        raise DataError(msg("batch_no_files"))
    if len(samples) > MAX_IMAGES:
        raise DataError(msg("batch_too_many", n=len(samples), limit=MAX_IMAGES))
    check_pixels(samples)
    return samples, sum(1 for s in samples if not s.label)


def check_pixels(samples: Sequence[Sample], limit: int | None = None) -> int:
    """Sum of the images' header sizes (nothing decoded); over ``limit`` -> one-line ``DataError``.
    An unreadable header counts 0 here (that image is skipped and named later)."""
    limit = BATCH_MAX_PIXELS if limit is None else limit
    total = 0
    for s in samples:
        try:
            with Image.open(s.path, formats=DECODE_FORMATS) as im:
                total += im.size[0] * im.size[1]
        except Exception:  # noqa: BLE001, S112 - any unreadable file is reported by the decode step
            continue
        if total > limit:
            raise DataError(
                f"the batch's images add up to more than {limit / 1e6:.0f} megapixels; send fewer or smaller images"
            )
    return total


def release_memory() -> None:
    """Collect garbage and hand freed heap pages back to the OS (glibc ``malloc_trim``)."""
    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc: the allocator keeps them, nothing else to do
        pass


def _display_name(sample: Sample) -> str:
    return sample.group if sample.group else Path(sample.path).name


# ---- evaluation ---------------------------------------------------------------------------------
def predict_all(
    bank: ModelBank, names: Sequence[str], samples: Sequence[Sample], progress: Progress | None = None, cancelled: Cancelled | None = None
):
    """(kept samples, skipped lines, model -> probs (N, C)); images decoded once per chunk, each
    reduced to ``BATCH_SIDE`` as it is decoded and dropped after its chunk."""
    entries = [bank.require(n) for n in names]

    def locked(entry):
        def predict(images):
            with entry.lock:  # explainers share the model: one request at a time per model
                return entry.model.predict_proba(images)

        return predict

    def stop_if_cancelled(done: int, total: int) -> None:
        if cancelled is not None and cancelled():
            raise BatchCancelled(f"the client went away; batch stopped after {done} of {total} images")

    predictors = {e.name: locked(e) for e in entries}
    with decode_budget(BATCH_MAX_PIXELS):  # pixels actually decoded, also of files no header describes
        return predict_dataset(predictors, samples, CHUNK, skip_unreadable=True, display_name=_display_name, progress=progress,
                               max_side=BATCH_SIDE, before_chunk=stop_if_cancelled)


def evaluate_batch(
    bank: ModelBank,
    paths: Sequence[str | Path],
    names: Sequence[str] | None = None,
    progress: Progress | None = None,
    misclassified_per_model: int = MISCLASSIFIED_PER_MODEL,
    cancelled: Cancelled | None = None,
) -> BatchResult:
    """Evaluate the chosen (default: all available) models on uploaded images / zips; ``cancelled``
    is asked between chunks (the client went away -> ``BatchCancelled``, nothing more computed)."""
    start = time.perf_counter()
    names = [e.name for e in bank.select(names)]
    if not names:
        raise HarError(msg("no_models"))
    try:
        with tempfile.TemporaryDirectory(prefix="har_batch_") as workdir:
            samples, _ = collect_samples(paths, workdir)
            kept, skipped, probs = predict_all(bank, names, samples, progress, cancelled)
            if not kept:
                raise DataError("no readable image in the batch: " + "; ".join(skipped[:3]))
            labelled = [i for i, s in enumerate(kept) if s.label]
            y_true = [CLASSES.index(kept[i].label) for i in labelled]
            reports = {n: classification_report(y_true, probs[n][labelled].argmax(1)) for n in names} if labelled else {}
            predictions = _prediction_rows(kept, probs)
            gallery = _misclassified_gallery(bank, kept, probs, labelled, misclassified_per_model)
    finally:
        release_memory()
    return BatchResult(
        reports=reports,
        rows=metric_rows(reports),
        predictions=predictions,
        gallery=gallery,
        csv_path=write_csv(predictions),
        skipped=skipped,
        unlabelled=len(kept) - len(labelled),
        seconds=time.perf_counter() - start,
    )


def _prediction_rows(samples: Sequence[Sample], probs: dict[str, np.ndarray]) -> list[dict]:
    rows = []
    for i, s in enumerate(samples):
        for name, p in probs.items():
            pred = CLASSES[int(p[i].argmax())]
            row = {"file": _display_name(s), "true": s.label, "model": name, "predicted": pred}
            row.update({f"p_{c}": round(float(v), 6) for c, v in zip(CLASSES, p[i])})
            row["correct"] = "" if not s.label else str(pred == s.label).lower()
            rows.append(row)
    return rows


def _misclassified_gallery(bank, samples, probs, labelled, per_model) -> list[tuple[np.ndarray, str]]:
    """The most confident mistakes of each model, with that model's default map."""
    gallery = []
    for name, p in probs.items():
        wrong = [i for i in labelled if CLASSES[int(p[i].argmax())] != samples[i].label]
        wrong.sort(key=lambda i: -float(p[i].max()))
        for i in wrong[:per_model]:
            s = samples[i]
            try:
                image, size = working_image(s.path)
            except HarError:
                continue
            card = run_card(bank.get(name), image, None, None)
            if card.error:
                continue
            analysis = Analysis(np.asarray(image, dtype=np.uint8), size, {name: card})
            shown = blend(analysis, name, GALLERY_OPACITY)
            caption = f"{name}: {s.label} -> {card.label} ({max(card.probs.values()):.0%}) · {_display_name(s)}"
            gallery.append((shown if shown is not None else analysis.image, caption))
    return gallery


def metric_rows(reports: dict[str, dict]) -> list[list]:
    """Rows for the metrics table, in ``strings.json["batch_columns"]`` order."""
    rows = []
    for name, rep in reports.items():
        rows.append(
            [name, rep["n"], round(rep["accuracy"], 4), round(rep["macro_f1"], 4)]
            + [round(rep["per_class"][c]["f1"], 4) for c in CLASSES]
        )
    return rows


def metric_display(rows: list[list], order: Sequence[str] = ()) -> list[list]:
    """The metrics table as shown: models in ``order`` (the cards' order: unseen-source accuracy),
    then any others as they came; accuracy as a whole percent, F1 scores with two decimals."""
    rank = {name: i for i, name in enumerate(order)}
    ordered = sorted(rows, key=lambda r: rank.get(r[0], len(rank)))  # stable: unknown names keep their order
    return [[r[0], r[1], f"{r[2] * 100:.0f} %", *(f"{v:.2f}" for v in r[3:])] for r in ordered]


def metric_columns() -> list[str]:
    return list(strings()["batch_columns"])


def prediction_columns() -> list[str]:
    return list(strings()["prediction_columns"])


def prediction_table(result: BatchResult) -> list[list]:
    """One row per (photo, model): file, true class (or blank), model, predicted, confidence, right?
    Shown for every batch, so photos without labels still give a table."""
    rows = []
    for r in result.predictions:
        conf = max(float(r[f"p_{c}"]) for c in CLASSES)
        right = {"true": "yes", "false": "no"}.get(r["correct"], "")
        rows.append([r["file"], r["true"] or "-", r["model"], r["predicted"], f"{conf:.0%}", right])
    return rows


# ---- outputs ------------------------------------------------------------------------------------
def _output_dir() -> Path:
    """A per-user temp folder for CSVs; files older than an hour are pruned on each batch."""
    root = Path(tempfile.gettempdir()) / f"har_demo_outputs_{os.getuid() if hasattr(os, 'getuid') else 'user'}"
    root.mkdir(parents=True, exist_ok=True)
    now = time.time()
    for old in root.glob("*.csv"):
        try:
            if now - old.stat().st_mtime > _OUTPUT_TTL_S:
                old.unlink()
        except OSError:
            pass
    return root


_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def csv_cell(value):
    """A text cell a spreadsheet would run as a formula (``=``, ``+``, ``-``, ``@``, tab, CR first)
    gets a leading ``'`` (OWASP's CSV-injection advice); numbers are left as they are."""
    if isinstance(value, str) and value.startswith(_FORMULA_START):
        return "'" + value
    return value


def write_csv(rows: list[dict]) -> Path:
    """The per-image predictions as CSV (columns: file, true, model, predicted, p_*, correct)."""
    fields = ["file", "true", "model", "predicted", *[f"p_{c}" for c in CLASSES], "correct"]
    fd, name = tempfile.mkstemp(prefix="har_batch_predictions_", suffix=".csv", dir=_output_dir())
    with os.fdopen(fd, "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=fields)
        writer.writeheader()
        writer.writerows({k: csv_cell(v) for k, v in row.items()} for row in rows)
    return Path(name)


def confusion_figure(reports: dict[str, dict]):
    """One confusion-matrix panel per model (matplotlib ``Figure``, no pyplot state)."""
    from matplotlib.figure import Figure

    n = max(1, len(reports))
    cols = min(n, 3)
    rows = (n + cols - 1) // cols
    fig = Figure(figsize=(4.2 * cols, 3.9 * rows), layout="constrained")
    short = [c.replace("walking_running", "walk/run") for c in CLASSES]
    for k, (name, rep) in enumerate(reports.items()):
        ax = fig.add_subplot(rows, cols, k + 1)
        cm = np.asarray(rep["confusion"])
        ax.imshow(cm, cmap="Blues", vmin=0, vmax=max(1, int(cm.max())))
        for (r, c), v in np.ndenumerate(cm):
            ax.text(c, r, str(v), ha="center", va="center", fontsize=12, color="white" if v > cm.max() / 2 else "black")
        ax.set_xticks(range(len(CLASSES)), short, fontsize=10)
        ax.set_yticks(range(len(CLASSES)), short, fontsize=10)
        ax.set_xlabel("predicted", fontsize=10)
        ax.set_ylabel("true", fontsize=10)
        ax.set_title(f"{name}: accuracy {rep['accuracy']:.0%} (n={rep['n']})", fontsize=11, pad=10)
    return fig


def gallery_images(result: BatchResult) -> list[tuple[Image.Image, str]]:
    return [(Image.fromarray(img), cap) for img, cap in result.gallery]
