"""Group-aware, label-stratified train/val/test splits, a leave-source-out split, and JSON storage.

Algorithm of ``split_samples`` (deterministic for a seed, independent of the input order):

1. Samples are bucketed by ``group``; a group is never cut (a group may hold several labels).
2. Seeding: for each class (rarest first) and each split with a non-zero fraction that still lacks
   it, one of the smallest unassigned groups holding that class is placed there ("every class in
   every split when possible"). A class with fewer groups than splits goes to train (its largest
   group), then test, then val.
3. The other groups, largest first (ties in seeded random order), each go to the split where
   adding them reduces most ``sum_(split, class) (n - target)^2 / (target + 1)``, with
   ``target = fraction * class total``: per-class counts end close to the fractions.
"""

from __future__ import annotations

import json
import logging
import os
import random
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from ..errors import DataError
from ..labels import CLASSES
from .datasets import Sample, _relpath
from .io import read_json_file

log = logging.getLogger(__name__)

SPLIT_NAMES = ("train", "val", "test")
FORMAT = "har_demo.splits/1"


class Splits(dict):
    """``{"train": [...], "val": [...], "test": [...]}`` plus ``meta`` (seed, fractions, method)."""

    def __init__(self, parts: dict[str, list[Sample]], meta: dict[str, Any] | None = None):
        super().__init__(parts)
        self.meta: dict[str, Any] = dict(meta or {})


def _check_fractions(fractions: Sequence[float]) -> tuple[float, float, float]:
    try:
        fr = tuple(float(f) for f in fractions)
    except (TypeError, ValueError):
        raise DataError(f"split fractions {fractions!r}: expected three numbers (train, val, test)") from None
    if len(fr) != 3 or any(f < 0 for f in fr) or abs(sum(fr) - 1.0) > 1e-6 or fr[0] <= 0:
        raise DataError(
            f"split fractions {fractions!r}: expected three non-negative numbers (train, val, test) "
            "summing to 1 with train > 0"
        )
    return fr  # type: ignore[return-value]


def _groups(samples: Sequence[Sample]) -> dict[str, list[int]]:
    groups: dict[str, list[int]] = defaultdict(list)
    for i, s in enumerate(samples):
        groups[s.group].append(i)
    return groups


def split_samples(
    samples: Sequence[Sample], fractions: Sequence[float] = (0.8, 0.1, 0.1), seed: int = 0
) -> dict[str, list[Sample]]:
    """Split into ``train/val/test``: stratified by label, no group in two splits (see module doc)."""
    fr = _check_fractions(fractions)
    samples = list(samples)
    if not samples:
        raise DataError("cannot split an empty dataset")
    rng = random.Random(seed)
    groups = _groups(samples)
    gnames = sorted(groups)
    rng.shuffle(gnames)  # seeded tie-break order; sorting first makes it input-order independent
    gcount = {g: Counter(samples[i].label for i in groups[g]) for g in gnames}
    total = Counter(s.label for s in samples)
    active = [k for k, f in zip(SPLIT_NAMES, fr) if f > 0]
    target = {k: {c: f * total[c] for c in total} for k, f in zip(SPLIT_NAMES, fr)}
    count: dict[str, Counter] = {k: Counter() for k in SPLIT_NAMES}
    assign: dict[str, str] = {}

    def put(g: str, k: str) -> None:
        assign[g] = k
        count[k].update(gcount[g])

    # 2. seeding: every class in every active split when the class has enough groups.
    by_rarity = sorted(total, key=lambda c: (sum(1 for g in gnames if gcount[g][c]), CLASSES.index(c)))
    size = {g: sum(gcount[g].values()) for g in gnames}
    for c in by_rarity:
        lacking = [k for k in active if not count[k][c]]
        free = [g for g in gnames if g not in assign and gcount[g][c]]
        if len(free) < len(lacking):
            # too few groups: train first, then test, then val; the largest group goes to train
            log.warning("class %r has too few groups (%d) to appear in every split", c, len(free))
            order = [k for k in ("train", "test", "val") if k in lacking][: len(free)]
            for k, g in zip(order, sorted(free, key=lambda g: -size[g])):
                put(g, k)
            continue
        for k in sorted(lacking, key=lambda k: fr[SPLIT_NAMES.index(k)]):  # smallest split first
            if not count[k][c]:
                free = [g for g in gnames if g not in assign and gcount[g][c]]
                put(min(free, key=size.__getitem__), k)  # min() keeps the seeded order on ties

    # 3. greedy fill, largest groups first.
    def cost_delta(g: str, k: str) -> float:
        d = 0.0
        for c, n in gcount[g].items():
            t, have = target[k][c], count[k][c]
            d += ((have + n - t) ** 2 - (have - t) ** 2) / (t + 1.0)
        return d

    rest = sorted((g for g in gnames if g not in assign), key=lambda g: -sum(gcount[g].values()))
    for g in rest:
        put(g, min(active, key=lambda k: cost_delta(g, k)))

    parts = {k: [s for s in samples if assign[s.group] == k] for k in SPLIT_NAMES}
    meta = {"method": "group_stratified", "seed": seed, "fractions": list(fr)}
    return Splits(parts, meta)


