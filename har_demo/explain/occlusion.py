"""Occlusion (Zeiler & Fergus 2014) via captum, for any model.

A ``window`` x ``window`` patch (pixels of the model input; default input/4) slides with
``stride`` (default window/2) and is replaced by the mean colour (zero after normalisation);
a pixel's score is the average drop of the class logit over the windows covering it, positive
part. Differences at float-noise level (batched vs single forward) count as zero. Cost: one forward per window position, ``batch`` at a time (49 positions at the defaults)."""

from __future__ import annotations

from typing import Any, ClassVar

from captum.attr import Occlusion

from ..errors import HarError
from ..models.base import HarModel
from .base import Explainer, image_forward, plain_logits
from .integrated_gradients import signed_map

NOISE = 1e-5  # relative size of logit changes treated as zero


class OcclusionExplainer(Explainer):
    name = "occlusion"
    summary = "Occlusion (captum), any model; cost grows with (input/stride)^2"
    defaults: ClassVar[dict[str, Any]] = {"window": None, "stride": None, "batch": 16, "sign": "positive"}
    positive_ints = ("window", "stride", "batch")

    def attribute(self, model: HarModel, x, target: int | None):
        size = int(x.shape[-1])
        window = int(self.opts["window"] or max(1, size // 4))
        stride = int(self.opts["stride"] or max(1, window // 2))
        if not 1 <= window <= size or not 1 <= stride <= size:
            raise HarError(f"occlusion window ({window}) and stride ({stride}) must be between 1 and the input size {size}")
        logits = plain_logits(model, x)
        target = int(logits[0].argmax()) if target is None else target
        forward, img = image_forward(model, x)
        attr = Occlusion(forward).attribute(
            img,
            sliding_window_shapes=(img.shape[1], window, window),
            strides=(img.shape[1], stride, stride),
            baselines=0.0,
            target=target,
            perturbations_per_eval=int(self.opts["batch"]),
        )
        attr = attr.detach()
        tol = NOISE * max(1.0, float(logits.abs().max()))
        attr = attr.masked_fill(attr.abs() < tol, 0.0)
        return signed_map(attr, self.opts["sign"]), logits, target
