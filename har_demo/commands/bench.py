"""Speed benchmarks on this machine: ``python -m har_demo bench [--quick] [--scale tiny|full] [--json]
[--out FILE] [--models a,b] [--sections ...]``.

Sections (each a function returning JSON-ready rows; all timings: warm-up call(s), then the median
of timed calls, plus the minimum):

* ``inference``  - per model: one photo end to end (``predict_proba``: preprocess + forward under
  ``torch.inference_mode``) and images/s at batch 1, 8, 32 (640x480 photos, preprocessing included);
* ``references`` - our path against a plain one in the same run, as ``ratio = reference / ours``
  (> 1: ours is faster): BN folded into convs vs BN layers, channels-last vs contiguous conv nets, ``inference_mode`` vs ``no_grad``,
  cached class text embeddings vs re-encoding the prompts (zero-shot CLIP), Grad-CAM from one
  forward+backward vs captum's usual predict-then-attribute, LeGrad's one backward vs one
  backward per layer, torch threads = physical cores vs 1 thread;
* ``maps``       - per model x applicable method: one map (``explain``) at default options;
* ``photo``      - one photo through every model with its default map, as the app runs it
  (``ui.analysis.analyse``): total and per model;
* ``cold_start`` - a fresh ``python`` process: import, load every model from checkpoints
  (``ModelBank.load``), first analysis of a photo (full mode also spawns ``app.py`` and waits for
  its first ``/predict`` answer over HTTP);
* ``training``   - per trainable model: images/s of the real ``training.loop.fit`` (augmentation,
  AdamW, schedule; last epoch of two) vs a plain forward/backward/AdamW step on ready tensors.

Models are built with random weights (``pretrained=False``: no downloads; ViT-B/32-sized
open_clip towers for the CLIP entries) and measured as the app serves them
(``models.fuse.prepare_for_serving``: BN folded into convs). ``--quick`` uses tiny counts on reduced configs (the CI
smoke run, ``--scale full`` for full-size models); tiny models run on 1 thread unless ``--threads``.
On a shared machine other processes inflate timings: the load average is recorded.
The sections live in ``bench_sections`` (inference, references, maps, photo) and ``bench_startup``
(cold start, training); ``timing`` holds the primitives ``benchmarks/*.py`` reuse.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch

from ..errors import HarError
from ..models.fuse import prepare_for_serving
from ..testing import random_model, synthetic_photo
from .bench_sections import Profile, bench_inference, bench_maps, bench_photo, bench_references
from .bench_startup import bench_cold_start, bench_training
from .timing import Timing, configure_threads, log, machine_info, physical_cores, progress, speed_ratio, time_call, time_pair

__all__ = ["SECTIONS", "Profile", "Timing", "format_report", "goals", "physical_cores", "run", "speed_ratio", "time_call", "time_pair"]

SECTIONS = ("inference", "references", "maps", "photo", "cold_start", "training")
GOAL_PHOTO_S = 1.0  # one photo through a model with its default map (median)
GOAL_EFFNET_IPS = 30.0  # effnet_lite0 inference at batch 32


def _show_progress(on: bool) -> None:
    """Progress lines to stderr (``--quiet``: none)."""
    if not any(getattr(h, "_har_bench", False) for h in log.handlers):
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(message)s"))
        handler._har_bench = True  # type: ignore[attr-defined]
        log.addHandler(handler)
        log.propagate = False
    log.setLevel(logging.INFO if on else logging.WARNING)


def goals(report: dict) -> list[dict]:
    """The issue's CPU goals, checked against this run (skipped when a section did not run)."""
    out = []
    photo = report.get("photo")
    if photo and photo.get("per_model_median_s"):
        slow = max(photo["per_model_median_s"].values())
        out.append(
            {
                "goal": f"one photo + default map, every model (slowest model) <= {GOAL_PHOTO_S} s",
                "value": slow,
                "met": slow <= GOAL_PHOTO_S,
            }
        )
        total = photo["total"]["median_s"]
        out.append(
            {
                "goal": f"one photo + default maps, all models together <= {GOAL_PHOTO_S} s",
                "value": total,
                "met": total <= GOAL_PHOTO_S,
            }
        )
    for row in report.get("inference", []):
        if row["model"] == "effnet_lite0" and "32" in row["throughput"]:
            ips = row["throughput"]["32"]["images_per_s"]
            out.append(
                {
                    "goal": f"effnet_lite0 inference >= {GOAL_EFFNET_IPS} img/s at batch 32",
                    "value": ips,
                    "met": ips >= GOAL_EFFNET_IPS,
                }
            )
    return out


