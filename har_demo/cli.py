"""har_demo command line: models, predict, evaluate, explain, explain-eval, person, bench.

Each subcommand is a pair of functions (add its arguments, run it): ``models`` / ``predict`` /
``evaluate`` here, the others in ``har_demo/commands/``; the work itself is done by library
functions (``evaluate``, ``explain``, ...) the UI and the tests call too. Every user error (a
``HarError``, ``errors.py``) becomes one line on stderr and exit code 2; any other exception is a
bug and surfaces as one (traceback, exit code 1), not disguised as a user error.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import sys
from collections.abc import Callable

from . import settings
from .errors import HarError

# name -> (module, add-args function, run function, help). Imported lazily (fast --help).
COMMANDS: dict[str, tuple[str, str, str, str]] = {
    "models": ("har_demo.cli", "add_models_args", "cmd_models", "list registry models and whether they can run here"),
    "predict": ("har_demo.cli", "add_predict_args", "cmd_predict", "classify images"),
    "evaluate": ("har_demo.cli", "add_evaluate_args", "cmd_evaluate", "accuracy/F1/confusion on a labelled dataset"),
    "explain": ("har_demo.commands.explain", "add_explain_args", "cmd_explain", "attention map overlay + scores for one image"),
    "explain-eval": ("har_demo.commands.explain", "add_explain_eval_args", "cmd_explain_eval", "map quality (deletion/insertion AUC, drift) over a dataset"),
    "person": ("har_demo.commands.person", "add_person_args", "cmd_person", "find the person: landmarks, box, mask (BlazePose)"),
    "person-eval": ("har_demo.commands.person", "add_person_eval_args", "cmd_person_eval", "person finders vs COCO boxes and keypoints (recall, precision, PCK)"),
    "bench": ("har_demo.commands.bench", "add_bench_args", "cmd_bench", "speed benchmarks (inference, maps, training, app start)"),
}


def _resolve(module: str, func: str) -> Callable:
    return getattr(importlib.import_module(module), func)


PREDICT_MAX_SIDE = 1024  # long side of the images `predict` hands the models


# ---- models ---------------------------------------------------------------------------------------
def add_models_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true", help="print JSON")


def cmd_models(args) -> int:
    from .models.loading import availability
    from .models.registry import MODELS

    rows = []
    for name, spec in MODELS.items():
        ok, why = availability(name)
        rows.append({"name": name, "family": spec.family, "available": ok, "detail": why, "summary": spec.summary})
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    width = max(len(r["name"]) for r in rows)
    for r in rows:
        mark = "yes" if r["available"] else "no "
        print(f"{r['name']:<{width}}  {mark}  {r['detail']}")
    return 0


# ---- predict / evaluate -------------------------------------------------------------------------
def _add_model_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", required=True, help="registry name (see `python -m har_demo models`)")
    p.add_argument("--checkpoint", help="checkpoint dir (default: checkpoints/MODEL when present)")
    p.add_argument("--json", action="store_true", help="print JSON")


def add_predict_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("images", nargs="+", help="image files")
    _add_model_args(p)
    p.add_argument("--people", action="store_true",
                   help="one row per person found (person-centred models; whole-photo models: one row per photo)")  # fmt: skip


def cmd_predict(args) -> int:
    from .data.io import load_image
    from .evaluate import predictions_from_probs
    from .models.fuse import prepare_for_serving
    from .models.loading import load_model

    if args.people:
        return _predict_people(args)
    # fail before loading the model; reduced while decoding (model inputs are far smaller, 224 px for the
    # pretrained ones: each squashes or letterboxes its view - the photo, or a person_crop model's person box)
    images = [load_image(path, max_side=PREDICT_MAX_SIDE) for path in args.images]
    model = prepare_for_serving(load_model(args.model, args.checkpoint))  # inference only: BN folded into convs
    probs = model.predict_proba(images)
    import numpy as np

    if not np.isfinite(probs).all():  # e.g. NaN weights in a checkpoint: no label, no "NaN" in the JSON
        raise HarError(f"model {args.model} gives non-finite probabilities (NaN or infinite weights?); check its checkpoint")
    preds = predictions_from_probs(probs)
    if args.json:
        print(json.dumps([p.to_json(path=path) for path, p in zip(args.images, preds)], indent=2))
    else:
        for path, p in zip(args.images, preds):
            probs = "  ".join(f"{c}={v:.3f}" for c, v in p.probs.items())
            print(f"{path}: {p.label}  ({probs})")
    return 0


def _predict_people(args) -> int:
    """``predict --people``: a row per person (``{"path", "person", "box", "label", "probs", "pose"}``,
    boxes in photo pixels, ``person`` numbered from 1, most prominent first). A whole-photo model, or
    a photo where nobody is found, gives one row for the photo (``person`` and ``box`` null), and
    every row says how many people the photo has (``people``)."""
    from .data.io import load_image_sized
    from .evaluate import predictions_from_probs
    from .explain.people import per_person, person_rows
    from .models.fuse import prepare_for_serving
    from .models.loading import load_model
    from .person.multi import find_people_or_empty

    loaded = [load_image_sized(path, max_side=PREDICT_MAX_SIDE) for path in args.images]
    model = prepare_for_serving(load_model(args.model, args.checkpoint))
    rows = []
    for path, (image, full) in zip(args.images, loaded):
        people = find_people_or_empty(image)
        if per_person(model) and people:
            sx, sy = full[0] / image.width, full[1] / image.height
            for r in person_rows(model, image, people):
                b = r["box"]
                box = [round(b[0] * sx), round(b[1] * sy), round(b[2] * sx), round(b[3] * sy)]
                rows.append({"path": path, "person": r["index"], "box": box, "label": r["label"], "probs": r["probs"],
                             "pose": r["pose"], "people": len(people)})  # fmt: skip
        else:
            (pred,) = predictions_from_probs(model.predict_proba([image]))
            rows.append({"path": path, "person": None, "box": None, **pred.to_json(), "pose": None, "people": len(people)})
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    for r in rows:
        probs = "  ".join(f"{c}={v:.3f}" for c, v in r["probs"].items())
        who = f"person {r['person']} at {r['box']}" if r["person"] else f"whole photo ({r['people']} people found)"
        print(f"{r['path']}: {who}: {r['label']}  ({probs})")
    return 0


def add_evaluate_args(p: argparse.ArgumentParser) -> None:
    from .commands.common import add_split_args

    p.add_argument("--data", required=True, help="class-subfolder directory or manifest CSV")
    _add_model_args(p)
    add_split_args(p)
    p.add_argument("--seed", type=int, default=0, help="split seed when --split is given without --splits (default 0)")
    p.add_argument("--quiet", action="store_true", help="no progress bar (it is off anyway when stderr is not a terminal)")


def _training_data_note(model, data: str, split: str | None) -> str | None:
    """A warning when the whole data set the model was trained on is scored (no --split)."""
    if split:
        return None
    trained = ((getattr(model, "card", None) or {}).get("data") or {}).get("path")
    if not trained:
        return None
    try:
        same = os.path.samefile(trained, data) or os.path.samefile(os.path.dirname(trained), data)
    except OSError:
        return None
    if not same:
        return None
    return (f"note: {data} is the data set {model.name} was trained on, so this includes its training photos; "
            "score the held-out photos with --split test --splits runs/<run>/splits.json")


def cmd_evaluate(args) -> int:
    from .commands.common import Progress, select_split
    from .data.datasets import load_dataset
    from .evaluate import evaluate_model, format_report
    from .models.loading import load_model

    samples = select_split(load_dataset(args.data), args.split, args.splits, args.seed)
    if not samples:
        raise HarError(f"{args.data}: no images to evaluate")
    model = load_model(args.model, args.checkpoint)
    note = _training_data_note(model, args.data, args.split)
    if note:
        print(note, file=sys.stderr)
    with Progress(len(samples), f"evaluate {args.model}", args.quiet) as step:
        done = [0]

        def progress(frac: float, _desc: str) -> None:
            n = round(frac * len(samples))
            step(n - done[0])
            done[0] = n

        report = evaluate_model(model, samples, progress=progress)
    report.pop("probs")
    if args.split:
        report["split"] = args.split
    print(json.dumps(report, indent=2) if args.json else format_report(report))
    return 0


# ---- entry point -------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m har_demo", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, (module, add, _run, help_) in COMMANDS.items():
        p = sub.add_parser(name, help=help_, description=help_)
        p.set_defaults(_command=name)
        try:
            _resolve(module, add)(p)
        except ImportError:  # a face not installed in this build: listed, reports itself on use
            pass
    return parser


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    try:
        settings.check_all()  # a bad HAR_* variable: one line, before any module reads one at import
    except HarError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    from .data import io as data_io

    data_io.CAPTURE_NATIVE_STDERR = True  # libtiff/libjpeg lines never reach the terminal (errors become ours)
    parser = build_parser()
    args = parser.parse_args(argv)
    module, _add, run, _help = COMMANDS[args._command]
    try:
        return int(_resolve(module, run)(args) or 0)
    except HarError as err:  # a user error (errors.py): one line
        # one line whatever the input: a newline or escape in a caller's path is shown escaped
        print(f"error: {data_io.safe_label(err, 2000)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    # anything else (ValueError, OSError, ...) is a bug or an unforeseen failure, not a user
    # error: it propagates, so Python prints the traceback and exits 1


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
