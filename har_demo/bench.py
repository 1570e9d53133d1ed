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
open_clip towers for the CLIP entries) and measured as the app serves them (``served_model``: BN
folded into convs). ``--quick`` uses tiny counts on reduced configs (the CI
smoke run, ``--scale full`` for full-size models); tiny models run on 1 thread unless ``--threads``.
On a shared machine other processes inflate timings: the load average is recorded.
``benchmarks/bench_explain.py`` and ``benchmarks/bench_app.py`` reuse the helpers below.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from .errors import HarError
from .models.tiny import tiny_clip_cfg, tiny_siglip_cfg

ROOT = Path(__file__).resolve().parents[1]
SECTIONS = ("inference", "references", "maps", "photo", "cold_start", "training")
GOAL_PHOTO_S = 1.0  # one photo through a model with its default map (median)
GOAL_EFFNET_IPS = 30.0  # effnet_lite0 inference at batch 32

# Reduced configs for --scale tiny (CI, --quick): same code paths, toy sizes.
_TINY_CLIP = tiny_clip_cfg(text_layers=1)
_TINY_SIGLIP = tiny_siglip_cfg(image_size=64, text_layers=1)
TINY_CONFIGS: dict[str, dict] = {
    "cnn_base": {"input_size": 32, "widths": [4, 8, 8], "hidden": 16, "pool": 2},
    "cnn_gen": {"input_size": 32, "widths": [4, 8, 8], "hidden": 16, "pool": 2},
    "fnn": {"input_size": 16, "hidden": [16]},
    "effnet_lite0": {"input_size": 32},
    "clip_zeroshot": {"model_cfg": _TINY_CLIP},
    "clip_cs": {"model_cfg": _TINY_CLIP},
    "clip_em": {"model_cfg": _TINY_CLIP},
    "clip_ft": {"model_cfg": _TINY_CLIP},
    "siglip_ft": {"model_cfg": _TINY_SIGLIP},
    "vit": {"timm_kwargs": {"img_size": 32, "patch_size": 8, "embed_dim": 32, "depth": 2, "num_heads": 2}},
}


# ---- timing primitives (shared with benchmarks/*.py) ---------------------------------------------
@dataclass
class Timing:
    """Seconds per call: median and minimum of ``runs`` timed calls (after warm-up)."""

    median_s: float
    min_s: float
    runs: int

    def to_json(self) -> dict:
        return {"median_s": round(self.median_s, 5), "min_s": round(self.min_s, 5), "runs": self.runs}


def time_call(fn: Callable[[], Any], repeats: int = 5, warmup: int = 1, budget_s: float | None = None) -> Timing:
    """Call ``fn`` ``warmup`` times untimed, then up to ``repeats`` times timed. With ``budget_s``
    it stops early (after at least 2 timed calls) once the timed calls used up the budget."""
    for _ in range(max(0, warmup)):
        fn()
    times: list[float] = []
    for _ in range(max(1, repeats)):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
        if budget_s is not None and len(times) >= 2 and sum(times) >= budget_s:
            break
    return Timing(statistics.median(times), min(times), len(times))


def time_pair(
    ours: Callable[[], Any], reference: Callable[[], Any], repeats: int = 5, warmup: int = 1, budget_s: float | None = None
) -> tuple[Timing, Timing]:
    """Time two alternatives alternately (ours, reference, ours, ...), so a change in machine
    load hits both alike. Returns (ours, reference); ``budget_s`` as in ``time_call`` (for the pair)."""
    for _ in range(max(0, warmup)):
        ours()
        reference()
    a: list[float] = []
    b: list[float] = []
    for _ in range(max(1, repeats)):
        for fn, times in ((ours, a), (reference, b)):
            t0 = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t0)
        if budget_s is not None and len(a) >= 2 and sum(a) + sum(b) >= budget_s:
            break
    return Timing(statistics.median(a), min(a), len(a)), Timing(statistics.median(b), min(b), len(b))


