"""The training loop: AdamW, warm-up + cosine LR, early stopping on validation macro-F1 with
best-epoch restore, optional linear-probe phase (LP-FT), progress bars, HF Accelerate throughout.

Everything device-related goes through one ``accelerate.Accelerator`` (device placement,
``prepare``, ``backward``, ``gather_for_metrics``, mixed precision), so the same code runs plainly
on one CPU and under ``accelerate launch`` on several GPUs.
"""

from __future__ import annotations

import logging
import math
import os
import sys
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset

from ..evaluate import classification_report
from ..models.base import HarModel
from .config import TrainConfig
from .schedules import param_groups, warmup_cosine

log = logging.getLogger(__name__)


def resolve_precision(precision: str = "auto") -> str:
    """``auto`` -> bf16 on a GPU that supports it, fp16 on other GPUs, ``no`` on CPU. An
    ``accelerate launch --mixed_precision`` setting (env ``ACCELERATE_MIXED_PRECISION``) wins."""
    env = os.environ.get("ACCELERATE_MIXED_PRECISION")
    if env:
        return env
    if precision != "auto":
        return precision
    if torch.cuda.is_available():
        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    return "no"


def make_accelerator(precision: str = "auto", cpu: bool = False):
    """The one ``Accelerator`` of a run."""
    from accelerate import Accelerator

    return Accelerator(mixed_precision=resolve_precision(precision), cpu=cpu)


def progress_enabled(quiet: bool, accelerator=None) -> bool:
    """Bars only on an interactive terminal, on the main process, unless ``quiet``."""
    if quiet or not sys.stderr.isatty():
        return False
    return accelerator is None or accelerator.is_local_main_process


def progress_bar(iterable=None, total=None, desc="", enabled=True, leave=True, unit="it"):
    """A tqdm bar on stderr (the trainer's and the CLI's; see ``progress_enabled``)."""
    from tqdm.auto import tqdm

    return tqdm(iterable, total=total, desc=desc, disable=not enabled, leave=leave, dynamic_ncols=True, file=sys.stderr, unit=unit)


def state_copy(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """A detached CPU copy of the state dict (for best-epoch restore / WiSE-FT)."""
    return {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}


def eval_loader(dataset: Dataset, batch_size: int, num_workers: int = 0) -> DataLoader:
    return DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=num_workers)


@torch.no_grad()
def predict_logits(model: torch.nn.Module, loader: DataLoader, accelerator) -> tuple[np.ndarray, np.ndarray]:
    """(logits float32 (N, C), labels (N,)) over a (prepared) loader, gathered from every process."""
    was_training = model.training
    model.eval()
    outs, ys = [], []
    for x, y in loader:
        with accelerator.autocast():
            logits = model(x)
        logits, y = accelerator.gather_for_metrics((logits.float(), y))
        outs.append(logits.cpu())
        ys.append(y.cpu())
    model.train(was_training)
    if not outs:
        return np.zeros((0, 0), np.float32), np.zeros((0,), np.int64)
    return torch.cat(outs).numpy(), torch.cat(ys).numpy()


def split_metrics(logits: np.ndarray, labels: np.ndarray) -> dict:
    """Loss, accuracy and macro-F1 of one split's logits."""
    if len(labels) == 0:
        return {"loss": float("nan"), "accuracy": float("nan"), "macro_f1": float("nan")}
    rep = classification_report(labels, logits.argmax(1))
    loss = float(F.cross_entropy(torch.as_tensor(logits), torch.as_tensor(labels)))
    return {"loss": loss, "accuracy": rep["accuracy"], "macro_f1": rep["macro_f1"]}


@dataclass
class FitResult:
    history: list[dict] = field(default_factory=list)
    best_epoch: int = 0  # 1-based; 0 = no epoch improved on the initial weights (or no training)
    best_val: dict = field(default_factory=dict)
    epochs_run: int = 0
    stopped_early: bool = False
    seconds: float = 0.0
    feature_views: int = 0  # > 0: head trained on cached frozen-backbone features (training.features)

    def to_dict(self) -> dict[str, Any]:
        d = {
            "best_epoch": self.best_epoch,
            "best_val": self.best_val,
            "epochs_run": self.epochs_run,
            "stopped_early": self.stopped_early,
            "seconds": round(self.seconds, 2),
        }
        if self.feature_views:
            d["frozen_features"] = {"views": self.feature_views}
        return d


def freeze_backbone_prefix(model: HarModel, trainable: float) -> list[torch.nn.Parameter]:
    """Freeze all but the last ``trainable`` fraction of the backbone's parameter tensors (in
    ``param_groups()["backbone"]`` order, input side first). Returns what it froze."""
    if trainable >= 1.0:
        return []
    backbone = [p for p in model.param_groups().get("backbone", []) if p.requires_grad]
    k = round(len(backbone) * (1.0 - trainable))
    for p in backbone[:k]:
        p.requires_grad_(False)
    return backbone[:k]


def _better(cur: dict, best: dict | None) -> bool:
    """Higher macro-F1; on a tie, lower loss."""
    if best is None:
        return True
    f, bf = cur["macro_f1"], best["macro_f1"]
    if not math.isclose(f, bf, rel_tol=0, abs_tol=1e-12):
        return f > bf
    return cur["loss"] < best["loss"] - 1e-12


