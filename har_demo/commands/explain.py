"""CLI subcommands ``explain`` and ``explain-eval`` (wired by ``har_demo.cli``): arguments in,
library calls (``explain``, ``evaluate.evaluate_maps_many``), JSON/text out.

    python -m har_demo explain IMAGE --model NAME [--method NAME] [--target CLASS] [--checkpoint DIR]
        [--opacity 0.5] [--out overlay.png] [--json] [--box x0,y0,x1,y1]
    python -m har_demo explain-eval --data PATH --model NAME[,NAME...] [--method NAME] [--coco-instances JSON]
        [--limit N] [--split test --splits runs/RUN/splits.json] [--json] [--quiet]

``explain`` writes its overlay to ``--out``, by default ``runs/explain/<image>_<model>_<method>.png``
(``runs/`` is git-ignored). Both report ``person_share`` - the share of the map on the person the
person finder found - next to ``person_chance`` (what a uniform map over the model's view would
score) and ``person_lift`` (share / chance: > 1 = the map prefers the body; below 1 = the
background, the study's drift), the same for the box (``box_*``) and ``pointing`` (the map's peak
on the body); a ``--box`` overrides the finder.

Everything printed is computed by library functions (explain base / overlay / metrics,
``evaluate``) that the UI and the tests call too. User errors are ``HarError``s with one line; the CLI prints them.
"""

from __future__ import annotations

import argparse
import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from ..errors import DataError, HarError
from ..evaluate import evaluate_maps_many, format_eval
from ..explain.base import EXPLAINERS, default_method, explain_full, get_explainer, make_explainer
from ..explain.metrics import AMBIGUITY_THRESHOLD, DEFAULT_STEPS, box_mask, drift_score, faithfulness, parse_box, pose_ambiguity
from ..explain.overlay import COLORMAPS, DEFAULT_COLORMAP, overlay
from ..options import parse_value, split_assignment
from .common import Progress, add_split_args, select_split


# ---- shared arguments ---------------------------------------------------------------------------
def parse_options(items: Sequence[str] | None) -> dict[str, Any]:
    """``["steps=8", "sign=abs"]`` -> ``{"steps": 8, "sign": "abs"}`` (method options), read by the
    project's one ``KEY=VALUE`` grammar (``har_demo.options``, as ``train.py --config``); the method
    checks each value against its option's type (``Explainer.__init__``)."""
    opts: dict[str, Any] = {}
    for item in items or ():
        key, raw = split_assignment(item, "--opt")
        opts[key.replace("-", "_")] = parse_value(raw)
    return opts


def _add_common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", required=True, help="registry name (see `python -m har_demo models`); explain-eval: several, comma-separated")
    p.add_argument("--method", help=f"explanation method: {', '.join(EXPLAINERS)} (default: the model's default)")
    p.add_argument("--checkpoint", help="checkpoint dir (default: checkpoints/MODEL when present)")
    p.add_argument("--input-size", type=int, help="compute the map at this model resolution (ViTs: sharper maps)")
    p.add_argument("--opt", action="append", metavar="KEY=VALUE", help="method option, repeatable (e.g. steps=8, window=32, start_layer=-4)")
    p.add_argument("--steps", type=int, default=DEFAULT_STEPS, help=f"deletion/insertion steps (default {DEFAULT_STEPS})")
    p.add_argument("--seed", type=int, default=0, help="seed of the random-map baseline")
    p.add_argument("--json", action="store_true", help="print JSON")


def _method_opts(args) -> dict[str, Any]:
    opts = parse_options(args.opt)
    if args.input_size:
        opts["input_size"] = args.input_size
    return opts


def _round(v: Any, nd: int = 4) -> Any:
    if isinstance(v, float):
        return None if math.isnan(v) else round(v, nd)
    if isinstance(v, dict):
        return {k: _round(x, nd) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_round(x, nd) for x in v]
    return v