def speed_ratio(reference: Timing, ours: Timing) -> float:
    """``reference / ours`` on the medians: > 1 means our path is faster."""
    return round(reference.median_s / ours.median_s, 3) if ours.median_s > 0 else float("nan")


def physical_cores() -> int:
    """Physical CPU cores (SMT siblings counted once); falls back to ``os.cpu_count()``."""
    try:
        cores, phys, core = set(), None, None
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                key, _, value = line.partition(":")
                key = key.strip()
                if key == "physical id":
                    phys = value.strip()
                elif key == "core id":
                    core = value.strip()
                elif not key and core is not None:
                    cores.add((phys, core))
                    phys = core = None
        if core is not None:
            cores.add((phys, core))
        if cores:
            return len(cores)
    except OSError:
        pass
    return os.cpu_count() or 1


def configure_threads(n: int | None = None) -> int:
    """``torch.set_num_threads`` to ``n`` (default: the physical cores; more threads than cores
    only contend). Returns the number set."""
    n = int(n or physical_cores())
    torch.set_num_threads(n)
    return n


def machine_info() -> dict:
    load = os.getloadavg() if hasattr(os, "getloadavg") else None
    device = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu"
    return {
        "cpu": _cpu_name(),
        "logical_cpus": os.cpu_count(),
        "physical_cores": physical_cores(),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "device": device,
        "python": platform.python_version(),
        "load_avg": [round(x, 2) for x in load] if load else None,
        "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"),
    }


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


