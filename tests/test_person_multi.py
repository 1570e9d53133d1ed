"""Everyone in the photo: the multi-person finder (real BlazePose graphs from the mediapipe wheel)
on a CC-licensed two-person photo, its cache and CLI, and the accuracy metrics (recall, precision,
PCK) checked against computations written out here by hand."""

from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np
import pytest

from har_demo.cli import main
from har_demo.person import accuracy, finder, multi
from har_demo.testing import REPO_ROOT, person_photo

needs_finder = pytest.mark.skipif(finder.available() is not None, reason="mediapipe not installed")


def load_example(name: str):
    from har_demo.data.io import load_image

    return load_image(REPO_ROOT / "examples" / name)


# --- metrics, against hand-made boxes and keypoints ---------------------------------------------


def test_iou_of_hand_made_boxes():
    # 10x10 and 10x10 overlapping in a 5x10 strip: 50 / (100 + 100 - 50)
    assert accuracy.iou((0, 0, 10, 10), (5, 0, 15, 10)) == pytest.approx(50 / 150)
    assert accuracy.iou((0, 0, 10, 10), (20, 20, 30, 30)) == 0.0
    assert accuracy.iou((0, 0, 4, 4), (1, 1, 3, 3)) == pytest.approx(4 / 16)


def test_match_is_one_to_one_and_greedy_by_iou():
    gt = [(0, 0, 10, 10), (100, 0, 110, 10)]
    pred = [(1, 0, 11, 10), (0, 0, 10, 10), (100, 0, 112, 10), (300, 0, 310, 10)]
    # pred 1 is the exact box of gt 0 (IoU 1) and takes it; pred 0 (IoU 9/11) is left over;
    # pred 2 has IoU 10/12 with gt 1; pred 3 overlaps nothing.
    assert sorted(accuracy.match(pred, gt)) == [(1, 0), (2, 1)]
    assert accuracy.match([(0, 0, 10, 10)], [(6, 0, 16, 10)]) == []  # IoU 40/160 < 0.5


def _gt_keypoints(seed=0):
    rng = np.random.default_rng(seed)
    kp = np.zeros((17, 3))
    kp[:, :2] = rng.uniform(0, 100, (17, 2))
    kp[:, 2] = 2
    kp[5, :2], kp[6, :2], kp[11, :2], kp[12, :2] = (40, 20), (60, 20), (42, 60), (58, 60)  # shoulders, hips
    return kp


def test_pck_counts_keypoints_within_a_fifth_of_the_torso():
    gt = _gt_keypoints()
    torso = max(np.hypot(40 - 58, 20 - 60), np.hypot(60 - 42, 20 - 60))  # both diagonals: sqrt(18^2 + 40^2)
    assert accuracy.torso_size(gt) == pytest.approx(torso)
    pred = np.zeros((33, 3))
    blaze = [0, 2, 5, 7, 8, 11, 12, 13, 14, 15, 16, 23, 24, 25, 26, 27, 28]  # written out again here
    pred[blaze, :2] = gt[:, :2]
    pred[blaze[:5], 0] += 0.2 * torso + 0.5  # five joints just outside the radius
    pred[blaze[5:7], 1] += 0.2 * torso - 0.5  # two just inside
    gt[16, 2] = 0  # one joint not labelled: not counted either way
    pred[28, 0] += 1000
    assert accuracy.pck(pred, gt) == (16 - 5, 16)
    assert accuracy.pck(None, gt) == (0, 16)


def test_pck_without_a_labelled_torso_scores_nothing():
    gt = _gt_keypoints()
    gt[[5, 6], 2] = 0
    assert accuracy.torso_size(gt) is None