# ---- explain ------------------------------------------------------------------------------------
DEFAULT_OUT = "runs/explain"  # git-ignored (runs/)


def default_out(image: str, model: str, method: str) -> Path:
    return Path(DEFAULT_OUT) / f"{Path(image).stem}_{model}_{method}.png"


def add_explain_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("image", help="image file")
    _add_common(parser)
    parser.add_argument("--target", help="class to explain, name or index (default: the predicted class)")
    parser.add_argument("--out", help=f"where to write the overlay PNG (same size as the image; default {DEFAULT_OUT}/<image>_<model>_<method>.png)")
    parser.add_argument("--opacity", type=float, default=0.5, help="heat-map opacity 0..1 (default 0.5)")
    parser.add_argument("--colormap", default=DEFAULT_COLORMAP, choices=sorted(COLORMAPS), metavar="NAME", help=f"OpenCV colormap (default {DEFAULT_COLORMAP})")
    parser.add_argument("--box", help="person box x0,y0,x1,y1 in pixels: report the share of the map inside it (drift)")
    parser.add_argument("--threshold", type=float, default=AMBIGUITY_THRESHOLD, help=f"sitting/standing ambiguity margin (default {AMBIGUITY_THRESHOLD})")


def _save_png(arr: np.ndarray, out: str) -> Path:
    path = Path(out)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(arr, "RGB").save(path, format="PNG")
    except (OSError, ValueError) as err:
        raise HarError(f"cannot write overlay {out}: {err}") from None
    return path


def explain_report(model, image, method: str | None, target, opts: dict, steps: int, seed: int, box=None, threshold: float = AMBIGUITY_THRESHOLD):
    """(Explanation, JSON-able scores) for one image: the numbers ``explain`` prints."""
    exp = explain_full(model, image, method, target, **opts)
    classes = list(model.classes)
    scores: dict[str, Any] = {
        "method": exp.method,
        "prediction": classes[exp.predicted],
        "probs": {c: float(p) for c, p in zip(classes, exp.probs)},
        "target": classes[exp.target],
        "ambiguity": pose_ambiguity(exp.probs, threshold, classes),
        "faithfulness": faithfulness(model, image, exp.saliency, exp.target, steps, seed) if steps > 0 else None,
        "drift": None,
    }
    if box is not None:
        scores["drift"] = drift_score(exp.saliency, box_mask(exp.saliency.shape, box))
    scores.update(where_it_looked(image, exp, box))
    return exp, scores


def where_it_looked(image, exp, box=None) -> dict:
    """Where the map looks against chance (``explain.metrics.drift_scores`` over the model's view,
    ``exp.view_box``): ``person_share`` / ``person_chance`` / ``person_lift`` against the person the
    finder found, ``box_share`` / ``box_chance`` / ``box_lift`` in its box - or, with a user
    ``box``, inside that box (it overrides the finder: person fields None) - and ``pointing``; plus
    the person (``found``, ``box``, ``score``, ``others``) and ``share_from``."""
    from ..explain.metrics import DRIFT_FIELDS, drift_scores
    from ..person import find_person_or_none

    person = exp.person if exp.person is not None else find_person_or_none(image)
    found = {"found": person is not None}
    if person is not None:
        found.update({k: v for k, v in person.to_json().items() if k in ("box", "score", "others", "mask_area")})
    if box is not None:
        share = {**drift_scores(exp.saliency, None, exp.view_box, box), "share_from": "box"}
    elif person is not None:
        share = {**drift_scores(exp.saliency, person, exp.view_box), "share_from": "person finder"}
    else:
        share = {**dict.fromkeys(DRIFT_FIELDS), "share_from": None}
    return {**share, "person": found}