# ---- inputs and models -----------------------------------------------------------------------------
def synthetic_photo(w: int = 640, h: int = 480, seed: int = 0) -> Image.Image:
    """A deterministic RGB 'photo' (gradients + noise): nothing to download, same bytes each run."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    base = np.stack([xx * 255 / w, yy * 255 / h, (xx + yy) * 127 / (w + h)], axis=-1)
    return Image.fromarray(np.clip(base + rng.normal(0, 30, (h, w, 3)), 0, 255).astype(np.uint8), "RGB")


def randomise_untrained(model: torch.nn.Module) -> torch.nn.Module:
    """Give an architecture-only build non-trivial values where it holds zeros (class text
    embeddings, zero-initialised linear heads), so gradients and maps are not trivially zero."""
    with torch.no_grad():
        for key, buf in model.named_buffers():
            if key == "class_emb" and not buf.any():
                buf.copy_(torch.nn.functional.normalize(torch.randn_like(buf), dim=-1))
        for mod in model.modules():
            if isinstance(mod, torch.nn.Linear) and not mod.weight.any():
                mod.weight.normal_(0, 0.02)
    return model


def random_model(name: str, tiny: bool = False, **config):
    """A registry model with random weights in eval mode (``tiny``: the reduced CI config)."""
    from .models.registry import build_model

    cfg = {**(TINY_CONFIGS.get(name, {}) if tiny else {}), **config}
    return randomise_untrained(build_model(name, pretrained=False, **cfg)).eval()


def served_model(model):
    """The model as the app serves it: a BN-folded copy (``models.fuse``) when it has conv->BN
    pairs, else the model itself."""
    from .models.fuse import fold_batchnorm, foldable

    if not foldable(model):
        return model
    folded = copy.deepcopy(model)
    return folded if fold_batchnorm(folded) else model


# ---- inference -----------------------------------------------------------------------------------
@dataclass
class Profile:
    """How much to measure: counts and per-measurement time budgets."""

    repeats: int = 5
    warmup: int = 1
    budget_s: float = 8.0
    batches: tuple[int, ...] = (1, 8, 32)
    train_images: int = 32
    train_batch: int | None = None  # None: the model's training config
    slow_references: bool = True  # LeGrad one-backward-per-layer reference
    all_methods: bool = True  # maps: every applicable method (False: each model's default only)
    app_http: bool = True  # cold start also over HTTP (spawns app.py)

    @classmethod
    def quick(cls) -> Profile:
        return cls(
            repeats=2,
            warmup=1,
            budget_s=1.0,
            batches=(1, 8),
            train_images=4,
            train_batch=4,
            slow_references=False,
            all_methods=False,
            app_http=False,
        )


def _timed(fn: Callable[[], Any], prof: Profile, budget: float | None = None) -> Timing:
    return time_call(fn, prof.repeats, prof.warmup, budget if budget is not None else prof.budget_s)


def _paired(ours: Callable[[], Any], ref: Callable[[], Any], prof: Profile, budget: float | None = None) -> tuple[Timing, Timing]:
    return time_pair(ours, ref, prof.repeats, prof.warmup, budget if budget is not None else 2 * prof.budget_s)


def bench_inference(models: dict, photos: Sequence[Image.Image], prof: Profile) -> list[dict]:
    """Single-photo latency and images/s per batch size (preprocessing included)."""
    rows = []
    for name, model in models.items():
        single = _timed(lambda m=model: m.predict_proba(photos[:1]), prof)
        row: dict[str, Any] = {
            "model": name,
            "input_size": model.input_size,
            "channels_last": bool(model.channels_last),
            "latency": single.to_json(),
            "throughput": {},
        }
        for b in prof.batches:
            batch = list(photos[:b])
            t = _timed(lambda m=model, xs=batch, b=b: m.predict_proba(xs, batch_size=b), prof)
            prep = _timed(lambda m=model, xs=batch: m.preprocess(xs), prof, budget=prof.budget_s / 4)
            share = round(prep.median_s / t.median_s, 3)
            row["throughput"][str(b)] = {"images_per_s": round(b / t.median_s, 2), "preprocess_share": share, **t.to_json()}
        rows.append(row)
        _log(
            f"inference {name}: {single.median_s * 1000:.0f} ms/photo, "
            + ", ".join(f"b{b} {row['throughput'][str(b)]['images_per_s']:.1f} img/s" for b in prof.batches)
        )
    return rows


def _forward(model, x: torch.Tensor, mode: Callable = torch.inference_mode) -> Callable[[], Any]:
    def run():
        with mode():
            return model(x)

    return run


# ---- references ----------------------------------------------------------------------------------
def _ref_row(name: str, comparison: str, ours: Timing, ref: Timing, **extra) -> dict:
    row = {
        "model": name,
        "comparison": comparison,
        "ours": ours.to_json(),
        "reference": ref.to_json(),
        "ratio": speed_ratio(ref, ours),
        **extra,
    }
    _log(f"reference {name} {comparison}: x{row['ratio']:.2f}")
    return row


def ref_channels_last(name: str, model, photos, prof: Profile, batch: int) -> dict | None:
    """Channels-last model + input (ours) vs the same weights in contiguous NCHW."""
    if not model.channels_last:
        return None
    x = model.preprocess(list(photos[:batch]))
    plain = copy.deepcopy(model).to(memory_format=torch.contiguous_format)
    xc = x.contiguous()
    ours, ref = _paired(_forward(model, x), _forward(plain, xc), prof)
    return _ref_row(name, f"channels_last vs contiguous (forward, batch {batch})", ours, ref)


def ref_fold(name: str, served, plain, photos, prof: Profile, batch: int) -> dict:
    """Served model (BN folded into convs) vs the same weights with BN layers."""
    x = served.preprocess(list(photos[:batch]))
    ours, ref = _paired(_forward(served, x), _forward(plain, x), prof)
    return _ref_row(name, f"BN folded into convs vs BN layers (forward, batch {batch})", ours, ref)


def ref_inference_mode(name: str, model, photos, prof: Profile, batch: int) -> dict:
    x = model.preprocess(list(photos[:batch]))
    ours, ref = _paired(_forward(model, x, torch.inference_mode), _forward(model, x, torch.no_grad), prof)
    return _ref_row(name, f"inference_mode vs no_grad (forward, batch {batch})", ours, ref)


def ref_threads(name: str, model, photos, prof: Profile, batch: int) -> dict | None:
    n = torch.get_num_threads()
    if n == 1:
        return None
    x = model.preprocess(list(photos[:batch]))
    forward = _forward(model, x)

    def one_thread():
        torch.set_num_threads(1)
        try:
            return forward()
        finally:
            torch.set_num_threads(n)

    ours, ref = _paired(forward, one_thread, prof)
    return _ref_row(name, f"{n} threads vs 1 thread (forward, batch {batch})", ours, ref)


def _random_text_side(model):
    """(open_clip model with a random text tower, tokenizer) matching ``model``'s config."""
    import open_clip

    from .models import clip as clip_mod

    cfg = model.config.get("model_cfg")
    if cfg is not None:
        text_model = clip_mod._instantiate(cfg, bool(model.config.get("quick_gelu")))
        ctx = int(cfg.get("text_cfg", {}).get("context_length", 77))
        tokenizer = open_clip.SimpleTokenizer(context_length=ctx)
    else:
        name = model.config["model_name"]
        text_model = open_clip.create_model(name, pretrained=None, force_quick_gelu=bool(model.config.get("quick_gelu")))
        tokenizer = open_clip.get_tokenizer(name)
    text_model.visual = torch.nn.Identity()
    return text_model.eval(), tokenizer


