"""Hand-built models whose logit depends only on the top-left quadrant: every applicable method
must put most of the map's energy there (on a non-square photo, so alignment is checked too)."""

from __future__ import annotations

import pytest
import torch

from har_demo.explain.base import applicable_methods, explain
from har_demo.testing import RegionCNN, RegionViT, energy_inside, quadrant_mask, sample_image

IMAGE = sample_image(48, 40, seed=3)


def supported_class(model) -> int:
    """The class whose logit drops most when the quadrant is blanked (it has positive evidence)."""
    with torch.no_grad():
        x = model.preprocess([IMAGE])
        blank = x * (1 - quadrant_mask(x.shape[-1]))
        return int((model(x) - model(blank))[0].argmax())


def test_region_models_ignore_everything_outside_the_quadrant():
    for model in (RegionCNN().eval(), RegionViT().eval()):
        x = model.preprocess([IMAGE])
        noise = torch.randn_like(x) * (1 - quadrant_mask(x.shape[-1]))
        with torch.no_grad():
            assert torch.allclose(model(x), model(x + noise), atol=1e-5)


@pytest.mark.parametrize(
    "factory, methods",
    [
        (RegionCNN, ["gradcam", "integrated_gradients", "occlusion"]),
        (RegionViT, ["legrad", "rollout", "vit_gradcam", "integrated_gradients", "occlusion"]),
    ],
    ids=["cnn", "vit"],
)
def test_map_concentrates_on_the_region(factory, methods):
    model = factory().eval()
    assert set(methods) <= set(applicable_methods(model))
    target = supported_class(model)
    for method in methods:
        sal = explain(model, IMAGE, method, target)
        assert sal.shape == (40, 48)
        share = energy_inside(sal)
        assert share > 0.7, f"{method}: only {share:.2f} of the map's energy in the quadrant"


def test_legrad_start_layer_still_on_region():
    model = RegionViT().eval()
    sal = explain(model, IMAGE, "legrad", supported_class(model), start_layer=-1)
    assert energy_inside(sal) > 0.7