def cmd_explain(args) -> int:
    from ..data.io import load_image
    from ..models.loading import load_model

    if not 0.0 <= args.threshold <= 1.0:  # NaN fails this too
        raise HarError(f"--threshold must be a number from 0 to 1, got {args.threshold}")
    image = load_image(args.image)  # fail before loading the model
    box = parse_box(args.box) if args.box else None
    opts = _method_opts(args)
    if args.method:
        get_explainer(args.method)
    model = load_model(args.model, args.checkpoint)
    if args.method:
        make_explainer(args.method, model, **opts)  # applicability / option errors before any work
    exp, scores = explain_report(model, image, args.method, args.target, opts, args.steps, args.seed, box, args.threshold)
    out = args.out or default_out(args.image, args.model, exp.method)
    path = _save_png(overlay(image, exp.saliency, args.opacity, args.colormap), str(out))
    result = {"image": str(args.image), "model": args.model, **scores, "overlay": str(path), "size": list(image.size)}
    if args.json:
        print(json.dumps(_round(result, 6), indent=2))
        return 0
    probs = ", ".join(f"{c} {p:.3f}" for c, p in result["probs"].items())
    amb = result["ambiguity"]
    print(f"{args.image}: {result['prediction']}  ({probs})")
    print(f"map: {result['method']} for '{result['target']}' -> {path} ({image.size[0]}x{image.size[1]})")
    print(f"ambiguity: top-2 {amb['top1']}/{amb['top2']} margin {amb['margin']:.3f}" + (f"  FLAG close call {amb['pair']}" if amb["flag"] else ""))
    print(looked_line(result))
    f = result["faithfulness"]
    if f and not model.uses_image:
        print("deletion / insertion AUC: n/a (the model reads the pose vector, not pixels)")
    elif f:
        print(
            f"deletion AUC {f['deletion_auc']:.3f} (random {f['deletion_auc_random']:.3f}, lower is better)   "
            f"insertion AUC {f['insertion_auc']:.3f} (random {f['insertion_auc_random']:.3f}, higher is better)"
        )
    if result["drift"] is not None:
        d = result["drift"]
        print(f"drift: {'n/a (empty map)' if math.isnan(d) else f'{d:.3f}'} of the map inside the box")
    return 0


def looked_line(result: dict) -> str:
    """Where the map looked, against chance (the lift decides the verdict, never the raw share)."""
    from ..explain.metrics import lift_verdict

    key = "person" if result["person_share"] is not None else "box" if result["box_share"] is not None else None
    if key is None:
        return "looked at the person: n/a (no person found)"
    share, chance, lift = (result[f"{key}_{k}"] for k in ("share", "chance", "lift"))
    where = "inside your box" if result["share_from"] == "box" else "on the body" if key == "person" else "in the person box"
    if share is None or math.isnan(share):
        return "looked at the person: n/a (empty map)"
    verdict = {"body": "prefers the body", "chance": "no better than a uniform map",
               "background": "prefers the background"}.get(lift_verdict(lift), "chance undefined")
    line = (f"looked at the person: {share:.0%} of the map {where}, which covers {chance:.0%} of what this model sees: "
            f"{'n/a' if math.isnan(lift) else f'{lift:.1f}x'} chance ({verdict})")
    if result.get("pointing") is not None:
        line += f"; the map's peak is {'on' if result['pointing'] else 'off'} the body"
    return line


# ---- explain-eval --------------------------------------------------------------------------------
def add_explain_eval_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", required=True, help="class-subfolder directory or manifest CSV (or, with --coco-instances, a folder of COCO images)")
    _add_common(parser)
    parser.add_argument("--coco-instances", help="COCO instances JSON: person masks for the drift score")
    parser.add_argument("--limit", type=int, help="at most N images (in dataset order)")
    add_split_args(parser)
    parser.add_argument("--explain-class", choices=("predicted", "label"), default="predicted", help="class each map explains (default: predicted)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar (it is off anyway when stderr is not a terminal)")