def holdout_source_split(
    samples: Sequence[Sample], test_sources: str | Iterable[str], val_fraction: float = 0.1, seed: int = 0
) -> dict[str, list[Sample]]:
    """Leave-source-out: ``test`` = samples whose ``source`` is in ``test_sources``; train/val from
    the rest with ``split_samples`` (group-aware, stratified). Groups that also occur in a test source
    are dropped from train/val so nothing leaks."""
    samples = list(samples)
    wanted = {test_sources} if isinstance(test_sources, str) else set(test_sources)
    known = sorted({s.source for s in samples})
    unknown = sorted(wanted - set(known))
    if unknown or not wanted:
        raise DataError(
            f"unknown source(s) {', '.join(map(repr, unknown)) or '(none given)'}; sources in this dataset: "
            f"{', '.join(repr(s) for s in known)}"
        )
    if not 0 <= val_fraction < 1:
        raise DataError(f"val_fraction {val_fraction!r}: expected a number in [0, 1)")
    test = [s for s in samples if s.source in wanted]
    test_groups = {s.group for s in test}
    rest = [s for s in samples if s.source not in wanted]
    kept = [s for s in rest if s.group not in test_groups]
    if len(kept) < len(rest):
        log.warning("dropped %d samples whose group also occurs in the test sources", len(rest) - len(kept))
    if not kept:
        raise DataError(f"holding out {', '.join(sorted(wanted))} leaves no samples to train on")
    inner = split_samples(kept, (1.0 - val_fraction, val_fraction, 0.0), seed=seed)
    meta = {
        "method": "holdout_source",
        "seed": seed,
        "val_fraction": val_fraction,
        "test_sources": sorted(wanted),
        "dropped_overlapping": len(rest) - len(kept),
    }
    return Splits({"train": inner["train"], "val": inner["val"], "test": test}, meta)


def save_splits(splits: dict[str, list[Sample]], json_path: str | Path, meta: dict[str, Any] | None = None) -> Path:
    """Write the splits (full sample records, paths relative to the JSON's folder) and metadata."""
    missing = [k for k in SPLIT_NAMES if k not in splits]
    if missing:
        raise DataError(f"{json_path}: splits lack {', '.join(missing)}")
    p = Path(json_path)
    p.parent.mkdir(parents=True, exist_ok=True)
    base = Path(os.path.abspath(p.parent))
    info = {**getattr(splits, "meta", {}), **(meta or {})}
    doc = {
        "format": FORMAT,
        "meta": info,
        "counts": {k: len(splits[k]) for k in SPLIT_NAMES},
        "splits": {
            k: [{**s.to_dict(), "path": _relpath(s.path, base)} for s in splits[k]] for k in SPLIT_NAMES
        },
    }
    p.write_text(json.dumps(doc, indent=1, ensure_ascii=False), encoding="utf-8")
    return p


def load_splits(json_path: str | Path) -> dict[str, list[Sample]]:
    """Read a splits JSON; validates format, labels, files, and that no image or group is in two splits."""
    p = Path(json_path)
    doc = read_json_file(p, "splits", label=str(json_path))
    if not isinstance(doc, dict) or doc.get("format") != FORMAT or not isinstance(doc.get("splits"), dict):
        raise DataError(f"{json_path}: not a har_demo splits file (expected format {FORMAT!r})")
    base = p.parent
    parts: dict[str, list[Sample]] = {}
    where: dict[str, str] = {}
    group_split: dict[str, str] = {}
    for k in SPLIT_NAMES:
        records = doc["splits"].get(k)
        if not isinstance(records, list):
            raise DataError(f"{json_path}: split {k!r} missing")
        out = []
        for i, r in enumerate(records):
            try:
                s = Sample(
                    path=os.path.abspath(base / r["path"]),
                    label=str(r["label"]),
                    group=str(r["group"]),
                    source=str(r.get("source", "")),
                    license=str(r.get("license", "")),
                )
            except (KeyError, TypeError):
                raise DataError(f"{json_path}: {k}[{i}] is not a sample record (needs path, label, group)") from None
            if s.label not in CLASSES:
                raise DataError(f"{json_path}: {k}[{i}]: unknown label {s.label!r}; valid: {', '.join(CLASSES)}")
            if not os.path.isfile(s.path):
                raise DataError(f"{json_path}: {k}[{i}]: file not found: {r['path']}")
            if s.path in where:
                raise DataError(f"{json_path}: {r['path']} is in both {where[s.path]} and {k}")
            if group_split.setdefault(s.group, k) != k:
                raise DataError(f"{json_path}: group {s.group!r} is in both {group_split[s.group]} and {k}")
            where[s.path] = k
            out.append(s)
        parts[k] = out
    meta = doc.get("meta") if isinstance(doc.get("meta"), dict) else {}
    return Splits(parts, meta)
