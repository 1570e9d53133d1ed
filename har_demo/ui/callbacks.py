"""Gradio callbacks of the UI tabs: thin adapters from component values to ``analysis`` /
``batch`` / ``cards`` and back to component updates.

Every callback returns a ``{component: value}`` dict, so a failure can update only the status
line: a ``HarError`` becomes its own one-line message, anything unexpected is logged with its
traceback and shown as one generic line (``gr.Warning`` + the status Markdown). The server keeps
answering either way.
"""

from __future__ import annotations

import functools
import logging
import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gradio as gr
from gradio.utils import get_upload_folder

from ..errors import HarError
from ..labels import CLASSES
from . import analysis as an
from . import batch as bt
from . import picking as pk
from .bank import ModelBank
from .cards import model_cards_markdown, reliability_plot, results_markdown
from .gpu import gpu
from .redact import echo, redact_paths
from .render import card_info, label_value, photo_note, status_line, verdict_markdown
from .sessions import AnalysisStore, trim_after_burst
from .text import examples, examples_dir, msg, text
from .trust import headline, ranked

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class View:
    """How the stored maps are drawn: opacity, person box (photo pixels), skeleton, mask outline."""

    opacity: float = 0.5
    box: tuple[int, int, int, int] | None = None
    skeleton: bool = True
    mask: bool = False


MAX_TEXT = 2000  # the longest text a UI control sends (a box, a choice); longer -> refused unread


def bounded_inputs(args: tuple) -> None:
    """The UI events are callable through ``/queue/join`` by anyone who knows their ``fn_index``: no
    text value longer than ``MAX_TEXT`` and no list longer than the batch's file cap reaches a
    callback (one ``HarError`` line echoing at most ``ECHO_CHARS`` characters)."""
    from .limits import MAX_FILES_PER_REQUEST

    for value in args:
        if isinstance(value, str) and len(value) > MAX_TEXT:
            raise HarError(f"a value of {len(value)} characters ({echo(value)}) is over the {MAX_TEXT} character limit")
        if isinstance(value, (list, tuple)) and len(value) > MAX_FILES_PER_REQUEST:
            raise HarError(f"a list of {len(value)} values is over the limit of {MAX_FILES_PER_REQUEST}")
        if isinstance(value, (list, tuple)):
            bounded_inputs(tuple(v for v in value if isinstance(v, str)))


def click_point(index: Any) -> tuple[float, float]:
    """A select event's (x, y): two finite numbers within 0..100,000 px; else one-line ``HarError``."""
    try:
        x, y = (float(v) for v in list(index)[:2])
    except (TypeError, ValueError, OverflowError):
        raise HarError(f"a click position must be two numbers, got {echo(index)}") from None
    if not all(math.isfinite(v) and 0 <= v <= 100_000 for v in (x, y)):
        raise HarError(f"a click position must be two numbers from 0 to 100000, got {echo(index)}")
    return x, y


def guarded(action: str) -> Callable:
    """Turn any exception of a callback into one readable line in the status Markdown; inputs are
    bounded first (``bounded_inputs``)."""

    def deco(method: Callable) -> Callable:
        @functools.wraps(method)
        def wrapper(self: Callbacks, *args: Any, **kwargs: Any) -> dict:
            try:
                bounded_inputs(args)
                out = method(self, *args, **kwargs)
                # "nothing to change" (e.g. a redraw before any photo was analysed): Gradio refuses an
                # empty dict for an event with several outputs ("didn't return enough output values");
                # a fresh dict each time (callers add to what another callback returned)
                return {self.status_for(method.__name__): gr.skip()} if isinstance(out, dict) and not out else out
            except HarError as err:
                message = redact_paths(err)
            except Exception as err:
                log.exception("%s failed", action)
                message = msg("unexpected", action=action, kind=type(err).__name__)
            gr.Warning(message)
            return {self.status_for(method.__name__): message}

        return wrapper

    return deco


def target_value(choice: str | None) -> str | None:
    """Radio value -> class name, or None for 'predicted'."""
    if not choice or choice == text("controls", "target_predicted"):
        return None
    if choice not in CLASSES:
        raise HarError(f"unknown class {echo(choice)}; expected one of: {text('controls', 'target_predicted')}, {', '.join(CLASSES)}")
    return choice


def upload_path(value: Any) -> str | None:
    """The server path of an image input - a raw Gradio payload (``{"path": ...}``; the compare
    tab's events skip Gradio's own decoding so that a bad file gets *our* one-line message) or a
    path. Only files inside Gradio's upload folder or the examples folder are accepted."""
    if value is None or value == "":
        return None
    path = value.get("path") if isinstance(value, dict) else value
    if not isinstance(path, (str, os.PathLike)) or not str(path):
        raise HarError("the photo upload did not arrive; upload it again")
    return checked_upload(path)


