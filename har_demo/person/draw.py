"""Skeleton and mask-outline overlays (for the UI, ``person --out`` and the maps)."""

from __future__ import annotations

import cv2
import numpy as np
from PIL import Image

from .finder import BONES, Person

BONE_COLOUR = (0, 255, 128)
JOINT_COLOUR = (255, 64, 64)
MASK_COLOUR = (255, 220, 0)
BOX_COLOUR = (0, 160, 255)
MIN_VISIBILITY = 0.5


def draw_person(image: Image.Image, person: Person | None, skeleton: bool = True, mask_outline: bool = False,
                box: bool = False) -> Image.Image:
    """``image`` (RGB, any size: coordinates are scaled from the person's photo) with the person's
    bones and joints (visible landmarks only), optionally the mask outline and the person box."""
    if person is None:
        return image.convert("RGB")
    arr = np.ascontiguousarray(np.asarray(image.convert("RGB"), dtype=np.uint8).copy())
    sx, sy = image.width / max(1, person.image_size[0]), image.height / max(1, person.image_size[1])
    thick = max(1, round(max(image.size) / 250))
    if mask_outline and person.has_mask:
        mask = cv2.resize((person.mask > 0.5).astype(np.uint8), image.size, interpolation=cv2.INTER_NEAREST)
        contours, _ = cv2.findContours(mask, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
        cv2.drawContours(arr, contours, -1, MASK_COLOUR, thick)
    if box:
        x0, y0, x1, y1 = person.box
        cv2.rectangle(arr, (round(x0 * sx), round(y0 * sy)), (round(x1 * sx) - 1, round(y1 * sy) - 1), BOX_COLOUR, thick)
    if skeleton:
        pts = [(round(float(x) * sx), round(float(y) * sy), float(v)) for x, y, v in person.keypoints]
        for a, b in BONES:
            if pts[a][2] >= MIN_VISIBILITY and pts[b][2] >= MIN_VISIBILITY:
                cv2.line(arr, pts[a][:2], pts[b][:2], BONE_COLOUR, thick, cv2.LINE_AA)
        for x, y, v in pts[11:]:
            if v >= MIN_VISIBILITY:
                cv2.circle(arr, (x, y), thick + 1, JOINT_COLOUR, -1, cv2.LINE_AA)
    return Image.fromarray(arr)


# One colour per person (numbered 1..6 on the photo); colour-blind-safe Okabe-Ito hues.
PERSON_COLOURS = ((230, 159, 0), (86, 180, 233), (0, 158, 115), (240, 228, 66), (0, 114, 178), (213, 94, 0), (204, 121, 167))


def person_colour(index: int) -> tuple[int, int, int]:
    """The colour of person ``index`` (0-based) on the photo and in the verdict list."""
    return PERSON_COLOURS[index % len(PERSON_COLOURS)]


def draw_people(image: Image.Image, people: list[Person], skeleton: bool = True) -> Image.Image:
    """``image`` with every person's box (and skeleton) in its own colour and its number (1, 2, ...)
    at the box's top-left corner, in the order of ``people`` (most prominent first)."""
    arr = np.ascontiguousarray(np.asarray(image.convert("RGB"), dtype=np.uint8).copy())
    thick = max(1, round(max(image.size) / 250))
    font = max(0.4, max(image.size) / 900)
    for i, person in enumerate(people):
        colour = person_colour(i)
        sx, sy = image.width / max(1, person.image_size[0]), image.height / max(1, person.image_size[1])
        x0, y0, x1, y1 = person.box
        p0, p1 = (round(x0 * sx), round(y0 * sy)), (round(x1 * sx) - 1, round(y1 * sy) - 1)
        cv2.rectangle(arr, p0, p1, colour, thick)
        pts = [(round(float(x) * sx), round(float(y) * sy), float(v)) for x, y, v in person.keypoints]
        for a, b in BONES if skeleton else ():
            if pts[a][2] >= MIN_VISIBILITY and pts[b][2] >= MIN_VISIBILITY:
                cv2.line(arr, pts[a][:2], pts[b][:2], colour, thick, cv2.LINE_AA)
        label = str(i + 1)
        (tw, th), base = cv2.getTextSize(label, cv2.FONT_HERSHEY_SIMPLEX, font, thick)
        tx, ty = p0[0], max(th + base, p0[1])
        cv2.rectangle(arr, (tx, ty - th - base), (tx + tw + 2 * thick, ty), colour, -1)
        cv2.putText(arr, label, (tx + thick, ty - base), cv2.FONT_HERSHEY_SIMPLEX, font, (0, 0, 0), thick, cv2.LINE_AA)
    return Image.fromarray(arr)
