"""Everyone in the photo: speed (a benchmark, not a test).

    .venv/bin/python benchmarks/bench_people.py [--runs 5] [--photo PATH] [--json]

1. A crowded photo (default: COCO train2017 000000538113.jpg from ``../shared/data/coco/mini``,
   a baseball game, 6 people found; without ../shared: ``examples/sitting_stands.jpg``, 4) through
   ``find_people`` (uncached) and every shipped person-centred model (``effnet_person``,
   ``pose_mlp``, ``effnet_lite0`` with its person crop; committed checkpoints, served as the app
   serves them) with its default map for each person (``explain.people.explain_people``: verdict,
   map, drift, pose sentence): median wall time of the whole and of its parts, and the process's
   CPU time for the whole (all threads: the honest figure when other jobs share the cores).
2. A single-person photo (``tests/assets/sitting_motorcycle.jpg``) through the app's analysis
   (``ui.analysis.analyse``, every shipped model, finder caches cleared each run): the first answer
   the visitor waits for (the Analyse event: ``people=False``), the people follow-up event on it
   (``add_people``), and the one call with the people step (what Analyse did before): median wall
   and CPU times, interleaved run by run; rendering the cards is left out of all three. The ratio
   of (1) to the first answer is printed too: it holds when other jobs slow both alike.
3. ``find_people`` alone on both photos with today's settings, those before the second landmark
   region (``ONE_REGION``) and the older ones (``PREVIOUS``: 2 x 2 and 3 x 3 tiles, no reuse of the
   single finder's landmark run), CPU time, interleaved; the single finder's result is cached first,
   as in the app. ``--settings-only``: only this part (a few seconds).
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

from har_demo.data.io import load_image
from har_demo.explain.base import default_method
from har_demo.explain.people import explain_people, per_person
from har_demo.models.fuse import prepare_for_serving
from har_demo.models.loading import availability, load_model
from har_demo.models.registry import MODELS
from har_demo.person import finder, multi

CROWD = ROOT.parent / "shared" / "data" / "coco" / "mini" / "train2017" / "000000538113.jpg"
SINGLE = ROOT / "tests" / "assets" / "sitting_motorcycle.jpg"  # one person for both finders (CC BY 2.0, tests/assets/LICENSES.md)


def _median(times: list[float]) -> float:
    return round(statistics.median(times), 3)


def bench_crowd(photo: Path, runs: int) -> dict:
    image = load_image(photo)
    models = {n: prepare_for_serving(load_model(n)) for n in MODELS if availability(n)[0]}
    models = {n: m for n, m in models.items() if per_person(m)}
    people = multi.find_people(image)  # graphs and models start outside the timing
    for m in models.values():
        explain_people(m, image, people[:1], default_method(m))
    total, cpu, finding, per_model = [], [], [], {n: [] for n in models}
    for _ in range(runs):
        multi.clear_cache()
        c0 = time.process_time()
        t0 = time.perf_counter()
        people = multi.find_people(image)
        finding.append(time.perf_counter() - t0)
        for name, m in models.items():
            t = time.perf_counter()
            explain_people(m, image, people, default_method(m))
            per_model[name].append(time.perf_counter() - t)
        total.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    return {"photo": photo.name, "size": list(image.size), "people": len(people), "runs": runs,
            "models": {n: default_method(m) for n, m in models.items()}, "total_s": _median(total), "total_cpu_s": _median(cpu),
            "find_people_s": _median(finding), "per_model_s": {n: _median(v) for n, v in per_model.items()}}  # fmt: skip


def bench_single(runs: int) -> dict:
    from har_demo.ui import analysis as an
    from har_demo.ui.bank import ModelBank

    bank = ModelBank.load()
    wall = {"first": [], "follow_up": [], "one_call": []}
    cpu = {"first": [], "follow_up": [], "one_call": []}
    an.analyse(bank, str(SINGLE))  # warm
    for _ in range(runs):
        for label in ("first", "one_call"):
            finder.clear_cache()
            multi.clear_cache()
            c, t = time.process_time(), time.perf_counter()
            analysis = an.analyse(bank, str(SINGLE), people=label == "one_call")
            wall[label].append(time.perf_counter() - t)
            cpu[label].append(time.process_time() - c)
            if label == "first":  # the app's follow-up event on the shown analysis (find_person cached, find_people not)
                c, t = time.process_time(), time.perf_counter()
                an.add_people(bank, analysis)
                wall["follow_up"].append(time.perf_counter() - t)
                cpu["follow_up"].append(time.process_time() - c)
    return {"photo": SINGLE.name, "models": list(analysis.cards), "people_found": len(multi.find_people(load_image(SINGLE))), "runs": runs,
            **{f"analyse_{k}_s": _median(v) for k, v in wall.items()}, **{f"analyse_{k}_cpu_s": _median(v) for k, v in cpu.items()}}  # fmt: skip


# the multi-person finder's settings before the box / tile / threshold follow-up (README "The person finder")
PREVIOUS = {"MIN_SCORE": 0.3, "TILES": ((1, 1), (2, 2), (3, 3)), "ROI_SCALES": (1.0,)}
# before the second landmark region (ROI_SCALES): one region per detection
ONE_REGION = {"MIN_SCORE": 0.3, "TILES": ((1, 1), (3, 3)), "ROI_SCALES": (1.0,)}


def bench_settings(runs: int, photos: list[Path]) -> dict:
    """``detect_people`` CPU time per photo with today's settings, ``ONE_REGION`` and ``PREVIOUS``,
    interleaved run by run (the detector's threshold is fixed when its graph is built: one graph pair each)."""
    now = {k: getattr(multi, k) for k in PREVIOUS}
    graphs = {}
    for label, settings in (("previous", PREVIOUS), ("one_region", ONE_REGION), ("now", now)):
        for k, v in settings.items():
            setattr(multi, k, v)
        multi._GRAPHS = None
        with multi._LOCK:
            graphs[label] = (settings, multi._graphs())
    images = [load_image(p) for p in photos]
    for image in images:
        finder.find_person(image)  # the app runs the single finder first: "now" reuses its landmark run
    cpu = {label: {p.name: [] for p in photos} for label in graphs}
    count = {label: {} for label in graphs}
    for _ in range(runs):
        for label, (settings, pair) in graphs.items():
            for k, v in settings.items():
                setattr(multi, k, v)
            multi._GRAPHS = pair
            for path, image in zip(photos, images):
                c = time.process_time()
                count[label][path.name] = len(multi.detect_people(image, reuse=label != "previous"))
                cpu[label][path.name].append(time.process_time() - c)
    return {label: {name: {"people": count[label][name], "cpu_s": _median(v)} for name, v in per.items()} for label, per in cpu.items()}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--photo", help="crowded photo (default: see the module doc)")
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--settings-only", action="store_true", help="only part 3: find_people CPU with each setting")
    args = ap.parse_args()
    photo = Path(args.photo) if args.photo else (CROWD if CROWD.is_file() else ROOT / "examples" / "sitting_stands.jpg")
    if args.settings_only:
        result = bench_settings(args.runs, [SINGLE, photo])
        print(json.dumps(result, indent=1) if args.json else "\n".join(
            f"find_people with the {label} settings: " + ", ".join(f"{n} {v['people']} people {v['cpu_s']:.3f} s CPU" for n, v in per.items())
            for label, per in result.items()))  # fmt: skip
        return 0
    result = {"crowd": bench_crowd(photo, args.runs), "single": bench_single(args.runs), "settings": bench_settings(args.runs, [SINGLE, photo])}
    if args.json:
        print(json.dumps(result, indent=1))
        return 0
    c, s = result["crowd"], result["single"]
    print(f"{c['photo']} {c['size'][0]}x{c['size'][1]}, {c['people']} people: finder + {len(c['per_model_s'])} person-centred models "
          f"with their default maps per person: {c['total_s']:.2f} s wall, {c['total_cpu_s']:.2f} s CPU (all threads; median of {c['runs']}); finder {c['find_people_s']:.2f} s; "
          + ", ".join(f"{n} ({c['models'][n]}) {v:.2f} s" for n, v in c["per_model_s"].items()))  # fmt: skip
    ratio = c["total_s"] / s["analyse_first_s"]
    print(f"crowd / one-photo app analysis (same conditions): {ratio:.2f}")
    print(f"{s['photo']} ({s['people_found']} person), app analysis with {len(s['models'])} models: the first answer (Analyse, no people step) "
          f"{s['analyse_first_s']:.2f} s, then the people follow-up {s['analyse_follow_up_s']:.2f} s; one call with the people step (before) "
          f"{s['analyse_one_call_s']:.2f} s (median of {s['runs']}); CPU {s['analyse_first_cpu_s']:.2f} + {s['analyse_follow_up_cpu_s']:.2f} s "
          f"vs {s['analyse_one_call_cpu_s']:.2f} s")
    for label, per in result["settings"].items():
        print(f"find_people with the {label} settings: " + ", ".join(f"{n} {v['people']} people {v['cpu_s']:.3f} s CPU" for n, v in per.items()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
