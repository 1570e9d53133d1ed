"""The one hook/surgery wrapper: exact outputs, explicit attention probabilities, clean restore,
LeGrad's one-backward per-layer gradients, and temporary input sizes."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from har_demo.errors import HarError
from har_demo.explain.base import explain
from har_demo.explain.legrad import LeGrad
from har_demo.explain.vit_hooks import ViTHooks, explain_mode, input_size_override
from har_demo.models.base import HarModel, ViTSpec
from har_demo.testing import naive_legrad, sample_image, tiny_models

VITS = {name: f for name, f in tiny_models().items() if name in ("vit", "vit_map", "clip_ft", "siglip_ft", "clip_em")}


@pytest.fixture(scope="module", params=sorted(VITS))
def vit_model(request):
    torch.manual_seed(0)
    return VITS[request.param]().eval()


def _x(model):
    return model.preprocess([sample_image(40, 40)])


def _no_surgery_left(model):
    for m in model.modules():
        assert "forward" not in m.__dict__
        assert not m._forward_hooks and not m._forward_pre_hooks


def _matches_without_hooks(model, x) -> ViTHooks:
    """The model's output is the same with the explicit-attention hooks in place; the hooks."""
    with torch.no_grad():
        ref = model(x)
        with ViTHooks(model) as hooks:
            out = model(x)
    assert torch.allclose(out, ref, atol=1e-5)
    return hooks


def test_explicit_attention_matches_the_model(vit_model):
    x = _x(vit_model)
    hooks = _matches_without_hooks(vit_model, x)
    spec = vit_model.vit_spec()
    n_tokens = spec.num_prefix_tokens + (x.shape[-1] // spec.patch_size) ** 2
    for probs in hooks.attn_probs:
        assert probs.shape[0] == 1 and probs.shape[-2:] == (n_tokens, n_tokens)
        assert torch.allclose(probs.sum(-1), torch.ones(()), atol=1e-5)
    _no_surgery_left(vit_model)


def test_restored_after_an_error(vit_model):
    blocks = range(len(vit_model.vit_spec().blocks))
    pool = vit_model.vit_spec().extra.get("attn_pool") is not None  # every patch there is
    hooks = ViTHooks(vit_model, norm1=True, readout_layers=blocks, pool_attention=pool, readout_skip_norm=pool)
    with pytest.raises(RuntimeError, match="boom"), hooks:
        raise RuntimeError("boom")
    _no_surgery_left(vit_model)


@pytest.mark.parametrize("name", ["vit", "clip_em"])
def test_legrad_one_backward_equals_one_backward_per_layer(name):
    """The batching only (no cross-layer gradient): for the heads the authors' formulas do not
    cover (timm class-token ViT, an MLP on the CLIP embedding). CLIP, SigLIP and MAP ViTs are
    checked against the authors' formulas, one backward per layer, in
    test_explain_legrad_reference.py."""
    torch.manual_seed(0)
    model = VITS[name]()
    x = _x(model)
    with explain_mode(model), torch.enable_grad():
        raw, _logits, target = LeGrad(start_layer=0).attribute(model, x, 2)  # every layer, like the naive loop
        naive = naive_legrad(model, x, 2)
    assert target == 2
    assert torch.allclose(raw.flatten(), naive, rtol=1e-4, atol=1e-8)
    assert float(naive.abs().sum()) > 0


def test_pooler_probabilities_match_the_model():
    """The explicit MAP-head attention gives the model's own output (SigLIP's pooler)."""
    model = VITS["siglip_ft"]().eval()
    x = _x(model)
    with torch.no_grad():
        ref = model(x)
        with ViTHooks(model, attention=False, pool_attention=True) as hooks:
            out = model(x)
    assert torch.allclose(out, ref, atol=1e-5)
    assert hooks.pool_probs.shape[:3] == (1, model.visual.trunk.attn_pool.num_heads, 1)
    assert torch.allclose(hooks.pool_probs.sum(-1), torch.ones(()), atol=1e-5)
    _no_surgery_left(model)


def test_higher_input_resolution_is_temporary():
    model = tiny_models()["vit"]().eval()
    pos = {k: v.clone() for k, v in model.state_dict().items()}
    sal = explain(model, sample_image(45, 30), "legrad", input_size=48)  # 6x6 patch grid
    assert sal.shape == (30, 45)
    assert model.input_size == 32
    state = model.state_dict()
    assert all(torch.equal(state[k], v) for k, v in pos.items())
    x = _x(model)
    with input_size_override(model, 48):
        assert model.preprocess([sample_image()]).shape[-1] == 48
        with torch.no_grad():
            assert model(model.preprocess([sample_image()])).shape == (1, 3)
    assert model(x).shape == (1, 3)


def test_fixed_size_model_refuses_another_input_size():
    model = tiny_models()["fnn"]()
    with pytest.raises(HarError, match="cannot run at input size 32"):
        explain(model, sample_image(), "integrated_gradients", input_size=32, steps=2)
    assert model.input_size == 16


def test_unsupported_attention_module_is_a_one_line_error():
    class Weird(nn.Module):
        pass

    class Odd(HarModel):
        def vit_spec(self):
            return ViTSpec([nn.Identity()], [Weird()], [nn.Identity()], 1, 8)

    model = Odd()
    with pytest.raises(HarError, match="Weird is not supported"), ViTHooks(model):
        pass
    _no_surgery_left(model)


@pytest.mark.parametrize("batch_first", [True, False])
def test_explicit_multihead_attention_matches_torch(batch_first):
    from har_demo.explain.vit_hooks import _mha_forward

    torch.manual_seed(0)
    mha = nn.MultiheadAttention(16, 2, batch_first=batch_first).eval()
    x = torch.randn(2, 5, 16) if batch_first else torch.randn(5, 2, 16)
    y = torch.randn_like(x)
    keep = []
    float_mask = torch.zeros(5, 5)
    float_mask[0, 3] = float("-inf")
    bool_mask = torch.zeros(5, 5, dtype=torch.bool)
    bool_mask[1, 2] = True  # torch: True = not allowed
    for args, kwargs in [((x, x, x), {"attn_mask": float_mask}), ((x, x, x), {"attn_mask": bool_mask}), ((x, y, y), {})]:
        ref, ref_w = mha(*args, need_weights=True, **kwargs)
        out, w = _mha_forward(mha, lambda p: keep.append(p) or p, *args, **kwargs)
        assert torch.allclose(out, ref, atol=1e-6) and torch.allclose(w, ref_w, atol=1e-6)
    assert keep[0].shape == (2, 2, 5, 5) and float(keep[0].detach()[:, :, 0, 3].abs().max()) == 0.0


def test_explicit_timm_attention_matches_fused_with_a_mask():
    from har_demo.testing import RegionViT

    model = RegionViT().eval()  # passes a boolean attention mask to every block
    x = _x(model)
    hooks = _matches_without_hooks(model, x)
    masked = ~model.allowed
    assert float(hooks.attn_probs[0][0][:, masked].abs().max()) == 0.0
