"""The person finder (real BlazePose from the mediapipe wheel) on CC-licensed photos, its cache,
the pose geometry, crops and maps placed back, person_share, and the ``person`` CLI contract."""

from __future__ import annotations

import json
import threading

import numpy as np
import pytest
from PIL import Image

from har_demo.cli import main
from har_demo.explain.metrics import DRIFT_FIELDS, drift_scores
from har_demo.person import finder
from har_demo.person.crop import person_view, place_map
from har_demo.person.finder import LM, N_LANDMARKS, PersonCache, find_person
from har_demo.person.geometry import N_FEATURES, body_measures, describe_pose, feature_names, pose_features
from har_demo.testing import PERSON_PHOTOS, person_photo, sample_image

pytestmark = pytest.mark.skipif(finder.available() is not None, reason="mediapipe not installed")


@pytest.fixture(scope="module")
def standing():
    im = person_photo("standing")
    return im, find_person(im)


@pytest.fixture(scope="module")
def sitting():
    im = person_photo("sitting")
    return im, find_person(im)


def _y(person, name: str) -> float:
    return float(person.keypoints[LM[name], 1])


def test_standing_person_landmarks_are_ordered_top_to_bottom(standing):
    im, p = standing
    assert p is not None and p.image_size == im.size
    assert p.keypoints.shape == (N_LANDMARKS, 3) and p.world.shape == (N_LANDMARKS, 3)
    for side in ("left", "right"):  # image y grows downwards: hips above knees above ankles
        assert _y(p, f"{side}_hip") < _y(p, f"{side}_knee") < _y(p, f"{side}_ankle")
    assert _y(p, "nose") < _y(p, "left_hip")
    x0, y0, x1, y1 = p.box
    inside = (p.keypoints[:, 0] >= x0) & (p.keypoints[:, 0] <= x1) & (p.keypoints[:, 1] >= y0) & (p.keypoints[:, 1] <= y1)
    assert inside[p.keypoints[:, 2] > 0.5].all()  # the box holds every visible landmark
    assert 0 < p.score <= 1


def test_sitting_person_has_bent_knees_and_a_seated_sentence(sitting):
    _, p = sitting
    assert p is not None
    m = body_measures(p)
    assert m["knee_angle"] < 150
    assert "seated" in describe_pose(p)


def test_mask_covers_the_person(standing):
    im, p = standing
    assert p.mask.shape == (im.height, im.width) and 0 <= p.mask.min() and p.mask.max() <= 1
    x0, y0, x1, y1 = p.box
    inside = p.mask[y0:y1, x0:x1]
    outside = p.mask.sum() - inside.sum()
    assert inside.mean() > 0.2  # a good part of the box is person
    assert inside.sum() > 5 * outside  # and almost all the mask is inside the box
    assert 0 < p.mask_area < 0.5


def test_no_person_gives_none_and_the_whole_photo_as_view():
    im = sample_image(64, 48)
    assert find_person(im) is None
    view, box, person = person_view(im)
    assert person is None and box == (0, 0, 64, 48) and view.size == im.size
    assert "No person found" in describe_pose(None)


def test_cache_by_content_and_threads_agree(standing):
    im, p = standing
    cache = PersonCache(size=4)
    first = cache.get(im)
    again = cache.get(im.copy())  # same pixels, another object: a hit
    assert cache.hits == 1 and cache.misses == 1 and again is first
    cache.clear()  # forgotten: the next call runs the finder again
    assert cache.get(im) is not first and cache.misses == 2
    np.testing.assert_allclose(first.keypoints, p.keypoints, atol=1e-4)  # deterministic
    results = []
    threads = [threading.Thread(target=lambda: results.append(finder.detect(im))) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for r in results:  # calls from two threads take turns on the one graph: both agree with the serial result
        np.testing.assert_allclose(r.keypoints, p.keypoints, atol=1e-3)


def test_person_share_is_one_inside_the_mask_and_zero_outside(standing):
    _im, p = standing
    inside = (p.mask > 0.5).astype(np.float32)
    assert drift_scores(inside, p)["person_share"] == pytest.approx(1.0)
    outside = np.zeros_like(inside)
    outside[:, : max(1, p.box[0] - 5)] = 1.0  # a band left of the person box
    scores = drift_scores(outside, p)
    assert scores["person_share"] == pytest.approx(0.0, abs=0.01) and scores["box_share"] == pytest.approx(0.0)
    assert drift_scores(inside, None) == dict.fromkeys(DRIFT_FIELDS)


def test_crop_maps_round_trip_to_the_photo(standing):
    im, p = standing
    view, box, _ = person_view(im, p)
    assert view.size == (box[2] - box[0], box[3] - box[1])
    crop_map = np.random.default_rng(0).random((view.height, view.width)).astype(np.float32)
    photo_map = place_map(crop_map, box, im.size)
    assert photo_map.shape == (im.height, im.width)
    np.testing.assert_allclose(photo_map[box[1] : box[3], box[0] : box[2]], crop_map)
    assert photo_map.sum() == pytest.approx(crop_map.sum(), rel=1e-5)  # nothing outside the box


def test_pose_features_fixed_length_mirror_and_missing_person(standing):
    _, p = standing
    v, m = pose_features(p), pose_features(p, mirror=True)
    assert v.shape == (N_FEATURES,) == (len(feature_names()),) and np.isfinite(v).all()
    assert not np.allclose(v, m)
    names = feature_names()
    knee = names.index("angle3d_left_knee"), names.index("angle3d_right_knee")
    assert v[knee[0]] == pytest.approx(m[knee[1]], abs=1e-5)  # left and right swap in the mirror
    empty = pose_features(None)
    assert empty.shape == (N_FEATURES,) and not empty.any()  # found = 0: no body evidence


def test_person_cli_json_contract(capsys, tmp_path):
    blank = tmp_path / "blank.png"
    Image.new("RGB", (80, 60), (120, 120, 120)).save(blank)
    photo = str(PERSON_PHOTOS["standing"])
    assert main(["person", photo, str(blank), "--json", "--out", str(tmp_path / "out")]) == 0
    records = json.loads(capsys.readouterr().out)
    assert [r["path"] for r in records] == [photo, str(blank)]
    found, empty = records
    assert found["found"] is True and len(found["keypoints"]) == 33 and all(len(k) == 3 for k in found["keypoints"])
    x0, y0, x1, y1 = found["box"]
    assert 0 <= x0 < x1 <= 512 and 0 <= y0 < y1 <= 340 and 0 < found["mask_area"] < 1
    assert empty["found"] is False and empty["box"] is None and empty["keypoints"] is None
    overlay = Image.open(tmp_path / "out" / "standing_woods_person.png")
    assert overlay.size == (512, 340)


def test_person_cli_bad_file_is_one_line(capsys, tmp_path):
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"not an image")
    assert main(["person", str(bad)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "bad.jpg" in err[0]
