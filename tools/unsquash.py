"""Undo the squash of ``flickr8k_squashed``: estimate each photo's original aspect ratio, resize back.

    python tools/unsquash.py --originals ../shared/data/flickr8k/images \
        --squashed ../shared/data/flickr8k_squashed --out runs/unsquashed

Why: those photos were resized to 224 x 224 whatever their shape (their README), so people look
1.33-1.5x too tall (landscape originals, ~68 %) or too wide (portrait, ~29 %) - wrong geometry for
sitting vs standing. The 985 Flickr8k originals (``--originals``, true geometry, same kind of photo)
teach an estimator: each original is squashed the same way (224 x 224 bicubic, JPEG q90), the frozen
ImageNet EfficientNet-Lite0 describes it (1,280 pooled features), and an L2 logistic regression picks
its aspect among ``BINS`` (the shapes Flickr8k photos come in). Checked by 5-fold cross-validation
on the originals against the prior (always the commonest shape), printed. Then it is fitted on all
985 and every squashed photo is written to ``OUT/images`` at its estimated shape (the long side
stretched back, 224 px kept on the short side), with ``OUT/captions.txt`` copied, so
``train.py --captions OUT/captions.txt --caption-images OUT/images`` uses them like any captioned set.
``OUT/aspects.csv`` keeps every estimate.
"""

from __future__ import annotations

import argparse
import csv
import io
import shutil
import sys
from pathlib import Path

import numpy as np
import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from har_demo.data.io import load_image
from har_demo.data.transforms import eval_transform, to_batch
from har_demo.models.effnet import MEAN, imagenet_backbone

BINS = (2 / 3, 3 / 4, 1.0, 4 / 3, 3 / 2)  # width / height of the shapes Flickr8k photos come in
SIDE = 224


def squash(im: Image.Image) -> Image.Image:
    """The squashed copy, made as the folder's README says its photos were (plain resize, JPEG q90)."""
    buf = io.BytesIO()
    im.convert("RGB").resize((SIDE, SIDE), Image.BICUBIC).save(buf, "JPEG", quality=90)
    return Image.open(io.BytesIO(buf.getvalue())).convert("RGB")


def nearest_bin(aspect: float) -> int:
    return int(np.argmin([abs(np.log(aspect / b)) for b in BINS]))


@torch.no_grad()
def describe(images: list[Image.Image], batch: int = 64) -> np.ndarray:
    """(N, 1280) pooled ImageNet features of 224 x 224 photos (shipped EfficientNet-Lite0 weights)."""
    net = imagenet_backbone(True)
    net.reset_classifier(0)
    net.eval()
    tf = eval_transform(SIDE, MEAN, MEAN, "squash")
    return np.concatenate([net(to_batch(images[i : i + batch], tf)).numpy() for i in range(0, len(images), batch)])


def estimator(c: float = 0.05):
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    return make_pipeline(StandardScaler(), LogisticRegression(C=c, max_iter=2000))


def cross_validate(x: np.ndarray, y: np.ndarray, folds: int = 5, seed: int = 0) -> dict:
    """Bin accuracy and orientation accuracy (landscape / portrait / square) of the estimator and of
    the prior, out of fold."""
    from sklearn.model_selection import StratifiedKFold

    pred = np.zeros_like(y)
    for train, test in StratifiedKFold(folds, shuffle=True, random_state=seed).split(x, y):
        pred[test] = estimator().fit(x[train], y[train]).predict(x[test])
    prior = np.full_like(y, np.bincount(y).argmax())

    def orient(b: np.ndarray) -> np.ndarray:
        return np.sign(np.log(np.asarray(BINS)[b]))

    return {"n": len(y), "bin": float((pred == y).mean()), "bin_prior": float((prior == y).mean()),
            "orientation": float((orient(pred) == orient(y)).mean()), "orientation_prior": float((orient(prior) == orient(y)).mean())}


def unsquashed_size(aspect: float) -> tuple[int, int]:
    return (round(SIDE * aspect), SIDE) if aspect >= 1 else (SIDE, round(SIDE / aspect))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--originals", type=Path, required=True, help="folder of original-shape photos")
    ap.add_argument("--squashed", type=Path, required=True, help="the squashed set: images/ + captions.txt")
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args(argv)
    originals = sorted(p for p in args.originals.iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
    if not originals:
        raise SystemExit(f"error: no photos in {args.originals}")
    y, views = [], []
    for p in originals:
        im = load_image(p, sandbox=False)
        y.append(nearest_bin(im.width / im.height))
        views.append(squash(im))
    x, y = describe(views), np.asarray(y)
    cv = cross_validate(x, y)
    print(f"originals: {cv['n']} photos; shapes {dict(zip([f'{b:.2f}' for b in BINS], np.bincount(y, minlength=len(BINS)).tolist()))}")
    print(f"5-fold CV: shape {cv['bin']:.3f} (prior {cv['bin_prior']:.3f}); orientation {cv['orientation']:.3f} (prior {cv['orientation_prior']:.3f})")
    model = estimator().fit(x, y)
    squashed = sorted((args.squashed / "images").glob("*.jpg"))
    images = [load_image(p, sandbox=False) for p in squashed]
    est = model.predict(describe(images))
    (args.out / "images").mkdir(parents=True, exist_ok=True)
    with open(args.out / "aspects.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["image", "aspect"])
        for p, im, b in zip(squashed, images, est):
            im.resize(unsquashed_size(BINS[b]), Image.BICUBIC).save(args.out / "images" / p.name, quality=95)
            w.writerow([p.name, round(BINS[b], 4)])
    shutil.copyfile(args.squashed / "captions.txt", args.out / "captions.txt")
    print(f"squashed: {len(squashed)} photos written to {args.out / 'images'}; estimated shapes "
          f"{dict(zip([f'{b:.2f}' for b in BINS], np.bincount(est, minlength=len(BINS)).tolist()))}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
