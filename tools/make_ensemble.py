"""Put ``person_ensemble`` together from trained ``effnet_person`` and ``pose_mlp`` checkpoints.

    python tools/make_ensemble.py --image checkpoints/effnet_person --pose checkpoints/pose_mlp \
        --out checkpoints/person_ensemble [--unseen runs/person_loso2 runs/pose_loso2 --probs runs/tta_loso2.npz]

Nothing is trained: the two members' weights are copied (``image.*``, ``pose.*``), the card lists
both members' cards (data, metrics, seeds) and, with ``--unseen``, the ensemble's own
leave-one-source-out accuracy: the members' fold checkpoints averaged the same way on the photos of
the source they never saw (``tools/loso_tta.py --out`` wrote those probabilities: ``--probs``).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from loso_tta import stored_views  # tools/, beside this file

from har_demo.evaluate import classification_report
from har_demo.labels import CLASSES
from har_demo.models.checkpoint import load_checkpoint, read_card, save_checkpoint
from har_demo.models.registry import build_model
from har_demo.training.card import unseen_source_record
from har_demo.training.runner import per_source_accuracy
from har_demo.training.stats import bootstrap_accuracy_ci

KEY = "mean(effnet_person, pose_mlp) +flip"  # the row of tools/loso_tta.py's probabilities this model is


def unseen_record(probs_file: Path, runs: list[str]) -> dict:
    """The card's ``unseen_source_accuracy`` (``training.card.unseen_source_record``, the one writer
    of its shape) from the folds' averaged probabilities."""
    saved = np.load(probs_file)
    sources = sorted({k.split("/", 1)[0] for k in saved.files})
    y = np.concatenate([saved[f"{s}/y"] for s in sources])
    pred = np.concatenate([saved[f"{s}/{KEY}"].argmax(1) for s in sources])
    rep = classification_report(y.tolist(), pred.tolist())
    pooled = {"accuracy": {"mean": float((pred == y).mean()), "std": 0.0}, "ci95": bootstrap_accuracy_ci((pred == y).astype(int)),
              "macro_f1": {"mean": rep["macro_f1"]}, "per_class_recall": {c: rep["per_class"][c]["recall"] for c in CLASSES}, "n": len(y)}
    per_source = {s: {"n": len(saved[f"{s}/y"]), "accuracy": {"mean": float((saved[f"{s}/{KEY}"].argmax(1) == saved[f"{s}/y"]).mean())}}
                  for s in sources}
    record = unseen_source_record({"pooled": pooled, "sources": per_source}, sources, [0], "")
    record["how"] = (f"leave-one-source-out over {len(sources)} sources: each fold's effnet_person and pose_mlp (runs {', '.join(runs)}), "
                     "each averaged with the mirrored photo, then with each other, on the photos of the source neither saw; "
                     "95% CI by bootstrap over photos")
    record["command"] = f"python tools/loso_tta.py {runs[0]} --model effnet_person --with {runs[1]}:pose_mlp --out {probs_file}"
    return record


def split_metrics(model, splits_file: Path, expected: dict) -> dict:
    """The ensemble's metrics on the members' own val / test photos (their ``splits.json``; each
    photo's person as training found it), in the cards' format (report + per-source accuracy)."""
    from har_demo.data.splits import load_splits

    out = {}
    splits = load_splits(splits_file)
    for name in ("val", "test"):
        samples = splits[name]
        if len(samples) != expected[name]["n"]:
            raise SystemExit(f"error: {splits_file} has {len(samples)} {name} photos, the members' cards {expected[name]['n']}")
        y = np.asarray([CLASSES.index(s.label) for s in samples])
        pred = np.concatenate([model.predict_views(views) for views in stored_views(model, samples)]).argmax(1)
        rep = classification_report(y.tolist(), pred.tolist())
        rep["per_source"] = per_source_accuracy(pred == y, samples)
        out[name] = rep
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--image", type=Path, required=True, help="effnet_person checkpoint folder")
    ap.add_argument("--pose", type=Path, required=True, help="pose_mlp checkpoint folder")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--unseen", nargs=2, default=None, metavar=("IMAGE_RUN", "POSE_RUN"), help="their leave-one-source-out runs")
    ap.add_argument("--probs", type=Path, default=None, help="tools/loso_tta.py --out of those runs")
    ap.add_argument("--splits", type=Path, default=None, help="the members' splits.json: val / test metrics of the ensemble")
    args = ap.parse_args(argv)
    image, pose = load_checkpoint(args.image, "effnet_person"), load_checkpoint(args.pose, "pose_mlp")
    if image.resize != "pad" or not image.person_crop:
        raise SystemExit("error: the effnet_person checkpoint must letterbox the person crop")
    model = build_model("person_ensemble", pretrained=False, input_size=image.input_size, hidden=pose.config["hidden"],
                        dropout=image.config["dropout"], pose_weight=image.config["pose_weight"])
    model.image.load_state_dict(image.state_dict())
    model.pose.load_state_dict(pose.state_dict())
    model.eval()
    card = {
        "label": "person_ensemble", "seed": {"effnet_person": image.card.get("seed"), "pose_mlp": pose.card.get("seed")},
        "members": {"effnet_person": {k: v for k, v in read_card(args.image).items() if k not in ("input_importance",)},
                    "pose_mlp": {k: v for k, v in read_card(args.pose).items() if k not in ("input_importance",)}},
        "data": image.card.get("data"), "metrics": {"members": {"effnet_person": image.card.get("metrics"), "pose_mlp": pose.card.get("metrics")}},
        "calibration_unseen": {"shipped": False, "temperature": 1.0, "reason": "members uncalibrated (their cross-checks did not ship a temperature)"},
        "command": "python tools/make_ensemble.py " + " ".join(sys.argv[1:] if argv is None else argv),
    }
    if image.card.get("data", {}).get("splits") != pose.card.get("data", {}).get("splits"):
        raise SystemExit("error: the two members were not trained on the same split")
    if args.splits:
        card["metrics"] = {**split_metrics(model, args.splits, image.card["data"]["splits"]), **card["metrics"]}
    if args.unseen and args.probs:
        card["unseen_source_accuracy"] = unseen_record(args.probs, args.unseen)
    save_checkpoint(model, args.out, card=card, half=True)  # fp16 like the shipped effnet_person
    print(f"wrote {args.out}" + (f"; unseen-source accuracy {card['unseen_source_accuracy']['accuracy']}" if "unseen_source_accuracy" in card else ""))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
