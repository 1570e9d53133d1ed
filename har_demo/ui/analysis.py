"""What the compare tab computes, without any Gradio: one photo -> one card per model.

Every number comes from the library: ``explain.explain_full`` (map + calibrated probabilities of
the same forward pass), ``explain.overlay`` (blending), ``explain.metrics`` (pose ambiguity,
background drift). The result (``Analysis``) keeps the working image and the *raw* maps so the
opacity slider and the person box only re-blend / re-score, never re-run a model.

The photo is decoded with ``data.io.load_image`` and reduced to ``WORK_SIDE`` px on its long
side before the models see it (model inputs are far smaller, 224 px for the pretrained ones: each
squashes or letterboxes its view - the photo, or the person box for a ``person_crop`` model - to
its square input); a person box is given in the original photo's pixels and scaled here.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from ..data.io import ImageSource, load_image_sized, safe_label
from ..errors import HarError
from ..labels import CLASSES
from ..person import Person
from .bank import ModelBank, ModelEntry
from .text import msg

log = logging.getLogger(__name__)

WORK_SIDE = 640  # long side of the image the UI runs, stores and shows
PREDICTED = None  # target_class value meaning "each model's predicted class"
BOX_COLOUR = (255, 255, 255)
CORNER_COLOUR = (255, 255, 0)


@dataclass
class CardResult:
    """One model's answer for one photo (``error`` set instead when it failed)."""

    name: str
    probs: dict[str, float] = field(default_factory=dict)
    method: str | None = None
    target: str | None = None  # class the map explains
    saliency: np.ndarray | None = None  # (h, w) float16 in [0, 1], working-image size
    seconds: float = 0.0
    error: str | None = None
    view_box: tuple[int, int, int, int] | None = None  # what the model saw (person-crop: the person box), working-image pixels; None = all

    @property
    def label(self) -> str | None:
        return max(self.probs, key=self.probs.get) if self.probs else None

    def summary(self) -> dict:
        """JSON-friendly view (API)."""
        out: dict = {"model": self.name}
        if self.error:
            out["error"] = self.error
            return out
        out.update(label=self.label, probs={k: round(v, 4) for k, v in self.probs.items()}, method=self.method, target=self.target)
        return out


@dataclass
class Analysis:
    """State of the compare tab for one photo: working image, original size, per-model cards."""

    image: np.ndarray  # (h, w, 3) uint8 RGB, long side <= WORK_SIDE
    size: tuple[int, int]  # original (W, H)
    cards: dict[str, CardResult] = field(default_factory=dict)
    person: Person | None = None  # the person finder's answer on the working image
    person_note: str = ""  # why there is no person (finder unavailable / nobody found), one line
    everyone: list = field(default_factory=list)  # every person (person.multi), most prominent first: only when several
    people: list = field(default_factory=list)  # ``people_cards`` records for ``everyone`` (per-person verdicts)
    selected: int | None = None  # the person (1-based in ``everyone``) the visitor picked; None = the finder's person
    focus: dict = field(default_factory=dict)  # person index -> {model: CardResult} of the person-centred cards (``picking``)

    @property
    def several_people(self) -> bool:
        """More than one person in the photo: the finder's mask shows others, or the multi-person
        finder found several (the mask check misses people it does not segment)."""
        return self.person is not None and (bool(self.person.others) or len(self.everyone) > 1)

    @property
    def scale(self) -> tuple[float, float]:
        h, w = self.image.shape[:2]
        return w / self.size[0], h / self.size[1]

    def to_work_box(self, box: tuple[int, int, int, int]) -> tuple[int, int, int, int]:
        """A box in original-photo pixels -> working-image pixels."""
        sx, sy = self.scale
        x0, y0, x1, y1 = box
        return round(x0 * sx), round(y0 * sy), max(round(x1 * sx), round(x0 * sx) + 1), max(round(y1 * sy), round(y0 * sy) + 1)


