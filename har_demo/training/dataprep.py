"""The run's data: load samples (folder / manifest / COCO), make or reuse the ONE saved split every
model and seed of a run shares, and summarise it for checkpoint cards.

Split files in the run directory (both readable by ``data.splits.load_splits``):

* ``splits.json``        train / val / test (test: in-source, group-aware, stratified);
* ``splits_cross.json``  with ``--holdout-source``: the same train / val, test = the held-out sources.
"""

from __future__ import annotations

import hashlib
import os
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ..data.datasets import Sample, load_dataset
from ..data.splits import holdout_source_split, load_splits, save_splits, split_samples
from ..errors import DataError
from ..labels import CLASSES

SPLITS_FILE = "splits.json"
CROSS_SPLITS_FILE = "splits_cross.json"
EVAL_SPLITS = ("test", "test_cross")  # the splits a run reports test metrics on


@dataclass
class RunData:
    """``splits``: train, val, test and (with held-out sources) test_cross; ``info``: for cards."""

    splits: dict[str, list[Sample]]
    info: dict = field(default_factory=dict)

    @property
    def all_samples(self) -> list[Sample]:
        seen, out = set(), []
        for part in self.splits.values():
            for s in part:
                if s.path not in seen:
                    seen.add(s.path)
                    out.append(s)
        return out

    @property
    def eval_splits(self) -> list[str]:
        return [k for k in EVAL_SPLITS if self.splits.get(k)]


def _mixed(loaded: Sequence[tuple[list[Sample], dict]]) -> tuple[list[Sample], dict]:
    """Several loaded sets as one: their samples in order, and a "mixed" summary of their parts."""
    parts = [info for _, info in loaded]
    return [s for samples, _ in loaded for s in samples], {"kind": "mixed", "path": " + ".join(p["path"] for p in parts), "parts": parts}


def load_samples(
    data: str | Sequence[str] | None = None,
    coco_images: str | None = None,
    coco_captions: str | None = None,
    coco_instances: str | None = None,
    coco_keypoints: str | None = None,
    coco_per_class: int = 95,
    coco_single_person: bool = False,
    coco_seed: int = 0,
    out_dir: str | Path | None = None,
    captions: str | Sequence[str] | None = None,
    caption_images: str | Sequence[str] | None = None,
    caption_source: str | Sequence[str] | None = None,
    caption_min_agree: int = 2,
    caption_person_check: bool = False,
    caption_fraction: float | Sequence[float] | None = None,
) -> tuple[list[Sample], dict]:
    """Samples from ``--data`` (one or more), plus caption-labelled sets (``--captions``, one or
    more, each with its images folder and source name), or from the COCO options, plus a
    description of where they came from (the card's training-data summary)."""
    datas = [data] if isinstance(data, (str, Path)) else list(data or [])
    if captions or caption_images:
        loaded = [load_samples(d) for d in datas]
        sets = caption_sets(captions, caption_images, caption_source)
        fractions = _listed(caption_fraction) or [1.0] * len(sets)
        if len(fractions) != len(sets):
            raise DataError(f"--caption-fraction: give one per --captions ({len(sets)}), got {len(fractions)}")
        extras = [caption_samples(c, i, s, caption_min_agree, caption_person_check, out_dir, f)
                  for (c, i, s), f in zip(sets, fractions)]  # fmt: skip
        if not loaded and len(extras) == 1:
            return extras[0]
        return _mixed([*loaded, *extras])
    if bool(datas) == bool(coco_images or coco_captions):
        raise DataError("give either --data PATH or --coco-images DIR --coco-captions JSON (not both, not neither)")
    if len(datas) > 1:
        return _mixed([load_samples(d) for d in datas])
    if datas:
        data = datas[0]
        samples = load_dataset(data)
        kind = "manifest" if str(data).lower().endswith(".csv") or (Path(data) / "manifest.csv").is_file() else "folder"
        return samples, {"kind": kind, "path": str(data)}
    if not (coco_images and coco_captions):
        raise DataError("COCO data needs both --coco-images DIR and --coco-captions JSON")
    from ..data.coco import build_coco_subset

    manifest = Path(out_dir) / "coco_manifest.csv" if out_dir else None
    samples = build_coco_subset(
        coco_images,
        coco_captions,
        instances_json=coco_instances,
        keypoints_json=coco_keypoints,
        per_class=coco_per_class,
        seed=coco_seed,
        single_person=coco_single_person,
        out_manifest=manifest,
    )
    info = {
        "kind": "coco",
        "path": str(coco_images),
        "captions": str(coco_captions),
        "instances": coco_instances,
        "keypoints": coco_keypoints,
        "per_class": coco_per_class,
        "single_person": coco_single_person,
        "selection_seed": coco_seed,
        "manifest": str(manifest) if manifest else None,
    }
    return list(samples), info


