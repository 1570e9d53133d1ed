"""Pieces several commands share (faces side): a progress bar on stderr, choosing one split.

The progress bar is tqdm on stderr, off when stderr is not a terminal (pipes, CI, tests) or with
``--quiet``, so ``--json`` output on stdout stays clean either way.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Sequence

from ..errors import HarError


class Progress:
    """``with Progress(total, "explain-eval", quiet) as step: ... step(1)`` - a tqdm bar on stderr."""

    def __init__(self, total: int, desc: str, quiet: bool = False, unit: str = "img") -> None:
        from ..training.loop import progress_enabled

        self.total, self.desc, self.unit = total, desc, unit
        self.enabled = progress_enabled(quiet)
        self._bar = None

    def __enter__(self) -> Callable[[int], None]:
        if self.enabled:
            from ..training.loop import progress_bar

            self._bar = progress_bar(total=self.total, desc=self.desc, leave=False, unit=self.unit)
        return self.step

    def step(self, n: int = 1) -> None:
        if self._bar is not None:
            self._bar.update(n)

    def __exit__(self, *exc) -> None:
        if self._bar is not None:
            self._bar.close()


def add_split_args(parser, what: str = "evaluate") -> None:
    parser.add_argument("--splits", help="splits JSON of a training run (runs/<run>/splits.json) to take --split from")
    parser.add_argument("--split", choices=("train", "val", "test"),
                        help=f"{what} one split only: from --splits (a training run's splits.json), else split_samples(seed=--seed)")


def select_split(samples: Sequence, split: str | None, splits: str | None, seed: int = 0) -> list:
    """``samples`` itself, or one split of it: from a run's splits file, else a fresh seeded split.

    A run's split may span several data sets (``train.py --data A --data B``): only its photos that
    are in ``samples`` (the command's ``--data``) are kept, in the split's order, and a note on
    stderr says how many - ``--data har3`` with a har3+Flickr run scores har3's held-out photos, not
    silently the Flickr ones too. No overlap at all is an error."""
    if splits and not split:
        raise HarError("--splits needs --split train|val|test (which part to use)")
    if not split:
        return list(samples)
    from ..data.splits import load_splits, split_samples

    if not splits:
        return list(split_samples(list(samples), seed=seed)[split])
    part = load_splits(splits)[split]
    wanted = {os.path.realpath(s.path) for s in samples}
    kept = [s for s in part if os.path.realpath(s.path) in wanted]
    if not kept:
        raise HarError(f"none of the {len(part)} {split} photos of {splits} are in --data; pass the data set that run was trained on")
    if len(kept) < len(part):
        print(f"note: --data holds {len(kept)} of the {len(part)} {split} photos of {splits}; scoring those {len(kept)}", file=sys.stderr)
    return kept