# ---- image ------------------------------------------------------------------------------------
def working_image(source: ImageSource) -> tuple[Image.Image, tuple[int, int]]:
    """Robustly decoded RGB image reduced to ``WORK_SIDE`` (while decoding: JPEG DCT scaling, no
    full-size conversion), and the original (W, H)."""
    return load_image_sized(source, name=_source_name(source), max_side=WORK_SIDE)


def _source_name(source: ImageSource) -> str | None:
    if isinstance(source, str):
        return source.replace("\\", "/").rsplit("/", 1)[-1]  # the file name, not the server path
    return None


# ---- one model --------------------------------------------------------------------------------
def run_card(entry: ModelEntry, image: Image.Image, method: str | None, target: str | None, person: Person | None = None) -> CardResult:
    """Prediction + map for one model; failures become ``CardResult.error`` (one line). ``person``
    (one of ``everyone``, for a person-centred model) judges that person instead of the finder's."""
    start = time.perf_counter()
    result = CardResult(entry.name)
    try:
        result = _run_card(entry, image, method, target, person)
    except HarError as err:
        result.error = str(err)
    except Exception as err:
        log.exception("model %s failed", entry.name)
        result.error = msg("unexpected", action=f"running {entry.name}", kind=type(err).__name__)
    result.seconds = time.perf_counter() - start
    return result


def _run_card(entry: ModelEntry, image: Image.Image, method: str | None, target: str | None, person: Person | None = None) -> CardResult:
    model = entry.model
    if model is None:
        raise HarError(f"{entry.name} is not available here: {entry.source}")
    if target is not None and target not in CLASSES:
        raise HarError(f"unknown class {safe_label(target, 60)!r}; expected one of: predicted, {', '.join(CLASSES)}")
    method = method or entry.default_method
    if method and method not in entry.methods:
        raise HarError(f"method {safe_label(method, 60)!r} does not apply to {entry.name}; choose one of: {', '.join(entry.methods) or 'none'}")
    with entry.lock:
        if method is None:  # no explanation method available: prediction only
            probs = model.predict_proba([image])[0] if person is None else model.predict_people(image, [person])[0]
            return CardResult(entry.name, _probs(probs))
        from ..explain.base import explain_full, make_explainer

        if person is None:
            exp = explain_full(model, image, method, target)
        else:  # one person of several: the same explainer on that person's view
            exp = make_explainer(method, model).explain(model, image, target, person=person)
    sal = np.asarray(exp.saliency, dtype=np.float32)
    if sal.shape != (image.height, image.width):
        sal = cv2.resize(sal, image.size, interpolation=cv2.INTER_LINEAR)
    view = tuple(int(v) for v in exp.view_box) if exp.view_box is not None else None
    return CardResult(entry.name, _probs(exp.probs), method, CLASSES[exp.target], sal.astype(np.float16), view_box=view)


def _probs(values: Sequence[float]) -> dict[str, float]:
    return {c: float(v) for c, v in zip(CLASSES, values)}


# ---- the whole tab ----------------------------------------------------------------------------
def analyse(
    bank: ModelBank,
    source: ImageSource,
    names: Sequence[str] | None = None,
    methods: Mapping[str, str | None] | None = None,
    target: str | None = PREDICTED,
    people: bool = True,
) -> Analysis:
    """Run every chosen model (default: all available) on one photo. ``people=False`` leaves out
    the people step (``with_people``: ``find_people``, ~0.1 s CPU even on a one-person photo): the
    app shows the answer first and finds the people in a follow-up event (``add_people``)."""
    image, size = working_image(source)
    person, note = locate_person(image)
    analysis = Analysis(np.asarray(image, dtype=np.uint8), size, person=person, person_note=note)
    for entry in bank.select(names):
        analysis.cards[entry.name] = run_card(entry, image, (methods or {}).get(entry.name), target)
    if people and person is not None:  # nobody for the single finder: the multi finder is not asked either
        with_people(bank, analysis, maps=False)
    return analysis


