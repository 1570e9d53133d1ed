"""Learning-rate schedule (linear warm-up + cosine decay) and optimiser parameter groups."""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.optim.lr_scheduler import LambdaLR

from ..models.base import HarModel
from .config import TrainConfig


def warmup_cosine_factor(step: int, total_steps: int, warmup_steps: int, min_ratio: float = 0.0) -> float:
    """LR multiplier at optimiser step ``step`` (0-based): linear ramp to 1 over ``warmup_steps``,
    then cosine down to ``min_ratio`` at ``total_steps``."""
    if total_steps <= 0:
        return 1.0
    if warmup_steps > 0 and step < warmup_steps:
        return (step + 1) / warmup_steps
    span = max(1, total_steps - warmup_steps)
    progress = min(1.0, (step - warmup_steps) / span)
    return min_ratio + (1.0 - min_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))


def warmup_cosine(optimizer: torch.optim.Optimizer, total_steps: int, warmup: float = 0.1, min_ratio: float = 0.0) -> LambdaLR:
    """``LambdaLR`` applying ``warmup_cosine_factor`` to every param group's own peak LR;
    ``warmup`` is the fraction of ``total_steps`` spent warming up."""
    warmup_steps = round(warmup * total_steps)
    return LambdaLR(optimizer, lambda step: warmup_cosine_factor(step, total_steps, warmup_steps, min_ratio))


def _split_decay(params: list[nn.Parameter], lr: float, weight_decay: float, tag: str) -> list[dict]:
    """Biases and norm scales (1-D tensors) get no weight decay."""
    params = [p for p in params if p.requires_grad]
    decay = [p for p in params if p.ndim > 1]
    no_decay = [p for p in params if p.ndim <= 1]
    groups = []
    if decay:
        groups.append({"params": decay, "lr": lr, "weight_decay": weight_decay, "tag": tag})
    if no_decay:
        groups.append({"params": no_decay, "lr": lr, "weight_decay": 0.0, "tag": tag})
    return groups


def param_groups(model: HarModel, cfg: TrainConfig) -> list[dict]:
    """AdamW groups: head at ``cfg.lr``; backbone at ``cfg.base_backbone_lr``, decayed layer-wise
    (``cfg.lr_decay``) when the model offers ``layerwise_groups(base_lr, decay)``.
    Every group carries ``tag`` = "head" or "backbone" (LP-FT zeroes the backbone's LR)."""
    named = model.param_groups()
    head, backbone = list(named.get("head", [])), list(named.get("backbone", []))
    groups = _split_decay(head, cfg.head_lr, cfg.weight_decay, "head")
    if not backbone:
        return groups
    layerwise = model.layerwise_groups(cfg.base_backbone_lr, cfg.lr_decay) if cfg.lr_decay is not None else None
    if layerwise is not None:
        head_ids = {id(p) for p in head}
        for g in layerwise:
            ps = [p for p in g["params"] if id(p) not in head_ids]
            groups += _split_decay(ps, float(g["lr"]), cfg.weight_decay, "backbone")
        covered = {id(p) for g in groups for p in g["params"]}
        rest = [p for p in backbone if id(p) not in covered]
        groups += _split_decay(rest, cfg.base_backbone_lr, cfg.weight_decay, "backbone")
    else:
        groups += _split_decay(backbone, cfg.base_backbone_lr, cfg.weight_decay, "backbone")
    return groups
