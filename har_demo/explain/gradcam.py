"""Grad-CAM (Selvaraju et al. 2017) on the model's ``cam_layer()`` via captum ``LayerGradCam``.

Channel weights = spatial mean of the class-score gradient; map = ReLU(sum_k w_k A_k) on the
layer's grid, upsampled to the model input with captum's ``LayerAttribution.interpolate``
(bilinear), then (in ``base``) normalised and resized to the original image. One forward and one
backward: the class is chosen from that same forward when none is given.
"""

from __future__ import annotations

from typing import ClassVar

import torch
from captum.attr import LayerAttribution, LayerGradCam

from ..models.base import HarModel
from .base import ClassScore, Explainer


class GradCAM(Explainer):
    name = "gradcam"
    summary = "Grad-CAM on the last conv block (CNNs)"
    defaults: ClassVar[dict] = {"interpolate_mode": "bilinear"}

    @classmethod
    def applies_to(cls, model: HarModel) -> bool:
        return model.cam_layer() is not None

    @classmethod
    def requirement(cls) -> str:
        return "a conv layer: model.cam_layer()"

    def attribute(self, model: HarModel, x: torch.Tensor, target: int | None):
        score = ClassScore(model, target)
        cam = LayerGradCam(score, model.cam_layer())
        attr = cam.attribute(x.requires_grad_(True), relu_attributions=True)  # score returns (B,): no target
        up = LayerAttribution.interpolate(attr, tuple(x.shape[-2:]), interpolate_mode=self.opts["interpolate_mode"])
        return up[0, 0], score.logits, score.target