def add_people(bank: ModelBank, analysis: Analysis) -> Analysis | None:
    """The app's follow-up to ``analyse(..., people=False)``: a copy of ``analysis`` with everyone
    in the photo and the person-centred verdicts on each (``with_people``, no maps), or None when
    nothing changes - no person for the single finder, the people already there, or only one person
    found. A copy: a stored or cached analysis is never changed in place."""
    if analysis.person is None or analysis.everyone:
        return None
    found = with_people(bank, dataclasses.replace(analysis), maps=False)
    return found if len(found.everyone) > 1 else None


def with_people(bank: ModelBank, analysis: Analysis, maps: bool = True) -> Analysis:
    """Fill ``analysis.everyone`` / ``analysis.people`` (every person, the person-centred cards'
    verdicts on each) in place, when the multi-person finder sees more than one person. The app
    asks without ``maps`` (it shows the verdict list, not per-person maps: one batched forward
    pass per model); ``/predict`` adds each person's map and drift (``api.people_json``)."""
    everyone, _ = locate_people(Image.fromarray(analysis.image))
    if len(everyone) > 1:
        analysis.everyone = everyone
        analysis.people = people_cards(bank, analysis, maps=maps, people=everyone)
    return analysis


def rerun(bank: ModelBank, analysis: Analysis, name: str, method: str | None, target: str | None) -> Analysis:
    """Recompute one card (new method / class) on the stored working image."""
    entry = bank.require(name)
    card = run_card(entry, Image.fromarray(analysis.image), method, target)
    return _with_cards(analysis, {**analysis.cards, name: card})


def rerun_all(bank: ModelBank, analysis: Analysis, methods: Mapping[str, str | None], target: str | None) -> Analysis:
    """Recompute every card of ``analysis`` (e.g. for another target class)."""
    image = Image.fromarray(analysis.image)
    cards = {name: run_card(bank.require(name), image, methods.get(name), target) for name in analysis.cards}
    return _with_cards(analysis, cards)


def _with_cards(analysis: Analysis, cards: dict[str, CardResult]) -> Analysis:
    """New cards, the same photo and people; the picked person stays, its cards are made anew (``picking.focus``)."""
    return dataclasses.replace(analysis, cards=cards, focus={})


def locate_person(image: Image.Image) -> tuple[Person | None, str]:
    """(person, note): ``person.find_person`` on the working image (cached by content, so person-crop
    models reuse it), or None and one line saying why (finder missing, nobody found)."""
    from ..person import PersonFinderUnavailable, find_person

    try:
        person = find_person(image)  # one graph behind a lock in the finder: bounded memory under load
    except PersonFinderUnavailable as err:
        return None, str(err)
    except Exception as err:  # the cards still work without a person
        log.exception("person finder failed")
        return None, msg("unexpected", action="finding the person", kind=type(err).__name__)
    return person, "" if person is not None else msg("no_person")


class ResultCache:
    """Lazy cache of analyses for known photos (the examples): filled on first use, keyed by the
    file's content and every setting, in memory only (never stale after a restart/retrain)."""

    def __init__(self, paths: Sequence[str], capacity: int = 32) -> None:
        self._digests: dict[int, set[str]] = {}
        for p in paths:
            data = Path(p).read_bytes()
            self._digests.setdefault(len(data), set()).add(hashlib.sha1(data).hexdigest())
        self._items: OrderedDict[tuple, Analysis] = OrderedDict()
        self._capacity = capacity
        self._lock = threading.Lock()

    def key(self, source: ImageSource, names: Sequence[str], methods: Mapping[str, str | None], target: str | None) -> tuple | None:
        """A cache key when ``source`` is a file with the same bytes as a known photo, else None."""
        if not isinstance(source, (str, Path)):
            return None
        try:
            size = os.path.getsize(source)
            if size not in self._digests:
                return None
            digest = hashlib.sha1(Path(source).read_bytes()).hexdigest()
        except OSError:
            return None
        if digest not in self._digests[size]:
            return None
        return digest, tuple(names), tuple(sorted((k, v) for k, v in methods.items() if k in names)), target

    def get(self, key: tuple | None) -> Analysis | None:
        if key is None:
            return None
        with self._lock:
            found = self._items.get(key)
            if found is not None:
                self._items.move_to_end(key)
            return found

    def put(self, key: tuple | None, analysis: Analysis) -> None:
        if key is None or any(c.error for c in analysis.cards.values()):
            return
        with self._lock:
            self._items[key] = analysis
            self._items.move_to_end(key)
            while len(self._items) > self._capacity:
                self._items.popitem(last=False)

    def __len__(self) -> int:
        return len(self._items)


