"""``fold_batchnorm``: conv -> BN pairs folded for serving with unchanged outputs and maps; a
wrong pairing is detected and undone; the app's model bank serves folded models."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from har_demo.explain.base import explain
from har_demo.models.fuse import fold_batchnorm, foldable
from har_demo.testing import random_model, synthetic_photo
from har_demo.ui.bank import ModelBank


def _with_bn_stats(model):
    """Random BN statistics/affine values, so a wrong fold would show."""
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.copy_(torch.randn(m.num_features, generator=g) * 0.1)
                m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
                m.weight.copy_(torch.rand(m.num_features, generator=g) + 0.5)
                m.bias.copy_(torch.randn(m.num_features, generator=g) * 0.1)
    return model.eval()


def _bn_count(model) -> int:
    return sum(isinstance(m, nn.BatchNorm2d) for m in model.modules())


@pytest.mark.parametrize(("name", "size"), [("effnet_lite0", 96), ("cnn_gen", 32)])  # >= 3x3 Grad-CAM grids
def test_folded_model_gives_the_same_logits_and_map(name, size):
    model = _with_bn_stats(random_model(name, tiny=True, input_size=size))
    photo = synthetic_photo(64, 48)
    x = model.preprocess([photo])
    with torch.no_grad():
        ref = model(x)
    ref_map = explain(model, photo, "gradcam")
    n = foldable(model)
    assert n > 0 and fold_batchnorm(model) == n
    assert _bn_count(model) == 0
    with torch.no_grad():
        assert torch.allclose(model(x), ref, rtol=1e-4, atol=1e-5)
    assert abs(explain(model, photo, "gradcam") - ref_map).max() < 1e-3


class BNFirst(nn.Module):
    """Registered conv then BN, but the forward applies BN first: folding would be wrong."""

    input_size = 8

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 3, 3, padding=1)
        self.bn = nn.BatchNorm2d(3)

    def forward(self, x):
        return self.conv(self.bn(x))


def test_a_wrong_pairing_is_detected_and_undone():
    model = _with_bn_stats(BNFirst())
    conv, bn = model.conv, model.bn
    assert foldable(model) == 1 and fold_batchnorm(model) == 0
    assert model.conv is conv and model.bn is bn


def test_training_mode_is_refused():
    with pytest.raises(ValueError, match="eval mode"):
        fold_batchnorm(random_model("cnn_gen", tiny=True).train())


def test_model_bank_serves_folded_models():
    model = _with_bn_stats(random_model("cnn_gen", tiny=True))
    assert _bn_count(model) > 0
    bank = ModelBank.load(["cnn_gen"], loader=lambda name: model, device="cpu")
    served = bank.get("cnn_gen").model
    assert served is model and _bn_count(served) == 0 and bank.get("cnn_gen").methods
