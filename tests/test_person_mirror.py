"""The mirrored pose vector (flip augmentation of the pose models) describes the mirrored photo:
every left/right landmark pair swapped by name - BlazePose writes ``left_knee`` but ``mouth_left``,
and the mouth corners had been left unswapped (issue 19.3)."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import ImageOps

from har_demo.data.io import load_image
from har_demo.person import finder
from har_demo.person.finder import LANDMARK_NAMES, LM, N_LANDMARKS, find_person
from har_demo.person.geometry import _MIRROR, pose_features
from har_demo.testing import REPO_ROOT

# Written out by hand from the BlazePose landmark chart (index: name), not derived from the names.
EXPECTED_PAIRS = {
    (1, 4), (2, 5), (3, 6),  # eye inner / eye / eye outer
    (7, 8),  # ears
    (9, 10),  # mouth_left / mouth_right
    (11, 12), (13, 14), (15, 16), (17, 18), (19, 20), (21, 22),  # shoulder, elbow, wrist, pinky, index, thumb
    (23, 24), (25, 26), (27, 28), (29, 30), (31, 32),  # hip, knee, ankle, heel, foot index
}  # fmt: skip


def test_mirror_swaps_every_left_right_pair_and_nothing_else():
    expected = np.arange(N_LANDMARKS)
    for i, j in EXPECTED_PAIRS:
        expected[i], expected[j] = j, i
    np.testing.assert_array_equal(_MIRROR, expected)
    assert LANDMARK_NAMES[_MIRROR[LM["mouth_left"]]] == "mouth_right"
    assert _MIRROR[LM["nose"]] == LM["nose"]


# Photos where BlazePose sees the face and the body well enough in both orientations (the walking
# child of examples/walking_street.jpg is too small for its mouth corners to be told apart).
PHOTOS = ["examples/sitting_stands.jpg", "examples/standing_woods.jpg", "tests/assets/sitting_motorcycle.jpg"]
FACE = ["left_eye_inner", "left_eye", "left_eye_outer", "left_ear", "mouth_left"]


def _points(vec: np.ndarray) -> np.ndarray:
    return vec[: 2 * N_LANDMARKS].reshape(N_LANDMARKS, 2)  # hip-centred, in torso lengths


@pytest.mark.skipif(finder.available() is not None, reason="mediapipe not installed")
@pytest.mark.parametrize("rel", PHOTOS)
def test_mirrored_pose_matches_pose_of_mirrored_photo(rel):
    im = load_image(REPO_ROOT / rel)
    p, q = find_person(im), find_person(ImageOps.mirror(im))
    assert p is not None and q is not None
    a, b = _points(pose_features(p, mirror=True)), _points(pose_features(q))
    # Each sided landmark against its partner: the vector between the two sides must come out the
    # same in both (BlazePose's own noise is ~0.01-0.03 torso lengths on the face; the mouth corners
    # unswapped put it at 0.09-0.20 on these photos).
    for name in FACE:
        i, j = LM[name], LM[name.replace("left", "right")]
        err = np.linalg.norm((a[i] - a[j]) - (b[i] - b[j]))
        assert err < 0.06, f"{rel}: {name} vs its partner off by {err:.3f} torso lengths"
    # Landmark by landmark, every pair whose sides are clearly apart: each mirrored landmark lies
    # nearer the same-named landmark of the mirrored photo than its partner does.
    for i, j in EXPECTED_PAIRS:
        if np.linalg.norm(b[i] - b[j]) > 0.15:
            same = np.linalg.norm(a[i] - b[i]) + np.linalg.norm(a[j] - b[j])
            swapped = np.linalg.norm(a[i] - b[j]) + np.linalg.norm(a[j] - b[i])
            assert same < swapped, f"{rel}: {LANDMARK_NAMES[i]} / {LANDMARK_NAMES[j]}"
    # and no landmark is far from where the mirrored photo puts it
    assert np.linalg.norm(a - b, axis=1).max() < 0.5