# ---- re-blending and scores from stored maps ----------------------------------------------------
def blend(analysis: Analysis, name: str, opacity: float, box: tuple[int, int, int, int] | None = None,
          skeleton: bool = False, mask_outline: bool = False) -> np.ndarray | None:
    """The card's overlay at ``opacity`` (with the person box drawn; optionally the person's
    skeleton and mask outline), or None without a map."""
    card = analysis.cards.get(name)
    if card is None or card.saliency is None:
        return None
    from ..explain.overlay import overlay

    out = np.ascontiguousarray(overlay(analysis.image, card.saliency.astype(np.float32), opacity=float(opacity)))
    out = mark_person(analysis, out, skeleton, mask_outline)
    if box is not None:
        _rectangle(out, analysis.to_work_box(box), BOX_COLOUR)
    return out


def mark_person(analysis: Analysis, arr: np.ndarray, skeleton: bool, mask_outline: bool, box: bool = False) -> np.ndarray:
    """``arr`` (working-image size) with the found person's skeleton / mask outline / box drawn."""
    if analysis.person is None or not (skeleton or mask_outline or box):
        return arr
    from ..person.draw import draw_person

    drawn = draw_person(Image.fromarray(arr), analysis.person, skeleton=skeleton, mask_outline=mask_outline, box=box)
    return np.array(drawn, dtype=np.uint8)  # writable: boxes are drawn on it next


def _rectangle(arr: np.ndarray, box: tuple[int, int, int, int], colour) -> None:
    x0, y0, x1, y1 = box
    thickness = max(1, round(max(arr.shape[:2]) / 250))
    cv2.rectangle(arr, (x0, y0), (x1 - 1, y1 - 1), (0, 0, 0), thickness + 2)  # dark edge: visible on white
    cv2.rectangle(arr, (x0, y0), (x1 - 1, y1 - 1), colour, thickness)


JUDGED_TAG = "judged"
PICKED_TAG = "picked"


def _tag(arr: np.ndarray, box: tuple[int, int, int, int], label: str) -> None:
    """A small white-on-dark label on the top edge of ``box`` (inside the photo)."""
    x0, y0 = int(box[0]), int(box[1])
    scale = max(0.4, max(arr.shape[:2]) / 1000)
    thick = max(1, round(scale * 2))
    (tw, th), base = cv2.getTextSize(label, cv2.FONT_HERSHEY_SIMPLEX, scale, thick)
    top = y0 - th - base - 4 if y0 - th - base - 4 >= 0 else y0
    x0 = min(max(0, x0), max(0, arr.shape[1] - tw - 4))
    cv2.rectangle(arr, (x0, top), (x0 + tw + 4, top + th + base + 4), (20, 20, 20), -1)
    cv2.putText(arr, label, (x0 + 2, top + th + 2), cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255), thick, cv2.LINE_AA)


