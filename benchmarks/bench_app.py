"""App speed: request -> all cards for one photo (every model, its default map), and cold start
(``python app.py`` spawned) -> first answer.

    python benchmarks/bench_app.py [--models all|available|a,b,c] [--repeats 7] [--photo PATH]
        [--no-cold] [--json]

Models: a registry model that is available here runs from its real checkpoint / weights; any other
one is built at full size with random weights (``pretrained=False``: ViT-B/32-sized open_clip
towers for the CLIP entries, the ViT-B/16 SigLIP2 tower, timm ViT-B/32, CNNs/EfficientNet at their
default sizes; zero class embeddings / heads of untrained builds randomised so gradients are not
trivially zero) and saved as a checkpoint in a temporary ``HAR_CHECKPOINT_DIR`` - so the app loads
every model exactly as it loads trained ones.

* warm, in-process: ``Callbacks.analyse`` (decode, every model's prediction + default map, blends)
  in a worker thread as Gradio runs it - median of ``--repeats`` after one warm-up, plus each
  model's share and load time;
* warm, over HTTP: ``gradio_client`` -> ``/predict`` on a running ``python app.py`` (adds queue,
  JPEG encoding of every overlay and the client's download of them) - the "all cards" time;
* cold: wall time from spawning ``python app.py`` to the first ``/predict`` answer.

This is a measurement, not a test. No network is used (``HF_HUB_OFFLINE=1``).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from har_demo.commands.bench_startup import app_cold_start
from har_demo.commands.timing import machine_info
from har_demo.errors import HarError
from har_demo.models.checkpoint import save_checkpoint
from har_demo.models.loading import availability, load_model
from har_demo.models.registry import MODELS
from har_demo.testing import random_model

DEFAULT_PHOTO = ROOT / "examples" / "standing_woods.jpg"


def prepare_checkpoints(names: list[str], root: Path) -> dict[str, str]:
    """Checkpoint root for the app: real checkpoints copied/linked, random ones written. Returns
    name -> 'real' | 'random' | error line."""
    kinds = {}
    for name in names:
        ok, _detail = availability(name)
        try:
            if ok:
                model = load_model(name)
                kinds[name] = "real"
            else:
                model = random_model(name)  # full size, random weights, no zero heads
                kinds[name] = "random"
            save_checkpoint(model, root / name)
            del model
        except HarError as err:
            kinds[name] = f"skipped: {err}"
        print(f"  {name:<14} {kinds[name]}", file=sys.stderr, flush=True)
    return kinds


def warm_in_process(ckpt_root: Path, photo: str, repeats: int) -> dict:
    """Median seconds of the compare tab's callback (no HTTP), and per-model medians."""
    os.environ["HAR_CHECKPOINT_DIR"] = str(ckpt_root)
    from har_demo.ui.bank import ModelBank
    from har_demo.ui.layout import build_demo

    t0 = time.perf_counter()
    bank = ModelBank.load()
    load_s = time.perf_counter() - t0
    demo, ui, cb = build_demo(bank)
    cb.cache = type(cb.cache)([])  # never serve the photo from the example cache
    names = bank.available_names()
    methods = [bank.get(n).default_method for n in ui.cards]
    times, per_model = [], {n: [] for n in names}
    worker = ThreadPoolExecutor(1)  # Gradio runs callbacks in worker threads; so does this
    from har_demo.person import finder

    for i in range(repeats + 1):
        finder.clear_cache()  # each request is a new photo to the person finder too
        t0 = time.perf_counter()
        # the compare tab's inputs: photo, models, class, opacity, box, skeleton on, mask outline off, methods
        out = worker.submit(cb.analyse, photo, names, "predicted", 0.5, "", True, False, *methods).result()
        dt = time.perf_counter() - t0
        state = out.get(ui.state)
        if state is None:
            raise SystemExit(f"analysis failed: {out.get(ui.status)}")
        failed = {n: c.error for n, c in state.cards.items() if c.error}
        if failed:  # a card that failed in no time would flatter the median
            raise SystemExit(f"cards failed: {failed}")
        if i:  # the first call is the warm-up
            times.append(dt)
            for n, card in state.cards.items():
                per_model[n].append(card.seconds)
    worker.shutdown()
    demo.close()
    return {
        "models": names,
        "methods": {n: bank.get(n).default_method for n in names},
        "bank_load_s": round(load_s, 2),
        "load_s": {n: round(e.load_seconds, 2) for n, e in bank.entries.items()},
        "median_s": round(statistics.median(times), 3),
        "min_s": round(min(times), 3),
        "per_model_median_s": {n: round(statistics.median(v), 3) for n, v in per_model.items()},
    }


def run_app(ckpt_root: Path, photo: str, repeats: int) -> dict:
    """Spawn ``python app.py``: cold start to the first /predict answer, then warm /predict
    (``har_demo.commands.bench_startup.app_cold_start``)."""
    return app_cold_start(ckpt_root, photo, repeats)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", default="all", help="'all' (every registry model), 'available' (only those available here) or names")
    p.add_argument("--repeats", type=int, default=7, help="timed requests (median reported)")
    p.add_argument("--photo", default=str(DEFAULT_PHOTO), help="the photo to analyse")
    p.add_argument("--no-cold", action="store_true", help="skip the spawned app.py (cold start + HTTP timings)")
    p.add_argument("--json", action="store_true", help="print JSON")
    args = p.parse_args(argv)
    if args.models == "all":
        names = list(MODELS)
    elif args.models == "available":
        names = [n for n in MODELS if availability(n)[0]]
    else:
        names = [n.strip() for n in args.models.split(",") if n.strip()]
    tmp = Path(tempfile.mkdtemp(prefix="har_bench_app_"))
    try:
        print("preparing checkpoints:", file=sys.stderr)
        kinds = prepare_checkpoints(names, tmp)
        report = {
            "meta": {**machine_info(), "cores": os.cpu_count(), "photo": Path(args.photo).name},
            "weights": kinds,
            "in_process": warm_in_process(tmp, args.photo, args.repeats),
        }
        if not args.no_cold:
            report["app"] = run_app(tmp, args.photo, args.repeats)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    ip = report["in_process"]
    m = report["meta"]
    print(f"# {len(ip['models'])} models, photo {m['photo']}; {m['cores']} cores, {m['torch_threads']} torch threads, torch {m['torch']}")
    print("weights: " + ", ".join(f"{k}={v}" for k, v in kinds.items()))
    print(f"request -> all cards, in-process callback: median {ip['median_s']:.3f} s (min {ip['min_s']:.3f} s, {args.repeats} runs)")
    print(f"    {'model':<14} {'default map':<22} {'card s':>7} {'load s':>7}")
    for n, s in ip["per_model_median_s"].items():
        print(f"    {n:<14} {ip['methods'][n]:<22} {s:7.3f} {ip['load_s'][n]:7.2f}")
    print(f"models loaded in-process in {ip['bank_load_s']:.1f} s")
    if "app" in report:
        a = report["app"]
        print(f"request -> all cards over HTTP (/predict, {a['cards']} overlays downloaded): median {a['http_median_s']:.3f} s (min {a['http_min_s']:.3f} s)")
        print(f"cold start: server up {a['server_up_s']:.1f} s, first answer {a['cold_start_to_first_answer_s']:.1f} s after spawning app.py")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
