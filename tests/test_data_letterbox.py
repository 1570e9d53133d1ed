"""Letterbox preprocessing (``resize="pad"``): aspect kept, photo where ``content_box`` says, the
cache invariant (transforming a cached letterboxed image changes nothing), maps cropped back."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from torchvision import tv_tensors
from torchvision.transforms import v2 as T

from har_demo.data.transforms import PAD_FILL, Letterbox, content_box, eval_transform, resize_op, train_transform
from har_demo.explain.base import to_image_map


@pytest.mark.parametrize("wh", [(96, 160), (160, 96), (50, 50), (1, 300), (300, 1), (513, 512)])
def test_content_box_keeps_aspect_and_centres(wh):
    x0, y0, x1, y1 = content_box(wh, 224, "pad")
    w, h = x1 - x0, y1 - y0
    assert max(w, h) == 224 and min(w, h) >= 1
    assert abs(w / h - wh[0] / wh[1]) <= max(1 / h, 1 / w) * (wh[0] / wh[1] + 1)
    assert abs(x0 - (224 - x1)) <= 1 and abs(y0 - (224 - y1)) <= 1
    assert content_box(wh, 224, "squash") == (0, 0, 224, 224)


def test_letterbox_puts_the_photo_in_its_box_and_grey_around():
    im = Image.new("RGB", (96, 160), (255, 0, 0))
    out = T.Compose([T.ToImage(), Letterbox(224)])(im).as_subclass(torch.Tensor)
    assert out.shape == (3, 224, 224) and out.dtype == torch.uint8
    x0, y0, x1, y1 = content_box(im.size, 224, "pad")
    inside = out[:, y0 + 1 : y1 - 1, x0 + 1 : x1 - 1]
    assert (inside[0] > 240).all() and (inside[1] < 15).all()
    assert (out[:, :, : x0 - 1] == PAD_FILL).all() and (out[:, :, x1 + 1 :] == PAD_FILL).all()


def test_unknown_mode_is_refused():
    with pytest.raises(ValueError, match="squash, pad"):
        resize_op(32, "crop")


@pytest.mark.parametrize("mode", ["squash", "pad"])
def test_transform_of_cached_image_equals_transform_of_photo(mode):
    """The training cache stores resize_op's output; the eval transform on it must be a no-op resize."""
    rng = np.random.default_rng(0)
    im = Image.fromarray(rng.integers(0, 255, (70, 40, 3), dtype=np.uint8))
    cached = T.Compose([T.ToImage(), resize_op(64, mode)])(im)
    tf = eval_transform(64, resize=mode)
    assert torch.equal(tf(tv_tensors.Image(cached)), tf(im))
    aug = train_transform(64, ("color_jitter",), resize=mode)
    assert aug(tv_tensors.Image(cached)).shape == (3, 64, 64)


def test_model_resize_option_reaches_preprocessing_and_card():
    from har_demo.models.registry import build_model

    m = build_model("effnet_lite0", pretrained=False, input_size=64)
    assert m.resize == "pad" and m.preprocessing_card()["resize_mode"] == "pad"
    x = m.preprocess([Image.new("RGB", (20, 60), (255, 255, 255))])
    assert x.shape == (1, 3, 64, 64)
    assert float(x[0, :, 32, 0].abs().max()) < 0.01  # grey border ~0 after (0.5, 0.5) normalisation
    assert float(x[0, :, 32, 32].min()) > 0.99  # white photo in the middle
    squash = build_model("effnet_lite0", pretrained=False, input_size=64, resize="squash")
    assert float(squash.preprocess([Image.new("RGB", (20, 60), (255, 255, 255))]).min()) > 0.99


def test_map_is_cropped_to_the_photo_before_resizing():
    """A letterboxed map with all its mass in the padding must not paint the photo's edges."""
    box = content_box((40, 100), 100, "pad")  # photo occupies x 30..70
    raw = np.zeros((100, 100), np.float32)
    raw[:, : box[0]] = 1.0  # left padding "hot"
    raw[40:60, 45:55] = 0.5  # a blob in the middle of the photo
    sal = to_image_map(raw, (40, 100), box, 100)
    assert sal.shape == (100, 40)
    assert sal[:, 0].max() < 0.5  # the hot padding is gone
    assert sal[50, 20] == pytest.approx(1.0)  # the blob is the maximum after the crop
    plain = to_image_map(raw, (40, 100))
    assert plain[:, 0].max() > 0.9  # without the box the padding lands on the photo's edge


def test_checkpoint_preprocesses_as_trained(tmp_path):
    """A card's resize mode wins; a card from before letterboxing (no resize_mode) means squash."""
    import json

    from har_demo.models.checkpoint import load_checkpoint, save_checkpoint
    from har_demo.models.registry import build_model

    m = build_model("effnet_lite0", pretrained=False, input_size=32)
    save_checkpoint(m, tmp_path / "new", {})
    assert load_checkpoint(tmp_path / "new").resize == "pad"
    save_checkpoint(m, tmp_path / "old", {})
    card_path = tmp_path / "old" / "card.json"
    card = json.loads(card_path.read_text())
    card["config"].pop("resize")
    card["preprocessing"].pop("resize_mode")
    card_path.write_text(json.dumps(card))
    old = load_checkpoint(tmp_path / "old")
    assert old.resize == "squash" and old.config["resize"] == "squash"
    assert float(old.preprocess([Image.new("RGB", (10, 40), (255, 255, 255))]).min()) > 0.99  # no grey border
