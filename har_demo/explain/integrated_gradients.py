"""Integrated Gradients (Sundararajan et al. 2017) via captum, for any model.

Baseline: the all-zero normalised image (the dataset mean colour). ``steps`` interpolation
points (Gauss-Legendre), evaluated ``batch`` at a time; per-pixel map = channel sum of the
attributions, positive part (evidence *for* the class; ``sign="abs"`` for magnitude), with the
top ``outlier_perc`` percent of values clipped (as captum's visualiser does) so a few extreme
pixels do not wash out the rest of the map.
Cost: ``steps`` forward+backward passes (+1 forward for the probabilities)."""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from captum.attr import IntegratedGradients

from ..errors import HarError
from ..models.base import HarModel
from .base import Explainer, image_forward, plain_logits


def signed_map(attr: torch.Tensor, sign: str) -> torch.Tensor:
    """(1, C, H, W) attributions -> (H, W): channel sum, then positive part or magnitude."""
    m = attr[0].sum(dim=0)
    if sign == "positive":
        return m.clamp(min=0)
    if sign == "abs":
        return m.abs()
    raise HarError(f"sign must be positive or abs, not {sign!r}")


def clip_outliers(m: torch.Tensor, outlier_perc: float) -> torch.Tensor:
    """Clip values above the ``100 - outlier_perc`` percentile of the non-zero values."""
    if not 0.0 <= outlier_perc < 100.0:
        raise HarError(f"outlier_perc must be in [0, 100), not {outlier_perc}")
    nonzero = m[m > 0]
    if outlier_perc == 0.0 or nonzero.numel() < 2:
        return m
    return m.clamp(max=float(torch.quantile(nonzero.float(), 1.0 - outlier_perc / 100.0)))


class IntegratedGradientsExplainer(Explainer):
    name = "integrated_gradients"
    summary = "Integrated Gradients (captum), any model; cost grows with steps"
    defaults: ClassVar[dict[str, Any]] = {"steps": 16, "batch": 16, "sign": "positive", "outlier_perc": 1.0}
    positive_ints = ("steps", "batch")

    def attribute(self, model: HarModel, x: torch.Tensor, target: int | None):
        steps, batch = int(self.opts["steps"]), int(self.opts["batch"])
        if steps < 1 or batch < 1:
            raise HarError("integrated_gradients needs steps >= 1 and batch >= 1")
        logits = plain_logits(model, x)
        target = int(logits[0].argmax()) if target is None else target
        forward, img = image_forward(model, x)
        attr = IntegratedGradients(forward).attribute(
            img, baselines=torch.zeros_like(img), target=target, n_steps=steps, internal_batch_size=batch
        )
        return clip_outliers(signed_map(attr.detach(), self.opts["sign"]), float(self.opts["outlier_perc"])), logits, target
