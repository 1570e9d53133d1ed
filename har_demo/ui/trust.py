"""How far to trust each model, from its checkpoint card - no Gradio, no models run.

The measure is the card's ``unseen_source_accuracy`` (written by the trainer's leave-one-source-out
run): ``{"accuracy", "ci95": [lo, hi], "n", "how", "per_source": {source: {"n", "accuracy"}}}``, the
pooled accuracy on photos from sources the model never saw in training. It orders the compare tab's
cards, picks the headline verdict and marks models near chance. A card without it (older cards,
models without checkpoints) reads as "not measured" and sorts after every measured model, in
registry order.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .text import msg

NEAR_CHANCE = 0.45  # three classes: chance is 1/3; below this a model is marked "near chance"


@dataclass(frozen=True)
class UnseenAccuracy:
    accuracy: float
    ci95: tuple[float, float] | None = None
    n: int | None = None
    how: str = ""
    per_source: Mapping[str, Any] | None = None

    @property
    def near_chance(self) -> bool:
        return self.accuracy < NEAR_CHANCE


def unseen_accuracy(card: Mapping[str, Any] | None) -> UnseenAccuracy | None:
    """The card's ``unseen_source_accuracy``, or None when it is missing or malformed."""
    if not isinstance(card, Mapping):
        return None
    raw = card.get("unseen_source_accuracy")
    if isinstance(raw, (int, float)):
        raw = {"accuracy": raw}
    if not isinstance(raw, Mapping):
        return None
    try:
        acc = float(raw["accuracy"])
    except (KeyError, TypeError, ValueError):
        return None
    if not math.isfinite(acc) or not 0.0 <= acc <= 1.0:
        return None
    ci = raw.get("ci95")
    try:
        ci = (float(ci[0]), float(ci[1])) if ci is not None else None
    except (TypeError, ValueError, IndexError):
        ci = None
    n = raw.get("n")
    per_source = raw.get("per_source") if isinstance(raw.get("per_source"), Mapping) else None
    return UnseenAccuracy(acc, ci, int(n) if isinstance(n, (int, float)) else None, str(raw.get("how") or ""), per_source)


def read_model_card(name: str) -> dict | None:
    """The card of ``checkpoints/<name>`` (``$HAR_CHECKPOINT_DIR``), None when there is none."""
    from ..models.checkpoint import CARD_FILE, read_card
    from ..models.loading import default_checkpoint

    directory = default_checkpoint(name)
    if not (directory / CARD_FILE).is_file():
        return None
    return read_card(directory)


def entry_card(entry) -> dict | None:
    """The checkpoint card of a bank entry (loaded model's card, else the file), None if none."""
    card = getattr(entry.model, "card", None) if entry.model is not None else None
    if card:
        return card
    try:
        return read_model_card(entry.name)
    except Exception:  # noqa: BLE001 - a broken card is reported on the model-cards tab
        return None


def accuracies(entries: Sequence) -> dict[str, UnseenAccuracy | None]:
    return {e.name: unseen_accuracy(entry_card(e)) for e in entries}


def ranked(names: Sequence[str], acc: Mapping[str, UnseenAccuracy | None]) -> list[str]:
    """``names`` by unseen-source accuracy (best first); unmeasured ones after, in given order."""
    order = {n: i for i, n in enumerate(names)}
    return sorted(names, key=lambda n: (acc.get(n) is None, -(acc[n].accuracy if acc.get(n) else 0.0), order[n]))


def headline(names: Sequence[str], acc: Mapping[str, UnseenAccuracy | None]) -> str | None:
    """The model whose answer leads: the best measured one among ``names`` (else the first)."""
    order = ranked(names, acc)
    return order[0] if order else None


def accuracy_line(acc: UnseenAccuracy | None, short: bool = False) -> str:
    """Plain words: "right on 58 % of photos from sources it never saw (95 % CI 55-61 %, 803 photos)";
    ``short`` leaves out the photo count (compact cards)."""
    if acc is None:
        return msg("acc_unmeasured")
    extra = []
    if acc.ci95:
        extra.append(msg("acc_ci", lo=acc.ci95[0] * 100, hi=acc.ci95[1] * 100))
    if acc.n and not short:
        extra.append(msg("acc_n", n=acc.n))
    line = msg("acc_line", pct=acc.accuracy * 100) + (f" ({', '.join(extra)})" if extra else "")
    if acc.near_chance:
        line += " " + msg("acc_near_chance_short" if short else "acc_near_chance")
    return line


def short_accuracy(acc: UnseenAccuracy | None) -> str:
    """A compact badge: "58 % on unseen sources" / "unseen sources: not measured"."""
    if acc is None:
        return msg("acc_badge_none")
    return msg("acc_badge", pct=acc.accuracy * 100) + (" " + msg("acc_badge_chance") if acc.near_chance else "")
