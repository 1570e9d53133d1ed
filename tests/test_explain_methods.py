"""One parametrised test over registry models (tiny configs) x applicable methods, plus the
registry/interface contract (errors, defaults, model left unchanged)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from har_demo.errors import HarError, UnknownName
from har_demo.explain.base import (
    EXPLAINERS,
    applicable_methods,
    default_method,
    explain,
    explain_full,
    get_explainer,
    make_explainer,
)
from har_demo.testing import CHEAP_OPTS, RegionCNN, person_photo, sample_image, tiny_models

MODELS = tiny_models()
_cache: dict[str, torch.nn.Module] = {}


def model_for(name: str):
    if name not in _cache:
        torch.manual_seed(0)
        _cache[name] = MODELS[name]().eval()
    return _cache[name]


CASES = [
    pytest.param(model_name, method, id=f"{model_name}-{method}")
    for model_name in MODELS
    for method in applicable_methods(model_for(model_name))
]


def input_gradients_differ(model, image) -> bool:
    x = model.preprocess([image]).requires_grad_(True)
    logits = model(x)
    g0, g1 = (torch.autograd.grad(logits[0, c], x, retain_graph=True)[0] for c in (0, 1))
    return not torch.allclose(g0, g1)


def _minmax(a: np.ndarray) -> np.ndarray:
    lo, hi = float(a.min()), float(a.max())
    return (a - lo) / (hi - lo) if hi > lo else np.full_like(a, 1.0 if hi > 0 else 0.0)


def _bilinear(a: np.ndarray, h: int, w: int) -> np.ndarray:
    """Half-pixel-centred bilinear resize (what OpenCV's INTER_LINEAR does), written with torch."""
    t = torch.from_numpy(np.ascontiguousarray(a, np.float32))[None, None]
    return torch.nn.functional.interpolate(t, size=(h, w), mode="bilinear", align_corners=False)[0, 0].numpy()


def reference_map(model, method, image, target, opts) -> np.ndarray:
    """The photo-aligned map written here from the method's raw attribution, without the library's
    ``normalize_map`` / ``to_image_map`` / ``content_box`` / ``place_map``: min-max to [0, 1]; for a
    letterboxed model the photo's part of the S x S input (computed here) cut out and min-maxed
    again; resized to the model's view; a person crop put back at its box, zero elsewhere."""
    explainer = make_explainer(method, model, **opts)
    view = model.views([image])[0]
    explainer.view = view
    with torch.enable_grad():
        raw, _, _ = explainer.attribute(model, model.preprocess_views([view]), target)
    arr = _minmax(np.nan_to_num(raw.detach().float().numpy()))
    s = model.input_size
    vw, vh = view.image.size
    if model.resize == "pad":
        scale = s / max(vw, vh)
        nw, nh = min(s, max(1, round(vw * scale))), min(s, max(1, round(vh * scale)))
        x0, y0 = (s - nw) // 2, (s - nh) // 2
        if (nw, nh) != (s, s):
            arr = _minmax(_bilinear(arr, s, s)[y0 : y0 + nh, x0 : x0 + nw])
    arr = np.clip(_bilinear(arr, vh, vw), 0, 1) if arr.shape != (vh, vw) else arr
    out = np.zeros((image.height, image.width), np.float32)
    bx0, by0, bx1, by1 = view.box
    out[by0:by1, bx0:bx1] = arr if (bx1 - bx0, by1 - by0) == (vw, vh) else _bilinear(arr, by1 - by0, bx1 - bx0)
    return out


@pytest.mark.parametrize("model_name, method", CASES)
def test_map_shape_range_alignment_and_class(model_name, method):
    model = model_for(model_name)
    # non-square: the map must come back at the photo's size; models that need a person get a photo with one
    image = person_photo() if model.needs_person else sample_image(45, 30)
    opts = CHEAP_OPTS.get(method, {})
    maps = {c: explain_full(model, image, method, c, **opts) for c in (0, 1)}
    for c, e in maps.items():
        assert e.saliency.shape == (image.height, image.width)
        assert e.saliency.dtype == np.float32
        assert e.target == c
        assert e.probs.shape == (3,) and abs(float(e.probs.sum()) - 1.0) < 1e-5
    # the map is the method's raw attribution, normalised and aligned with the photo as written in
    # this test (before: a [0, 1] range check on a map the library had just clipped to [0, 1]);
    # one class (each reference costs a second attribution)
    np.testing.assert_allclose(maps[1].saliency, reference_map(model, method, image, 1, opts), atol=2e-3)
    # a class with only negative evidence may get an all-zero map (ReLU / positive part), not both
    assert max(e.saliency.max() for e in maps.values()) > 0.0
    if input_gradients_differ(model, image):
        assert not np.allclose(maps[0].saliency, maps[1].saliency, atol=1e-4)


def test_method_names_and_applicability():
    assert list(EXPLAINERS) == ["gradcam", "legrad", "rollout", "vit_gradcam", "integrated_gradients", "occlusion", "landmarks"]
    assert applicable_methods(model_for("cnn_base")) == ["gradcam", "integrated_gradients", "occlusion"]
    assert applicable_methods(model_for("fnn")) == ["integrated_gradients", "occlusion"]
    assert applicable_methods(model_for("vit")) == ["legrad", "rollout", "vit_gradcam", "integrated_gradients", "occlusion"]
    assert applicable_methods(model_for("effnet_person")) == ["gradcam", "integrated_gradients", "occlusion", "landmarks"]
    assert applicable_methods(model_for("pose_mlp")) == ["landmarks"]  # it reads no pixel


def test_default_method_from_registry_spec_else_first_applicable():
    assert default_method(model_for("cnn_base")) == "gradcam"
    assert default_method(model_for("fnn")) == "integrated_gradients"  # ModelSpec.default_method
    assert default_method(model_for("clip_ft")) == "legrad"
    assert default_method(RegionCNN()) == "gradcam"  # not registered: first applicable


def test_predicted_class_when_no_target():
    model = model_for("cnn_base")
    e = explain_full(model, sample_image(), "gradcam")
    assert e.target == e.predicted
    assert np.array_equal(explain(model, sample_image(), "gradcam", e.predicted), e.saliency)
    named = explain_full(model, sample_image(), "gradcam", model.classes[2])
    assert named.target == 2


def test_errors_are_one_line():
    model = model_for("cnn_base")
    with pytest.raises(UnknownName, match="unknown method 'nope'; available: gradcam"):
        get_explainer("nope")
    with pytest.raises(HarError, match="does not apply to model 'cnn_base'"):
        explain(model, sample_image(), "legrad")
    with pytest.raises(UnknownName, match="unknown class 'lying'"):
        explain(model, sample_image(), "gradcam", "lying")
    with pytest.raises(UnknownName, match="out of range"):
        explain(model, sample_image(), "gradcam", 7)
    with pytest.raises(HarError, match="has no option window"):
        explain(model, sample_image(), "gradcam", window=3)
    for err in (UnknownName("x"), HarError("y")):
        assert "\n" not in str(err)


@pytest.mark.parametrize("model_name", ["cnn_gen", "vit", "clip_ft"])
def test_model_left_unchanged(model_name):
    model = MODELS[model_name]()
    model.train()
    state = {k: v.clone() for k, v in model.state_dict().items()}
    for method in applicable_methods(model):
        explain(model, sample_image(), method, 1, **CHEAP_OPTS.get(method, {}))
    assert all(m.training for m in model.modules())
    assert all(p.grad is None for p in model.parameters())
    for m in model.modules():
        assert not m._forward_hooks and not m._forward_pre_hooks and not m._backward_hooks
        assert "forward" not in m.__dict__
    after = model.state_dict()
    assert after.keys() == state.keys()
    assert all(torch.equal(after[k], v) for k, v in state.items())