def run(
    names: Sequence[str], prof: Profile, tiny: bool = False, sections: Sequence[str] = SECTIONS, threads: int | None = None
) -> dict:
    """Run the chosen sections over the named registry models; returns the JSON report. The
    torch thread count is set for the run and restored afterwards."""
    before = torch.get_num_threads()
    try:
        return _run(names, prof, tiny, sections, configure_threads(threads))
    finally:
        torch.set_num_threads(before)


def _run(names: Sequence[str], prof: Profile, tiny: bool, sections: Sequence[str], n_threads: int) -> dict:
    started = time.perf_counter()
    def build(name: str):
        return random_model(name, tiny=tiny)

    photos = [synthetic_photo(seed=i) for i in range(max(prof.batches))]
    report: dict[str, Any] = {
        "meta": {
            **machine_info(),
            "threads_set": n_threads,
            "models": list(names),
            "tiny": tiny,
            "profile": prof.__dict__ | {"batches": list(prof.batches)},
            "sections": list(sections),
        }
    }
    models: dict = {}
    if any(s in sections for s in ("inference", "references", "maps", "photo", "cold_start")):
        for name in names:
            t0 = time.perf_counter()
            models[name] = build(name)
            progress(f"built {name} in {time.perf_counter() - t0:.1f} s")
    served = {name: prepare_for_serving(model, copy=True) for name, model in models.items()}  # as the app serves them
    steps: dict[str, Callable[[], Any]] = {
        "inference": lambda: bench_inference(served, photos, prof),
        "references": lambda: bench_references(served, photos, prof, plain=models),
        "maps": lambda: bench_maps(served, photos[0], prof),
        "photo": lambda: bench_photo(served, photos[0], prof),
        "cold_start": lambda: bench_cold_start(models, prof),  # checkpoints of the unfolded models
        "training": lambda: bench_training(names, build, prof),
    }
    report["meta"]["section_s"] = {}
    for section, step in steps.items():
        if section not in sections:
            continue
        if section == "training":
            models.clear()  # free the inference models before building training ones
            served.clear()
        t0 = time.perf_counter()
        with torch.inference_mode(False):
            report[section] = step()
        report["meta"]["section_s"][section] = round(time.perf_counter() - t0, 1)
    report["goals"] = goals(report)
    report["meta"]["seconds"] = round(time.perf_counter() - started, 1)
    report["meta"]["load_avg_end"] = machine_info()["load_avg"]
    return report


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.0f}"


def _table(rows: list[dict] | None, title: str, header: str, line: Callable[[dict], str]) -> list[str]:
    """A blank line, the section title, the column header and one line per row (nothing when no rows)."""
    return ["", title, header, *map(line, rows)] if rows else []


