"""Person finder speed, and one photo end to end the way the app analyses it (not a test).

    .venv/bin/python benchmarks/bench_person.py [--runs 7]

1. ``find_person`` (BlazePose, uncached: ``finder.detect``) per 640-px photo: median over the
   example photos x runs.
2. One photo -> the person finder + every shipped model (committed checkpoints, served as the app
   serves them: ``prepare_for_serving``) with its default map + person_share, plus a ViT-B/32-sized
   CLIP (open_clip ViT-B-32 architecture, random weights: the real weights are not downloadable
   here; the cost is the architecture's) with a LeGrad map, through the app's analysis
   (``bench_sections.bench_photo``, finder cache cleared each run): median wall time.
Prints the numbers; ``--json`` prints them as JSON.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from har_demo.commands.bench_sections import Profile, bench_photo
from har_demo.data.io import load_image
from har_demo.models.fuse import prepare_for_serving
from har_demo.models.loading import availability, load_model
from har_demo.models.registry import MODELS
from har_demo.person import finder
from har_demo.testing import PERSON_PHOTOS, random_model


def photos_640() -> list:
    out = []
    for path in sorted((ROOT / "examples").glob("*.jpg")) + [PERSON_PHOTOS["sitting"]]:
        im = load_image(path)
        scale = 640 / max(im.size)
        out.append(im.resize((round(im.width * scale), round(im.height * scale))))
    return out


def bench_finder(photos, runs: int) -> dict:
    finder.detect(photos[0])  # graph start-up outside the timing
    times = []
    for _ in range(runs):
        for im in photos:
            t = time.perf_counter()
            finder.detect(im)
            times.append(time.perf_counter() - t)
    return {"photos": len(photos), "runs": runs, "median_ms": round(1000 * statistics.median(times), 1),
            "p90_ms": round(1000 * sorted(times)[int(0.9 * (len(times) - 1))], 1)}  # fmt: skip


def bench_analysis(photo, runs: int) -> dict:
    """The ``bench`` command's photo section (``bench_sections.bench_photo``: the app's analysis
    with the finder uncached and every card's person_share) on the shipped models + a CLIP."""
    served = {name: prepare_for_serving(load_model(name)) for name in MODELS if availability(name)[0]}
    served["clip_vit_b32_random"] = random_model("clip_zeroshot")  # ViT-B/32-sized, random weights
    t = bench_photo(served, photo, Profile(repeats=runs, warmup=1))["total"]
    return {"models": list(served), "runs": runs, "median_s": round(t["median_s"], 3), "min_s": round(t["min_s"], 3)}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", type=int, default=7)
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)
    photos = photos_640()
    result = {"finder": bench_finder(photos, args.runs), "analysis": bench_analysis(photos[-1], args.runs)}
    if args.json:
        print(json.dumps(result, indent=1))
    else:
        f, a = result["finder"], result["analysis"]
        print(f"person finder (BlazePose, 640-px photos, {f['photos']} photos x {f['runs']}): median {f['median_ms']} ms, p90 {f['p90_ms']} ms")
        print(f"one photo -> finder + {len(a['models'])} models with maps + person_share: median {a['median_s']} s (min {a['min_s']} s)")
        print("  models: " + ", ".join(a["models"]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