def photo_view(analysis: Analysis, box: tuple[int, int, int, int] | None = None, corner: tuple[int, int] | None = None,
               skeleton: bool = True, mask_outline: bool = False) -> np.ndarray:
    """The photo as the headline shows it: the person's skeleton (and mask outline), the user's
    person box (white) or else the finder's box (blue, tagged "judged" when the finder saw more
    people), and a pending first corner (a cross). Several people found by the multi-person finder:
    each numbered, with its box and skeleton in its own colour."""
    if len(analysis.everyone) > 1:
        from ..person.draw import draw_people

        out = np.array(draw_people(Image.fromarray(analysis.image), analysis.everyone, skeleton), dtype=np.uint8)
    else:
        out = mark_person(analysis, np.ascontiguousarray(analysis.image.copy()), skeleton, mask_outline, box=box is None)
    if box is not None:
        _rectangle(out, analysis.to_work_box(box), BOX_COLOUR)
    elif analysis.several_people:
        # several people: say which one the maps are checked against (the finder's, or the one the visitor picked)
        _tag(out, analysis.person.box, PICKED_TAG if analysis.selected else JUDGED_TAG)
    if corner is not None:
        sx, sy = analysis.scale
        x, y = round(corner[0] * sx), round(corner[1] * sy)
        r = max(6, round(max(out.shape[:2]) / 40))
        for colour, width in (((0, 0, 0), 5), (CORNER_COLOUR, 2)):
            cv2.line(out, (x - r, y), (x + r, y), colour, width)
            cv2.line(out, (x, y - r), (x, y + r), colour, width)
        cv2.circle(out, (x, y), r // 2, CORNER_COLOUR, 2)
    return out


def photo_point(analysis: Analysis, x: float, y: float) -> tuple[int, int]:
    """A click on the working-size photo view -> original-photo pixels."""
    sx, sy = analysis.scale
    return round(x / sx), round(y / sy)


def shares(analysis: Analysis, name: str, box: tuple[int, int, int, int] | None = None) -> dict:
    """Where the card's map looks, against chance: ``explain.metrics.drift_scores`` over the
    model's view (``person_share`` / ``person_chance`` / ``person_lift``, ``box_*``, ``pointing``)
    plus ``from`` - with a user box the box fields are inside that box (``from: "your box"``; it
    overrides the finder: person fields None), else the found person's mask and box (``from:
    "person finder"``); None values without a map or a person; NaN shares for an empty map."""
    from ..explain.metrics import DRIFT_FIELDS, drift_scores

    card = analysis.cards.get(name)
    empty = {**dict.fromkeys(DRIFT_FIELDS), "from": None}
    if card is None or card.saliency is None:
        return empty
    sal = card.saliency.astype(np.float32)
    if box is not None:
        return {**drift_scores(sal, None, card.view_box, analysis.to_work_box(box)), "from": "your box"}
    if analysis.person is None:
        return empty
    return {**drift_scores(sal, analysis.person, card.view_box), "from": "person finder"}


def ambiguity(card: CardResult) -> dict | None:
    """``explain.metrics.pose_ambiguity`` of a card's probabilities (top-2 margin, sitting<->standing
    ``flag``), None without probabilities."""
    if not card.probs:
        return None
    from ..explain.metrics import pose_ambiguity

    return pose_ambiguity([card.probs[c] for c in CLASSES])


def drift(analysis: Analysis, name: str, box: tuple[int, int, int, int] | None) -> float | None:
    """Drift score of the card's map for a person box in original-photo pixels: the share of the
    map's energy inside the box (``explain.metrics.drift_score``; low = looks at the background).
    None without a box or map; NaN for an empty map."""
    card = analysis.cards.get(name)
    if box is None or card is None or card.saliency is None:
        return None
    from ..explain.metrics import box_mask, drift_score

    sal = card.saliency.astype(np.float32)
    return float(drift_score(sal, box_mask(sal.shape, analysis.to_work_box(box))))


# ---- the person box -----------------------------------------------------------------------------
def parse_box(text: str | None, size: tuple[int, int] | None = None) -> tuple[int, int, int, int] | None:
    """``"x0, y0, x1, y1"`` in photo pixels (``explain.metrics.parse_box``) clipped to
    ``size=(W, H)`` and rounded; empty text -> None; a malformed box -> one-line ``HarError``."""
    if text is None or not str(text).strip():
        return None
    from ..explain.metrics import parse_box as parse

    x0, y0, x1, y1 = parse(str(text).strip())
    if size is not None:
        w, h = size
        x0, x1 = min(max(x0, 0.0), w), min(max(x1, 0.0), w)
        y0, y1 = min(max(y0, 0.0), h), min(max(y1, 0.0), h)
    box = (round(x0), round(y0), round(x1), round(y1))
    if box[2] - box[0] < 1 or box[3] - box[1] < 1:
        where = f" inside the {size[0]}x{size[1]} photo" if size else ""
        raise HarError(f"person box {str(text).strip()[:40]!r} has no area{where}")
    return box


def format_box(box: tuple[int, int, int, int]) -> str:
    return ", ".join(str(v) for v in box)


# ---- everyone in the photo ---------------------------------------------------------------------
def locate_people(image: Image.Image) -> tuple[list[Person], str]:
    """(people, note): ``person.multi.find_people`` on the working image (most prominent first), or
    [] and one line saying why (finder missing, nobody found, finder failed)."""
    from ..person import PersonFinderUnavailable
    from ..person.multi import find_people

    try:
        people = find_people(image)
    except PersonFinderUnavailable as err:
        return [], str(err)
    except Exception as err:
        log.exception("multi-person finder failed")
        return [], msg("unexpected", action="finding the people", kind=type(err).__name__)
    return people, "" if people else msg("no_person")


def people_cards(bank: ModelBank, analysis: Analysis, names: Sequence[str] | None = None, maps: bool = True,
                 people: Sequence[Person] | None = None) -> list[dict]:
    """Every person in the photo with each person-centred model's verdict on them.

    One record per person, most prominent first: ``{"index", "box" (original photo pixels), "score",
    "pose", "models": [{"model", "label", "probs", "method", drift fields..., "saliency"}]}``. With
    ``maps`` each model explains each person with its default method and the drift fields come from
    ``explain.metrics.drift_scores`` on that person's map (``saliency``: working-image size, float16).
    Whole-photo models are left out: they have one answer per photo (the cards). A model that fails
    on a person gives ``{"model", "error"}`` (one line)."""
    from ..explain.people import explain_people, per_person, person_rows

    image = Image.fromarray(analysis.image)
    if people is None:
        people, _note = locate_people(image)
    if not people:
        return []
    sx, sy = analysis.scale
    records = [{"index": i, "box": [round(p.box[0] / sx), round(p.box[1] / sy), round(p.box[2] / sx), round(p.box[3] / sy)],
                "score": round(float(p.score), 4), "models": []} for i, p in enumerate(people, 1)]  # fmt: skip
    chosen = list(names) if names is not None else list(analysis.cards)
    for entry in bank.select(chosen):
        model = entry.model
        if model is None or not per_person(model):
            continue
        try:
            with entry.lock:
                method = entry.default_method if maps else None
                rows = explain_people(model, image, people, method) if method else person_rows(model, image, people)
        except HarError as err:
            rows = [{"error": str(err)}] * len(people)
        except Exception as err:
            log.exception("per-person %s failed", entry.name)
            rows = [{"error": msg("unexpected", action=f"running {entry.name} per person", kind=type(err).__name__)}] * len(people)
        for rec, row in zip(records, rows):
            rec.setdefault("pose", row.get("pose"))
            out = {"model": entry.name, **{k: v for k, v in row.items() if k not in ("index", "box", "score", "pose")}}
            if "saliency" in out:
                out["saliency"] = np.asarray(out["saliency"], np.float32).astype(np.float16)
                out["method"] = method
            rec["models"].append(out)
    if any("pose" not in r or r["pose"] is None for r in records):
        from ..person.geometry import describe_pose

        for rec, person in zip(records, people):
            rec["pose"] = rec.get("pose") or describe_pose(person)
    return records


def people_line(records: Sequence[dict], model: str | None = None) -> str:
    """The compact per-person verdict list under the headline, "1: sitting 94 %, 2: standing 81 %",
    from ``model``'s verdicts (default: the first person-centred model that answered)."""
    from ..explain.people import verdict_line

    rows = []
    for rec in records:
        verdicts = [m for m in rec["models"] if "label" in m and (model is None or m["model"] == model)]
        if verdicts:
            rows.append({"index": rec["index"], "label": verdicts[0]["label"], "probs": verdicts[0]["probs"]})
    return verdict_line(rows)
