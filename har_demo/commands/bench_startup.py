"""Benchmark sections that start things: ``cold_start`` (a fresh process loading every model from
checkpoints to its first analysis, ``commands.cold_start``; optionally ``app.py`` over HTTP) and
``training`` (images/s of the real trainer vs a plain AdamW step)."""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch

from ..errors import HarError
from ..testing import synthetic_photo
from .bench_sections import Profile, _paired, _ref_row
from .timing import progress, time_call

ROOT = Path(__file__).resolve().parents[2]


def prepare_checkpoints(models: dict, root: Path) -> None:
    """Save ready models as checkpoints under ``root`` (a ``HAR_CHECKPOINT_DIR``)."""
    from ..models.checkpoint import save_checkpoint

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
        [sys.executable, "-m", "har_demo.commands.cold_start", repr(t0), ",".join(names)],
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

    from ..ui.process import app_process

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

    from ..models.checkpoint import WEIGHTS_FILE, load_checkpoint, read_card
    from ..models.registry import build_model

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
        progress(
            f"cold start: {out['wall_s']:.1f} s to the first analysis (import {out['import_s']:.1f} s, load {out['load_s']:.1f} s)"
        )
        if prof.app_http:
            photo = root / "photo.jpg"
            synthetic_photo().save(photo, quality=90)
            out["app"] = app_cold_start(root, str(photo))
            progress(f"app.py: first /predict answer after {out['app']['cold_start_to_first_answer_s']:.1f} s")
        return out
    finally:
        shutil.rmtree(root, ignore_errors=True)


# ---- training ------------------------------------------------------------------------------------
def _train_set(model, n: int, augment, seed: int = 0):
    from ..data.datasets import Sample
    from ..data.transforms import train_transform
    from ..labels import CLASSES
    from ..training.data import CachedDataset

    g = torch.Generator().manual_seed(seed)
    s = model.input_size
    images = torch.randint(0, 256, (n, 3, s, s), dtype=torch.uint8, generator=g)
    samples = [Sample(f"synthetic/{i}.jpg", CLASSES[i % len(CLASSES)], str(i)) for i in range(n)]
    # models that also read a pose vector get random ones (photo, mirror): the cost is the same
    aux = torch.randn(n, 2, model.aux_features, generator=g) if model.aux_features else None
    return CachedDataset(images, samples, train_transform(s, augment, model.mean, model.std), aux=aux)


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
    from ..models.registry import MODELS
    from ..training.config import train_config_for
    from ..training.features import FeatureStore, fit_frozen, uses_frozen_features
    from ..training.loop import fit, freeze_backbone_prefix, make_accelerator

    rows = []
    for name in names:
        if not MODELS[name].trainable:
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
        progress(f"training {name}: {ours_ips:.1f} img/s (plain step {ref_ips:.1f} img/s)")
        del model
    return rows