def format_report(report: dict) -> str:
    """The printed tables."""
    m = report["meta"]
    load = m.get("load_avg") or [float("nan")]
    end = m.get("load_avg_end") or [float("nan")]
    lines = [
        (
            f"# {m['cpu']}: {m['physical_cores']} cores, {m['threads_set']} torch threads, torch {m['torch']}; "
            f"load avg {load[0]:.1f} -> {end[0]:.1f}; {'tiny models, ' if m['tiny'] else ''}{m['seconds']:.0f} s"
        )
    ]
    if report.get("inference"):
        batches = m["profile"]["batches"]
        lines += [
            "",
            "## inference (random weights, 640x480 photos, preprocessing included)",
            f"{'model':<14} {'size':>4} {'ms/photo':>9} "
            + " ".join(f"{'b' + str(b) + ' img/s':>11}" for b in batches)
            + f" {'prep share':>10}",
        ]
        for r in report["inference"]:
            tp = r["throughput"]
            share = tp[str(batches[-1])]["preprocess_share"]
            lines.append(
                f"{r['model']:<14} {r['input_size']:>4} {_ms(r['latency']['median_s']):>9} "
                + " ".join(f"{tp[str(b)]['images_per_s']:>11.1f}" for b in batches)
                + f" {share:>10.0%}"
            )
    lines += _table(
        report.get("references"),
        "## ours vs plain reference (ratio = reference / ours; > 1: ours faster)",
        f"{'model':<14} {'comparison':<66} {'ours ms':>8} {'ref ms':>8} {'ratio':>6}",
        lambda r: f"{r['model']:<14} {r['comparison']:<66} {_ms(r['ours']['median_s']):>8} {_ms(r['reference']['median_s']):>8} {r['ratio']:>6.2f}",
    )
    lines += _table(
        report.get("maps"),
        "## one map (default options; * = the model's default method)",
        f"{'model':<14} {'method':<22} {'median ms':>10} {'min ms':>8}",
        lambda r: f"{r['model']:<14} {r['method'] + ('*' if r['default'] else ''):<22} {_ms(r['median_s']):>10} {_ms(r['min_s']):>8}",
    )
    if report.get("photo"):
        p = report["photo"]
        lines += [
            "",
            f"## one photo through every model with its default map: {p['total']['median_s']:.2f} s median (all {len(p['models'])} models)",
        ]
        lines += [f"{n:<14} {p['methods'][n] or '-':<22} {s:>8.3f} s" for n, s in p["per_model_median_s"].items()]
        lines += [f"{n:<14} error: {e}" for n, e in p.get("errors", {}).items()]
    if report.get("cold_start"):
        c = report["cold_start"]
        lines += [
            "",
            f"## cold start (fresh process -> first analysis of a photo, {len(c['load_s_per_model'])} models): {c['wall_s']:.1f} s",
            f"import {c['import_s']:.1f} s, load models {c['load_s']:.1f} s, first analysis {c['first_analysis_s']:.1f} s",
        ]
        for r in c.get("checkpoint_load", []):
            lines.append(
                f"  {r['model']:<14} load_checkpoint {_ms(r['ours']['median_s'])} ms vs build + load_state_dict "
                f"{_ms(r['reference']['median_s'])} ms: x{r['ratio']:.2f}"
            )
        if "app" in c:
            a = c["app"]
            lines.append(
                f"app.py: server up {a['server_up_s']:.1f} s, first /predict answer {a['cold_start_to_first_answer_s']:.1f} s, "
                f"warm /predict {a['http_median_s']:.2f} s"
            )
    lines += _table(
        report.get("training"),
        "## training throughput (the trainer incl. augmentation - loop.fit, or fit_frozen with its feature extraction for frozen backbones - vs plain forward/backward/AdamW step)",
        f"{'model':<14} {'size':>4} {'batch':>5} {'fit img/s':>10} {'plain img/s':>12} {'ratio':>6}",
        lambda r: (
            f"{r['model']:<14} {r['input_size']:>4} {r['batch_size']:>5} {r['images_per_s']:>10.1f} "
            f"{r['plain_step_images_per_s']:>12.1f} {r['ratio_vs_plain']:>6.2f}"
        ),
    )
    if report.get("goals"):
        lines += ["", "## goals"] + [f"[{'met' if g['met'] else 'NOT met'}] {g['goal']}: {g['value']}" for g in report["goals"]]
    return "\n".join(lines)


def add_bench_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--quick",
        action="store_true",
        help="tiny counts on reduced models: a smoke run (< 1 min); add --scale full for full-size models",
    )
    p.add_argument(
        "--scale",
        choices=("tiny", "full"),
        help="model sizes: full (registry defaults, random weights; the default) or tiny "
        "(reduced configs, the default with --quick)",
    )
    p.add_argument("--json", action="store_true", help="print the JSON report instead of the tables")
    p.add_argument("--out", help="also write the JSON report to this file")
    p.add_argument("--models", default="", help="comma-separated registry names (default: every registry model)")
    p.add_argument("--sections", default=",".join(SECTIONS), help=f"comma-separated, from: {', '.join(SECTIONS)}")
    p.add_argument(
        "--threads", type=int, help="torch threads (default: physical cores; 1 for tiny models, which only pay thread overhead)"
    )
    p.add_argument("--repeats", type=int, help="timed calls per measurement (median reported)")
    p.add_argument("--no-app", action="store_true", help="skip spawning app.py (HTTP cold start)")
    p.add_argument("--quiet", action="store_true", help="no progress lines on stderr")


def cmd_bench(args) -> int:
    from ..models.registry import get_spec, model_names

    _show_progress(not args.quiet)
    names = [n.strip() for n in args.models.split(",") if n.strip()] or model_names()
    for n in names:
        get_spec(n)  # unknown names -> one-line UnknownName
    sections = [s.strip() for s in args.sections.split(",") if s.strip()]
    unknown = [s for s in sections if s not in SECTIONS]
    if unknown:
        raise HarError(f"unknown bench section {unknown[0]!r}; choose from: {', '.join(SECTIONS)}")
    prof = Profile.quick() if args.quick else Profile()
    if args.repeats:
        prof.repeats = int(args.repeats)
    if args.no_app:
        prof.app_http = False
    tiny = (args.scale or ("tiny" if args.quick else "full")) == "tiny"
    threads = args.threads or (1 if tiny else None)
    report = run(names, prof, tiny=tiny, sections=sections, threads=threads)
    text = json.dumps(report, indent=2)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(text + "\n")
    print(text if args.json else format_report(report))
    return 0
