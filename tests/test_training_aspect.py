"""Aspect-ratio jitter (``TrainConfig.aspect_views``, issue 20): a stretched training view must show
what a horizontally stretched photo would show - pixels (``Stretch``) and pose landmarks
(``stretch_person``) alike. Expected values come from stretching the photo itself with PIL and
(for landmarks) from running BlazePose on the stretched photo."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from har_demo.data.io import load_image
from har_demo.data.transforms import PAD_FILL, Letterbox, Stretch
from har_demo.errors import ConfigError
from har_demo.person import finder
from har_demo.person.finder import N_LANDMARKS, find_person
from har_demo.person.geometry import pose_features, stretch_person
from har_demo.testing import REPO_ROOT
from har_demo.training.config import TrainConfig


def _content(a: np.ndarray) -> tuple[int, int]:
    """(width, height) of what is not letterbox grey in a (3, S, S) uint8 array."""
    inside = (a != PAD_FILL).any(0)
    rows, cols = np.flatnonzero(inside.any(1)), np.flatnonzero(inside.any(0))
    return int(cols[-1] - cols[0] + 1), int(rows[-1] - rows[0] + 1)


@pytest.mark.parametrize("factor", [1.5, 2 / 3, 1.25])
def test_stretch_of_a_letterboxed_crop_is_the_letterbox_of_the_stretched_photo(factor):
    rng = np.random.default_rng(0)
    # a smooth picture (random colour ramps), never exactly letterbox grey
    yy, xx = np.mgrid[0:90, 0:50]
    photo = np.stack([(xx * 4 + 10) % 120, (yy * 2 + 5) % 120, rng.integers(0, 100) + 0 * xx], -1).astype(np.uint8)
    im = Image.fromarray(photo)
    size = 96
    boxed = Letterbox(size)(torch.from_numpy(photo).permute(2, 0, 1))
    got = Stretch(size, factor)(boxed).numpy()
    wide = im.resize((round(50 * factor), 90), Image.BICUBIC)
    expected = Letterbox(size)(torch.from_numpy(np.array(wide)).permute(2, 0, 1)).numpy()
    assert got.shape == expected.shape == (3, size, size)
    gw, gh = _content(got)
    ew, eh = _content(expected)
    assert abs(gw - ew) <= 1 and abs(gh - eh) <= 1
    assert abs(gw / gh - 50 * factor / 90) < 0.03  # the content's shape is the stretched photo's
    assert np.abs(got.astype(float) - expected.astype(float)).mean() < 6  # same picture, up to resampling


def test_aspect_views_are_checked():
    assert TrainConfig(aspect_views=[1.5, 0.667]).aspect_views == (1.5, 0.667)
    for bad in ([1.0], [3.0], [0.2]):
        with pytest.raises(ConfigError, match="aspect_views"):
            TrainConfig(aspect_views=bad)


@pytest.mark.skipif(finder.available() is not None, reason="mediapipe not installed")
@pytest.mark.parametrize("rel,factor", [("examples/standing_woods.jpg", 1.4), ("examples/standing_woods.jpg", 0.7),
                                        ("tests/assets/sitting_motorcycle.jpg", 0.7)])
def test_stretched_pose_vector_matches_the_pose_of_the_stretched_photo(rel, factor):
    im = load_image(REPO_ROOT / rel)
    p = find_person(im)
    q = find_person(im.resize((round(im.width * factor), im.height), Image.BICUBIC))
    assert p is not None and q is not None
    sure = (p.keypoints[:, 2] > 0.8) & (q.keypoints[:, 2] > 0.8)  # landmarks BlazePose sees clearly in both
    assert sure.sum() >= 15

    def pts(v):  # the 2-D landmarks, hip-centred, in torso lengths
        return v[: 2 * N_LANDMARKS].reshape(N_LANDMARKS, 2)[sure]

    stretched, plain, truth = pts(pose_features(stretch_person(p, factor))), pts(pose_features(p)), pts(pose_features(q))
    # the stretched vector lies nearer the stretched photo's landmarks than the unstretched one does
    # (measured: 0.026 vs 0.079, 0.014 vs 0.038, 0.027 vs 0.066 torso lengths)
    assert np.abs(stretched - truth).mean() < 0.6 * np.abs(plain - truth).mean()
    box_aspect = pose_features(stretch_person(p, factor))[-2]
    assert box_aspect == pytest.approx(pose_features(p)[-2] - np.log(factor), abs=0.05)