def test_score_photo_and_summary_against_hand_counts():
    gt_kp = _gt_keypoints()
    rec = {"path": "x", "evaluated": [((0, 0, 100, 100), gt_kp), ((200, 0, 300, 100), gt_kp)], "ignored": [(400, 0, 420, 20)]}
    good = np.zeros((33, 3))
    good[list(accuracy.COCO_TO_BLAZEPOSE), :2] = gt_kp[:, :2]
    people = [
        SimpleNamespace(box=(2, 0, 100, 100), keypoints=good),  # matches person 1, every keypoint right
        SimpleNamespace(box=(400, 0, 421, 20), keypoints=good),  # an ignored (crowd / few-keypoint) person
        SimpleNamespace(box=(600, 0, 700, 100), keypoints=good),  # nobody: a false positive
    ]
    c = accuracy.score_photo(people, rec)
    assert (c["gt"], c["found"], c["tp"], c["fp"]) == (2, 3, 1, 1)
    assert (c["pck_correct"], c["pck_labelled"]) == (17, 34)  # person 2 missed: its 17 count as wrong
    assert (c["pck_found_correct"], c["pck_found_labelled"]) == (17, 17)
    s = accuracy.summarise([c, {**c, "tp": 0, "fp": 3, "pck_correct": 0, "pck_found_correct": 0, "pck_found_labelled": 0}])
    assert s["recall"] == pytest.approx(1 / 4)
    assert s["precision"] == pytest.approx(1 / (1 + 1 + 3))
    assert s["pck_all"] == pytest.approx(17 / 68)
    assert s["pck_found"] == pytest.approx(1.0)


def _body_with_neighbour():
    """A 200 x 100 photo: a person's 33 landmarks (4 visible, the rest hidden far off) and a mask
    covering the body plus a neighbour's blob further right."""
    kp = np.zeros((33, 3), np.float32)
    kp[:, :2] = (190, 95)  # hidden landmarks (visibility 0): left out of the box
    kp[:4] = [[40, 20, 0.9], [60, 20, 0.9], [40, 80, 0.9], [60, 80, 0.9]]
    mask = np.zeros((100, 200), np.float32)
    mask[10:90, 38:63] = 1.0  # the body: head top at y=10, feet at y=89, x 38..62
    mask[10:90, 150:180] = 1.0  # a neighbour the landmark model's region also covered
    return kp, mask


def test_body_box_is_tight_and_ignores_a_neighbours_mask():
    kp, mask = _body_with_neighbour()
    p = finder.Person(kp, np.zeros((33, 3), np.float32), (0, 0, 200, 100), mask, 0.9, (200, 100))
    # by hand: visible landmarks span x 40..60, y 20..80; grown by a quarter -> x 35..65, y 5..95;
    # the mask inside that: x 38..62, y 10..89 (not the neighbour); union with the landmarks, no margin
    assert p.body_box == (38, 10, 62, 89)
    # the model's box keeps a margin: 12 % of the 24 x 79 span on each side
    assert finder.local_box(kp, mask, (200, 100)) == (int(np.floor(38 - 0.12 * 24)), int(np.floor(10 - 0.12 * 79)),
                                                       int(np.ceil(62 + 0.12 * 24)), int(np.ceil(89 + 0.12 * 79)))  # fmt: skip
    # a person read back without a mask (1 x 1 stand-in): the visible landmarks only
    q = finder.Person(kp, p.world, p.box, np.zeros((1, 1), np.float32), 0.9, (200, 100))
    assert q.body_box == (40, 20, 60, 80)


def test_score_photo_judges_the_body_box_not_the_margin():
    """A found person whose margin box misses IoU 0.5 but whose body box matches is a hit."""
    kp, mask = _body_with_neighbour()
    gt = (38, 10, 62, 89)
    loose = (0, 0, 120, 100)  # IoU with gt: 24 * 79 / 12000 < 0.5
    assert accuracy.iou(loose, gt) < 0.5
    p = finder.Person(kp, np.zeros((33, 3), np.float32), loose, mask, 0.9, (200, 100))
    c = accuracy.score_photo([p], {"path": "x", "evaluated": [(gt, _gt_keypoints())], "ignored": []})
    assert (c["tp"], c["fp"]) == (1, 0)


def test_tiles_cover_the_array_with_overlap():
    t = multi.tiles(300, 200, grids=((1, 1), (2, 2)), overlap=0.25)
    assert t[0] == (0, 0, 300, 200)
    assert len(t) == 5
    assert t[1] == (0, 0, round(1.25 * 150), round(1.25 * 100))  # top-left cell reaches a quarter into its neighbours
    assert t[4] == (int(0.75 * 150), int(0.75 * 100), 300, 200)


def test_coco_people_counts_match_the_annotation_file(shared_file):
    root = shared_file("coco/mini")
    doc = json.loads((root / "annotations" / "person_keypoints_val2017.json").read_text())
    expected = sum(1 for a in doc["annotations"] if not a.get("iscrowd") and a["num_keypoints"] >= 10)
    recs = accuracy.coco_people(root, splits=("val2017",))
    assert sum(len(r["evaluated"]) for r in recs) == expected
    assert all(kp.shape == (17, 3) for r in recs for _, kp in r["evaluated"])


