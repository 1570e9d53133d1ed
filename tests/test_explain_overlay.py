"""Overlays: image size kept, opacity 0 = the photo, 1 = the colormap, map kept separate."""

from __future__ import annotations

import numpy as np
import pytest

from har_demo.errors import HarError, UnknownName
from har_demo.explain.overlay import colorize, overlay
from har_demo.testing import sample_image


def _map(h, w):
    yy, xx = np.mgrid[0:h, 0:w]
    return ((xx + yy) / (h + w - 2)).astype(np.float32)


def test_overlay_has_the_image_size_and_is_rgb_uint8():
    img = sample_image(45, 30)
    out = overlay(img, _map(30, 45), 0.5)
    assert out.shape == (30, 45, 3) and out.dtype == np.uint8
    small = overlay(img, _map(7, 7), 0.5)  # a map of another size is resized to the image
    assert small.shape == (30, 45, 3)


def test_opacity_zero_is_the_image_and_one_is_the_colormap():
    img = sample_image(45, 30)
    sal = _map(30, 45)
    assert np.array_equal(overlay(img, sal, 0.0), np.asarray(img))
    assert np.array_equal(overlay(img, sal, 1.0), colorize(sal))
    half = overlay(img, sal, 0.5).astype(int)
    expected = (np.asarray(img).astype(int) + colorize(sal).astype(int)) / 2
    assert np.abs(half - expected).max() <= 1


def test_colormap_is_rgb_not_bgr():
    jet = colorize(np.array([[0.0, 1.0]], dtype=np.float32), "jet")
    assert jet[0, 0, 2] > jet[0, 0, 0]  # low values blue
    assert jet[0, 1, 0] > jet[0, 1, 2]  # high values red
    assert not np.array_equal(colorize(_map(4, 4), "jet"), colorize(_map(4, 4), "viridis"))


def test_bad_arguments():
    img = sample_image()
    with pytest.raises(HarError, match="opacity"):
        overlay(img, _map(4, 4), 1.5)
    with pytest.raises(UnknownName, match="unknown colormap 'nope'"):
        overlay(img, _map(4, 4), 0.5, "nope")
