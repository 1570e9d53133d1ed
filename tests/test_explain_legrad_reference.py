"""LeGrad against the authors' formulas (Bousselham et al. 2024, "LeGrad: An Explainability Method
for Vision Transformers via Feature Formation Sensitivity", and their reference wrapper), written
out here in plain torch on the tiny open_clip models' own weights: no ``ViTHooks``, no readout
shared with ``har_demo.explain.legrad``, one backward per layer.

For every layer ``l`` from ``start_layer`` on, with ``z_l`` that block's output tokens:

* CLIP (open_clip ``VisionTransformer``): ``f_l = normalize(ln_post(mean_tokens(z_l)) @ proj)``,
  ``s_l = <w_c, f_l>``; the map is ``d s_l / d A_l`` for block ``l``'s *self-attention*
  probabilities, clamped at 0, averaged over heads and over every query row, patch columns kept.
* SigLIP (timm trunk whose head is an attention pooler, MAP): ``z_l`` (no final norm, as the
  reference) goes into the *attention pooler* (the learned latent query attends over the tokens
  the model pools) and the model's head, ``f_l = normalize(head(pool(z_l)))``, ``s_l = <w_c, f_l>``;
  the map is ``d s_l / d P_l`` for the *pooler's* attention probabilities ``P_l``, clamped at 0,
  averaged over heads, the first latent's row (one weight per patch).

``w_c`` is the class's text embedding (``class_emb``) for a zero-shot head and the head's weight
row for a fine-tuned linear head (it starts as the text embedding; either way the class logit is
an affine function of ``<w_c, f>``). Maps are summed over the layers and compared per class with
Pearson r (min-max normalisation, the last step of both, does not change r).
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from har_demo.errors import HarError
from har_demo.explain.legrad import LeGrad
from har_demo.explain.vit_hooks import explain_mode
from har_demo.testing import sample_image, tiny_models

# vit_map: a timm ViT with a MAP head and no class token (SigLIP's token layout), ImageNet-style head
MODELS = ("clip_zeroshot", "clip_ft", "siglip_ft", "vit_map")


@pytest.fixture(scope="module", params=MODELS)
def model(request):
    torch.manual_seed(0)
    return tiny_models()[request.param]().eval()


def _class_vectors(model) -> torch.Tensor:
    """``w_c`` for every class: the class logit is ``a * <w_c, f> + b`` with ``a > 0``."""
    head = getattr(model, "head", None)
    return head.weight.detach() if isinstance(head, torch.nn.Linear) else model.class_emb


def _class_scores(model, pooled: torch.Tensor) -> torch.Tensor:
    """The class scores ``s`` from the pooler's output: text similarity for SigLIP, the
    ImageNet-style linear head for a plain timm ViT."""
    if hasattr(model, "visual"):
        trunk = model.visual.trunk
        f = F.normalize(model.visual.head(trunk.head(trunk.fc_norm(pooled))), dim=-1)
        return f @ _class_vectors(model).t()
    return model.vit.head(model.vit.fc_norm(pooled))


def _clip_maps(model, x: torch.Tensor, layers: range, w: torch.Tensor) -> torch.Tensor:
    """The authors' CLIP LeGrad: self-attention of each block, mean-token readout."""
    v = model.visual
    z = v._embeds(x)  # (1, N, D): patch embedding, class token, positions, ln_pre
    attn_of, out_of = {}, {}
    for i, blk in enumerate(v.transformer.resblocks):
        a = blk.attn
        heads, d = a.num_heads, z.shape[-1] // a.num_heads
        h = blk.ln_1(z)
        q, k, val = F.linear(h, a.in_proj_weight, a.in_proj_bias).chunk(3, dim=-1)
        q, k, val = (t.reshape(1, -1, heads, d).transpose(1, 2) for t in (q, k, val))
        probs = ((q * d**-0.5) @ k.transpose(-2, -1)).softmax(-1)  # (1, heads, N, N)
        o = (probs @ val).transpose(1, 2).reshape(1, -1, heads * d)
        z = z + blk.ls_1(a.out_proj(o))
        z = z + blk.ls_2(blk.mlp(blk.ln_2(z)))
        attn_of[i], out_of[i] = probs, z
    maps = []
    for c in range(w.shape[0]):
        acc = 0
        for i in layers:
            f = F.normalize(v.ln_post(out_of[i].mean(dim=1)) @ v.proj, dim=-1)
            (g,) = torch.autograd.grad((f @ w[c]).sum(), [attn_of[i]], retain_graph=True)
            acc = acc + g.clamp(min=0).mean(dim=1)[0].mean(dim=0)[1:]  # heads, rows; drop CLS column
        maps.append(acc)
    return torch.stack(maps)