def _counts(samples: Sequence[Sample]) -> dict:
    by_class = Counter(s.label for s in samples)
    by_source = Counter(s.source or "(none)" for s in samples)
    return {"n": len(samples), "per_class": {c: by_class.get(c, 0) for c in CLASSES}, "per_source": dict(sorted(by_source.items()))}


def _fingerprint(splits: dict[str, list[Sample]]) -> str:
    h = hashlib.sha256()
    for k in sorted(splits):
        for s in sorted(splits[k], key=lambda s: s.path):
            h.update(f"{k}\t{os.path.basename(s.path)}\t{s.label}\t{s.group}\n".encode())
    return h.hexdigest()[:16]


def make_run_data(
    samples: Sequence[Sample],
    out_dir: str | Path,
    split_seed: int = 0,
    fractions: Sequence[float] = (0.8, 0.1, 0.1),
    holdout_sources: Sequence[str] = (),
    splits_file: str | Path | None = None,
    source_info: dict | None = None,
    write: bool = True,
) -> RunData:
    """Make the run's split (or reuse ``splits_file`` / an existing ``out_dir/splits.json``, which
    must have been made with the same options) and save it in ``out_dir``."""
    out = Path(out_dir)
    holdout = sorted(set(holdout_sources))
    fractions = [float(f) for f in fractions]
    wanted = {"seed": int(split_seed), "fractions": fractions, "holdout_sources": holdout}
    existing = Path(splits_file) if splits_file else out / SPLITS_FILE
    reused = None
    if existing.is_file():
        loaded = load_splits(existing)
        meta = dict(getattr(loaded, "meta", {}))
        have = {"seed": meta.get("seed"), "fractions": meta.get("fractions"), "holdout_sources": sorted(meta.get("holdout_sources", []))}
        if not splits_file and have != wanted:
            raise DataError(f"{existing} was made with {have}, not {wanted}; use another --out or the same split options")
        splits: dict[str, list[Sample]] = {k: list(loaded[k]) for k in ("train", "val", "test")}
        cross_path = existing.parent / CROSS_SPLITS_FILE
        if meta.get("holdout_sources"):
            if not cross_path.is_file():
                raise DataError(f"{existing} holds out {meta['holdout_sources']} but {cross_path} is missing")
            splits["test_cross"] = list(load_splits(cross_path)["test"])
        holdout = sorted(meta.get("holdout_sources", []))
        wanted = {**wanted, **{k: v for k, v in have.items() if v is not None}}
        reused = str(existing)
    elif splits_file:
        raise DataError(f"{splits_file}: splits file not found")
    elif holdout:
        hs = holdout_source_split(samples, holdout, val_fraction=0.0, seed=split_seed)
        inner = split_samples(hs["train"], fractions, seed=split_seed)
        splits = {"train": list(inner["train"]), "val": list(inner["val"]), "test": list(inner["test"]), "test_cross": list(hs["test"])}
        if not splits["val"]:
            raise DataError("the validation split is empty: give a non-zero validation fraction (--split)")
    else:
        splits = {k: list(v) for k, v in split_samples(samples, fractions, seed=split_seed).items()}
    if not splits["train"]:
        raise DataError("the training split is empty")
    if not splits["val"]:
        raise DataError("the validation split is empty (early stopping and calibration need it): check --split")
    meta = {"seed": int(split_seed), "fractions": wanted["fractions"], "holdout_sources": holdout, "method": "group_stratified"}
    if write:
        out.mkdir(parents=True, exist_ok=True)
        save_splits({k: splits[k] for k in ("train", "val", "test")}, out / SPLITS_FILE, meta=meta)
        if "test_cross" in splits:
            save_splits(
                {"train": splits["train"], "val": splits["val"], "test": splits["test_cross"]},
                out / CROSS_SPLITS_FILE,
                meta={**meta, "method": "holdout_source"},
            )
    info = {
        **(source_info or {}),
        "n_total": sum(len(v) for v in splits.values()),
        "split_seed": int(split_seed),
        "split_fractions": wanted["fractions"],
        "split_method": "group-aware, label-stratified (data.splits.split_samples)",
        "holdout_sources": holdout,
        "splits_file": SPLITS_FILE,
        "cross_splits_file": CROSS_SPLITS_FILE if "test_cross" in splits else None,
        "splits_reused_from": reused,
        "splits_fingerprint": _fingerprint(splits),
        "splits": {k: _counts(v) for k, v in splits.items()},
    }
    return RunData(splits, info)