def checked_upload(path: str | os.PathLike) -> str:
    """``path`` resolved, when it lies in Gradio's upload folder or the examples folder; else a
    one-line ``HarError`` naming only the file (a visitor never reads another server file)."""
    resolved = Path(path).resolve()
    roots = [Path(get_upload_folder()).resolve(), examples_dir()]
    if not any(resolved == r or r in resolved.parents for r in roots):
        raise HarError(f"{echo(resolved.name)}: not an uploaded file; upload it through the app")
    return str(resolved)


def opacity_value(value: Any, default: float = 0.5) -> float:
    """The opacity as a float in [0, 1] (None / empty -> ``default``); else one-line ``HarError``."""
    if value is None or value == "":
        return default
    try:
        op = float(value)
    except (TypeError, ValueError):
        op = float("nan")
    if not 0.0 <= op <= 1.0:  # also NaN
        raise HarError(f"opacity must be a number from 0 to 1, got {echo(value, 30)}")
    return op


@gpu
def _analyse(bank: ModelBank, image: str, names: list[str], methods: dict, target: str | None, people: bool = True) -> an.Analysis:
    return an.analyse(bank, image, names, methods, target, people=people)


@gpu
def _add_people(bank: ModelBank, analysis: an.Analysis) -> an.Analysis | None:
    return an.add_people(bank, analysis)


@gpu
def _rerun(bank: ModelBank, analysis: an.Analysis, name: str, method: str | None, target: str | None) -> an.Analysis:
    return an.rerun(bank, analysis, name, method, target)


@gpu
def _rerun_all(bank: ModelBank, analysis: an.Analysis, methods: dict, target: str | None) -> an.Analysis:
    return an.rerun_all(bank, analysis, methods, target)


@gpu
def _focus(bank: ModelBank, analysis: an.Analysis, index: int | None, target: str | None) -> an.Analysis:
    return pk.focus(bank, analysis, index, target)


@gpu
def _evaluate(bank: ModelBank, paths: list[str], names: list[str], progress: Callable | None, cancelled: Callable | None = None) -> bt.BatchResult:
    return bt.evaluate_batch(bank, paths, names, progress, cancelled=cancelled)


def client_gone(blocks: Any, request: Any) -> Callable[[], bool] | None:
    """A check "has the client of this running event gone away?" for long work. Gradio's queue
    marks a session's running events not ``alive`` when its stream disconnects, and a cancel
    (``/cancel``, ``job.cancel()``) takes the event out of the running jobs; the queued ones it
    drops itself. None when it cannot be told (no request / another Gradio layout)."""
    session = getattr(request, "session_hash", None)
    queue = getattr(blocks, "_queue", None)
    if not session or queue is None:
        return None

    def running() -> list:
        try:
            return [e for jobs in queue.active_jobs if jobs for e in jobs if e.session_hash == session]
        except (AttributeError, TypeError):
            return []

    mine = running()  # the events of this session running now (this one among them)
    if not mine:
        return None

    def gone() -> bool:
        still = {id(e) for e in running()}
        return all(id(e) not in still or not getattr(e, "alive", True) for e in mine)

    return gone


