"""Flip test-time averaging (``tta=flip``): the probability is the mean of the photo's and its mirror's.

The expected numbers are built here by hand - the mirror made with PIL before the transform, the
pose vector mirrored by hand from the landmarks (x reflected, left/right swapped by name) - not
through ``preprocess_views(mirror=True)``."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from har_demo.data.transforms import to_batch
from har_demo.errors import ConfigError
from har_demo.models.base import View, pack_aux
from har_demo.models.checkpoint import load_checkpoint, save_checkpoint
from har_demo.person.finder import LM, Person
from har_demo.person.geometry import pose_features
from har_demo.testing import random_model


def _person(w: int = 64, h: int = 48) -> Person:
    rng = np.random.default_rng(3)
    kp = np.zeros((33, 3), np.float32)
    kp[:, 0], kp[:, 1], kp[:, 2] = rng.uniform(5, w - 5, 33), rng.uniform(5, h - 5, 33), rng.uniform(0.3, 1, 33)
    world = rng.normal(0, 0.3, (33, 3)).astype(np.float32)
    return Person(kp, world, (4, 2, w - 8, h - 3), np.ones((h, w), np.float32), 0.9, (w, h))


def _mirror_by_hand(p: Person) -> Person:
    """Reflect x (pixels: w - 1 - x; world: -x) and give each landmark its partner's slot, by name."""
    names = list(LM)
    partner = [LM[n.replace("left", "@").replace("right", "left").replace("@", "right")] for n in names]
    kp, world = p.keypoints.copy(), p.world.copy()
    kp[:, 0] = p.image_size[0] - 1 - kp[:, 0]
    world[:, 0] = -world[:, 0]
    return Person(kp[partner], world[partner], p.box, p.mask, p.score, p.image_size)


def _softmax(t: torch.Tensor) -> np.ndarray:
    return torch.softmax(t.float(), -1).numpy()


def _photo(seed: int, w: int = 64, h: int = 48) -> Image.Image:
    return Image.fromarray(np.random.default_rng(seed).integers(0, 255, (h, w, 3), dtype=np.uint8))


@pytest.mark.parametrize("name", ["effnet_person", "pose_mlp", "cnn_base"])
def test_flip_tta_is_the_mean_of_the_photo_and_its_mirror(name):
    model = random_model(name, tiny=True)
    photos = [_photo(s) for s in (1, 2)]
    person = _person() if model.aux_features else None
    views = [View(im, (0, 0, im.width, im.height), person) for im in photos]
    plain = model.predict_views(views)

    with torch.no_grad():
        def logits(images, p):
            x = to_batch(images, model.transform)
            if model.aux_features:
                x = pack_aux(x, torch.from_numpy(np.stack([pose_features(p)] * len(images))))
            return model(x)

        clean = _softmax(logits(photos, person))
        mirrored = _softmax(logits([im.transpose(Image.FLIP_LEFT_RIGHT) for im in photos], _mirror_by_hand(person) if person else None))
    np.testing.assert_allclose(plain, clean, atol=1e-5)  # tta off: the photo alone

    model.config["tta"] = "flip"
    averaged = model.predict_views(views)
    np.testing.assert_allclose(averaged, (clean + mirrored) / 2, atol=1e-5)
    assert np.abs(averaged - plain).max() > 1e-4  # a random model does not answer a mirror the same


def test_tta_is_a_checked_option_that_travels_in_the_checkpoint(tmp_path):
    from har_demo.models.registry import build_tiny

    with pytest.raises(ConfigError, match="tta must be one of none, flip"):
        build_tiny("effnet_person", tta="mirror")
    model = build_tiny("pose_mlp", tta="flip")
    assert model.flip_tta
    save_checkpoint(model, tmp_path / "m")
    assert load_checkpoint(tmp_path / "m").flip_tta
    assert not build_tiny("pose_mlp").flip_tta