# --- the finder on a real two-person photo -------------------------------------------------------


def test_tiles_never_have_a_side_below_the_minimum():
    """A 1x1 photo's 3x3 grid has zero-width cells: sent to MediaPipe, one breaks its graph for good."""
    assert multi.tiles(1, 1) == [(0, 0, 1, 1)]  # the whole photo only
    for w, h in ((1, 1), (2, 300), (40, 40), (47, 640), (640, 480)):
        for x0, y0, x1, y1 in multi.tiles(w, h):
            assert (x1 - x0, y1 - y0) == (w, h) or min(x1 - x0, y1 - y0) >= multi.MIN_TILE_SIDE


@needs_finder
def test_tiny_photos_find_nobody_and_leave_the_finder_working():
    from PIL import Image

    for size in ((1, 1), (2, 300), (20, 20)):
        assert multi.detect_people(Image.new("RGB", size, (120, 100, 90))) == []
    assert len(multi.detect_people(person_photo("standing"))) == 2  # the graphs still work afterwards


@needs_finder
def test_a_failed_graph_is_rebuilt_on_next_use(monkeypatch):
    from PIL import Image

    photo = Image.new("RGB", (64, 64), (120, 100, 90))
    multi.detect_people(photo)  # graphs built
    broken = multi._GRAPHS[0]

    def fail(_part):
        raise RuntimeError("Graph has errors")

    monkeypatch.setattr(broken, "process", fail)
    with pytest.raises(RuntimeError):
        multi.detect_people(photo)
    assert multi._GRAPHS is None  # dropped
    assert multi.detect_people(photo) == [] and multi._GRAPHS[0] is not broken


@pytest.fixture(scope="module")
def woods():
    """``examples/standing_woods.jpg`` (CC BY-SA 2.0, examples/LICENSES.md): two men standing,
    one left of centre (frisbee), one at the left edge."""
    im = person_photo("standing")
    return im, multi.find_people(im)


@needs_finder
def test_finds_both_people_in_the_woods_each_with_its_own_box_and_mask(woods):
    im, people = woods
    assert len(people) == 2
    a, b = people
    assert accuracy.iou(a.box, b.box) < 0.05  # two different people
    assert {p.box[0] < 120 for p in people} == {True, False}  # one at the left edge, one further right
    for p in people:
        assert p.keypoints.shape == (33, 3) and p.world.shape == (33, 3)
        assert p.mask.shape == (im.height, im.width)
        x0, y0, x1, y1 = p.box
        inside = float(p.mask[y0:y1, x0:x1].sum())
        assert inside > 0.8 * float(p.mask.sum()) > 0  # each mask lies in its own person's box
        assert p.others
    assert multi.prominence(a) >= multi.prominence(b)


@needs_finder
def test_the_most_prominent_person_is_the_single_person_finders(woods):
    im, people = woods
    single = finder.find_person(im)
    assert accuracy.iou(single.box, people[0].box) > 0.6


@needs_finder
def test_reusing_the_single_finders_person_changes_nothing_and_saves_a_landmark_run(woods, monkeypatch):
    """With the single finder's result cached, ``detect_people`` gives the same people (keypoints,
    boxes, masks) with one landmark run fewer than when it runs every landmark itself."""
    im, _ = woods
    finder.find_person(im)  # cached now, as in the app
    assert finder.cached_person(im)[0]
    _, landmarker = multi._graphs()
    calls = []
    real = landmarker.process
    monkeypatch.setattr(landmarker, "process", lambda inputs: calls.append(1) or real(inputs))
    plain = multi.detect_people(im, reuse=False)
    n_plain = len(calls)
    calls.clear()
    reused = multi.detect_people(im)
    assert len(calls) == n_plain - 1
    assert len(reused) == len(plain) == 2
    for a, b in zip(plain, reused):
        assert a.box == b.box
        np.testing.assert_array_equal(a.keypoints, b.keypoints)
        np.testing.assert_array_equal(a.mask, b.mask)


def test_people_cache_hits_on_the_same_pixels(woods):
    im, people = woods
    hits = multi._CACHE.hits
    again = multi.find_people(im.copy())
    assert multi._CACHE.hits == hits + 1
    assert [p.box for p in again] == [p.box for p in people]


