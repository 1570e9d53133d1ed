"""Compare-tab logic without Gradio: one photo -> one card per model, re-blend and re-score from
stored maps, person box, lazy example cache."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from har_demo.errors import HarError, ImageLoadError
from har_demo.explain.base import explain_full
from har_demo.explain.metrics import box_mask, drift_score, pose_ambiguity
from har_demo.labels import CLASSES
from har_demo.ui import analysis as an
from tests.test_ui_support import example_photo


@pytest.fixture(scope="module")
def result(bank):
    return an.analyse(bank, example_photo())


def test_one_card_per_available_model_with_calibrated_probs_and_map(bank, result):
    assert list(result.cards) == bank.available_names()
    h, w = result.image.shape[:2]
    assert max(h, w) <= an.WORK_SIDE and result.size == Image.open(example_photo()).size
    for name, card in result.cards.items():
        assert card.error is None
        assert set(card.probs) == set(CLASSES) and abs(sum(card.probs.values()) - 1) < 1e-4
        assert card.label == max(card.probs, key=card.probs.get)
        assert card.method == bank.get(name).default_method
        assert card.target == card.label  # 'predicted' explains the model's own answer
        assert card.saliency.shape == (h, w)
        # a map that shows something: not all zeros, not one value everywhere (before: a [0, 1] check
        # on a map the library had clipped to [0, 1], which an empty map passes)
        sal = card.saliency.astype(np.float32)  # stored as float16 (whose sums overflow)
        assert sal.max() > 0 and float(sal.std()) > 1e-3, f"{name}: degenerate map"


def test_cards_match_the_library_explain_call(bank, result):
    image = Image.fromarray(result.image)
    for name, card in result.cards.items():
        exp = explain_full(bank.get(name).model, image, card.method)
        np.testing.assert_allclose([card.probs[c] for c in CLASSES], exp.probs, atol=1e-5)
        # the card's map is the library's (stored as float16: 2e-3 covers its rounding)
        np.testing.assert_allclose(card.saliency.astype(np.float32), exp.saliency, atol=2e-3)


def test_target_class_and_method_per_model(bank):
    res = an.analyse(bank, example_photo(), ["cnn_base", "fnn"], {"cnn_base": "occlusion"}, "sitting")
    assert res.cards["cnn_base"].method == "occlusion"
    assert res.cards["fnn"].method == bank.get("fnn").default_method
    assert {c.target for c in res.cards.values()} == {"sitting"}


def test_a_method_that_does_not_apply_fails_only_its_card(bank):
    res = an.analyse(bank, example_photo(), None, {"fnn": "gradcam"})
    assert "gradcam" in res.cards["fnn"].error and "fnn" in res.cards["fnn"].error
    assert res.cards["cnn_base"].error is None


def test_unexpected_model_failure_is_one_line_and_logged(bank, monkeypatch, caplog):
    entry = bank.get("cnn_base")
    monkeypatch.setattr(entry.model, "forward", lambda x: (_ for _ in ()).throw(RuntimeError("boom")))
    card = an.run_card(entry, Image.new("RGB", (40, 30)), None, None)
    assert card.error and "running cnn_base" in card.error and "RuntimeError" in card.error and "\n" not in card.error
    assert "boom" in caplog.text


def test_bad_photo_is_a_readable_error(bank, tmp_path):
    bad = tmp_path / "holiday.jpg"
    bad.write_bytes(b"this is not a jpeg")
    with pytest.raises(ImageLoadError, match="holiday.jpg"):
        an.analyse(bank, str(bad))


def test_big_photos_are_reduced_and_boxes_scaled(bank, tmp_path):
    big = tmp_path / "big.png"
    Image.new("RGB", (2000, 1000), (90, 120, 30)).save(big)
    res = an.analyse(bank, str(big), ["cnn_base"])
    assert res.image.shape[:2] == (an.WORK_SIDE // 2, an.WORK_SIDE) and res.size == (2000, 1000)
    assert res.to_work_box((1000, 500, 2000, 1000)) == (320, 160, 640, 320)


def test_rerun_changes_one_card_and_keeps_the_original(bank, result):
    new = an.rerun(bank, result, "cnn_base", "occlusion", "walking_running")
    assert new.cards["cnn_base"].method == "occlusion" and new.cards["cnn_base"].target == "walking_running"
    assert result.cards["cnn_base"].method == bank.get("cnn_base").default_method  # stored state untouched
    assert new.cards["fnn"] is result.cards["fnn"]
    again = an.rerun_all(bank, result, {}, "standing")
    assert {c.target for c in again.cards.values()} == {"standing"}


def test_blend_uses_stored_maps_only(bank, result, monkeypatch):
    monkeypatch.setattr(an, "run_card", lambda *a, **k: pytest.fail("blending must not run a model"))
    name = "cnn_base"
    assert np.array_equal(an.blend(result, name, 0.0), result.image)
    half, full = an.blend(result, name, 0.5), an.blend(result, name, 1.0)
    assert half.shape == result.image.shape and not np.array_equal(half, full)
    assert an.blend(result, "vit", 0.5) is None  # no card, no overlay


def test_box_is_drawn_on_the_overlay(result):
    plain = an.blend(result, "fnn", 0.5)
    boxed = an.blend(result, "fnn", 0.5, (10, 10, 100, 100))
    assert not np.array_equal(plain, boxed)
    assert np.array_equal(plain[200:, 200:], boxed[200:, 200:])  # only the outline changes


def test_ambiguity_and_drift_come_from_explain_metrics(result):
    card = result.cards["cnn_base"]
    amb = an.ambiguity(card)
    assert amb == pose_ambiguity([card.probs[c] for c in CLASSES])
    box = (0, 0, result.size[0] // 2, result.size[1])
    expected = drift_score(card.saliency.astype(np.float32), box_mask(card.saliency.shape, result.to_work_box(box)))
    assert an.drift(result, "cnn_base", box) == pytest.approx(expected)
    assert an.drift(result, "cnn_base", None) is None
    whole = an.drift(result, "cnn_base", (0, 0, *result.size))
    assert whole == pytest.approx(1.0) or np.isnan(whole)


@pytest.mark.parametrize(
    "text, size, expected",
    [
        ("", None, None),
        ("  ", None, None),
        ("10,20,30,40", None, (10, 20, 30, 40)),
        ("10.4, 20.6, 30, 40", (100, 100), (10, 21, 30, 40)),
        ("-5,0,500,50", (100, 80), (0, 0, 100, 50)),
    ],
)
def test_parse_box(text, size, expected):
    assert an.parse_box(text, size) == expected


@pytest.mark.parametrize("text", ["1,2,3", "a,b,c,d", "30,40,10,20", "200,200,300,300"])
def test_parse_box_errors_are_one_line(text):
    with pytest.raises(HarError) as err:
        an.parse_box(text, (100, 100))
    assert "\n" not in str(err.value) and ("box" in str(err.value))


def test_result_cache_only_caches_known_photos(bank, tmp_path):
    photo = example_photo()
    cache = an.ResultCache([photo])
    key = cache.key(photo, ["fnn"], {"fnn": None}, None)
    assert key is not None and cache.get(key) is None
    res = an.analyse(bank, photo, ["fnn"])
    cache.put(key, res)
    assert cache.get(key) is res and len(cache) == 1
    assert cache.key(photo, ["fnn"], {"fnn": "occlusion"}, None) != key  # settings are part of the key
    other = tmp_path / "other.jpg"
    Image.new("RGB", (8, 8)).save(other)
    assert cache.key(str(other), ["fnn"], {}, None) is None
    failed = an.Analysis(res.image, res.size, {"fnn": an.CardResult("fnn", error="x")})
    cache.put(cache.key(photo, ["cnn_base"], {}, None), failed)
    assert len(cache) == 1  # failures are never cached
