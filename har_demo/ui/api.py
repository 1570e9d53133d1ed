"""Named API endpoints (``/predict``, ``/explain``, ``/batch``, ``/models``) for ``gradio_client``.

Plain values in, JSON + files out; the same ``analysis`` / ``batch`` functions as the UI. A user
error is raised as ``gr.Error`` with its one-line message (the client sees exactly that line);
unexpected errors are logged and reported as one generic line.

    from gradio_client import Client, handle_file
    client = Client("http://127.0.0.1:7860/")
    result, overlays = client.predict(handle_file("photo.jpg"), "", "predicted", 0.5, api_name="/predict")
"""

from __future__ import annotations

import functools
import logging
import math
import os
from collections.abc import Callable
from typing import Any

import gradio as gr
import numpy as np
from PIL import Image

from ..errors import HarError
from . import analysis as an
from .bank import ModelBank
from .callbacks import _analyse, _evaluate, checked_upload, client_gone, opacity_value, target_value
from .cards import calibration_state, card_summary
from .redact import redact_paths
from .render import pose_line
from .sessions import trim_after_burst
from .tempfiles import request_files, upload_paths
from .text import msg
from .trust import UnseenAccuracy, accuracies, entry_card, headline, ranked, unseen_accuracy

log = logging.getLogger(__name__)


def api_errors(action: str, trim: bool = False) -> Callable:
    """Re-raise every failure as a ``gr.Error`` carrying one readable line; with ``trim``, hand the
    freed heap back to the OS once a burst of calls ends (``sessions.trim_after_burst``: without
    it RSS grew 1.07 -> 2.85 GB over 1,000 ``/predict`` calls, issue 22 item 7)."""

    def deco(fn: Callable) -> Callable:
        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            try:
                # the call's uploads are removed when it ends (issue 22, item 3: not kept an hour)
                with request_files(upload_paths([*args[1:], *kwargs.values()]), getattr(args[0], "blocks", None) if args else None):
                    return fn(*args, **kwargs)
            except gr.Error:
                raise
            except HarError as err:
                raise gr.Error(redact_paths(err), print_exception=False) from None
            except Exception as err:
                log.exception("API %s failed", action)
                raise gr.Error(msg("unexpected", action=action, kind=type(err).__name__), print_exception=False) from None
            finally:
                if trim:
                    trim_after_burst()

        return wrapper

    return deco


def _names(models: str | list | None) -> list[str]:
    """'a, b' / ['a', 'b'] -> names; empty -> [] (= every available model)."""
    if isinstance(models, str):
        models = _text(models, "models").replace(";", ",").split(",")
    elif models is not None and not isinstance(models, (list, tuple)):
        raise HarError(f"models must be comma-separated names, got {type(models).__name__}")
    return [str(m).strip() for m in (models or []) if m and str(m).strip()]


def _file_path(value: Any) -> str | None:
    """The server path of an uploaded file (a path string or a FileData-like value), checked to lie
    in Gradio's upload folder; a value that is no uploaded file -> one-line ``HarError``."""
    if value is None or value == "":
        return None
    if isinstance(value, (list, tuple)):
        value = value[0] if value else None
        if value is None:
            return None
    if isinstance(value, dict):
        if not value.get("path"):
            raise HarError("the file did not arrive: send it with handle_file(...) (a URL alone is not fetched)")
        value = value["path"]
    elif not isinstance(value, (str, os.PathLike)):
        value = getattr(value, "path", None) or getattr(value, "name", None)
        if not isinstance(value, (str, os.PathLike)):
            raise HarError("expected an uploaded file (use handle_file(...)), got a value of another kind")
    return checked_upload(str(value))


def _text(value: Any, what: str) -> str:
    """A text input: None -> "", a str as is; another kind (or a very long one) -> ``HarError``."""
    if value is None:
        return ""
    if not isinstance(value, str):
        raise HarError(f"{what} must be text, got {type(value).__name__}")
    if len(value) > 10_000:
        raise HarError(f"{what} is {len(value)} characters long; expected a short text")
    return value


def _num(v: float | None) -> float | None:
    return None if v is None or math.isnan(v) else round(float(v), 4)