@needs_finder
def test_person_all_json_lists_every_person(capsys):
    path = REPO_ROOT / "examples" / "standing_woods.jpg"
    assert main(["person", "--all", "--json", str(path)]) == 0
    (rec,) = json.loads(capsys.readouterr().out)
    assert rec["count"] == 2
    assert [p["index"] for p in rec["people"]] == [1, 2]
    assert all(len(p["keypoints"]) == 33 and len(p["box"]) == 4 for p in rec["people"])


# --- a second, smaller landmark region per detection (ROI_SCALES) --------------------------------


def _stub_person(x0, y0, x1, y1, score=0.8):
    """A found person whose visible landmarks outline (x0, y0)-(x1, y1) (no mask: ``body_box`` is
    that outline), on a 400 x 300 photo."""
    kp = np.zeros((33, 3), np.float32)
    kp[:, :2] = (x0 + x1) / 2, (y0 + y1) / 2
    kp[:, 2] = 0.9
    kp[0, :2], kp[15, :2], kp[27, :2], kp[28, :2] = (x0, y0), (x1, y0), (x0, y1), (x1, y1)
    return finder.Person(kp, np.zeros((33, 3), np.float32), (x0, y0, x1, y1), np.zeros((1, 1), np.float32), score, (400, 300))


NOBODY = "nobody"  # a landmark run where the landmark model sees no one in the region (no landmarks)


def _stubbed_run(monkeypatch, runs, scales=(1.0, 0.8), thorough=False):
    """``detect_people`` with the graphs stubbed: detections "a", "b", ... in that order, and
    ``runs[(detection, factor)]`` the landmark run's person (None: a body rejected by the checks;
    ``NOBODY``: no landmarks at all). Returns (people, the (detection, factor) runs made)."""
    from PIL import Image

    made = []

    def process(inputs):
        made.append(inputs["detection"])
        return SimpleNamespace(key=inputs["detection"], landmarks=None if runs.get(inputs["detection"]) == NOBODY else "some")

    monkeypatch.setattr(multi, "_graphs", lambda: (None, SimpleNamespace(process=process)))
    dets = sorted({d for d, _ in runs})
    monkeypatch.setattr(multi, "_candidates", lambda detector, arr, grids: (dets, None))
    monkeypatch.setattr(multi, "_already_found", lambda det, people, w, h: False)
    monkeypatch.setattr(multi, "_scaled", lambda det, f: (det, f))
    monkeypatch.setattr(multi, "_person", lambda result, *a: None if result.landmarks is None else runs.get(result.key))
    people = multi.detect_people(Image.new("RGB", (400, 300)), reuse=False, roi_scales=scales, thorough=thorough)
    return people, made


def test_a_second_region_runs_only_for_a_detection_that_found_nobody_new(monkeypatch):
    left, right = _stub_person(10, 10, 110, 290), _stub_person(250, 20, 350, 290)
    crouched = _stub_person(150, 150, 220, 290)
    runs = {
        ("a", 1.0): left, ("a", 0.8): _stub_person(20, 10, 100, 150),  # found at once: its 0.8 run never happens
        ("b", 1.0): None, ("b", 0.8): crouched,  # a body the checks reject in BlazePose's region, a good one in the smaller
        ("c", 1.0): _stub_person(12, 10, 112, 290), ("c", 0.8): right,  # a duplicate of "left" first
        ("d", 1.0): None, ("d", 0.8): None,  # rejected either way
    }  # fmt: skip
    people, made = _stubbed_run(monkeypatch, runs)
    assert made == [("a", 1.0), ("b", 1.0), ("b", 0.8), ("c", 1.0), ("c", 0.8), ("d", 1.0), ("d", 0.8)]
    assert {p.box for p in people} == {left.box, right.box, crouched.box}
    # with BlazePose's region alone, "crouched" and "right" are lost
    people, made = _stubbed_run(monkeypatch, runs, scales=(1.0,))
    assert {p.box for p in people} == {left.box} and made == [("a", 1.0), ("b", 1.0), ("c", 1.0), ("d", 1.0)]


def test_a_region_where_the_landmark_model_sees_nobody_ends_the_tries_unless_thorough(monkeypatch):
    body = _stub_person(150, 20, 250, 290)
    runs = {("a", 1.0): NOBODY, ("a", 0.8): body}
    people, made = _stubbed_run(monkeypatch, runs)
    assert people == [] and made == [("a", 1.0)]
    people, made = _stubbed_run(monkeypatch, runs, thorough=True)
    assert [p.box for p in people] == [body.box] and made == [("a", 1.0), ("a", 0.8)]