class Callbacks:
    """Callbacks bound to one bank and one built layout (``layout.UI``)."""

    def __init__(self, bank: ModelBank, ui: Any, cache: an.ResultCache | None = None) -> None:
        self.bank = bank
        self.ui = ui
        self.blocks: Any = None  # the Blocks (set by layout.build_demo): its queue tells a gone client
        self.card_names = list(ui.cards)
        self.cache = cache if cache is not None else an.ResultCache([e["path"] for e in examples()])
        self.store = AnalysisStore()  # the analyses; a session's gr.State holds only its key

    def held(self, state: Any) -> an.Analysis | None:
        """The analysis a session's state names (a key into ``store``; an ``Analysis`` as is)."""
        return state if isinstance(state, an.Analysis) else self.store.get(state)

    def status_for(self, callback: str) -> Any:
        """The Markdown a failed callback writes its one line to."""
        return {"batch": self.ui.batch_status, "cards": self.ui.cards_md, "reliability": self.ui.cards_md}.get(callback, self.ui.status)

    # --- compare tab ---------------------------------------------------------------------------
    def _card_updates(self, analysis: an.Analysis, view: View, names=None, labels=True) -> dict:
        analysis = pk.shown(analysis)  # a picked person: their cards in place of the photo-level ones
        out: dict = {}
        for name in names or self.card_names:
            card_ui = self.ui.cards[name]
            card = analysis.cards.get(name)
            if labels:
                out[card_ui.column] = gr.update(visible=card is not None)
                out[card_ui.label] = label_value(card)
            out[card_ui.overlay] = an.blend(analysis, name, view.opacity, view.box, view.skeleton, view.mask) if card is not None else None
            out[card_ui.info] = card_info(analysis, card, view.box)
        return out

    def _headline(self, analysis: an.Analysis, view: View, corner=None, cards: dict | None = None, best_map: bool = True) -> dict:
        """Verdict, the marked photo and the leading model's map (taken from ``cards``, the card
        updates just made, when the lead's overlay is among them: not blended twice; left out
        without ``best_map``)."""
        analysis = pk.shown(analysis)
        lead = headline([n for n in analysis.cards if not analysis.cards[n].error], self.ui.accuracy) or next(iter(analysis.cards), None)
        out = {
            self.ui.verdict: verdict_markdown(analysis, lead, self.ui.accuracy, view.box),
            self.ui.photo_view: an.photo_view(analysis, view.box, corner, view.skeleton, view.mask),
            self.ui.photo_note: photo_note(analysis, view.box),
        }
        if best_map:
            key = self.ui.cards[lead].overlay if lead in self.ui.cards else None
            if cards and key in cards:
                out[self.ui.best_map] = cards[key]
            else:
                out[self.ui.best_map] = an.blend(analysis, lead, view.opacity, view.box, view.skeleton, view.mask) if lead else None
        return out

    def _view(self, analysis: an.Analysis | None, opacity, box_text, skeleton, mask) -> tuple[View, str]:
        """The display settings; a bad box is reported (returned message + toast), not fatal."""
        box, box_msg = None, ""
        try:
            box = an.parse_box(box_text, analysis.size if analysis is not None else None)
        except HarError as err:
            gr.Warning(str(err))
            box_msg = str(err)
        return View(opacity_value(opacity), box, bool(skeleton), bool(mask)), box_msg

    def _methods(self, method_values) -> dict[str, str | None]:
        return {name: (value or None) for name, value in zip(self.card_names, method_values)}

    @guarded("analysing the photo")
    def analyse(self, image, models, target, opacity, box_text, skeleton, mask, *method_values) -> dict:
        """The answer first: every card and the verdict without the people step (``find_people``
        costs ~0.1 s CPU even on a one-person photo); ``people`` follows as its own event."""
        image = upload_path(image)
        if not image:
            raise HarError(msg("no_image"))
        names = [n for n in (models or []) if n in self.ui.cards]
        if not names:
            raise HarError(msg("no_models"))
        methods = self._methods(method_values)
        target_cls = target_value(target)
        start = time.perf_counter()
        key = self.cache.key(image, names, methods, target_cls)
        analysis = self.cache.get(key)
        cached = analysis is not None
        if analysis is None:
            analysis = _analyse(self.bank, image, names, methods, target_cls, people=False)
            self.cache.put(key, analysis)
            trim_after_burst()  # the decode's and the models' freed buffers go back to the OS, as after /predict
        return self._full_update(analysis, opacity, box_text, skeleton, mask, time.perf_counter() - start, cached=cached)

    def _full_update(self, analysis: an.Analysis, opacity, box_text, skeleton, mask, seconds: float, cached: bool = False) -> dict:
        view, box_msg = self._view(analysis, opacity, box_text, skeleton, mask)
        out = self._card_updates(analysis, view)
        out.update(self._headline(analysis, view, cards=out))
        out[self.ui.state] = self.store.put(analysis)
        out[self.ui.corner] = None
        out[self.ui.person_pick] = self._person_choice(analysis)
        out[self.ui.status] = " ".join(filter(None, [status_line(analysis, seconds, cached=cached), box_msg]))
        return out

    @guarded("finding the people")
    def people(self, state, opacity, box_text, skeleton, mask) -> dict:
        """Analyse's follow-up: everyone in the photo found on the stored analysis (``an.add_people``,
        a copy), and only what that changes redrawn - the verdict with the per-person list, the
        photo view with the numbered people, the photo note, the "Person" choice and the state key.
        No analysis, no person or a single person: nothing changes."""
        state = self.held(state)
        if state is None:
            return {}
        new = _add_people(self.bank, state)
        if new is None:
            return {}
        view, _ = self._view(new, opacity, box_text, skeleton, mask)
        out = self._headline(new, view, best_map=False)  # the lead's map is about the same person: not redrawn
        out[self.ui.state] = self.store.put(new)
        out[self.ui.person_pick] = self._person_choice(new)
        return out

    @staticmethod
    def _person_choice(analysis: an.Analysis) -> dict:
        """The "Person" row for ``analysis``: auto and 1..N with the pick, hidden for fewer than two people."""
        options = pk.choices(analysis)
        return gr.update(choices=options, value=pk.choice_value(analysis.selected) if options else None, visible=bool(options))

    def _redraw(self, state: an.Analysis, view: View, corner=None) -> dict:
        out = self._card_updates(state, view, names=[n for n in state.cards if n in self.ui.cards], labels=False)
        out.update(self._headline(state, view, corner, cards=out))
        return out

    @guarded("redrawing the maps")
    def redraw(self, state: an.Analysis | None, opacity, box_text, skeleton, mask) -> dict:
        """Opacity / skeleton / outline: redraw from the stored maps; no model runs."""
        state = self.held(state)
        if state is None:
            return {}
        view, _ = self._view(state, opacity, box_text, skeleton, mask)
        return self._redraw(state, view)

    @guarded("setting the person box")
    def box_changed(self, state: an.Analysis | None, opacity, box_text, skeleton=True, mask=False) -> dict:
        """Person box: redraw overlays and where-it-looked scores from the stored maps (a user box
        overrides the person finder)."""
        state = self.held(state)
        if state is None:
            an.parse_box(box_text)  # report a malformed box even before a photo is analysed
            return {}
        view, box_msg = self._view(state, opacity, box_text, skeleton, mask)
        out = self._redraw(state, view)
        out[self.ui.status] = box_msg or (msg("box_set", box=an.format_box(view.box)) if view.box else msg("box_cleared"))
        return out

    def method_changed(self, name: str) -> Callable:
        """The callback for one card's method dropdown: re-run that model only."""

        @guarded(f"changing the map method of {name}")
        def callback(self, state, method, target, opacity, box_text, skeleton=True, mask=False) -> dict:
            state = self.held(state)
            if state is None or name not in state.cards:
                return {}
            start = time.perf_counter()
            new = _rerun(self.bank, state, name, method or None, target_value(target))
            if new.selected is not None:  # the picked person's cards follow the new method
                new = _focus(self.bank, new, new.selected, target_value(target))
            view, _ = self._view(new, opacity, box_text, skeleton, mask)
            out = self._card_updates(new, view, names=[name])
            out.update(self._headline(new, view, cards=out))
            out[self.ui.state] = self.store.put(new)
            out[self.ui.status] = status_line(new, time.perf_counter() - start, ran=1)
            return out

        return functools.partial(callback, self)

    @guarded("changing the explained class")
    def target_changed(self, state, target, opacity, box_text, skeleton, mask, *method_values) -> dict:
        """Target class: recompute every card's map on the stored photo."""
        state = self.held(state)
        if state is None:
            return {}
        start = time.perf_counter()
        new = _rerun_all(self.bank, state, self._methods(method_values), target_value(target))
        if new.selected is not None:  # the picked person's cards follow the new class
            new = _focus(self.bank, new, new.selected, target_value(target))
        return self._full_update(new, opacity, box_text, skeleton, mask, time.perf_counter() - start)

    @guarded("checking the photo")
    def photo_uploaded(self, image) -> dict:
        """A new upload: decode it at once, so a bad file is named now, not at Analyse."""
        path = upload_path(image)
        if not path:
            return {}
        _pil, size = an.working_image(path)
        return {self.ui.status: msg("photo_ready", w=size[0], h=size[1])}

    def _corner(self, corner, state, opacity, box_text, skeleton, mask, x: int, y: int, first: str = "box_corner") -> dict:
        """Two clicks = two opposite corners (original-photo pixels) of the person box; the first
        one is drawn on the photo view until the second arrives (``first``: its status message)."""
        state = self.held(state)
        if corner is None:
            out: dict = {self.ui.corner: (x, y), self.ui.status: msg(first, x=x, y=y)}
            if state is not None:
                view, _ = self._view(state, opacity, "", skeleton, mask)
                out[self.ui.photo_view] = an.photo_view(pk.shown(state), None, (x, y), view.skeleton, view.mask)
            return out
        box = an.format_box((min(corner[0], x), min(corner[1], y), max(corner[0], x), max(corner[1], y)))
        out = self.box_changed(state, opacity, box, skeleton, mask)
        out.update({self.ui.corner: None, self.ui.box: box})
        return out

    @guarded("reading the click")
    def corner_clicked(self, corner, state, opacity, box_text, skeleton, mask, evt: gr.SelectData) -> dict:
        """A click on the uploaded photo (its own pixels)."""
        x, y = (round(v) for v in click_point(evt.index))
        return self._corner(corner, state, opacity, box_text, skeleton, mask, x, y)

    @guarded("reading the click")
    def view_corner_clicked(self, corner, state, opacity, box_text, skeleton, mask, evt: gr.SelectData) -> dict:
        """A click on the headline's photo view (its working-image pixels). Several people and no
        first corner pending: a click on a person picks them (the "Person" choice is set; its change
        event remakes the cards); elsewhere it is a corner of the person box (photo pixels)."""
        state = self.held(state)
        if state is None:
            return {}
        wx, wy = click_point(evt.index)
        if corner is None:
            hit = pk.person_at(state, wx, wy)
            if hit is not None:
                return {self.ui.person_pick: pk.choice_value(hit), self.ui.status: msg("person_clicked", n=hit)}
        x, y = an.photo_point(state, wx, wy)
        first = "box_corner_people" if len(state.everyone) > 1 else "box_corner"  # nobody there: say a click on one picks them
        return self._corner(corner, state, opacity, box_text, skeleton, mask, x, y, first)

    @guarded("picking a person")
    def person_picked(self, state, choice, target, opacity, box_text, skeleton, mask) -> dict:
        """The "Person" choice (set by a click on a person, or chosen): remake the person-centred
        cards for that person (``picking.focus``; made once per photo and person), redraw the rest."""
        state = self.held(state)
        if state is None:  # nothing to remake (e.g. Analyse setting the choice back to auto)
            return {}
        index = pk.choice_index(state, choice)
        if index == state.selected:
            return {}
        start = time.perf_counter()
        new = _focus(self.bank, state, index, target_value(target))
        view, box_msg = self._view(new, opacity, box_text, skeleton, mask)
        out = self._card_updates(new, view)
        out.update(self._headline(new, view, cards=out))
        out[self.ui.state] = self.store.put(new)
        if index is None:
            out[self.ui.status] = msg("person_auto")
        else:
            count = len(new.focus.get(index, {}))
            out[self.ui.status] = msg("person_picked", n=index, count=count, seconds=time.perf_counter() - start)
        if box_msg:
            out[self.ui.status] += " " + box_msg
        return out

    def clear_box(self) -> dict:
        return {self.ui.corner: None, self.ui.box: ""}

    # --- batch tab -----------------------------------------------------------------------------
    @guarded("evaluating the batch")
    def batch(self, files, models, progress=gr.Progress(), request: gr.Request = None) -> dict:  # noqa: B008 - Gradio's progress idiom
        paths = [checked_upload(f if isinstance(f, str) else getattr(f, "path", None) or getattr(f, "name", "")) for f in (files or [])]
        if not paths:
            raise HarError(msg("batch_no_files"))
        names = [n for n in (models or []) if n in self.bank.entries]
        if not names:
            raise HarError(msg("no_models"))
        result = _evaluate(
            self.bank, paths, names, lambda frac, desc: progress(frac, desc=desc), client_gone(self.blocks, request)
        )
        ui = self.ui
        parts = [msg("batch_done", n=len({p["file"] for p in result.predictions}), models=len(names), seconds=result.seconds)]
        if result.unlabelled:
            parts.append(msg("batch_unlabelled", n=result.unlabelled))
        if result.skipped:
            parts.append(f"Skipped {len(result.skipped)} unreadable image(s): " + "; ".join(result.skipped[:3]))
        return {
            ui.batch_metrics: gr.update(value=bt.metric_display(result.rows, ranked([n for n in self.bank.entries if n in names], ui.accuracy)), headers=bt.metric_columns(),
                                        visible=bool(result.rows)),
            ui.batch_predictions: gr.update(value=bt.prediction_table(result), headers=bt.prediction_columns(), visible=True),
            ui.batch_labelled: gr.update(visible=bool(result.reports)),
            ui.batch_confusion: bt.confusion_figure(result.reports) if result.reports else None,
            ui.batch_gallery: bt.gallery_images(result),
            ui.batch_csv: str(result.csv_path),
            ui.batch_status: " ".join(parts),
        }

    # --- model cards tab -----------------------------------------------------------------------
    @guarded("reading the model cards")
    def cards(self) -> dict:
        return {self.ui.cards_md: model_cards_markdown(self.bank), self.ui.results_md: results_markdown()}

    @guarded("drawing the reliability diagram")
    def reliability(self, name: str | None) -> dict:
        return {self.ui.cards_reliability: reliability_plot(self.bank, name)}
