import pytest
import torch
from PIL import Image

from har_demo.labels import CLASSES
from har_demo.models.registry import build_model, get_spec


@pytest.fixture
def rgb_images():
    g = torch.Generator().manual_seed(0)
    arrays = [torch.randint(0, 256, (h, w, 3), generator=g, dtype=torch.uint8).numpy() for h, w in [(40, 30), (17, 64), (50, 50)]]
    return [Image.fromarray(a) for a in arrays]


TINY = {name: get_spec(name).tiny_config() for name in ("cnn_base", "cnn_gen", "fnn")}


@pytest.mark.parametrize("name", sorted(TINY))
def test_small_models_give_logits_over_the_classes(name, rgb_images):
    model = build_model(name, **TINY[name]).eval()
    x = model.preprocess(rgb_images)
    assert x.shape == (len(rgb_images), 3, model.input_size, model.input_size)
    logits = model(x)
    assert logits.shape == (len(rgb_images), len(CLASSES))
    probs = model.predict_proba(rgb_images)
    assert probs.shape == (len(rgb_images), len(CLASSES))
    assert abs(probs.sum(1) - 1).max() < 1e-5


def test_cnn_gen_has_batchnorm_and_dropout_but_base_does_not():
    base = build_model("cnn_base", **TINY["cnn_base"])
    gen = build_model("cnn_gen", **TINY["cnn_gen"])
    kinds = lambda m: {type(x).__name__ for x in m.modules()}
    assert "BatchNorm2d" not in kinds(base) and "Dropout" not in kinds(base)
    assert {"BatchNorm2d", "Dropout"} <= kinds(gen)


def test_cnn_base_is_three_conv_blocks_and_two_fc_layers():
    model = build_model("cnn_base")
    convs = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
    pools = [m for m in model.modules() if isinstance(m, torch.nn.MaxPool2d)]
    fcs = [m for m in model.head if isinstance(m, torch.nn.Linear)]
    assert len(convs) == 3 and all(c.kernel_size == (3, 3) for c in convs)
    assert len(pools) == 3 and len(fcs) == 2


def test_cam_layer_is_last_conv_block_activation():
    model = build_model("cnn_base", **TINY["cnn_base"])
    seen = {}

    def hook(module, inputs, output):
        seen["shape"] = output.shape

    model.cam_layer().register_forward_hook(hook)
    model(torch.zeros(1, 3, 32, 32))
    assert seen["shape"] == (1, 8, 8, 8)  # last width, 32 / 2 / 2 (pre-pool of block 3)


def test_temperature_softens_probabilities(rgb_images):
    model = build_model("cnn_base", **TINY["cnn_base"]).eval()
    with torch.no_grad():
        model.head[-1].weight.mul_(50)
    sharp = model.predict_proba(rgb_images).max(1)
    model.temperature.fill_(100.0)
    soft = model.predict_proba(rgb_images).max(1)
    assert (soft < sharp).all()
