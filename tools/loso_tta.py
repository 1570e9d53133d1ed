"""Flip test-time averaging and a two-model ensemble, measured on leave-one-source-out folds.

    python tools/loso_tta.py RUN_DIR --model effnet_person [--with RUN2:pose_mlp] [--out probs.npz]

For every fold of ``RUN_DIR`` (``train.py --leave-one-source-out``) the fold's checkpoint
(``loso/<source>/<model>/seed0``) predicts the photos of the source it never saw
(``splits_cross.json``; each photo's person as training found it: ``person.store``), through the
model's own inference path (``predict_views``): as trained
(``tta=none``) and with the mirror averaged in (``tta=flip``). ``--with RUN2:MODEL`` does the same
for a second model's folds (same sources) and adds the equal-weight mean of the two models'
probabilities. Prints per source and pooled accuracy with bootstrap CIs; the pooled "as trained"
figure must equal the run's own ``loso.json`` (checked: a mismatch is an error, not a footnote).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from har_demo.data.io import load_image
from har_demo.data.splits import load_splits
from har_demo.labels import CLASSES
from har_demo.models.checkpoint import load_checkpoint
from har_demo.person.store import person_for_file
from har_demo.training.stats import bootstrap_accuracy_ci


def stored_views(model, samples, chunk: int = 32):
    """``model``'s views of ``samples``, ``chunk`` photos at a time, each photo with the person
    training found in it (the finder's disk store, not a fresh finder run)."""
    for start in range(0, len(samples), chunk):
        part = samples[start : start + chunk]
        images = [load_image(s.path, sandbox=False) for s in part]  # the run's own photos
        yield [model.person_view(im, person_for_file(s.path, image=im)) for s, im in zip(part, images)]


def fold_probs(run: Path, model_name: str, source: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(y_true, probs as trained, probs with flip averaging) of one fold on its held-out source."""
    fold = run / "loso" / source
    samples = load_splits(fold / "splits_cross.json")["test"]
    model = load_checkpoint(fold / model_name / "seed0", expected_name=model_name)
    plain, flip = [], []
    for views in stored_views(model, samples):
        model.config["tta"] = "none"
        plain.append(model.predict_views(views))
        model.config["tta"] = "flip"
        flip.append(model.predict_views(views))
    y = np.asarray([CLASSES.index(s.label) for s in samples])
    return y, np.concatenate(plain), np.concatenate(flip)


def stored_accuracy(run: Path, model_name: str, source: str) -> float:
    return float(json.loads((run / "loso" / source / model_name / "seed0" / "metrics.json").read_text())["reports"]["test_cross"]["accuracy"])


def line(name: str, correct: dict[str, np.ndarray], sources: list[str]) -> str:
    every = np.concatenate([correct[s] for s in sources])
    lo, hi = bootstrap_accuracy_ci(every)
    per = " ".join(f"{s}={correct[s].mean():.3f}" for s in sources)
    return f"{name:<28} pooled {every.mean():.3f} [{lo:.3f}, {hi:.3f}] n={len(every)} | {per}"


def paired_delta(a: np.ndarray, b: np.ndarray, n_boot: int = 2000, seed: int = 0) -> tuple[float, float, float]:
    """Accuracy of ``b`` minus that of ``a`` on the same photos (0/1 arrays), with a 95 % paired
    bootstrap CI (photos resampled together): the honest test of "TTA / the ensemble helps"."""
    d = b.astype(float) - a.astype(float)
    rng = np.random.default_rng(seed)
    boots = d[rng.integers(0, len(d), (n_boot, len(d)))].mean(1)
    return float(d.mean()), float(np.percentile(boots, 2.5)), float(np.percentile(boots, 97.5))


def report(correct: dict[str, dict[str, np.ndarray]], sources: list[str], common: list[str] | None) -> None:
    base = next(iter(correct))
    for key, hits in correct.items():
        print(line(key, hits, sources))
        for name, group in (("all", sources), ("common", common)):
            if group and key != base:
                d, lo, hi = paired_delta(np.concatenate([correct[base][s] for s in group]), np.concatenate([hits[s] for s in group]))
                print(f"    vs {base} ({name}): {d:+.3f} [{lo:+.3f}, {hi:+.3f}] paired")
        if common:
            print(line(f"  {key} (common)", hits, common))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run", type=Path)
    ap.add_argument("--model", required=True)
    ap.add_argument("--with", dest="other", default=None, help="RUN2:MODEL, a second model's leave-one-source-out run")
    ap.add_argument("--sources", default=None, help="comma-separated folds (default: every fold of RUN)")
    ap.add_argument("--common", default=None, help="comma-separated sources for a second pooled figure")
    ap.add_argument("--out", type=Path, default=None, help="write every fold's probabilities here (.npz)")
    ap.add_argument("--load", type=Path, default=None, help="report from probabilities an earlier --out wrote (no model runs)")
    args = ap.parse_args(argv)
    sources = args.sources.split(",") if args.sources else sorted(p.name for p in (args.run / "loso").iterdir() if p.is_dir())
    common = args.common.split(",") if args.common else None
    if args.load:
        saved = np.load(args.load)
        correct: dict[str, dict[str, np.ndarray]] = {}
        for name in saved.files:
            source, key = name.split("/", 1)
            if key != "y" and source in sources:
                correct.setdefault(key, {})[source] = (saved[name].argmax(1) == saved[f"{source}/y"]).astype(int)
        report(correct, sources, common)
        return 0
    runs = [(args.run, args.model)]
    if args.other:
        other_run, other_model = args.other.rsplit(":", 1)
        runs.append((Path(other_run), other_model))
    correct = {}
    saved = {}
    for source in sources:
        ys, probs = None, {}
        for run, name in runs:
            y, plain, flip = fold_probs(run, name, source)
            if ys is not None and not np.array_equal(y, ys):
                raise SystemExit(f"error: {run} and {args.run} hold different photos out for {source}")
            ys = y
            stored = stored_accuracy(run, name, source)
            if abs((plain.argmax(1) == y).mean() - stored) > 1e-9:
                raise SystemExit(f"error: {name} on {source}: {(plain.argmax(1) == y).mean():.4f} here, {stored:.4f} in the run")
            probs[f"{name}"], probs[f"{name} +flip"] = plain, flip
        if len(runs) == 2:
            a, b = runs[0][1], runs[1][1]
            probs[f"mean({a}, {b})"] = (probs[a] + probs[b]) / 2
            probs[f"mean({a}, {b}) +flip"] = (probs[f"{a} +flip"] + probs[f"{b} +flip"]) / 2
        for key, p in probs.items():
            correct.setdefault(key, {})[source] = (p.argmax(1) == ys).astype(int)
            saved[f"{source}/{key}"] = p
        saved[f"{source}/y"] = ys
        print(f"{source}: {len(ys)} photos done", file=sys.stderr, flush=True)
    report(correct, sources, common)
    if args.out:
        np.savez_compressed(args.out, **saved)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
