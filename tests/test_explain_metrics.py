"""Deletion/insertion AUC vs a random map, background drift, pose ambiguity."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from har_demo.errors import HarError
from har_demo.explain.metrics import (
    auc,
    box_mask,
    drift_score,
    faithfulness,
    parse_box,
    perturbation_curves,
    pose_ambiguity,
    random_map,
)
from har_demo.models.base import HarModel
from har_demo.testing import sample_image


class QuadrantEnergy(HarModel):
    """Class-0 logit = mean squared (normalised) value of the top-left quadrant; others 0. High
    on high-contrast detail there, ~0 on the mean colour, low on a blurred copy."""

    def __init__(self):
        super().__init__(32)

    def forward(self, x):
        s = x.shape[-1] // 2
        q = x[:, :, :s, :s].pow(2).mean(dim=(1, 2, 3)) * 2.0
        return torch.stack([q, torch.zeros_like(q), torch.zeros_like(q)], dim=1)


def _noise(w=48, h=40):
    from PIL import Image

    rng = np.random.default_rng(0)
    return Image.fromarray((rng.integers(0, 2, size=(h, w, 3)) * 255).astype(np.uint8))


def _perfect(h=40, w=48):
    m = np.zeros((h, w), np.float32)
    m[: h // 2, : w // 2] = 1.0
    return m


def test_auc_of_simple_curves():
    assert auc([1, 1, 1]) == pytest.approx(1.0)
    assert auc([1, 0]) == pytest.approx(0.5)
    assert auc([0, 0.5, 1.0, 1.0, 1.0]) == pytest.approx(0.75)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_perfect_map_beats_random_map(seed):
    model = QuadrantEnergy().eval()
    scores = faithfulness(model, _noise(), _perfect(), target=0, steps=8, seed=seed)
    assert scores["deletion_auc"] < scores["deletion_auc_random"] - 0.05
    assert scores["insertion_auc"] > scores["insertion_auc_random"] + 0.05


def test_random_map_is_smooth_unless_asked_for_pixel_noise():
    smooth, pixels = random_map((40, 48), 0), random_map((40, 48), 0, cells=None)
    assert smooth.shape == pixels.shape == (40, 48)
    assert 0.0 <= smooth.min() and smooth.max() <= 1.0
    assert np.abs(np.diff(smooth, axis=1)).mean() < 0.25 * np.abs(np.diff(pixels, axis=1)).mean()


def test_curves_start_and_end_where_they_should():
    model = QuadrantEnergy().eval()
    img = _noise()
    curves = perturbation_curves(model, img, [_perfect(), random_map((40, 48))], target=0, steps=4)
    assert curves["deletion"].shape == (2, 5)
    with torch.no_grad():
        p_full = torch.softmax(model(model.preprocess([img])), -1)[0, 0].item()
    assert np.allclose(curves["deletion"][:, 0], p_full, atol=1e-5)  # nothing removed yet
    assert np.allclose(curves["insertion"][:, -1], p_full, atol=1e-5)  # everything inserted
    assert p_full > 0.8
    assert np.allclose(curves["deletion"][:, -1], 1 / 3, atol=1e-5)  # all mean colour: logits 0
    assert curves["deletion"][0, 1] == pytest.approx(1 / 3, abs=1e-5)  # quadrant gone after 1/4
    assert curves["deletion"][1, 1] > 0.5  # a random quarter leaves most of it


def test_random_map_is_seeded():
    assert np.array_equal(random_map((5, 6), 1), random_map((5, 6), 1))
    assert not np.array_equal(random_map((5, 6), 1), random_map((5, 6), 2))


def test_drift_inside_box_is_one_outside_zero():
    sal = np.zeros((40, 60), np.float32)
    sal[10:20, 10:30] = 1.0
    assert drift_score(sal, box_mask(sal.shape, (5, 5, 35, 25))) == pytest.approx(1.0)
    assert drift_score(sal, box_mask(sal.shape, (40, 0, 60, 40))) == pytest.approx(0.0)
    assert drift_score(sal, box_mask(sal.shape, (10, 10, 20, 20))) == pytest.approx(0.5)
    assert math.isnan(drift_score(np.zeros((4, 4)), np.ones((4, 4), bool)))


def test_drift_with_a_mask_of_another_size():
    sal = np.zeros((40, 60), np.float32)
    sal[:, :30] = 1.0
    mask = np.zeros((20, 30), bool)
    mask[:, :15] = True
    assert drift_score(sal, mask) == pytest.approx(1.0)


def test_box_parsing_and_clipping():
    assert parse_box("1,2,30,40") == (1.0, 2.0, 30.0, 40.0)
    for bad in ("1,2,3", "a,b,c,d", "10,10,5,20"):
        with pytest.raises(HarError, match="x0,y0,x1,y1"):
            parse_box(bad)
    assert box_mask((10, 10), (-5, -5, 100, 3)).sum() == 30


def test_pose_ambiguity_flags_any_close_pair():
    close = pose_ambiguity([0.45, 0.40, 0.15])
    assert close["flag"] and close["margin"] == pytest.approx(0.05) and close["sitting_standing"]
    other = pose_ambiguity([0.45, 0.15, 0.40])
    assert other["flag"] and other["pair"] == "sitting/walking_running" and not other["sitting_standing"]
    assert {close["top1"], close["top2"]} == {"sitting", "standing"}
    assert not pose_ambiguity([0.80, 0.15, 0.05])["flag"]  # clear margin
    assert pose_ambiguity([0.30, 0.50, 0.20], threshold=0.25)["flag"]
    with pytest.raises(HarError):
        pose_ambiguity([1.0])


def test_faithfulness_on_a_real_map_runs_on_any_image_size():
    from har_demo.explain.base import explain_full
    from har_demo.testing import RegionCNN

    model = RegionCNN().eval()
    img = sample_image(45, 30)
    e = explain_full(model, img, "gradcam", 0)
    scores = faithfulness(model, img, e.saliency, e.target, steps=4)
    assert set(scores) == {"deletion_auc", "insertion_auc", "deletion_auc_random", "insertion_auc_random"}
    curves = perturbation_curves(model, img, [e.saliency, random_map(e.saliency.shape, 0)], e.target, steps=4)
    clean = e.probs[e.target]  # nothing deleted yet / everything inserted: the clean probability
    np.testing.assert_allclose(curves["deletion"][:, 0], clean, atol=1e-5)
    np.testing.assert_allclose(curves["insertion"][:, -1], clean, atol=1e-5)
    with torch.no_grad():  # all deleted: every image pixel at the mean colour (0 after normalising)
        gone = torch.softmax(model(torch.zeros(1, 3, 32, 32)), -1)[0, e.target].item()
    np.testing.assert_allclose(curves["deletion"][:, -1], gone, atol=1e-5)
    trapezoid = lambda y: float(np.sum((y[1:] + y[:-1]) / 2) / (len(y) - 1))
    for i, kind in enumerate(("", "_random")):
        assert scores[f"deletion_auc{kind}"] == pytest.approx(trapezoid(curves["deletion"][i]), abs=1e-6)
        assert scores[f"insertion_auc{kind}"] == pytest.approx(trapezoid(curves["insertion"][i]), abs=1e-6)


class _LeftHalfOfPhoto(torch.nn.Module):
    """Toy letterboxed model whose class-0 logit is the brightness of the left half of a 20x40 photo
    (input columns 8..16 once letterboxed to 32 px: the photo spans columns 8..24)."""

    def __init__(self):
        from har_demo.models.base import HarModel

        class Toy(HarModel):
            def forward(self, x):
                s = 4 * x[:, :, :, 8:16].mean((1, 2, 3))  # white = 4, deleted (0 after normalising) = 0
                return torch.stack([s, torch.zeros_like(s), torch.zeros_like(s)], 1)

        super().__init__()
        self.model = Toy(input_size=32, mean=(0.5,) * 3, std=(0.5,) * 3, config={"resize": "pad"})


def test_deletion_ranks_pixels_inside_the_letterbox_content_only():
    from PIL import Image

    from har_demo.explain.metrics import perturbation_curves

    model = _LeftHalfOfPhoto().model.eval()
    photo = Image.new("RGB", (20, 40), (255, 255, 255))
    truth = np.zeros((40, 20), np.float32)
    truth[:, :10] = 1.0  # the true evidence: the left half of the photo
    curve = perturbation_curves(model, photo, [truth], target=0, steps=8)["deletion"][0]
    s = lambda frac_left_removed: 4 * (1 - frac_left_removed)
    p = lambda logit: np.exp(logit) / (np.exp(logit) + 2)
    # 2 of 8 steps = a quarter of the photo's pixels = half of its left half (no padding removed first)
    np.testing.assert_allclose(curve[[0, 2, 4, 8]], [p(s(0)), p(s(0.5)), p(s(1)), p(s(1))], rtol=1e-4)


class _ReadsTheBorder(HarModel):
    """Toy letterboxed model (a 20x40 photo -> columns 8..24 of a 32 px input) whose class-0 logit
    reads the letterbox border next to the photo (columns 4..8) and the photo itself."""

    def __init__(self):
        super().__init__(32, mean=(0.5,) * 3, std=(0.5,) * 3, config={"resize": "pad"})

    def forward(self, x):
        s = 8 * x[:, :, :, 4:8].mean((1, 2, 3)) + x[:, :, :, 8:24].pow(2).mean((1, 2, 3))
        return torch.stack([s, torch.zeros_like(s), torch.zeros_like(s)], 1)


def test_insertion_ends_and_deletion_starts_at_the_clean_probability_when_letterboxed():
    """The blurred insertion start must keep the border of the original input: once every photo
    pixel is inserted, the input is the clean one (a blurred border would leave it changed)."""
    from PIL import Image

    from har_demo.data.transforms import content_box

    model = _ReadsTheBorder().eval()
    photo = Image.new("RGB", (20, 40), (255, 255, 255))
    assert content_box(photo.size, 32, "pad") == (8, 0, 24, 32)
    x = model.preprocess([photo])
    with torch.no_grad():
        logits = model(x)[0].double()
    clean = float(torch.softmax(logits, 0)[0])  # temperature 1
    maps = [random_map((40, 20), 3), np.linspace(0, 1, 800, dtype=np.float32).reshape(40, 20)]
    curves = perturbation_curves(model, photo, maps, target=0, steps=4)
    np.testing.assert_allclose(curves["insertion"][:, -1], clean, rtol=0, atol=1e-6)
    np.testing.assert_allclose(curves["deletion"][:, 0], clean, rtol=0, atol=1e-6)
    assert abs(curves["insertion"][0, 0] - clean) > 1e-3  # the start is perturbed (the photo blurred)


# ---- drift against chance: checked against a plain-numpy re-implementation written here --------
def _person(mask: np.ndarray, box: tuple[int, int, int, int]):
    from har_demo.person import Person

    kp = np.zeros((33, 3), np.float32)
    h, w = mask.shape
    return Person(kp, kp.copy(), box, mask.astype(np.float32), 0.9, (w, h), others=False)


def _reference(sal, mask, view, box) -> dict:
    """Independent of har_demo: energy = the clipped map inside the view; chance = area share."""
    h, w = sal.shape
    in_view = np.zeros((h, w), bool)
    in_view[view[1] : view[3], view[0] : view[2]] = True
    in_box = np.zeros((h, w), bool)
    in_box[box[1] : box[3], box[0] : box[2]] = True
    energy = np.where(in_view, np.maximum(sal, 0.0), 0.0)
    out = {}
    for name, region in (("person", mask > 0.5), ("box", in_box)):
        share = energy[region].sum() / energy.sum()
        chance = np.logical_and(region, in_view).sum() / in_view.sum()
        out.update({f"{name}_share": share, f"{name}_chance": chance, f"{name}_lift": share / chance})
    r, c = np.unravel_index(np.argmax(energy), energy.shape)
    out["pointing"] = bool(mask[r, c] > 0.5)
    return out


def _scene(h=60, w=80):
    mask = np.zeros((h, w), np.float32)
    mask[20:50, 30:45] = 1.0  # the body: 450 px
    return mask, (25, 15, 50, 55)  # the person box around it, with a margin


@pytest.mark.parametrize("view", [None, (25, 15, 50, 55)], ids=["whole_photo", "person_crop"])
def test_a_uniform_map_over_what_the_model_sees_is_exactly_at_chance(view):
    from har_demo.explain.metrics import drift_scores
    from har_demo.person.crop import place_map

    mask, box = _scene()
    person = _person(mask, box)
    if view is None:
        sal = np.ones(mask.shape, np.float32)
        full = (0, 0, 80, 60)
    else:  # a crop model's map covers its view only (zero outside, as the explainers place it)
        sal = place_map(np.ones((view[3] - view[1], view[2] - view[0]), np.float32), view, (80, 60))
        full = view
    got = drift_scores(sal, person, view)
    assert got["person_lift"] == pytest.approx(1.0, abs=1e-9) and got["box_lift"] == pytest.approx(1.0, abs=1e-9)
    want = _reference(sal, mask, full, box)
    for key in ("person_share", "person_chance", "box_share", "box_chance"):
        assert got[key] == pytest.approx(want[key], abs=1e-9), key
    # the crop sees 1000 px of which 450 are body (45 %); the whole photo 4800 (9.4 %): raw shares differ 4.8x
    assert got["person_chance"] == pytest.approx(450 / 1000 if view else 450 / 4800)


def test_the_mask_itself_as_the_map_scores_share_one_and_points_at_the_body():
    from har_demo.explain.metrics import drift_scores

    mask, box = _scene()
    for view in (None, box):
        got = drift_scores(mask, _person(mask, box), view)
        assert got["person_share"] == pytest.approx(1.0) and got["pointing"] is True
        assert got["person_lift"] == pytest.approx(1.0 / got["person_chance"])


def test_pointing_is_the_peak_inside_the_view():
    from har_demo.explain.metrics import drift_scores

    mask, box = _scene()
    person = _person(mask, box)
    sal = np.full(mask.shape, 0.1, np.float32)
    sal[30, 35] = 1.0  # peak on the body
    assert drift_scores(sal, person)["pointing"] is True
    sal[5, 5] = 2.0  # a higher peak on the background: the whole photo points there ...
    assert drift_scores(sal, person)["pointing"] is False
    assert drift_scores(sal, person, box)["pointing"] is True  # ... outside a crop model's view
    sal[20:50, 30:45] = 0.0
    sal[5, 5] = 0.1
    assert drift_scores(sal, person, box)["pointing"] is False  # the view's peak on the box background
    empty = drift_scores(np.zeros(mask.shape, np.float32), person, box)
    assert empty["pointing"] is None and math.isnan(empty["person_share"]) and empty["person_chance"] == pytest.approx(0.45)


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("view", [None, (25, 15, 50, 55), (10, 0, 70, 40)])
def test_drift_scores_match_the_reference_on_random_maps(seed, view):
    from har_demo.explain.metrics import drift_scores

    rng = np.random.default_rng(seed)
    mask, box = _scene()
    sal = rng.random(mask.shape).astype(np.float32) ** 3 - 0.1  # some negative values: clipped away
    got = drift_scores(sal, _person(mask, box), view)
    want = _reference(sal.astype(np.float64), mask, view or (0, 0, 80, 60), box)
    assert set(got) == set(want)
    for key, value in want.items():
        assert got[key] == (value if key == "pointing" else pytest.approx(value, rel=1e-9)), key
    user = (0, 0, 40, 30)  # a user box replaces the person box; no person: person fields None
    boxed = drift_scores(sal, None, view, user)
    assert boxed["person_share"] is None and boxed["pointing"] is None
    assert boxed["box_lift"] == pytest.approx(_reference(sal.astype(np.float64), mask, view or (0, 0, 80, 60), user)["box_lift"], rel=1e-9)
