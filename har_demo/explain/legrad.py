"""LeGrad (Bousselham et al., "LeGrad: An Explainability Method for Vision Transformers via
Feature Formation Sensitivity", 2024), implemented here (no ``legrad-torch`` dependency), as the
authors' reference wrapper computes it.

For each layer ``l`` from ``start_layer`` (default ``-2``: the last two blocks, as the reference
wrapper does with ``layer_index=-2``; ``start_layer=0`` uses every block), with ``z_l`` that
block's output tokens, LeGrad reads a class score ``s_l`` out of ``z_l`` *the way the model pools
its last layer* and takes the gradient of ``s_l`` w.r.t. *the attention that does the pooling*:
the map says which patches the layer-``l`` evidence for the class is sensitive to. The two ways
of pooling give two cases:

* **class-token models (CLIP, timm ViT)**: the tokens are pooled through the blocks' own
  self-attention (the class token reads the patches), so the attention differentiated is block
  ``l``'s self-attention ``A_l`` (heads x N x N). The readout, as the reference CLIP code:
  ``z_l`` mean-pooled over tokens, then the model's tail (final norm, projection, head):
  ``s_l = <w_c, normalize(ln_post(mean(z_l)) @ proj)>`` for a CLIP head (``w_c`` the class text
  embedding; a zero-shot logit is ``scale * s_l + bias``). ``d s_l / d A_l`` is clamped at 0,
  averaged over heads, then over the query rows (``rows="all"``, as the reference;
  ``rows="prefix"`` keeps the class/register rows), and the patch columns are kept.
* **attention-pool models (SigLIP's MAP head; timm ``global_pool="map"``)**: the pooling is a
  separate attention - a learned latent query attends over the tokens - so the reference applies
  that pooler to each layer's tokens and differentiates *its* probabilities ``P_l`` (heads x 1 x
  N), not the blocks' self-attention (the blocks are never differentiated). Readout:
  ``s_l = <w_c, normalize(head(pool(z_l)))>``; as in the reference, ``z_l`` enters the pooler
  without the trunk's final norm (``pool_norm=False``; ``pool_norm=True`` applies it first, so the
  last layer's score is exactly the model's logit). ``d s_l / d P_l`` is clamped at 0, averaged
  over heads, the first latent's row (one weight per patch) kept. (The reference's optional
  "empty prompt" correction for SigLIP is not applied.)

The per-layer maps are summed and min-max normalised (in ``base``). ``readout="auto"`` picks the
case above; ``"mean"`` / ``"tokens"`` force the class-token readout (``tokens``: the tail pools as
it does for the last layer, CLS for CLIP; for a pooler model ``tokens`` is its pooler readout);
``"final"`` uses the final logit for every layer (cheaper, not layer-wise; for a pooler model
the single map of the pooler on the last layer). For any head the score is the class logit, so
a fine-tuned linear head's row plays ``w_c`` and MLP heads are differentiated through.

Cost: ONE forward and ONE backward for all layers. ``vit_hooks.ViTHooks`` detaches each block's
input and batches the per-layer readouts through the model's tail, so the single backward of
``sum_l s_l`` yields exactly ``d s_l / d A_l`` (or ``d s_l / d P_l``) for every layer (see its
docstring). ``tests/test_explain_legrad_reference.py`` checks the maps against the authors'
formulas written out there in plain torch, one backward per layer, for CLIP and SigLIP.
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
    summary = "LeGrad: layer-wise gradients w.r.t. attention maps (ViT/CLIP: self-attention; SigLIP: its attention pooler)"
    # start_layer=-2: the last two blocks, the reference LeGrad wrapper's default (layer_index=-2),
    # so maps match the LeGrad demo users compare with; start_layer=0 sums every block.
    defaults: ClassVar[dict] = {"start_layer": -2, "readout": "auto", "rows": "all", "pool_norm": False}

    def attribute(self, model: HarModel, x: torch.Tensor, target: int | None):
        readout, rows, pool_norm = self.opts["readout"], self.opts["rows"], self.opts["pool_norm"]
        if readout not in ("auto", "mean", "tokens", "final"):
            raise HarError(f"legrad readout must be auto, mean, tokens or final, not {readout!r}")
        if rows not in ("all", "prefix"):
            raise HarError(f"legrad rows must be all or prefix, not {rows!r}")
        spec = model.vit_spec()
        layers = layer_range(self.opts["start_layer"], len(spec.blocks))
        score = ClassScore(model, target)
        x = x.requires_grad_(True)
        if spec.extra.get("attn_pool") is not None:
            if readout == "mean":
                raise HarError(
                    "legrad readout 'mean' does not apply to an attention-pool head (SigLIP); use auto, tokens or final"
                )
            acc, grid = self._pooler_map(model, x, score, layers, per_layer=readout != "final", pool_norm=pool_norm)
        else:
            acc, grid = self._self_attention_map(model, x, score, layers, readout, rows)
        return acc.reshape(grid), score.logits, score.target

    @staticmethod
    def _batched_scores(model, x, score, out, layers, per_layer):
        """``sum_l s_l`` over the readout rows (row 0: the model's own output, kept as the logits)."""
        if not per_layer:
            return score.select(out).sum()
        if out.shape[0] != 1 + len(layers):
            raise HarError(
                f"legrad: model {getattr(model, 'name', '?')!r} does not map per-layer readouts to logits; use readout='final'"
            )
        score.select(out[:1])
        return out[1:, score.target].sum()

    def _self_attention_map(self, model, x, score, layers, readout, rows):
        spec = model.vit_spec()
        per_layer = readout != "final"
        pool = "tokens" if readout == "tokens" else "mean"
        hooks = ViTHooks(model, readout_layers=layers if per_layer else None, readout_pool=pool)
        with hooks:
            total = self._batched_scores(model, x, score, model(x), layers, per_layer)
            grads = torch.autograd.grad(total, [hooks.attn_probs[i] for i in layers])
        prefix = spec.num_prefix_tokens
        acc = None
        for g in grads:  # (1, heads, N, N)
            g = g.clamp(min=0).mean(dim=1)[0]  # heads -> (N, N)
            row = g[:prefix].mean(dim=0) if rows == "prefix" and prefix else g.mean(dim=0)
            acc = row[prefix:] if acc is None else acc + row[prefix:]
        return acc, hooks.patch_grid(acc.numel(), x.shape[-1])

    def _pooler_map(self, model, x, score, layers, per_layer, pool_norm):
        spec = model.vit_spec()
        hooks = ViTHooks(
            model,
            attention=False,  # the blocks' self-attention is not differentiated here
            pool_attention=True,
            readout_layers=layers if per_layer else None,
            readout_pool="tokens",
            readout_skip_norm=per_layer and not pool_norm,
        )
        with hooks:
            out = model(x)
            total = self._batched_scores(model, x, score, out, layers, per_layer)
            (g,) = torch.autograd.grad(total, [hooks.pool_probs])  # (rows, heads, latents, keys)
        g = g[1:] if per_layer else g
        acc = g.clamp(min=0).mean(dim=1)[:, 0].sum(dim=0)  # per layer: heads, first latent; then sum
        gh, gw = spec.grid(x.shape[-1])
        if acc.numel() not in (gh * gw, gh * gw + spec.num_prefix_tokens):
            raise HarError(f"legrad: the attention pooler saw {acc.numel()} tokens, not the {gh}x{gw} patches")
        return acc[-gh * gw :], (gh, gw)  # its keys end with the patches (class/register tokens first, if it sees them)
