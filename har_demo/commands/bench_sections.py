"""Benchmark sections that time the served models: ``inference`` (latency, images/s per batch),
``references`` (our path vs a plain one, as ``reference / ours``), ``maps`` (one map per
model x method) and ``photo`` (one photo through every model, as the app runs it). Each section
returns JSON-ready rows; ``commands.bench`` runs them."""

from __future__ import annotations

import copy
import statistics
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from PIL import Image

from .timing import Timing, progress, speed_ratio, time_call, time_pair


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
        progress(
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
    progress(f"reference {name} {comparison}: x{row['ratio']:.2f}")
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

    from ..models import clip as clip_mod

    cfg = model.config.get("model_cfg")
    if cfg is not None:
        text_model = clip_mod.instantiate(cfg, bool(model.config.get("quick_gelu")))
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
    from ..models.clip import ClipZeroShot, prompt_class_embeddings

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
    from ..labels import prompts_for

    n_prompts = sum(len(prompts_for(c)) for c in model.classes)
    return _ref_row(name, f"cached text embeddings vs re-encoding {n_prompts} prompts (1 photo)", ours, ref)


def ref_gradcam(name: str, model, photo: Image.Image, prof: Profile) -> dict | None:
    """Our Grad-CAM (class from the same forward: one forward + one backward) vs captum's usual
    recipe: a forward to predict, then ``LayerGradCam.attribute(target=...)``."""
    from captum.attr import LayerAttribution, LayerGradCam

    from ..explain.base import applicable_methods, explain, to_image_map
    from ..explain.vit_hooks import explain_mode

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


def ref_legrad(name: str, model, photo: Image.Image, prof: Profile) -> dict | None:
    from ..explain.base import applicable_methods, explain, to_image_map
    from ..explain.vit_hooks import ViTHooks, explain_mode
    from ..testing import naive_legrad

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

    ours, ref = _paired(lambda: explain(model, photo, "legrad", start_layer=0), per_layer, prof, budget=prof.budget_s * 2)  # all layers, as the reference loop
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
    from ..explain.base import applicable_methods, default_method, explain

    wanted = set(methods or [])
    rows = []
    for name, model in models.items():
        default = default_method(model)
        for method in applicable_methods(model):
            if (wanted and method not in wanted) or (not prof.all_methods and method != default):
                continue
            t = _timed(lambda m=model, k=method: explain(m, photo, k), prof)
            rows.append({"model": name, "method": method, "default": method == default, **t.to_json()})
            progress(f"map {name} {method}: {t.median_s * 1000:.0f} ms")
    return rows


def bench_photo(models: dict, photo: Image.Image, prof: Profile) -> dict:
    """One photo through every model with its default map, as the app's compare tab runs it: the
    person finder (its cache cleared: each run is a new photo), every card, and each map's
    person_share (``ui.analysis.shares``, as the cards show it). Both finders' caches are cleared
    (the multi-person one too: the app's people step runs on every photo with a person)."""
    from ..person import finder, multi
    from ..ui.analysis import analyse, shares
    from ..ui.bank import ModelBank

    bank = ModelBank.from_models(models)
    per_model: dict[str, list[float]] = {n: [] for n in models}
    errors: dict[str, str] = {}

    def once():
        finder.clear_cache()
        multi.clear_cache()
        res = analyse(bank, photo)
        for n in res.cards:
            shares(res, n)
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
    progress(
        f"photo: all {len(models)} models {t.median_s:.2f} s; slowest {out['slowest_model']} {max(medians.values(), default=0):.2f} s"
    )
    return out
