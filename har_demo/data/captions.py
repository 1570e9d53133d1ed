"""Caption-labelled data sets from any captioned photo collection: COCO caption JSON, Flickr8k
(``image,caption`` CSV) and Flickr30k (``image|n|caption``).

The labelling rules are the COCO builder's (``coco.caption_activity`` / ``image_activity``): the
person is the verb's subject (animals and objects "sitting on a table" are rejected), at least
``min_agree`` captions name the activity and no other activity is named as often (ties dropped).
An optional ``keep(path) -> bool`` check runs on each candidate photo (the faces pass the person
finder here, e.g. "a person was found"; ``data`` itself knows nothing of people).

Each photo is its own group (one photo = one group) and every row records its ``source`` and
licence, so group-aware splits and leave-one-source-out still work when it is mixed with other pools.
"""

from __future__ import annotations

import csv
import io
import logging
import os
import random
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path

from ..errors import DataError
from ..labels import CLASSES
from .coco import label_by_captions, read_coco_json
from .datasets import Sample, SampleList, write_manifest

log = logging.getLogger(__name__)

MAX_CAPTION_FILE = 200 * 1024 * 1024


def _read_text(path: Path) -> str:
    if not path.is_file():
        raise DataError(f"{path}: captions file not found")
    if path.stat().st_size > MAX_CAPTION_FILE:
        raise DataError(f"{path}: captions file over {MAX_CAPTION_FILE // 2**20} MB")
    try:
        return path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as err:
        raise DataError(f"{path}: captions file is not UTF-8 text ({err.reason} at byte {err.start})") from None


def read_captions(path: str | Path) -> dict[str, list[str]]:
    """``{image file name: [captions]}`` from a COCO captions JSON, a Flickr8k ``image,caption``
    CSV or a Flickr30k ``image|n|caption`` file (format told from the content)."""
    path = Path(path)
    if path.suffix.lower() == ".json":
        doc = read_coco_json(path, "captions")
        names = {img.get("id"): img.get("file_name") for img in doc["images"] if isinstance(img, dict)}
        out: dict[str, list[str]] = defaultdict(list)
        for a in doc["annotations"]:
            if isinstance(a, dict) and isinstance(a.get("caption"), str) and names.get(a.get("image_id")):
                out[names[a["image_id"]]].append(a["caption"])
        return dict(out)
    text = _read_text(path)
    first = text.split("\n", 1)[0]
    out = defaultdict(list)
    if "|" in first:  # Flickr30k results.csv: "image_name| comment_number| comment"
        for n, line in enumerate(text.splitlines(), 1):
            parts = [p.strip() for p in line.split("|", 2)]
            if len(parts) != 3:
                if line.strip():
                    raise DataError(f"{path}:{n}: expected 'image|n|caption', got {line[:60]!r}")
                continue
            if n == 1 and not parts[1].isdigit():
                continue  # header
            out[parts[0]].append(parts[2])
        return dict(out)
    rows = csv.reader(io.StringIO(text))
    for n, row in enumerate(rows, 1):
        if not row:
            continue
        if len(row) < 2:
            raise DataError(f"{path}:{n}: expected 'image,caption', got {','.join(row)[:60]!r}")
        if n == 1 and row[0].strip().lower() == "image":
            continue  # header
        out[row[0].strip()].append(",".join(row[1:]).strip())
    return dict(out)


def build_captioned_subset(
    images_dir: str | Path,
    captions: str | Path,
    source: str,
    license: str = "",
    min_agree: int = 3,
    keep: Callable[[str], bool] | None = None,
    per_class: int | None = None,
    seed: int = 0,
    out_manifest: str | Path | None = None,
) -> SampleList:
    """Caption-labelled photos of ``images_dir`` (see the module doc).

    ``per_class`` caps each class (a seeded sample), ``None`` keeps every qualifying photo. The
    returned ``SampleList.info`` holds the counts at each step (captioned, files present, kept by
    ``keep``, selected); ``out_manifest`` writes a manifest CSV (path, label, group, source, license)."""
    images_p = Path(images_dir)
    if not images_p.is_dir():
        raise DataError(f"{images_dir}: images folder not found")
    caps = read_captions(captions)
    if not caps:
        raise DataError(f"{captions}: no captions found")
    per_class_names: dict[str, list[str]] = label_by_captions(caps, min_agree)
    info: dict = {"captioned_images": len(caps), "captioned": {c: len(v) for c, v in per_class_names.items()}}
    present = {f.name for f in images_p.iterdir()}
    per_class_names = {c: [n for n in v if n in present] for c, v in per_class_names.items()}
    info["present"] = {c: len(v) for c, v in per_class_names.items()}
    if keep is not None:
        dropped: dict[str, int] = {}
        for c, names in per_class_names.items():
            kept = [n for n in names if keep(str(images_p / n))]
            dropped[c] = len(names) - len(kept)
            per_class_names[c] = kept
        info["dropped_by_check"] = dropped
    rng = random.Random(seed)
    samples = SampleList(info=info)
    info = samples.info  # SampleList keeps its own copy: fill that one from here on
    for c in CLASSES:
        names = per_class_names[c]
        if per_class is not None and len(names) > per_class:
            names = sorted(rng.sample(names, per_class))
        for name in names:
            samples.append(Sample(path=os.path.abspath(images_p / name), label=c, group=f"{source}:{Path(name).stem}",
                                  source=source, license=license))  # fmt: skip
    info["selected"] = {c: sum(s.label == c for s in samples) for c in CLASSES}
    if not samples:
        raise DataError(f"{images_dir}: no photo qualifies (captioned {info['captioned']})")
    log.info("%s caption-labelled subset: %s", source, info["selected"])
    if out_manifest is not None:
        write_manifest(samples, out_manifest)
        info["manifest"] = str(out_manifest)
    return samples
