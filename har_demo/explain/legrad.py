"""LeGrad (Bousselham et al., "LeGrad: An Explainability Method for Vision Transformers via
Feature Formation Sensitivity", 2024), implemented here (no ``legrad-torch`` dependency).

For each layer ``l`` from ``start_layer`` (default ``-2``: the last two blocks, as the reference
wrapper does with ``layer_index=-2``; ``start_layer=0`` uses every block):

1. read out a class score ``s_l`` from that layer's tokens: the layer output goes through the
   model's own tail (final norm, pooling, projection, head). As in the reference CLIP code the
   tokens are first mean-pooled (``readout="mean"``); ``readout="tokens"`` lets the tail pool
   as it does for the last layer (CLS token for CLIP), ``readout="final"`` uses the final logit
   for every layer (a cheaper, non-layerwise variant). For a CLIP classifier the score is the
   class logit, i.e. the (scaled) similarity with the class text embedding for zero-shot heads;
2. take the gradient of ``s_l`` w.r.t. that layer's attention probabilities ``A_l``
   (heads x N x N), clamp it at 0, average over heads, then over the query rows (``rows="all"``,
   as the reference code; ``rows="prefix"`` keeps only the class/register-token rows), and keep
   the columns of the patch tokens;
3. sum the per-layer maps and min-max normalise (in ``base``).

Cost: ONE forward and ONE backward for all layers. ``vit_hooks.ViTHooks`` detaches each block's
input and batches the per-layer readouts through the tail, so the single backward of
``sum_l s_l`` yields exactly ``d s_l / d A_l`` for every layer (see its docstring; a test checks
this against one backward per layer).
"""

from __future__ import annotations

from typing import ClassVar

import torch

from ..errors import HarError
from ..models.base import HarModel
from .base import ClassScore, ViTExplainer, layer_range
from .vit_hooks import ViTHooks


class LeGrad(ViTExplainer):
    name = "legrad"
    summary = "LeGrad: layer-wise gradients w.r.t. attention maps (ViT/CLIP)"
    # start_layer=-2: the last two blocks, the reference LeGrad wrapper's default (layer_index=-2),
    # so maps match the LeGrad demo users compare with; start_layer=0 sums every block.
    defaults: ClassVar[dict] = {"start_layer": -2, "readout": "mean", "rows": "all"}

    def attribute(self, model: HarModel, x: torch.Tensor, target: int | None):
        readout, rows = self.opts["readout"], self.opts["rows"]
        if readout not in ("mean", "tokens", "final"):
            raise HarError(f"legrad readout must be mean, tokens or final, not {readout!r}")
        if rows not in ("all", "prefix"):
            raise HarError(f"legrad rows must be all or prefix, not {rows!r}")
        spec = model.vit_spec()
        layers = layer_range(self.opts["start_layer"], len(spec.blocks))
        score = ClassScore(model, target)
        x = x.requires_grad_(True)
        per_layer = readout != "final"
        hooks = ViTHooks(model, readout_layers=layers if per_layer else None, readout_pool=readout if per_layer else "mean")
        with hooks:
            out = model(x)
            if per_layer:
                if out.shape[0] != 1 + len(layers):
                    raise HarError(
                        f"legrad: model {getattr(model, 'name', '?')!r} does not map per-layer readouts to logits; use readout='final'"
                    )
                score.select(out[:1])
                total = out[1:, score.target].sum()
            else:
                total = score.select(out).sum()
            grads = torch.autograd.grad(total, [hooks.attn_probs[i] for i in layers])
        prefix = spec.num_prefix_tokens
        acc = None
        for g in grads:  # (1, heads, N, N)
            g = g.clamp(min=0).mean(dim=1)[0]  # heads -> (N, N)
            row = g[:prefix].mean(dim=0) if rows == "prefix" and prefix else g.mean(dim=0)
            acc = row[prefix:] if acc is None else acc + row[prefix:]
        grid = hooks.patch_grid(acc.numel(), x.shape[-1])
        return acc.reshape(grid), score.logits, score.target
