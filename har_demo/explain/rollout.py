"""Gradient-weighted attention rollout (Chefer, Gur & Wolf, "Transformer Interpretability
Beyond Attention Visualization", CVPR 2021, the attention-gradient variant).

With ``A_l`` the attention probabilities of block ``l`` and ``G_l = d y_c / d A_l`` (the full
gradient of the class logit, through all later layers):
``R = I``; for each block from ``start_layer``: ``R = R + mean_heads(clamp(G_l * A_l, min=0)) @ R``.
The map is the class-token row of ``R`` over the patch tokens (the mean row for models without
a class token). One forward, one backward.
"""

from __future__ import annotations

from typing import ClassVar

import torch

from ..models.base import HarModel
from .base import ClassScore, ViTExplainer, layer_range
from .vit_hooks import ViTHooks


class GradRollout(ViTExplainer):
    name = "rollout"
    summary = "Chefer et al. gradient-weighted attention rollout (ViT/CLIP)"
    defaults: ClassVar[dict] = {"start_layer": 0}

    def attribute(self, model: HarModel, x: torch.Tensor, target: int | None):
        spec = model.vit_spec()
        layers = layer_range(self.opts["start_layer"], len(spec.blocks))
        score = ClassScore(model, target)
        with ViTHooks(model) as hooks:
            out = model(x.requires_grad_(True))
            attn = [hooks.attn_probs[i] for i in layers]
            grads = torch.autograd.grad(score.select(out).sum(), attn)
        n = attn[0].shape[-1]
        rel = torch.eye(n, dtype=attn[0].dtype, device=attn[0].device)
        for a, g in zip(attn, grads):
            cam = (g * a.detach()).clamp(min=0).mean(dim=1)[0]  # (N, N)
            rel = rel + cam @ rel
        prefix = spec.num_prefix_tokens
        row = rel[0] if prefix else rel.mean(dim=0)
        patches = row[prefix:]
        return patches.reshape(hooks.patch_grid(patches.numel(), x.shape[-1])), score.logits, score.target