def fit(
    model: HarModel,
    train_set: Dataset,
    val_set: Dataset,
    cfg: TrainConfig,
    accelerator,
    generator: torch.Generator | None = None,
    desc: str = "",
    quiet: bool = False,
) -> FitResult:
    """Train ``model`` in place and leave it holding the weights of its best validation epoch.

    Phases: ``cfg.lp_epochs`` epochs of linear probe (backbone LR 0) then ``cfg.epochs`` epochs of
    full training, each with its own AdamW + warm-up/cosine schedule. Early stopping watches val
    macro-F1 (ties: val loss) across both phases with ``cfg.patience`` epochs of patience; the
    initial weights count as "epoch 0", so training can never make the restored model worse on val.
    ``cfg.backbone_trainable`` < 1 freezes the input side of the backbone for the whole fit."""
    frozen = freeze_backbone_prefix(model, cfg.backbone_trainable)
    try:
        return _fit(model, train_set, val_set, cfg, accelerator, generator, desc, quiet)
    finally:
        for p in frozen:
            p.requires_grad_(True)


def _fit(model, train_set, val_set, cfg: TrainConfig, accelerator, generator, desc: str, quiet: bool) -> FitResult:
    start = time.perf_counter()
    res = FitResult()
    n = len(train_set)
    drop_last = n > cfg.batch_size and n % cfg.batch_size == 1  # avoid a batch of 1 (BatchNorm)
    train_loader = DataLoader(
        train_set, batch_size=cfg.batch_size, shuffle=True, generator=generator, drop_last=drop_last, num_workers=cfg.num_workers
    )
    val_loader = eval_loader(val_set, cfg.eval_batch_size, cfg.num_workers)
    prepared, train_loader, val_loader = accelerator.prepare(model, train_loader, val_loader)
    show = progress_enabled(quiet, accelerator)

    def validate() -> dict:
        logits, y = predict_logits(prepared, val_loader, accelerator)
        return split_metrics(logits, y)

    best = validate() if len(val_set) else None
    best_state = state_copy(accelerator.unwrap_model(prepared))
    if best is not None:
        res.best_val = dict(best)
    phases = [("probe", cfg.lp_epochs), ("train", cfg.epochs)]
    total_epochs = sum(e for _, e in phases)
    epoch, bad_epochs = 0, 0
    bar = progress_bar(total=total_epochs, desc=desc or "train", enabled=show)
    try:
        for phase, n_epochs in phases:
            if n_epochs <= 0 or res.stopped_early:
                continue
            groups = param_groups(accelerator.unwrap_model(prepared), cfg)
            if phase == "probe":
                if not any(g["tag"] == "backbone" for g in groups):
                    continue  # nothing to keep frozen: a probe phase would just be extra epochs
                for g in groups:
                    if g["tag"] == "backbone":
                        g["lr"] = 0.0
            groups = [g for g in groups if g["params"]]
            if not groups:
                break
            optimizer = torch.optim.AdamW(groups)
            optimizer = accelerator.prepare(optimizer)
            steps = max(1, len(train_loader)) * n_epochs
            # Stepped by hand once per optimiser step (not prepared: accelerate would step it once per process).
            scheduler = warmup_cosine(optimizer, steps, cfg.warmup, cfg.min_lr_ratio)
            params = [p for g in groups for p in g["params"]]
            for _ in range(n_epochs):
                epoch += 1
                prepared.train()
                tot_loss, tot_n = 0.0, 0
                t0 = time.perf_counter()
                for x, y in progress_bar(train_loader, desc=f"epoch {epoch}", enabled=show, leave=False):
                    logits = prepared(x)
                    loss = F.cross_entropy(logits.float(), y, label_smoothing=cfg.label_smoothing)
                    accelerator.backward(loss)
                    if cfg.max_grad_norm:
                        accelerator.clip_grad_norm_(params, cfg.max_grad_norm)
                    optimizer.step()
                    scheduler.step()
                    optimizer.zero_grad(set_to_none=True)
                    tot_loss += float(loss.detach()) * len(y)
                    tot_n += len(y)
                stats = accelerator.gather(torch.tensor([tot_loss, float(tot_n)], device=accelerator.device)).view(-1, 2).sum(0)
                row = {
                    "epoch": epoch,
                    "phase": phase,
                    "train_loss": float(stats[0] / max(stats[1], 1.0)),
                    "lr": float(max(g["lr"] for g in optimizer.param_groups)),
                    "seconds": round(time.perf_counter() - t0, 3),
                }
                cur = validate() if len(val_set) else None
                if cur is not None:
                    row.update({f"val_{k}": v for k, v in cur.items()})
                res.history.append(row)
                if cur is None or _better(cur, best):
                    best, bad_epochs = cur, 0
                    res.best_epoch = epoch
                    res.best_val = dict(cur or {})
                    best_state = state_copy(accelerator.unwrap_model(prepared))
                else:
                    bad_epochs += 1
                bar.update(1)
                bar.set_postfix(loss=f"{row['train_loss']:.3f}", val_f1=f"{row.get('val_macro_f1', float('nan')):.3f}")
                if not show and not quiet and accelerator.is_main_process:
                    log.info("%s epoch %d: %s", desc, epoch, {k: round(v, 4) if isinstance(v, float) else v for k, v in row.items()})
                if cfg.patience and bad_epochs >= cfg.patience:
                    res.stopped_early = True
                    break
    finally:
        bar.close()
    res.epochs_run = epoch
    unwrapped = accelerator.unwrap_model(prepared)
    unwrapped.load_state_dict(best_state)
    if accelerator.device.type != "cpu":
        accelerator.free_memory()  # drop references to prepared objects; on CPU once per model (gc is slow)
    res.seconds = time.perf_counter() - start
    return res