def ref_text_cache(name: str, model, photos, prof: Profile) -> dict | None:
    """Zero-shot CLIP: cached class embeddings (ours) vs encoding every prompt per request."""
    from .models.clip import ClipZeroShot, prompt_class_embeddings

    if not isinstance(model, ClipZeroShot):
        return None
    text_model, tokenizer = _random_text_side(model)
    x = model.preprocess(list(photos[:1]))

    def reencode():
        with torch.inference_mode():
            class_emb = prompt_class_embeddings(text_model, tokenizer, model.classes)
            feats = model.image_features(x)
            return model.logit_scale * feats @ class_emb.t() + model.logit_bias

    ours, ref = _paired(_forward(model, x), reencode, prof)
    from .labels import prompts_for

    n_prompts = sum(len(prompts_for(c)) for c in model.classes)
    return _ref_row(name, f"cached text embeddings vs re-encoding {n_prompts} prompts (1 photo)", ours, ref)


def ref_gradcam(name: str, model, photo: Image.Image, prof: Profile) -> dict | None:
    """Our Grad-CAM (class from the same forward: one forward + one backward) vs captum's usual
    recipe: a forward to predict, then ``LayerGradCam.attribute(target=...)``."""
    from captum.attr import LayerAttribution, LayerGradCam

    from .explain.base import applicable_methods, explain, to_image_map
    from .explain.vit_hooks import explain_mode

    if "gradcam" not in applicable_methods(model):
        return None

    def captum_default():
        with explain_mode(model):
            x = model.preprocess([photo])
            with torch.no_grad():
                target = int(model(x).argmax(1)[0])
            attr = LayerGradCam(model, model.cam_layer()).attribute(x.requires_grad_(True), target=target, relu_attributions=True)
            up = LayerAttribution.interpolate(attr, tuple(x.shape[-2:]), interpolate_mode="bilinear")
            return to_image_map(up[0, 0].detach(), photo.size)

    ours, ref = _paired(lambda: explain(model, photo, "gradcam"), captum_default, prof)
    return _ref_row(name, "Grad-CAM: one forward+backward vs captum predict + attribute", ours, ref)


def naive_legrad(model, x: torch.Tensor, target: int) -> torch.Tensor:
    """LeGrad the plain way: one forward+backward per layer (mean-pooled readout of that layer
    through the model's tail). Reference for timing; equal to ``LeGrad`` (tests check it)."""
    from .explain.vit_hooks import ViTHooks

    spec = model.vit_spec()
    prefix, acc = spec.num_prefix_tokens, None
    tok = 1 if spec.tokens_batch_first else 0
    for layer in range(len(spec.blocks)):
        seen: dict = {}
        h1 = spec.blocks[layer].register_forward_hook(lambda m, i, o, seen=seen: seen.setdefault("out", o))
        h2 = spec.blocks[-1].register_forward_hook(
            lambda m, i, o, seen=seen: seen["out"].mean(tok, keepdim=True).expand_as(seen["out"])
        )
        try:
            with ViTHooks(model) as hooks:
                score = model(x.detach().clone().requires_grad_(True))[0, target]
                (g,) = torch.autograd.grad(score, [hooks.attn_probs[layer]])
        finally:
            h1.remove()
            h2.remove()
        row = g.clamp(min=0).mean(1)[0].mean(0)[prefix:]
        acc = row if acc is None else acc + row
    return acc


