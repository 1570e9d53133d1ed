"""Explanation speed: median milliseconds for ONE map per model x method at 224 px on this machine.

    python benchmarks/bench_explain.py [--models effnet_lite0,clip_ft] [--methods gradcam,legrad]
        [--repeats 5] [--slow-repeats 2] [--size 224] [--threads N] [--json]

Models are built with random weights (``pretrained=False``: no downloads; ViT-B/32-sized
open_clip towers for the CLIP entries, timm ViT-B/32 for ``vit``). Zero class embeddings of an
untrained CLIP build are replaced by random ones so the gradients are not trivially zero. Each
timing is ``har_demo.explain.explain`` end to end (preprocess, forward+backward, resize to the
640x480 photo) after one warm-up call. IG and occlusion are shown at several settings because
their cost scales with ``steps`` and with the number of window positions; ``--hires 448`` adds
rows for the attention methods at a higher (interpolated) ViT input size.

On a shared machine other processes inflate timings (OpenMP threads of two busy processes on two
cores slow each other down many-fold): the table gives the median and the minimum and the load
average, so compare rows from one quiet run. ``OMP_WAIT_POLICY=PASSIVE`` makes a busy machine
hurt less but costs ~50% on the attention methods when it is quiet. A measurement, not a test.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from har_demo.commands.timing import machine_info, time_call
from har_demo.errors import HarError
from har_demo.explain.base import applicable_methods, explain
from har_demo.testing import random_model, synthetic_photo

DEFAULT_MODELS = ("cnn_base", "effnet_lite0", "vit", "clip_zeroshot", "clip_ft", "siglip_ft")
# method -> list of option sets to time (one row each); methods not listed: defaults only
VARIANTS: dict[str, list[dict]] = {
    "integrated_gradients": [{"steps": 8}, {"steps": 16}],
    "occlusion": [{"window": 112, "stride": 56}, {"window": 56, "stride": 28}],
}
SLOW = ("integrated_gradients", "occlusion")
ATTENTION = ("legrad", "rollout", "vit_gradcam")


def build(name: str, size: int):
    """Random-weight registry model (``har_demo.testing.random_model``) run at ``size`` px."""
    config = {"input_size": size} if name == "cnn_base" else {}
    model = random_model(name, **config)
    if model.input_size != size:
        model.set_input_size(size)
    return model


def run(models, methods, repeats: int, slow_repeats: int, size: int, hires: int | None = None) -> list[dict]:
    image = synthetic_photo()
    rows = []
    for name in models:
        try:
            t0 = time.perf_counter()
            model = build(name, size)
            build_s = time.perf_counter() - t0
        except (HarError, ImportError) as err:
            rows.append({"model": name, "method": "-", "error": str(err)})
            continue
        for method in applicable_methods(model):
            if methods and method not in methods:
                continue
            variants = VARIANTS.get(method, [{}]) + ([{"input_size": hires}] if hires and method in ATTENTION else [])
            for opts in variants:
                t = time_call(lambda m=model, k=method, o=opts: explain(m, image, k, **o), slow_repeats if method in SLOW else repeats)
                rows.append({
                    "model": name, "method": method, "options": opts, "median_ms": t.median_s * 1000.0,
                    "min_ms": t.min_s * 1000.0, "runs": t.runs, "input_size": model.input_size, "build_s": round(build_s, 2),
                })
                print(f"  {name:<14} {method:<21} {_opts(opts):<20} {rows[-1]['median_ms']:8.0f} ms", file=sys.stderr, flush=True)
        del model
    return rows


def _opts(opts: dict) -> str:
    return ",".join(f"{k}={v}" for k, v in opts.items()) or "defaults"


def table(rows: list[dict]) -> str:
    lines = [f"{'model':<14} {'method':<21} {'options':<20} {'median ms':>10} {'min ms':>8} {'runs':>4}", "-" * 82]
    for r in rows:
        if "error" in r:
            lines.append(f"{r['model']:<14} unavailable: {r['error']}")
            continue
        lines.append(f"{r['model']:<14} {r['method']:<21} {_opts(r['options']):<20} {r['median_ms']:10.0f} {r['min_ms']:8.0f} {r['runs']:4d}")
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", default=",".join(DEFAULT_MODELS), help="comma-separated registry names")
    p.add_argument("--methods", default="", help="comma-separated method names (default: all applicable)")
    p.add_argument("--repeats", type=int, default=5, help="timed runs per fast method (median reported)")
    p.add_argument("--slow-repeats", type=int, default=2, help="timed runs for integrated_gradients / occlusion")
    p.add_argument("--size", type=int, default=224, help="model input size (px)")
    p.add_argument("--threads", type=int, help="torch.set_num_threads (default: torch's choice)")
    p.add_argument("--hires", type=int, help="also time the attention methods at this ViT input size (e.g. 448)")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    models = [m for m in args.models.split(",") if m]
    methods = {m for m in args.methods.split(",") if m}
    rows = run(models, methods, args.repeats, args.slow_repeats, args.size, args.hires)
    info = machine_info()
    meta = {**info, "cores": info["logical_cpus"], "size": args.size}
    if args.json:
        print(json.dumps({"meta": meta, "rows": rows}, indent=2))
    else:
        load = meta["load_avg"]
        print(f"# one map, {args.size} px, 640x480 photo; {meta['cores']} cores, {meta['torch_threads']} torch threads, "
              f"torch {meta['torch']}" + (f", OMP_WAIT_POLICY={meta['omp_wait_policy']}" if meta["omp_wait_policy"] else "")
              + (f", load avg {load[0]:.1f}" if load else ""))
        print(table(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
