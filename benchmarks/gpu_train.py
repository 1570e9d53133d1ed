"""GPU training throughput: our clip_ft / effnet_lite0 training step on GPU-resident data vs a plain
timm ViT-B/32 step, with model-FLOPs utilisation (MFU).

    python benchmarks/gpu_train.py [--data ../shared/data/har3/manifest.csv] [--models clip_ft,effnet_lite0]
        [--batch 256] [--steps 30] [--warmup 5] [--compile] [--compile-batch 512] [--peak-tflops N]
        [--grid "TRAIN.PY ARGS"] [--json] [--out FILE] [--dry-run]

Our path (per model): the registry model at full size with random weights (ViT-B/32 open_clip tower
for ``clip_ft``), its own training config (``train_config_for``: AdamW groups with layer-wise LR
decay, warm-up + cosine schedule, label smoothing, gradient clipping, frozen backbone prefix,
augmentations). The photos are decoded ONCE (``training.data.ImageCache``, square uint8 at the
model's input size), copied through pinned memory to the GPU and stay there; each step draws a
batch of indices on the GPU and augments there (``GpuAugment``: per-sample random resized crop +
flips as one batched ``grid_sample``, colour jitter, grayscale), then bf16 autocast forward,
cross-entropy, backward, fused AdamW. ``--compile`` adds a ``torch.compile``d run.

Reference: a plain timm ``vit_base_patch32_224`` (3 classes) step on synthetic GPU-resident tensors,
bf16 autocast + fused AdamW, no augmentation/schedule/clipping - eager at ``--batch`` and, with
``--compile``, compiled at ``--compile-batch``. The issue's H200 numbers for it: 8,100 img/s eager
(batch 256), 11,200 img/s compiled (batch 512); goal for our clip_ft path: >= 12,000 img/s on an H200.

MFU = (training FLOPs per image = 3 x forward FLOPs counted by ``torch.utils.flop_counter``) x
images/s / the card's dense bf16 peak (table below or ``--peak-tflops``). Models whose CPU
default is a frozen backbone (``effnet_lite0``: head on cached features) are timed as full
fine-tunes (``--backbone-trainable 1``), what a GPU is for. Frozen layers (a ``backbone_trainable``
prefix) still count 3x, as is usual, so their MFU is an upper-bound convention.

``--dry-run``: tiny models, a few steps, on the CPU when no GPU is present (checks the script end to
end; the numbers mean nothing). ``--grid "ARGS"`` also times ``python train.py ARGS`` (e.g. all
trainable models x 5 seeds) as one wall-clock number. A measurement, not a test; every part is
guarded, so one failing part is reported in the JSON and the others still run.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shlex
import subprocess
import sys
import time
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path

import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from har_demo.commands.timing import machine_info
from har_demo.labels import CLASSES
from har_demo.models.registry import get_spec
from har_demo.testing import random_model

# Dense bf16 tensor-core peak, TFLOP/s (vendor datasheets, no sparsity). First match wins.
PEAK_BF16_TFLOPS = (
    ("H100 PCIe", 756.0),
    ("H100", 989.0),
    ("H200", 989.0),
    ("GH200", 989.0),
    ("A100", 312.0),
    ("L40S", 362.0),
    ("L4", 121.0),
    ("A10", 125.0),
)
GOAL_CLIP_FT_H200 = 12_000.0
REFERENCE_H200 = {"eager_b256": 8_100.0, "compiled_b512": 11_200.0}


def peak_tflops(device_name: str, override: float | None = None) -> float | None:
    if override:
        return float(override)
    for key, value in PEAK_BF16_TFLOPS:
        if key.lower() in device_name.lower():
            return value
    return None


# ---- data: decoded once, resident on the device ---------------------------------------------------
_CACHES: dict = {}


def resident_images(
    manifest: str | None, size: int, device: torch.device, n_synthetic: int
) -> tuple[torch.Tensor, torch.Tensor, dict]:
    """(uint8 (N, 3, S, S), labels (N,)) on ``device``: the manifest's photos decoded once, or
    seeded random images. Host tensors go through pinned memory (``non_blocking`` copy)."""
    t0 = time.perf_counter()
    if manifest:
        from har_demo.data.datasets import load_dataset
        from har_demo.training.data import ImageCache

        samples = load_dataset(manifest)
        if manifest not in _CACHES:
            _CACHES[manifest] = ImageCache(samples)
        images = _CACHES[manifest].full(size)  # decoded once per size for all models
        labels = torch.tensor([CLASSES.index(s.label) for s in samples])
        source = f"{len(samples)} photos from {manifest}"
    else:
        g = torch.Generator().manual_seed(0)
        images = torch.randint(0, 256, (n_synthetic, 3, size, size), dtype=torch.uint8, generator=g)
        labels = torch.arange(n_synthetic) % len(CLASSES)
        source = f"{n_synthetic} synthetic images"
    decode_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    if device.type == "cuda":
        images, labels = images.pin_memory(), labels.pin_memory()
    images, labels = images.to(device, non_blocking=True), labels.to(device, non_blocking=True)
    _sync(device)
    info = {
        "source": source,
        "images": len(labels),
        "size": size,
        "decode_s": round(decode_s, 2),
        "upload_s": round(time.perf_counter() - t0, 3),
        "bytes": images.numel(),
    }
    return images, labels, info


# ---- augmentation on the device -------------------------------------------------------------------
class GpuAugment:
    """The training augmentations, batched on the device, per-sample random parameters.

    ``rrc`` (scale 0.6-1, aspect 0.6-1.6, as ``data.transforms``), ``hflip``/``vflip`` (p=0.5) are one
    affine ``grid_sample`` (bilinear) from the cached S x S image; ``color_jitter`` (0.3, 0.3, 0.3,
    0.05: brightness, contrast, saturation in that fixed order, hue as a YIQ rotation) and
    ``grayscale`` (p=0.2) act on the [0, 1] image; then ImageNet/CLIP normalisation. Differences
    from torchvision's CPU ops: no retry loop in the crop (sides clamped to the image), a fixed
    jitter order, hue approximated in YIQ. ``perspective`` is not implemented (not in the GPU models'
    default configs)."""

    SUPPORTED = ("hflip", "vflip", "rrc", "color_jitter", "grayscale")

    def __init__(self, names: Sequence[str], size: int, mean, std, device: torch.device, channels_last: bool = False):
        bad = [n for n in names if n not in self.SUPPORTED]
        if bad:
            raise ValueError(f"GpuAugment: {bad[0]!r} not implemented on the GPU; supported: {', '.join(self.SUPPORTED)}")
        self.names = set(names)
        self.size = int(size)
        self.mean = torch.tensor(mean, device=device).view(1, 3, 1, 1)
        self.std = torch.tensor(std, device=device).view(1, 3, 1, 1)
        self.channels_last = channels_last
        self.to_yiq = torch.tensor([[0.299, 0.587, 0.114], [0.596, -0.274, -0.322], [0.211, -0.523, 0.312]], device=device)
        self.from_yiq = torch.linalg.inv(self.to_yiq)

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        x = images.float().div_(255.0)
        b, dev = x.shape[0], x.device
        if self.names & {"rrc", "hflip", "vflip"}:
            sx = torch.ones(b, device=dev)
            sy = torch.ones(b, device=dev)
            tx = torch.zeros(b, device=dev)
            ty = torch.zeros(b, device=dev)
            if "rrc" in self.names:
                area = torch.empty(b, device=dev).uniform_(0.6, 1.0)
                logr = torch.empty(b, device=dev).uniform_(math.log(0.6), math.log(1.6))
                sx = torch.sqrt(area * logr.exp()).clamp(max=1.0)  # crop width / image width
                sy = torch.sqrt(area / logr.exp()).clamp(max=1.0)
                tx = (torch.rand(b, device=dev) * 2 - 1) * (1 - sx)  # centre, normalised coords
                ty = (torch.rand(b, device=dev) * 2 - 1) * (1 - sy)
            if "hflip" in self.names:
                sx = sx * torch.where(torch.rand(b, device=dev) < 0.5, -1.0, 1.0)
            if "vflip" in self.names:
                sy = sy * torch.where(torch.rand(b, device=dev) < 0.5, -1.0, 1.0)
            zero = torch.zeros(b, device=dev)
            theta = torch.stack([torch.stack([sx, zero, tx], 1), torch.stack([zero, sy, ty], 1)], 1)
            grid = F.affine_grid(theta, [b, 3, self.size, self.size], align_corners=False)
            x = F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)
        if "color_jitter" in self.names:
            x = self._jitter(x)
        if "grayscale" in self.names:
            gray = self._gray(x).expand_as(x)
            x = torch.where((torch.rand(b, 1, 1, 1, device=dev) < 0.2), gray, x)
        x = (x - self.mean) / self.std
        return x.contiguous(memory_format=torch.channels_last) if self.channels_last else x

    @staticmethod
    def _gray(x: torch.Tensor) -> torch.Tensor:
        return 0.299 * x[:, 0:1] + 0.587 * x[:, 1:2] + 0.114 * x[:, 2:3]

    def _jitter(self, x: torch.Tensor, b_: float = 0.3, c_: float = 0.3, s_: float = 0.3, h_: float = 0.05) -> torch.Tensor:
        n, dev = x.shape[0], x.device

        def factor(amount: float) -> torch.Tensor:
            return torch.empty(n, 1, 1, 1, device=dev).uniform_(1 - amount, 1 + amount)

        x = (x * factor(b_)).clamp_(0, 1)
        mean = self._gray(x).mean(dim=(1, 2, 3), keepdim=True)
        x = ((x - mean) * factor(c_) + mean).clamp_(0, 1)
        gray = self._gray(x)
        x = ((x - gray) * factor(s_) + gray).clamp_(0, 1)
        angle = torch.empty(n, device=dev).uniform_(-h_, h_) * 2 * math.pi
        cos, sin = angle.cos(), angle.sin()
        rot = torch.zeros(n, 3, 3, device=dev)
        rot[:, 0, 0] = 1
        rot[:, 1, 1], rot[:, 1, 2], rot[:, 2, 1], rot[:, 2, 2] = cos, -sin, sin, cos
        m = self.from_yiq @ rot @ self.to_yiq  # (n, 3, 3)
        return torch.einsum("nij,njhw->nihw", m, x).clamp_(0, 1)


# ---- steps --------------------------------------------------------------------------------------
def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _autocast(device: torch.device):
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16)


def _adamw(groups, device: torch.device) -> tuple[torch.optim.Optimizer, bool]:
    try:
        return torch.optim.AdamW(groups, fused=True), True
    except (RuntimeError, TypeError):  # fused not supported for this device/dtype
        return torch.optim.AdamW(groups, foreach=True), False


def our_step(
    name: str,
    model,
    images: torch.Tensor,
    labels: torch.Tensor,
    batch: int,
    total_steps: int,
    device: torch.device,
    compiled: bool = False,
) -> tuple[Callable[[], torch.Tensor], dict]:
    """One training step of ``name`` as the real loop configures it, on resident data."""
    from har_demo.training.config import train_config_for
    from har_demo.training.loop import freeze_backbone_prefix
    from har_demo.training.schedules import param_groups, warmup_cosine

    cfg = train_config_for(name)
    if cfg.backbone_trainable == 0:
        # A frozen backbone trains on cached features (training.features), not in steps like these;
        # on a GPU the point is the fine-tune: ``train.py --backbone-trainable 1``.
        cfg = cfg.replace(backbone_trainable=1.0)
    frozen = freeze_backbone_prefix(model, cfg.backbone_trainable)
    groups = [g for g in param_groups(model, cfg) if g["params"]]
    for g in groups:
        g.pop("tag", None)
    opt, fused = _adamw(groups, device)
    sched = warmup_cosine(opt, total_steps, cfg.warmup, cfg.min_lr_ratio)
    aug = GpuAugment(cfg.augment, model.input_size, model.mean, model.std, device, bool(model.channels_last))
    params = [p for g in groups for p in g["params"]]
    net = torch.compile(model) if compiled else model
    n = labels.shape[0]
    model.train()

    def step() -> torch.Tensor:
        idx = torch.randint(0, n, (batch,), device=device)
        x = aug(images[idx])
        with _autocast(device):
            logits = net(x)
        loss = F.cross_entropy(logits.float(), labels[idx], label_smoothing=cfg.label_smoothing)
        loss.backward()
        if cfg.max_grad_norm:
            torch.nn.utils.clip_grad_norm_(params, cfg.max_grad_norm, foreach=True)
        opt.step()
        sched.step()
        opt.zero_grad(set_to_none=True)
        return loss.detach()

    info = {
        "augment": list(cfg.augment),
        "fused_adamw": fused,
        "frozen_tensors": len(frozen),
        "param_groups": len(groups),
        "label_smoothing": cfg.label_smoothing,
        "max_grad_norm": cfg.max_grad_norm,
        "channels_last": bool(model.channels_last),
    }
    return step, info


def plain_vit_step(model, batch: int, size: int, device: torch.device, compiled: bool = False) -> Callable[[], torch.Tensor]:
    """The reference: synthetic resident tensors, bf16 autocast, CE, backward, fused AdamW."""
    x = torch.randn(batch, 3, size, size, device=device)
    y = torch.randint(0, len(CLASSES), (batch,), device=device)
    opt, _ = _adamw(model.parameters(), device)
    net = torch.compile(model) if compiled else model
    model.train()

    def step() -> torch.Tensor:
        with _autocast(device):
            loss = F.cross_entropy(net(x).float(), y)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        return loss.detach()

    return step


def train_flops_per_image(model, size: int, device: torch.device, channels_last: bool = False, batch: int = 2) -> float:
    """Training FLOPs per image = 3 x the forward FLOPs (the usual MFU convention: backward = 2 x
    forward), forward counted by ``torch.utils.flop_counter``. The counter's own backward count is
    not used: it overcounts grouped/depthwise convolution backward (~40x for EfficientNet)."""
    from torch.utils.flop_counter import FlopCounterMode

    x = torch.randn(batch, 3, size, size, device=device)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    # with autograd on: eval + no_grad would take nn.MultiheadAttention's fused fast path, which
    # the counter does not see (its q/k/v and output projections would go uncounted)
    with FlopCounterMode(display=False) as counter:
        model(x)
    return 3.0 * counter.get_total_flops() / batch


def measure(step: Callable[[], torch.Tensor], batch: int, steps: int, warmup: int, device: torch.device) -> dict:
    """Images/s over ``steps`` timed steps after ``warmup`` (compilation happens there)."""
    t0 = time.perf_counter()
    for _ in range(warmup):
        loss = step()
    _sync(device)
    warm_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    for _ in range(steps):
        loss = step()
    _sync(device)
    dt = time.perf_counter() - t0
    out = {
        "batch": batch,
        "steps": steps,
        "seconds": round(dt, 3),
        "images_per_s": round(batch * steps / dt, 1),
        "warmup_s": round(warm_s, 2),
        "final_loss": round(float(loss), 4),
    }
    if device.type == "cuda":
        out["max_memory_gib"] = round(torch.cuda.max_memory_allocated(device) / 2**30, 2)
        torch.cuda.reset_peak_memory_stats(device)
    return out


def _with_mfu(row: dict, flops: float, peak: float | None) -> dict:
    row["tflops_per_s"] = round(flops * row["images_per_s"] / 1e12, 2)
    row["mfu"] = round(row["tflops_per_s"] / peak, 4) if peak else None
    return row


def _guard(report: dict, key: str, fn: Callable[[], object]) -> None:
    """Run one part; its error goes into the report instead of ending the run."""
    try:
        report[key] = fn()
    except Exception as err:  # noqa: BLE001 - a measurement script: record and go on
        report[key] = {"error": f"{type(err).__name__}: {err}", "trace": traceback.format_exc(limit=3)}
    print(f"  {key}: {json.dumps(report[key])[:300]}", file=sys.stderr, flush=True)


def _free(device: torch.device) -> None:
    import gc

    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()


# ---- the run --------------------------------------------------------------------------------------
def bench_model(name: str, args, device: torch.device, peak: float | None) -> dict:
    model = random_model(name, tiny=args.dry_run).to(device)
    if model.channels_last:
        model = model.to(memory_format=torch.channels_last)
    images, labels, data = resident_images(args.data, model.input_size, device, args.synthetic)
    flops = train_flops_per_image(model, model.input_size, device, bool(model.channels_last))
    total = args.warmup + args.steps
    out: dict = {
        "input_size": model.input_size,
        "params_m": round(sum(p.numel() for p in model.parameters()) / 1e6, 2),
        "train_gflops_per_image": round(flops / 1e9, 3),
        "data": data,
    }
    step, info = our_step(name, model, images, labels, args.batch, total, device)
    out["config"] = info
    out["eager"] = _with_mfu(measure(step, args.batch, args.steps, args.warmup, device), flops, peak)
    if args.compile:
        del step
        _free(device)
        model = random_model(name, tiny=args.dry_run).to(device)
        if model.channels_last:
            model = model.to(memory_format=torch.channels_last)
        step, _ = our_step(name, model, images, labels, args.compile_batch, total, device, compiled=True)
        out["compiled"] = _with_mfu(measure(step, args.compile_batch, args.steps, args.warmup, device), flops, peak)
    return out


def bench_reference(args, device: torch.device, peak: float | None) -> dict:
    import timm

    kwargs = get_spec("vit").tiny_config()["timm_kwargs"] if args.dry_run else {}  # the same tiny ViT as the registry's
    size = kwargs.get("img_size", 224)

    def build():
        return timm.create_model("vit_base_patch32_224", pretrained=False, num_classes=len(CLASSES), **kwargs).to(device)

    model = build()
    flops = train_flops_per_image(model, size, device)
    out = {
        "model": "timm vit_base_patch32_224" + (" (tiny)" if args.dry_run else ""),
        "train_gflops_per_image": round(flops / 1e9, 3),
    }
    out["eager"] = _with_mfu(
        measure(plain_vit_step(model, args.batch, size, device), args.batch, args.steps, args.warmup, device), flops, peak
    )
    if args.compile:
        del model
        _free(device)
        model = build()
        step = plain_vit_step(model, args.compile_batch, size, device, compiled=True)
        out["compiled"] = _with_mfu(measure(step, args.compile_batch, args.steps, args.warmup, device), flops, peak)
    return out


def time_grid(grid_args: str) -> dict:
    """Wall seconds of ``python train.py GRID_ARGS`` (the real runner, every model x seed)."""
    cmd = [sys.executable, "train.py", *shlex.split(grid_args)]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, check=False)
    out = {"command": " ".join(cmd[1:]), "returncode": proc.returncode, "wall_s": round(time.perf_counter() - t0, 1)}
    if proc.returncode:
        out["stderr_tail"] = proc.stderr[-1500:]
    return out


def goals(report: dict) -> list[dict]:
    out = []
    clip = report.get("models", {}).get("clip_ft", {})
    best = max((clip.get(k, {}).get("images_per_s", 0.0) for k in ("eager", "compiled")), default=0.0)
    if best and not report["meta"]["dry_run"]:
        on_h200 = "H200" in report["meta"]["device"]
        out.append(
            {
                "goal": f"clip_ft training >= {GOAL_CLIP_FT_H200:.0f} img/s on an H200",
                "value": best,
                "met": best >= GOAL_CLIP_FT_H200 if on_h200 else None,
                "note": "" if on_h200 else f"measured on {report['meta']['device']}, not an H200",
            }
        )
    grid = report.get("grid")
    if isinstance(grid, dict) and "wall_s" in grid:
        out.append(
            {"goal": "training grid <= 600 s", "value": grid["wall_s"], "met": grid["returncode"] == 0 and grid["wall_s"] <= 600}
        )
    return out


def run(args) -> dict:
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
        torch.backends.cudnn.benchmark = True
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    peak = peak_tflops(name, args.peak_tflops) if device.type == "cuda" or args.peak_tflops else None
    report: dict = {
        "meta": {
            **machine_info(),
            "device": name,
            "peak_bf16_tflops": peak,
            "dry_run": bool(args.dry_run),
            "compile": bool(args.compile),
            "args": {k: v for k, v in vars(args).items() if k != "out"},
            "reference_h200_issue": REFERENCE_H200,
        }
    }
    report["models"] = {}
    for model_name in [m for m in args.models.split(",") if m]:
        _guard(report["models"], model_name, lambda n=model_name: bench_model(n, args, device, peak))
        _free(device)
        _write(report, args.out)
    _guard(report, "reference", lambda: bench_reference(args, device, peak))
    _free(device)
    if args.grid:
        _guard(report, "grid", lambda: time_grid(args.grid))
    report["goals"] = goals(report)
    return report


def _write(report: dict, path: str | None) -> None:
    if path:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_text(json.dumps(report, indent=2) + "\n")


def format_report(report: dict) -> str:
    m = report["meta"]
    lines = [
        f"# {m['device']} (peak bf16 {m['peak_bf16_tflops'] or '?'} TFLOP/s), torch {m['torch']}"
        + (" - DRY RUN: tiny models, numbers mean nothing" if m["dry_run"] else "")
    ]
    lines.append(f"{'what':<34} {'mode':<9} {'batch':>5} {'img/s':>10} {'GFLOP/img':>10} {'TFLOP/s':>8} {'MFU':>6}")
    rows = [(n, r) for n, r in report["models"].items()] + [
        (report.get("reference", {}).get("model", "reference"), report.get("reference", {}))
    ]
    for label, r in rows:
        if "error" in r:
            lines.append(f"{label:<34} error: {r['error']}")
            continue
        for mode in ("eager", "compiled"):
            if mode in r:
                x = r[mode]
                mfu = f"{x['mfu']:.1%}" if x.get("mfu") is not None else "-"
                lines.append(
                    f"{label:<34} {mode:<9} {x['batch']:>5} {x['images_per_s']:>10.1f} {r['train_gflops_per_image']:>10.2f} "
                    f"{x['tflops_per_s']:>8.2f} {mfu:>6}"
                )
    for g in report.get("goals", []):
        lines.append(f"goal: {g['goal']}: {g['value']} -> {g['met']} {g.get('note', '')}".rstrip())
    return "\n".join(lines)


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", help="manifest CSV or class-folder directory (decoded once, kept on the device); default: synthetic")
    p.add_argument("--synthetic", type=int, default=285, help="synthetic images when no --data (default 285)")
    p.add_argument("--models", default="clip_ft,effnet_lite0", help="registry models to train (comma-separated)")
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--compile-batch", type=int, default=512)
    p.add_argument("--steps", type=int, default=30, help="timed steps")
    p.add_argument("--warmup", type=int, default=5, help="untimed steps first (compilation happens here)")
    p.add_argument("--compile", action="store_true", help="also time torch.compile'd steps")
    p.add_argument("--peak-tflops", type=float, help="dense bf16 peak of the card (default: from the built-in table)")
    p.add_argument("--device", help="torch device (default: cuda when present, else cpu)")
    p.add_argument("--grid", help="also time `python train.py GRID` (quoted argument string)")
    p.add_argument("--dry-run", action="store_true", help="tiny models, 2 steps, batch 4: check the script on a CPU")
    p.add_argument("--json", action="store_true", help="print JSON instead of the table")
    p.add_argument("--out", help="write the JSON report here (updated after each model)")
    args = p.parse_args(argv)
    if args.dry_run:
        args.batch, args.compile_batch = min(args.batch, 4), min(args.compile_batch, 4)
        args.steps, args.warmup, args.synthetic = min(args.steps, 2), min(args.warmup, 1), min(args.synthetic, 8)
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    if not torch.cuda.is_available() and not args.dry_run and (args.device or "cuda").startswith("cuda"):
        print("error: no CUDA device here; use --dry-run (tiny CPU check) or --device cpu", file=sys.stderr)
        return 2
    report = run(args)
    _write(report, args.out)
    print(json.dumps(report, indent=2) if args.json else format_report(report))
    failed = [k for k, v in {**report["models"], "reference": report.get("reference", {})}.items() if "error" in v]
    return 1 if failed else 0


if __name__ == "__main__":
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    raise SystemExit(main())
