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

    def attribute_batch(self, model: HarModel, x: torch.Tensor):
        """Grad-CAM for a batch of views (every person in a photo) in one forward and one backward:
        each row for its own predicted class. The same sums as captum's ``LayerGradCam`` (channel
        weight = spatial mean of the gradient, ReLU of the weighted sum; rows do not mix in eval
        mode), checked against ``attribute`` row by row in tests/test_people_predictions.py."""
        acts: list[torch.Tensor] = []

        def keep(_module, _inputs, out):
            acts.append(out)
            return out.clone()  # later in-place activations must not change the kept tensor (captum does the same)

        hook = model.cam_layer().register_forward_hook(keep)
        try:
            logits = model(x.requires_grad_(True))
        finally:
            hook.remove()
        targets = logits.detach().argmax(1)
        (grads,) = torch.autograd.grad(logits.gather(1, targets[:, None]).sum(), acts[0])
        cam = torch.relu((grads.mean(dim=(2, 3), keepdim=True) * acts[0]).sum(dim=1, keepdim=True))
        up = LayerAttribution.interpolate(cam.detach(), tuple(x.shape[-2:]), interpolate_mode=self.opts["interpolate_mode"])
        return up[:, 0], logits.detach(), [int(t) for t in targets]