def _listed(value) -> list:
    return [] if value is None else [value] if isinstance(value, (str, Path, int, float)) else list(value)


def caption_sets(captions, images, sources) -> list[tuple[str, str, str]]:
    """``(captions, images, source)`` per caption-labelled set: the repeated ``--captions`` /
    ``--caption-images`` / ``--caption-source`` matched in order. One set may leave its source
    unnamed (``captions``); several sets must name each one, and differently (leave-one-source-out
    holds each out on its own)."""
    caps, imgs, srcs = _listed(captions), _listed(images), _listed(sources)
    if len(caps) != len(imgs):
        raise DataError(f"each --captions needs its --caption-images: got {len(caps)} caption file(s) and {len(imgs)} image folder(s)")
    if not srcs and len(caps) == 1:
        srcs = ["captions"]
    if len(srcs) != len(caps):
        raise DataError(f"each --captions needs its --caption-source: got {len(caps)} caption file(s) and {len(srcs)} source name(s)")
    if len(set(srcs)) != len(srcs):
        raise DataError(f"--caption-source names must differ (one source per set): {srcs}")
    return list(zip(caps, imgs, srcs))


def _fraction_per_class(samples, fraction: float) -> list[Sample]:
    """The first ``round(fraction * n)`` photos of each class in a fixed seeded order (so a smaller
    fraction's photos are inside a larger one's), in the original order."""
    import random

    keep: set[str] = set()
    for c in CLASSES:
        paths = sorted(s.path for s in samples if s.label == c)
        random.Random(f"fraction:{c}").shuffle(paths)
        keep.update(paths[: round(fraction * len(paths))])
    return [s for s in samples if s.path in keep]


def caption_samples(captions: str | None, images: str | None, source: str = "captions", min_agree: int = 2,
                    person_check: bool = False, out_dir: str | Path | None = None, fraction: float = 1.0) -> tuple[list[Sample], dict]:
    """A caption-labelled set (``data.captions``: COCO JSON, Flickr8k CSV or Flickr30k captions),
    optionally keeping only photos in which the person finder finds someone, optionally only a
    seeded ``fraction`` of each class (a learning curve: the same photos at 0.25 are inside those at
    0.5); its manifest is written to ``out_dir/<source>_manifest.csv`` for reuse."""
    if not 0.0 < float(fraction) <= 1.0:
        raise DataError(f"--caption-fraction {fraction}: expected a number in (0, 1] (leave the set out for 0)")
    if not (captions and images):
        raise DataError("a caption-labelled set needs both --captions FILE and --caption-images DIR")
    from ..data.captions import build_captioned_subset

    keep = None
    if person_check:
        from ..person.store import DEFAULT_DIR, person_for_file

        def keep(path: str) -> bool:
            return person_for_file(path, DEFAULT_DIR) is not None

    manifest = Path(out_dir) / f"{source}_manifest.csv" if out_dir else None
    if manifest is not None:
        manifest.parent.mkdir(parents=True, exist_ok=True)
    samples = build_captioned_subset(images, captions, source, license=f"{source}: see the data set's terms",
                                     min_agree=min_agree, keep=keep, out_manifest=manifest)  # fmt: skip
    counts = dict(samples.info)
    if fraction < 1.0:
        samples = _fraction_per_class(samples, float(fraction))
        counts["fraction_used"] = {c: sum(s.label == c for s in samples) for c in CLASSES}
        if manifest is not None:
            from ..data.datasets import write_manifest

            write_manifest(samples, manifest)
    info = {"kind": "captions", "path": str(captions), "source": source, "fraction": float(fraction), "captions": str(captions), "images": str(images), "min_agree": min_agree,
            "person_check": person_check, "counts": counts, "manifest": str(manifest) if manifest else None}  # fmt: skip
    return list(samples), info
