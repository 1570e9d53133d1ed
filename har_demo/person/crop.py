"""The person box as a model's view of a photo, and maps placed back on the whole photo.

A model with ``person_crop`` on sees only the person box (with the finder's margin), letterboxed
like any photo; its explanation map covers that box, so ``place_map`` pastes it into a photo-size
map that is zero outside the box. No person found: the view is the whole photo (and says so).
"""

from __future__ import annotations

import cv2
import numpy as np
from PIL import Image

from .finder import Person, find_person_or_none


def view_box(image: Image.Image, person: Person | None) -> tuple[int, int, int, int]:
    """The photo region a person-crop model sees: the person box, or the whole photo."""
    if person is None:
        return 0, 0, image.width, image.height
    x0, y0, x1, y1 = person.box
    x0, y0 = max(0, min(int(x0), image.width - 1)), max(0, min(int(y0), image.height - 1))
    x1, y1 = max(x0 + 1, min(int(x1), image.width)), max(y0 + 1, min(int(y1), image.height))
    return x0, y0, x1, y1


def person_view(image: Image.Image, person: Person | None = None, find: bool = True) -> tuple[Image.Image, tuple[int, int, int, int], Person | None]:
    """``(view, box, person)``: the person crop of ``image`` (the whole photo when no person is
    found), where it lies in the photo, and the person (found here when ``find`` and not given)."""
    if person is None and find:
        person = find_person_or_none(image)
    box = view_box(image, person)
    if box == (0, 0, image.width, image.height):
        return image, box, person
    return image.crop(box), box, person


def place_map(saliency: np.ndarray, box: tuple[int, int, int, int], image_size: tuple[int, int]) -> np.ndarray:
    """A map over the view ``box`` (any shape) as an (H, W) map of the photo, zero outside the box."""
    w, h = int(image_size[0]), int(image_size[1])
    x0, y0, x1, y1 = (int(v) for v in box)
    out = np.zeros((h, w), np.float32)
    bw, bh = max(1, x1 - x0), max(1, y1 - y0)
    sal = np.asarray(saliency, np.float32)
    if sal.shape != (bh, bw):
        sal = cv2.resize(sal, (bw, bh), interpolation=cv2.INTER_LINEAR)
    out[y0 : y0 + bh, x0 : x0 + bw] = sal[: h - y0, : w - x0]
    return out