def _pooler(pool, tokens: torch.Tensor):
    """timm ``AttentionPoolLatent`` written out: (pooled (1, D), probabilities (1, heads, latents, N))."""
    B, N, C = tokens.shape
    if pool.pos_embed is not None:
        tokens = tokens + pool.pos_embed[None]
    q = pool.q(pool.latent).reshape(1, pool.latent_len, pool.num_heads, pool.head_dim).transpose(1, 2)
    k, val = pool.kv(tokens).reshape(B, N, 2, pool.num_heads, pool.head_dim).permute(2, 0, 3, 1, 4)
    q, k = pool.q_norm(q), pool.k_norm(k)
    probs = ((q * pool.scale) @ k.transpose(-2, -1)).softmax(-1)
    o = pool.proj((probs @ val).transpose(1, 2).reshape(B, pool.latent_len, C))
    if pool.mlp is not None:
        o = o + pool.mlp(pool.norm(o))
    o = o[:, 0] if pool.pool == "token" else o.mean(1)
    return o, probs


def _siglip_maps(model, x: torch.Tensor, layers: range, n_classes: int, final_norm: bool = False) -> torch.Tensor:
    """The authors' SigLIP LeGrad: the attention pooler's probabilities on each layer's tokens."""
    trunk = model.visual.trunk if hasattr(model, "visual") else model.vit
    drop_prefix = hasattr(trunk, "pool_include_prefix") and not trunk.pool_include_prefix  # timm's own pool()
    z = trunk.norm_pre(trunk.patch_drop(trunk._pos_embed(trunk.patch_embed(x))))
    outs = []
    for blk in trunk.blocks:
        z = blk(z)  # block attention is not differentiated for SigLIP
        outs.append(z.detach())
    prefix = trunk.num_prefix_tokens
    maps = []
    for c in range(n_classes):
        acc = 0
        for i in layers:
            tokens = trunk.norm(outs[i]) if final_norm else outs[i]
            pooled, probs = _pooler(trunk.attn_pool, tokens[:, prefix:] if drop_prefix else tokens)
            (g,) = torch.autograd.grad(_class_scores(model, pooled)[0, c], [probs])
            row = g.clamp(min=0).mean(dim=1)[0, 0]  # heads; the first latent's row
            acc = acc + (row if drop_prefix else row[prefix:])
        maps.append(acc)
    return torch.stack(maps)


def _pearson(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a.flatten().double(), b.flatten().double()
    a, b = a - a.mean(), b - b.mean()
    return float((a @ b) / (a.norm() * b.norm()))


def _reference_maps(model, x, start_layer: int, pool_norm: bool = False) -> torch.Tensor:
    n_blocks = len(model.vit_spec().blocks)
    layers = range(start_layer % n_blocks, n_blocks)
    trunk = getattr(model.visual, "trunk", None) if hasattr(model, "visual") else model.vit
    if getattr(trunk, "attn_pool", None) is None:  # an open_clip ViT tower: class token
        return _clip_maps(model, x, layers, _class_vectors(model))
    return _siglip_maps(model, x, layers, len(model.classes), final_norm=pool_norm)


def _assert_same_maps(model, x, ref, **opts):
    ours = [LeGrad(**opts).attribute(model, x, c)[0].detach() for c in range(len(model.classes))]
    rs = [_pearson(o, r) for o, r in zip(ours, ref)]
    assert all(float(r.std()) > 0 for r in ref)  # a real map, not a constant
    assert min(rs) >= 0.999, f"{model.name} {opts}: Pearson r per class {[round(r, 4) for r in rs]}"


@pytest.mark.parametrize("start_layer", [-2, 0])
def test_legrad_equals_the_authors_formulas(model, start_layer):
    """Defaults (last two blocks, as the reference) and every block (the one-backward batching;
    the tiny SigLIP has 6 blocks, the tiny CLIP and MAP ViT 2)."""
    x = model.preprocess([sample_image(40, 40)])
    with explain_mode(model), torch.enable_grad():
        ref = _reference_maps(model, x, start_layer)
        _assert_same_maps(model, x, ref, start_layer=start_layer)


def test_pool_norm_applies_the_final_norm_before_the_pooler():
    model = tiny_models()["siglip_ft"]().eval()
    x = model.preprocess([sample_image(40, 40)])
    with explain_mode(model), torch.enable_grad():
        ref = _reference_maps(model, x, 0, pool_norm=True)
        _assert_same_maps(model, x, ref, start_layer=0, pool_norm=True)
        plain = _reference_maps(model, x, 0)
    assert max(_pearson(a, b) for a, b in zip(ref, plain)) < 0.99  # the option changes the maps


@pytest.mark.parametrize(
    ("opts", "message"),
    [
        ({"readout": "mean"}, "does not apply to an attention-pool head"),
        ({"pool_norm": "yes"}, "option pool_norm: expected true or false"),
    ],
)
def test_pooler_option_errors_are_one_line(opts, message):
    model = tiny_models()["siglip_ft"]().eval()
    with pytest.raises(HarError, match=message), explain_mode(model):  # refused when built or when run
        LeGrad(**opts).attribute(model, model.preprocess([sample_image()]), 0)
