"""Pooled leave-one-source-out accuracy over a chosen set of held-out sources, with its bootstrap CI.

    python tools/loso_pooled.py RUN_DIR --model effnet_person --sources inria_person,flickr8k,...

Reads each fold's held-out predictions (``RUN_DIR/loso/<source>/<model>/seed*/metrics.json``,
written by ``train.py --leave-one-source-out``) and pools them: the README's "pooled over the 7
common sources" column compares runs whose fold sets differ (this round adds the
``flickr8k_squashed`` fold) on the same photos. Several seeds: each photo's probabilities are
averaged over the seeds first.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from har_demo.training.stats import bootstrap_accuracy_ci


def pooled(run: Path, model: str, sources: list[str]) -> tuple[float, tuple[float, float], int]:
    correct = []
    for source in sources:
        seeds = sorted((run / "loso" / source / model).glob("seed*/metrics.json"))
        if not seeds:
            raise SystemExit(f"error: no held-out predictions for {model} in {run / 'loso' / source}")
        preds = [json.loads(p.read_text())["predictions"]["test_cross"] for p in seeds]
        probs = np.mean([np.asarray(p["probs"], dtype=np.float64) for p in preds], axis=0)
        correct.extend((probs.argmax(axis=1) == np.asarray(preds[0]["y_true"])).astype(int))
    c = np.asarray(correct)
    return float(c.mean()), bootstrap_accuracy_ci(c), len(c)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run", type=Path)
    ap.add_argument("--model", required=True)
    ap.add_argument("--sources", required=True, help="comma-separated held-out sources to pool")
    args = ap.parse_args(argv)
    acc, (lo, hi), n = pooled(args.run, args.model, [s for s in args.sources.split(",") if s])
    print(f"{args.model} {args.run}: pooled {acc:.3f} [{lo:.3f}, {hi:.3f}] over n={n}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