def test_the_same_body_from_two_regions_is_returned_once(monkeypatch):
    body = _stub_person(10, 10, 110, 290)
    runs = {("a", 1.0): body, ("b", 1.0): None, ("b", 0.8): _stub_person(14, 12, 108, 286)}  # "b" finds "a" again
    people, _ = _stubbed_run(monkeypatch, runs)
    assert [p.box for p in people] == [body.box]


def test_a_second_regions_body_inside_another_persons_box_is_dropped(monkeypatch):
    """A part of a found person (its upper half: all of its box inside that person's) found by the
    smaller region is not a new person; a body found at once in BlazePose's region is kept even so
    (a child in front of an adult), and a second region's body that only overlaps is kept."""
    adult = _stub_person(100, 10, 300, 290)
    runs = {
        ("a", 1.0): adult,
        ("b", 1.0): None, ("b", 0.8): _stub_person(110, 12, 280, 120),  # inside the adult: dropped
        ("c", 1.0): _stub_person(150, 150, 200, 280),  # inside too, but BlazePose's own region: kept
        ("d", 1.0): None, ("d", 0.8): _stub_person(250, 20, 390, 290),  # (300-250)/(390-250) = 0.36 inside: kept
    }  # fmt: skip
    people, _ = _stubbed_run(monkeypatch, runs)
    assert sorted(p.box for p in people) == sorted([adult.box, (150, 150, 200, 280), (250, 20, 390, 290)])


@needs_finder
def test_scaled_detection_keeps_the_hip_centre_and_scales_the_body_radius():
    from mediapipe.framework.formats import detection_pb2

    det = detection_pb2.Detection()
    for x, y in ((0.5, 0.6), (0.5, 0.2), (0.5, 0.4), (0.5, 0.3)):
        kp = det.location_data.relative_keypoints.add()
        kp.x, kp.y = x, y
    small = multi._scaled(det, 0.8)
    k = small.location_data.relative_keypoints
    assert (k[0].x, k[0].y) == (0.5, pytest.approx(0.6))
    assert (k[1].x, k[1].y) == (0.5, pytest.approx(0.6 - 0.8 * 0.4))  # radius 0.4 -> 0.32, still straight up
    assert det.location_data.relative_keypoints[1].y == pytest.approx(0.2)  # the original is left alone
    assert multi._scaled(det, 1.0) is det


@needs_finder
def test_the_smaller_region_finds_the_man_beside_the_elephant():
    """``examples/standing_elephant.jpg`` (CC BY 2.0, examples/LICENSES.md): a man beside an
    elephant's head. The landmark run on BlazePose's own region for his detection gives no body;
    the 0.8 region gives him (his body by eye: x 230..512, y 28..325 of the 512 x 325 photo)."""
    im = load_example("standing_elephant.jpg")
    assert multi.detect_people(im, reuse=False, roi_scales=(1.0,)) == []
    (man,) = multi.detect_people(im, reuse=False)
    assert accuracy.iou(man.body_box, (230, 28, 512, 325)) > 0.7
    # the same with the single finder's landmark run reused for BlazePose's region (as in the app)
    finder.find_person(im)
    assert finder.cached_person(im)[0]
    assert [p.box for p in multi.detect_people(im)] == [man.box]


@needs_finder
def test_thorough_adds_a_walker_on_the_street_and_no_duplicates():
    """``examples/walking_street.jpg`` (CC BY 2.0): people crossing a street. BlazePose's region
    alone finds two walkers, and so does the default (the landmark model sees nobody in the region
    of the third walker's detection, which ends the tries); ``thorough`` tries the smaller region
    anyway and adds the woman walking between them (by eye x 247..281, y 95..170 of the 480 x 300
    photo). No two people returned are one body."""
    im = load_example("walking_street.jpg")
    before = multi.detect_people(im, reuse=False, roi_scales=(1.0,))
    default = multi.detect_people(im, reuse=False)
    after = multi.detect_people(im, reuse=False, thorough=True)
    walker = (247, 95, 281, 170)
    assert max(accuracy.iou(p.body_box, walker) for p in before + default) < 0.3
    assert max(accuracy.iou(p.body_box, walker) for p in after) > 0.7
    assert len(after) > len(before)
    for i, a in enumerate(after):
        for b in after[i + 1 :]:
            assert accuracy.iou(a.box, b.box) < multi.DUPLICATE_IOU
            assert not multi._same_person(a, b)