def looked_at(shares: dict) -> dict:
    """The API fields of ``analysis.shares``: ``person_share`` (share of the map on the found
    person's mask), ``person_chance`` (what a uniform map over the model's view would score),
    ``person_lift`` (share / chance: > 1 = prefers the body), the same for the box (``box_*``:
    the person box, or the given box, which overrides the finder), ``pointing`` (the map's peak
    on the body) and ``share_from`` ("person finder" / "your box" / null)."""
    from ..explain.metrics import DRIFT_FIELDS

    out = {k: shares[k] if k == "pointing" else _num(shares[k]) for k in DRIFT_FIELDS}
    return {**out, "share_from": shares["from"]}


def person_json(analysis: an.Analysis) -> dict:
    """The found person in photo pixels (box, landmark confidence, more people seen), or why not."""
    p = analysis.person
    if p is None:
        return {"found": False, "note": analysis.person_note}
    sx, sy = analysis.scale
    x0, y0, x1, y1 = p.box
    box = [round(x0 / sx), round(y0 / sy), round(x1 / sx), round(y1 / sy)]
    return {"found": True, "box": box, "score": round(float(p.score), 4), "others": analysis.several_people}


def people_json(bank: ModelBank, analysis: an.Analysis) -> list[dict]:
    """``/predict``'s ``people`` list: every person found (most prominent first, numbered from 1),
    box in photo pixels, landmark score, pose sentence, and each person-centred model's verdict
    on that person with its drift fields (``analysis.people_cards``; maps themselves left out)."""
    records = an.people_cards(bank, analysis, people=analysis.everyone or None)  # with maps and drift per person
    for rec in records:
        for m in rec["models"]:
            m.pop("saliency", None)
            for k, v in m.items():
                if isinstance(v, float):
                    m[k] = _num(v)
    return records


def accuracy_json(acc: UnseenAccuracy | None) -> dict | None:
    """A card's unseen-source accuracy for clients: ``{"accuracy", "ci95", "n"}`` (rounded), None if not measured."""
    if acc is None:
        return None
    return {"accuracy": _num(acc.accuracy), "ci95": [_num(v) for v in acc.ci95] if acc.ci95 else None, "n": acc.n}


def ambiguity_json(amb: dict | None) -> dict | None:
    """``analysis.ambiguity`` with its margin rounded like every other number (4 places)."""
    if amb is None:
        return None
    return {k: (_num(v) if isinstance(v, float) else v) for k, v in amb.items()}


def headline_json(analysis: an.Analysis, lead: str | None, acc: dict) -> dict | None:
    """The answer to show first (as the UI's verdict): the chosen model best on photos from sources
    it never saw, its label and probability, and why it leads."""
    if lead is None:
        return None
    card, a = analysis.cards[lead], acc.get(lead)
    why = (f"highest accuracy on photos from sources it never saw among the chosen models ({a.accuracy * 100:.0f} %)"
           + (" - near chance: take the answer as a guess" if a.near_chance else "")) if a else \
        "no chosen model has an unseen-source accuracy: the first one leads"
    out = {"model": lead, "label": card.label if card.probs else None,
           "probability": _num(card.probs[card.label]) if card.probs else None, "why": why}
    if card.error:
        out["error"] = card.error
    return out


