"""Grad-CAM on a vision transformer: the patch tokens of the last block's first norm (``norm1`` /
``ln_1``) play the role of a conv feature map (as pytorch-grad-cam's ViT recipe). Channel weights
= mean gradient over patch tokens; map = ReLU(tokens @ weights), reshaped to the patch grid that
``ViTSpec.grid`` derives from the model's input size (never a hard-coded 14x14)."""

from __future__ import annotations

from typing import ClassVar

import torch

from ..models.base import HarModel
from .base import ClassScore, ViTExplainer
from .vit_hooks import ViTHooks


class ViTGradCAM(ViTExplainer):
    name = "vit_gradcam"
    summary = "Grad-CAM on the patch tokens of the last block's norm1 (ViT/CLIP)"
    defaults: ClassVar[dict] = {}

    def attribute(self, model: HarModel, x: torch.Tensor, target: int | None):
        prefix = model.vit_spec().num_prefix_tokens
        score = ClassScore(model, target)
        with ViTHooks(model, attention=False, norm1=True) as hooks:
            out = model(x.requires_grad_(True))
            (grad,) = torch.autograd.grad(score.select(out).sum(), [hooks.norm1_out])
            tokens = hooks.batch_first(hooks.norm1_out.detach())[0, prefix:]  # (P, D)
            grad = hooks.batch_first(grad)[0, prefix:]
            cam = torch.relu(tokens @ grad.mean(dim=0))
            grid = hooks.patch_grid(cam.numel(), x.shape[-1])
        return cam.reshape(grid), score.logits, score.target
