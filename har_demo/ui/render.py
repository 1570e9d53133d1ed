"""Text of the model cards (Markdown / Label values) from analysis results. No Gradio, no models."""

from __future__ import annotations

import math
from collections.abc import Iterable

from .analysis import Analysis, CardResult, ambiguity, drift
from .bank import ModelEntry
from .text import msg


def card_header(entry: ModelEntry) -> str:
    """Title + one line: summary and weight source (available) or why not + how to enable."""
    lines = [msg("card_title", name=entry.name)]
    if entry.available:
        lines.append(msg("card_summary", summary=entry.summary, source=entry.source))
    else:
        lines.append(unavailable_line(entry))
    return "\n\n".join(lines)


def unavailable_line(entry: ModelEntry) -> str:
    """One line: why the model is not available, and how to enable it."""
    line = msg("unavailable_line", name=entry.name, reason=entry.source.rstrip("."))
    if entry.hint:
        line += " " + msg("how_to_enable", hint=entry.hint)
    return line


def label_value(card: CardResult | None) -> dict[str, float] | None:
    """``gr.Label`` value: class -> probability (bars), None without a result."""
    if card is None or card.error or not card.probs:
        return None
    return dict(card.probs)


def card_info(analysis: Analysis, card: CardResult | None, box: tuple[int, int, int, int] | None) -> str:
    """Map line, pose-ambiguity flag, background drift (with a box) - or the card's error."""
    if card is None:
        return ""
    if card.error:
        return f"**{card.error}**"
    lines = [msg("map_line", method=card.method, target=card.target) if card.method else msg("no_map")]
    amb = ambiguity(card)
    if amb is not None:
        key = "ambiguous" if amb["flag"] else "not_ambiguous"
        lines.append(msg(key, margin=amb["margin"]))
    score = drift(analysis, card.name, box)
    if score is not None:
        lines.append(msg("drift_empty") if math.isnan(score) else msg("drift_line", drift=score))
    return "  \n".join(lines)


def ambiguity_count(analysis: Analysis) -> int:
    flags = (ambiguity(c) for c in analysis.cards.values() if not c.error)
    return sum(1 for a in flags if a and a["flag"])


def status_line(analysis: Analysis, seconds: float) -> str:
    ok = [c for c in analysis.cards.values() if not c.error]
    parts = [msg("done", n=len(ok), seconds=seconds)]
    n_amb = ambiguity_count(analysis)
    if n_amb:
        parts.append(msg("ambiguity_summary", n=n_amb, total=len(ok)))
    failed = [c for c in analysis.cards.values() if c.error]
    parts += [msg("model_failed", name=c.name, error=c.error) for c in failed]
    return " ".join(parts)


def unavailable_markdown(entries: Iterable[ModelEntry]) -> str:
    return "\n".join(f"- {unavailable_line(e)}" for e in entries)