class Api:
    """The endpoint functions, bound to one model bank."""

    def __init__(self, bank: ModelBank) -> None:
        self.bank = bank
        self.blocks: Any = None  # the Blocks (set by layout.build_demo): its queue tells a gone client

    def _analysis(self, image: Any, models: str | list | None, target: str | None) -> an.Analysis:
        path = _file_path(image)
        if not path:
            raise HarError(msg("no_image"))
        names = _names(models)
        chosen = [e.name for e in self.bank.select(names)]  # unknown names -> UnknownName
        if names:
            unavailable = [n for n in names if n not in chosen]
            if unavailable:
                self.bank.require(unavailable[0])  # one line: why it is unavailable
        if not chosen:
            raise HarError(msg("no_models"))
        return _analyse(self.bank, path, chosen, {}, target_value(target))

    @api_errors("predicting", trim=True)
    def predict(self, image: Any, models: str = "", target: str = "predicted", opacity: float = 0.5):
        """Every chosen model (default all available) with its default map, ordered as the UI's cards
        (by accuracy on photos from sources the model never saw). Returns (JSON {"headline",
        "models": [{model, label, probs, method, target, ambiguity, person_share, person_chance,
        person_lift, box_share, box_chance, box_lift, pointing, share_from, unseen_source_accuracy,
        near_chance, pose}], "image_size", "person", "people"}, gallery)."""
        opacity = opacity_value(opacity)
        analysis = self._analysis(image, models, _text(target, "target"))
        acc = accuracies([self.bank.get(n) for n in analysis.cards])
        order = ranked(list(analysis.cards), acc)
        pose = pose_line(analysis)  # the body evidence: one sentence about the photo, the same for every row
        rows, gallery = [], []
        for name in order:
            card = analysis.cards[name]
            row = card.summary()
            amb = an.ambiguity(card)
            if amb is not None:
                row["ambiguity"] = ambiguity_json(amb)
            row.update(looked_at(an.shares(analysis, name)))
            row["unseen_source_accuracy"] = accuracy_json(acc.get(name))
            row["near_chance"] = bool(acc.get(name) and acc[name].near_chance)
            row["pose"] = pose
            rows.append(row)
            shown = an.blend(analysis, name, opacity)
            if shown is not None:
                gallery.append((Image.fromarray(shown), f"{name}: {card.label}"))
        lead = headline(order, acc)
        return {"headline": headline_json(analysis, lead, acc), "models": rows, "image_size": list(analysis.size),
                "person": person_json(analysis), "people": people_json(self.bank, analysis)}, gallery

    @api_errors("explaining", trim=True)
    def explain(self, image: Any, model: str, method: str = "", target: str = "predicted", opacity: float = 0.5, box: str = ""):
        """One model, one method (default: the model's), one class. Returns (overlay, JSON)."""
        opacity = opacity_value(opacity)
        model, method, target, box = (_text(v, k) for v, k in ((model, "model"), (method, "method"), (target, "target"), (box, "box")))
        if not model.strip():
            raise HarError("give a model name (see /models)")
        entry = self.bank.require(model.strip())
        path = _file_path(image)
        if not path:
            raise HarError(msg("no_image"))
        image_pil, size = an.working_image(path)
        person = an.parse_box(box, size)  # a bad box is refused before any model work
        card = an.run_card(entry, image_pil, method.strip() or None, target_value(target))
        if card.error:
            raise HarError(card.error)
        found, note = an.locate_person(image_pil)
        analysis = an.Analysis(np.asarray(image_pil, dtype=np.uint8), size, {entry.name: card}, found, note)
        info = card.summary()
        info["ambiguity"] = ambiguity_json(an.ambiguity(card))
        shares = an.shares(analysis, entry.name, person)  # a given box overrides the finder
        info.update(looked_at(shares))
        info["person"] = person_json(analysis)
        info["image_size"] = list(size)
        if person is not None:
            info["box"] = list(person)
            info["drift"] = shares["box_share"]  # share of the map inside the box (unrounded)
        shown = an.blend(analysis, entry.name, opacity, person)
        return (Image.fromarray(shown) if shown is not None else None), info

    @api_errors("evaluating the batch")
    def batch(self, files: Any, models: str = "", request: gr.Request = None):
        """Labelled images / zips of class folders -> (JSON metrics per model, CSV of predictions)."""
        paths = [_file_path(f) for f in files] if isinstance(files, (list, tuple)) else [_file_path(files)]
        paths = [p for p in paths if p]
        if not paths:
            raise HarError(msg("batch_no_files"))
        names = [e.name for e in self.bank.select(_names(models))]
        result = _evaluate(self.bank, paths, names, None, client_gone(self.blocks, request))
        return result.summary(), str(result.csv_path)

    @api_errors("listing the models")
    def models(self) -> list[dict]:
        """Every registry model: available or not, why, methods and the default one, its accuracy
        on photos from sources it never saw (what orders the cards), calibration and a one-line summary."""
        rows = []
        for e in self.bank.entries.values():
            card = entry_card(e)
            acc = unseen_accuracy(card)
            rows.append({
                "name": e.name,
                "family": e.family,
                "available": e.available,
                "detail": e.source,
                "how_to_enable": e.hint,
                "methods": e.methods,
                "default_method": e.default_method,
                "unseen_source_accuracy": accuracy_json(acc),
                "near_chance": bool(acc and acc.near_chance),
                "calibration": calibration_state(card),
                "summary": card_summary(e, card),
            })
        return rows
