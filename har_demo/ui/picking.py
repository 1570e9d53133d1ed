"""Pick one person of several, without any Gradio: whose cards and maps the compare tab shows.

A photo with several people (``Analysis.everyone``, most prominent first, numbered from 1 on the
photo) answers once per photo by default: the headline and the cards judge the person the
single-person finder follows (tagged *judged*). The visitor picks person N by clicking them on the
photo view (``person_at``: the person whose mask, else whose box, holds the click) or in the
"Person" choice (phones, keyboards, screen readers). Then every person-centred card (``effnet_person``,
``pose_mlp``, any ``person_crop`` model: ``explain.people.per_person``) is remade for person N - its
prediction, map (same method, same class), drift against N's mask and the pose sentence of N -
while whole-photo cards keep their one answer per photo.

The cards of a person are made once per analysis (``focus`` returns a new ``Analysis`` holding them,
so a stored or cached analysis is never changed in place); ``shown`` is the analysis as the page
draws it: the picked person's cards in place of the photo-level ones and that person as the one the
maps are scored against, so every existing renderer (cards, headline, share lines) works unchanged.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
from PIL import Image

from ..errors import HarError
from .analysis import Analysis, CardResult, run_card
from .bank import ModelBank
from .redact import echo
from .text import text

MASK_HIT = 0.5  # a click on the person mask (soft segmentation) above this picks that person


def auto_choice() -> str:
    """The choice meaning "no one picked": the person the finder follows (tagged *judged*)."""
    return text("controls", "person_auto")


def choices(analysis: Analysis | None) -> list[str]:
    """The "Person" choice's options: auto, then 1..N; [] for a photo with fewer than two people."""
    if analysis is None or len(analysis.everyone) < 2:
        return []
    return [auto_choice(), *(str(i) for i in range(1, len(analysis.everyone) + 1))]


def choice_value(index: int | None) -> str:
    return auto_choice() if index is None else str(index)


def choice_index(analysis: Analysis, value: Any) -> int | None:
    """A "Person" choice value -> person index (1-based) or None (auto); anything else -> one-line ``HarError``."""
    if value is None or value == "" or value == auto_choice():
        return None
    n = len(analysis.everyone)
    raw = str(value).strip()
    if raw.isdigit() and 1 <= int(raw) <= n:
        return int(raw)
    expected = f"{auto_choice()} or 1-{n}" if n > 1 else auto_choice()
    raise HarError(f"no person {echo(value, 20)} in this photo; choose {expected}")


def person_at(analysis: Analysis, x: float, y: float) -> int | None:
    """The person (1-based) under the point (x, y) in working-image pixels - the photo view's own
    pixels: the one whose mask is strongest there (above ``MASK_HIT``), else the smallest box that
    holds the point (a person in front of a larger one), else None (nobody there)."""
    people = analysis.everyone
    if len(people) < 2:
        return None
    h, w = analysis.image.shape[:2]
    best, best_mask = None, MASK_HIT
    for i, p in enumerate(people, 1):
        if not p.has_mask:
            continue
        mh, mw = p.mask.shape[:2]
        mx, my = int(x * mw / w), int(y * mh / h)
        if 0 <= mx < mw and 0 <= my < mh and float(p.mask[my, mx]) > best_mask:
            best, best_mask = i, float(p.mask[my, mx])
    if best is not None:
        return best
    sx, sy = w / people[0].image_size[0], h / people[0].image_size[1]
    inside = [(float((x1 - x0) * (y1 - y0)), i) for i, p in enumerate(people, 1)
              for x0, y0, x1, y1 in [(p.box[0] * sx, p.box[1] * sy, p.box[2] * sx, p.box[3] * sy)]
              if x0 <= x < x1 and y0 <= y < y1]  # fmt: skip
    return min(inside)[1] if inside else None


def pick_at(analysis: Analysis, x: float, y: float, current: int | None) -> int | None:
    """A click at (x, y) on the photo view: the person there, or ``current`` kept when nobody is there."""
    hit = person_at(analysis, x, y)
    return current if hit is None else hit


def is_personal(analysis: Analysis, name: str) -> bool:
    """Whether card ``name`` is about the picked person (a person-centred model), not the whole photo."""
    return analysis.selected is not None and name in analysis.focus.get(analysis.selected, {})


def person_cards(bank: ModelBank, analysis: Analysis, index: int, target: str | None) -> dict[str, CardResult]:
    """Every person-centred card of ``analysis`` remade for person ``index``: the same method as its
    photo-level card, class ``target`` (None = each model's own answer for that person)."""
    from ..explain.people import per_person

    person = analysis.everyone[index - 1]
    image = Image.fromarray(analysis.image)
    out = {}
    for name, card in analysis.cards.items():
        entry = bank.entries.get(name)
        if entry is None or entry.model is None or card.error or not per_person(entry.model):
            continue
        out[name] = run_card(entry, image, card.method, target, person=person)
    return out


def focus(bank: ModelBank, analysis: Analysis, index: int | None, target: str | None) -> Analysis:
    """``analysis`` with person ``index`` picked (None: back to the finder's person), its cards
    made unless this analysis already holds them. A new ``Analysis``: the stored one is not changed."""
    if index is None:
        return dataclasses.replace(analysis, selected=None)
    if not 1 <= index <= len(analysis.everyone):
        raise HarError(f"no person {index} in this photo ({len(analysis.everyone)} found)")
    held = analysis.focus
    if index not in held:
        held = {**held, index: person_cards(bank, analysis, index, target)}
    return dataclasses.replace(analysis, selected=index, focus=held)


def shown(analysis: Analysis | None) -> Analysis | None:
    """The analysis as the page draws it: with a person picked, that person's cards in place of the
    photo-level person-centred ones and that person as the one the maps are scored against."""
    if analysis is None or analysis.selected is None or not 1 <= analysis.selected <= len(analysis.everyone):
        return analysis
    cards = {**analysis.cards, **analysis.focus.get(analysis.selected, {})}
    return dataclasses.replace(analysis, cards=cards, person=analysis.everyone[analysis.selected - 1])


def selected_person(analysis: Analysis) -> Any:
    """The picked person (a ``Person``), or None."""
    return analysis.everyone[analysis.selected - 1] if analysis.selected else None


def colour_hex(index: int) -> str:
    """Person ``index``'s colour on the photo (1-based) as "#rrggbb" (the verdict line names it)."""
    from ..person.draw import person_colour

    return "#" + "".join(f"{int(c):02x}" for c in np.asarray(person_colour(index - 1)))