def ref_legrad(name: str, model, photo: Image.Image, prof: Profile) -> dict | None:
    from .explain.base import applicable_methods, explain, to_image_map
    from .explain.vit_hooks import ViTHooks, explain_mode

    if "legrad" not in applicable_methods(model):
        return None

    def per_layer():
        with explain_mode(model), torch.enable_grad():
            x = model.preprocess([photo])
            with torch.no_grad():
                target = int(model(x).argmax(1)[0])
            acc = naive_legrad(model, x, target)
            with ViTHooks(model) as hooks:
                grid = hooks.patch_grid(acc.numel(), x.shape[-1])
            return to_image_map(acc.reshape(grid), photo.size)

    ours, ref = _paired(lambda: explain(model, photo, "legrad"), per_layer, prof, budget=prof.budget_s * 2)
    return _ref_row(name, f"LeGrad: one backward vs one backward per layer ({len(model.vit_spec().blocks)} layers)", ours, ref)


def bench_references(models: dict, photos, prof: Profile, plain: dict | None = None) -> list[dict]:
    """Every applicable reference per model; ``plain``: the unfolded models (for the BN-fold row)."""
    rows: list[dict | None] = []
    big = max(prof.batches)
    for name, model in models.items():
        if plain and plain.get(name) is not None and plain[name] is not model:
            rows.append(ref_fold(name, model, plain[name], photos, prof, big))
        rows.append(ref_channels_last(name, model, photos, prof, big))
        rows.append(ref_inference_mode(name, model, photos, prof, 1))
        rows.append(ref_text_cache(name, model, photos, prof))
        rows.append(ref_gradcam(name, model, photos[0], prof))
        if prof.slow_references:
            rows.append(ref_legrad(name, model, photos[0], prof))
    if models:  # thread scaling on the largest model
        name, model = max(models.items(), key=lambda kv: sum(p.numel() for p in kv[1].parameters()))
        rows.append(ref_threads(name, model, photos, prof, min(8, big)))
    return [r for r in rows if r is not None]


# ---- maps and the whole photo --------------------------------------------------------------------
def bench_maps(models: dict, photo: Image.Image, prof: Profile, methods: Iterable[str] | None = None) -> list[dict]:
    """One map per model x applicable method (default options), end to end (``explain``);
    ``prof.all_methods=False``: each model's default method only."""
    from .explain.base import applicable_methods, default_method, explain

    wanted = set(methods or [])
    rows = []
    for name, model in models.items():
        default = default_method(model)
        for method in applicable_methods(model):
            if (wanted and method not in wanted) or (not prof.all_methods and method != default):
                continue
            t = _timed(lambda m=model, k=method: explain(m, photo, k), prof)
            rows.append({"model": name, "method": method, "default": method == default, **t.to_json()})
            _log(f"map {name} {method}: {t.median_s * 1000:.0f} ms")
    return rows


def bench_photo(models: dict, photo: Image.Image, prof: Profile) -> dict:
    """One photo through every model with its default map, as the app's compare tab runs it."""
    from .ui.analysis import analyse
    from .ui.bank import ModelBank

    bank = ModelBank.from_models(models)
    per_model: dict[str, list[float]] = {n: [] for n in models}
    errors: dict[str, str] = {}

    def once():
        res = analyse(bank, photo)
        for n, card in res.cards.items():
            per_model[n].append(card.seconds)
            if card.error:
                errors[n] = card.error

    t = time_call(once, prof.repeats, prof.warmup, prof.budget_s * 2)
    medians = {n: round(statistics.median(v[prof.warmup :] or v), 4) for n, v in per_model.items()}
    out = {
        "models": list(models),
        "methods": {n: bank.get(n).default_method for n in models},
        "total": t.to_json(),
        "per_model_median_s": medians,
        "slowest_model": max(medians, key=medians.get) if medians else None,
        "errors": errors,
    }
    _log(
        f"photo: all {len(models)} models {t.median_s:.2f} s; slowest {out['slowest_model']} {max(medians.values(), default=0):.2f} s"
    )
    return out