def _coco_images(folder: Path, instances: str) -> list:
    """Unlabelled samples: the images of ``folder`` listed in the COCO instances file."""
    from ..data.coco import load_coco
    from ..data.datasets import Sample

    if not folder.is_dir():
        raise DataError(f"{folder}: not a folder of images")
    names = {img["file_name"] for img in load_coco(instances).dataset["images"]}
    files = sorted(p for p in folder.iterdir() if p.name in names)
    if not files:
        raise DataError(f"{folder}: none of its files is listed in {instances}")
    return [Sample(path=str(p.resolve()), label="", group=p.name) for p in files]


def load_eval_samples(args) -> list:
    """The dataset rows to evaluate (labels may be empty for a COCO image folder)."""
    from ..data.datasets import load_dataset

    data = Path(args.data)
    try:
        samples = load_dataset(data)
    except DataError:
        if not args.coco_instances or not data.is_dir():
            raise
        samples = _coco_images(data, args.coco_instances)
    samples = select_split(samples, args.split, args.splits, args.seed)
    if args.limit is not None:
        if args.limit < 1:
            raise HarError("--limit must be at least 1")
        samples = samples[: args.limit]
    if not samples:
        raise DataError(f"{args.data}: no images to evaluate")
    return list(samples)


def model_names(text: str) -> list[str]:
    names = [n.strip() for n in str(text).split(",") if n.strip()]
    if not names:
        raise HarError("--model needs at least one model name")
    return names


def cmd_explain_eval(args) -> int:
    """One report per model; several models (``--model a,b``) add a per-model person_share table."""
    from ..models.loading import load_model

    if args.steps < 1:
        raise HarError("explain-eval needs --steps >= 1 (the deletion/insertion steps)")
    samples = load_eval_samples(args)
    opts = _method_opts(args)
    if args.method:
        get_explainer(args.method)
    names = model_names(args.model)
    if args.checkpoint and len(names) > 1:
        raise HarError("--checkpoint applies to one model; give one --model with it")
    models = {}
    for name in names:  # every model and method checked before any work
        model = load_model(name, args.checkpoint)
        method = args.method or default_method(model)
        make_explainer(method, model, **opts)
        models[name] = (model, method)
    with Progress(len(samples), f"explain-eval {', '.join(models)}", args.quiet) as step:  # photo by photo, every model
        reports = evaluate_maps_many(list(models.values()), samples, opts, args.steps, args.seed, args.coco_instances,
                                     args.explain_class, progress=step)
    if args.json:
        doc = reports[0] if len(reports) == 1 else {"models": reports, **{k: {r["model"]: r[k] for r in reports} for k in SUMMARY_KEYS}}
        print(json.dumps(_round(doc, 6), indent=2))
    else:
        print("\n\n".join(format_eval(r) for r in reports))
        if len(reports) > 1:
            print(drift_table(reports))
    return 0


SUMMARY_KEYS = ("person_share", "person_chance", "person_lift", "pointing", "box_share", "box_chance", "box_lift")


def drift_table(reports: Sequence[dict]) -> str:
    """Per-model means of the drift scores: share on the body next to its chance and lift (the
    lift compares a person-crop model with a whole-photo one; the raw share does not)."""

    def f(v) -> str:
        return "n/a" if v is None else f"{v:.3f}"

    lines = ["\nper model, means over the photos with a person mask (lift = share / chance; > 1 = the map prefers the body):",
             f"  {'model':<16} {'person_share':>12} {'chance':>7} {'lift':>6} {'pointing':>8} {'box_share':>9} {'chance':>7} {'lift':>6}"]
    for r in reports:
        lines.append(f"  {r['model']:<16} {f(r['person_share']):>12} {f(r['person_chance']):>7} {f(r['person_lift']):>6} "
                     f"{f(r['pointing']):>8} {f(r['box_share']):>9} {f(r['box_chance']):>7} {f(r['box_lift']):>6}"
                     f"  ({r['method']}, {r['images']} images, person found in {r['person_found']:.0%})")
    return "\n".join(lines)