# ---- cold start ----------------------------------------------------------------------------------
_COLD_SCRIPT = r"""
import json, sys, time
t0 = float(sys.argv[1])
from har_demo.ui.bank import ModelBank
from har_demo.ui.analysis import analyse
from har_demo.bench import synthetic_photo
t_import = time.time()
bank = ModelBank.load(sys.argv[2].split(","))
t_load = time.time()
bad = {e.name: e.source for e in bank.unavailable()}
res = analyse(bank, synthetic_photo())
t_first = time.time()
errs = {n: c.error for n, c in res.cards.items() if c.error}
print(json.dumps({"import_s": t_import - t0, "load_s": t_load - t_import, "first_analysis_s": t_first - t_load,
                  "total_s": t_first - t0, "unavailable": bad, "errors": errs,
                  "load_s_per_model": {n: round(e.load_seconds, 3) for n, e in bank.entries.items()}}))
"""


def prepare_checkpoints(models: dict, root: Path) -> None:
    """Save ready models as checkpoints under ``root`` (a ``HAR_CHECKPOINT_DIR``)."""
    from .models.checkpoint import save_checkpoint

    for name, model in models.items():
        save_checkpoint(model, root / name)


def cold_start(names: Sequence[str], ckpt_root: Path) -> dict:
    """Wall seconds from spawning a fresh ``python`` to the first full analysis (every model,
    prediction + default map), with the split into import / model loading / first analysis."""
    env = {
        **os.environ,
        "HAR_CHECKPOINT_DIR": str(ckpt_root),
        "HF_HUB_OFFLINE": "1",
        "GRADIO_ANALYTICS_ENABLED": "False",
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
    }
    t0 = time.time()
    proc = subprocess.run(
        [sys.executable, "-c", _COLD_SCRIPT, repr(t0), ",".join(names)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    wall = time.time() - t0
    if proc.returncode != 0:
        raise HarError(f"cold-start process failed: {(proc.stderr.strip().splitlines() or ['?'])[-1]}")
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    out = {k: round(v, 3) if isinstance(v, float) else v for k, v in out.items()}
    out["wall_s"] = round(wall, 3)
    return out


def app_cold_start(ckpt_root: Path, photo: str, repeats: int = 3) -> dict:
    """Spawn ``python app.py``; seconds to the server being up and to the first ``/predict``
    answer (gradio_client), then warm ``/predict`` medians (queue + JPEG overlays + download)."""
    from gradio_client import Client, handle_file

    from .ui.process import app_process

    with tempfile.TemporaryFile("w+") as log:
        t0 = time.perf_counter()
        with app_process(ckpt_root, log, timeout_s=600) as app:
            up_s = time.perf_counter() - t0
            client = Client(app.url, verbose=False)
            result, overlays = client.predict(handle_file(photo), "", "predicted", 0.5, api_name="/predict")
            first_s = time.perf_counter() - t0
            n_cards = len(result["models"])
            times = []
            for _ in range(repeats):
                t1 = time.perf_counter()
                result, overlays = client.predict(handle_file(photo), "", "predicted", 0.5, api_name="/predict")
                times.append(time.perf_counter() - t1)
                if len(overlays) != n_cards or not all(Path(o["image"]).is_file() for o in overlays):
                    raise HarError(f"app answered {len(overlays)} overlays (files missing?) for {n_cards} cards")
    return {
        "server_up_s": round(up_s, 2),
        "cold_start_to_first_answer_s": round(first_s, 2),
        "cards": n_cards,
        "http_median_s": round(statistics.median(times), 3) if times else None,
        "http_min_s": round(min(times), 3) if times else None,
    }


def ref_checkpoint_load(name: str, directory: Path, prof: Profile) -> dict:
    """``load_checkpoint`` (random init skipped) vs the plain way: build, then load the state dict."""
    from safetensors.torch import load_file

    from .models.checkpoint import WEIGHTS_FILE, load_checkpoint, read_card
    from .models.registry import build_model

    card = read_card(directory)

    def plain():
        model = build_model(name, pretrained=False, **card.get("config", {}))
        model.load_state_dict(load_file(str(directory / WEIGHTS_FILE)))
        return model.eval()

    ours, ref = _paired(lambda: load_checkpoint(directory, name), plain, prof)
    return _ref_row(name, "checkpoint load (random init skipped) vs build + load_state_dict", ours, ref)


def bench_cold_start(models: dict, prof: Profile) -> dict:
    root = Path(tempfile.mkdtemp(prefix="har_bench_ckpt_"))
    try:
        prepare_checkpoints(models, root)
        out = cold_start(list(models), root)
        out["checkpoint_load"] = [ref_checkpoint_load(n, root / n, prof) for n in models]
        _log(
            f"cold start: {out['wall_s']:.1f} s to the first analysis (import {out['import_s']:.1f} s, load {out['load_s']:.1f} s)"
        )
        if prof.app_http:
            photo = root / "photo.jpg"
            synthetic_photo().save(photo, quality=90)
            out["app"] = app_cold_start(root, str(photo))
            _log(f"app.py: first /predict answer after {out['app']['cold_start_to_first_answer_s']:.1f} s")
        return out
    finally:
        import shutil

        shutil.rmtree(root, ignore_errors=True)


# ---- training ------------------------------------------------------------------------------------
def _train_set(model, n: int, augment, seed: int = 0):
    from .data.datasets import Sample
    from .data.transforms import train_transform
    from .labels import CLASSES
    from .training.data import CachedDataset

    g = torch.Generator().manual_seed(seed)
    s = model.input_size
    images = torch.randint(0, 256, (n, 3, s, s), dtype=torch.uint8, generator=g)
    samples = [Sample(f"synthetic/{i}.jpg", CLASSES[i % len(CLASSES)], str(i)) for i in range(n)]
    return CachedDataset(images, samples, train_transform(s, augment, model.mean, model.std))


def plain_train_step(model, x: torch.Tensor, y: torch.Tensor, lr: float = 1e-4) -> Callable[[], float]:
    """The reference: forward, cross-entropy, backward, ``torch.optim.AdamW`` step on ready tensors."""
    import torch.nn.functional as F

    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=lr)

    def step() -> float:
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        return float(loss.detach())

    return step


def bench_training(names: Sequence[str], build: Callable[[str], Any], prof: Profile) -> list[dict]:
    """Images/s of the trainer (``training.loop.fit``: last of 2 epochs; for a frozen backbone the
    feature-cache path ``training.features.fit_frozen``: 2 epochs including the feature extraction,
    images counted once per epoch) and of a plain step, per trainable model."""
    from .models.registry import MODELS
    from .training.config import train_config_for
    from .training.features import FeatureStore, fit_frozen, uses_frozen_features
    from .training.loop import fit, freeze_backbone_prefix, make_accelerator

    rows = []
    for name in names:
        if not MODELS[name].needs_training:
            continue
        model = build(name)
        extra = {"epochs": 2, "lp_epochs": 0, "patience": 0, "wise_ft": False, "calibrate": False, "precision": "no"}
        if prof.train_batch:
            extra["batch_size"] = prof.train_batch
        cfg = train_config_for(name, **extra)
        n = max(prof.train_images, cfg.batch_size)
        n -= n % cfg.batch_size
        train = _train_set(model, n, cfg.augment)
        val = _train_set(model, 0, ())
        accel = make_accelerator("no", cpu=True)
        if uses_frozen_features(model, cfg):
            path = "training.features.fit_frozen"
            t0 = time.perf_counter()
            fit_frozen(model.train(), {"train": train, "val": val}, cfg, accel, FeatureStore(), torch.Generator().manual_seed(0), quiet=True)
            ours_s = (time.perf_counter() - t0) / cfg.epochs
        else:
            path = "training.loop.fit"
            res = fit(model.train(), train, val, cfg, accel, torch.Generator().manual_seed(0), quiet=True)
            ours_s = res.history[-1]["seconds"]
        # the reference trains the same tensors the loop would (same frozen prefix, same batch)
        frozen = freeze_backbone_prefix(model, cfg.backbone_trainable)
        try:
            model.train()
            x = model.preprocess([synthetic_photo(seed=i) for i in range(cfg.batch_size)])
            y = torch.arange(cfg.batch_size) % len(model.classes)
            ref = time_call(plain_train_step(model, x, y), max(1, min(prof.repeats, n // cfg.batch_size)), 1, prof.budget_s)
        finally:
            for p in frozen:
                p.requires_grad_(True)
            model.eval()
        ours_ips = n / ours_s
        ref_ips = cfg.batch_size / ref.median_s
        rows.append(
            {
                "model": name,
                "input_size": model.input_size,
                "batch_size": cfg.batch_size,
                "images": n,
                "augment": list(cfg.augment),
                "backbone_trainable": cfg.backbone_trainable,
                "path": path,
                "images_per_s": round(ours_ips, 2),
                "plain_step_images_per_s": round(ref_ips, 2),
                "ratio_vs_plain": round(ours_ips / ref_ips, 3),
            }
        )
        _log(f"training {name}: {ours_ips:.1f} img/s (plain step {ref_ips:.1f} img/s)")
        del model
    return rows


# ---- goals, table, CLI ---------------------------------------------------------------------------
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
    build = lambda name: random_model(name, tiny=tiny)
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
            _log(f"built {name} in {time.perf_counter() - t0:.1f} s")
    served = {name: served_model(model) for name, model in models.items()}  # as the app serves them
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
    if report.get("references"):
        lines += [
            "",
            "## ours vs plain reference (ratio = reference / ours; > 1: ours faster)",
            f"{'model':<14} {'comparison':<66} {'ours ms':>8} {'ref ms':>8} {'ratio':>6}",
        ]
        for r in report["references"]:
            lines.append(
                f"{r['model']:<14} {r['comparison']:<66} {_ms(r['ours']['median_s']):>8} {_ms(r['reference']['median_s']):>8} {r['ratio']:>6.2f}"
            )
    if report.get("maps"):
        lines += [
            "",
            "## one map (default options; * = the model's default method)",
            f"{'model':<14} {'method':<22} {'median ms':>10} {'min ms':>8}",
        ]
        for r in report["maps"]:
            lines.append(
                f"{r['model']:<14} {r['method'] + ('*' if r['default'] else ''):<22} {_ms(r['median_s']):>10} {_ms(r['min_s']):>8}"
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
    if report.get("training"):
        lines += [
            "",
            "## training throughput (the trainer incl. augmentation - loop.fit, or fit_frozen with its feature extraction for frozen backbones - vs plain forward/backward/AdamW step)",
            f"{'model':<14} {'size':>4} {'batch':>5} {'fit img/s':>10} {'plain img/s':>12} {'ratio':>6}",
        ]
        for r in report["training"]:
            lines.append(
                f"{r['model']:<14} {r['input_size']:>4} {r['batch_size']:>5} {r['images_per_s']:>10.1f} {r['plain_step_images_per_s']:>12.1f} {r['ratio_vs_plain']:>6.2f}"
            )
    if report.get("goals"):
        lines += ["", "## goals"] + [f"[{'met' if g['met'] else 'NOT met'}] {g['goal']}: {g['value']}" for g in report["goals"]]
    return "\n".join(lines)


_QUIET = False


def _log(msg: str) -> None:
    if not _QUIET:
        print(f"  {msg}", file=sys.stderr, flush=True)


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
    from .models.registry import get_spec, model_names

    global _QUIET
    _QUIET = bool(args.quiet)
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
