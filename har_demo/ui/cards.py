"""The model-cards tab without Gradio: each checkpoint's ``card.json`` as Markdown, and the newest
results table written by the training runner.

Cards are rendered generically (no knowledge of the trainer's field names beyond a preferred
order): scalars as a table, nested sections as nested lists, long lists shortened.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from ..errors import HarError
from ..models.checkpoint import CARD_FILE, read_card
from ..models.loading import checkpoint_root, default_checkpoint
from .bank import ModelBank
from .render import unavailable_line
from .text import PROJECT_ROOT, msg, strings

# Shown first when present (open); every other field follows in the card's own order (collapsed).
PREFERRED = ("metrics", "calibration", "data")
SKIPPED = ("classes", "format_version", "model", "argv")
MAX_LIST = 8
MAX_DEPTH = 3
MAX_INLINE = 300
RESULT_NAMES = ("RESULTS.md", "results.md")


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, list) and len(value) > MAX_LIST:
        return json.dumps(value[:MAX_LIST])[:-1] + f", ... ({len(value)} items)]"
    text = json.dumps(value) if isinstance(value, (list, dict)) else str(value)
    if len(text) > MAX_INLINE:
        text = text[:MAX_INLINE] + " ..."
    return text.replace("|", "\\|").replace("\n", " ")


def _section(key: str, value: Any, depth: int = 0) -> list[str]:
    pad = "  " * depth
    if isinstance(value, dict) and value and depth < MAX_DEPTH:
        lines = [f"{pad}- **{key}**"]
        for k, v in value.items():
            lines += _section(str(k), v, depth + 1)
        return lines
    return [f"{pad}- **{key}**: {_fmt(value)}"]


def card_markdown(name: str, card: dict) -> str:
    """One checkpoint card as Markdown: scalars on top, then metrics / calibration / data, then
    the remaining sections collapsed (``<details>``)."""
    body = {k: v for k, v in card.items() if k not in SKIPPED}
    scalars = {k: v for k, v in body.items() if not isinstance(v, (dict, list)) and v is not None}
    lines = [f"### {name}", "", " · ".join(f"**{k}** {_fmt(v)}" for k, v in scalars.items()), ""]
    sections = [k for k in PREFERRED if isinstance(body.get(k), (dict, list))]
    sections += [k for k, v in body.items() if k not in PREFERRED and isinstance(v, (dict, list))]
    for key in sections:
        inner = _section(key, body[key])
        if key in PREFERRED:
            lines += inner
        else:
            lines += ["", f"<details><summary>{key}</summary>", "", *inner, "", "</details>", ""]
    return "\n".join(lines)


def read_model_card(name: str) -> dict | None:
    """The card of ``checkpoints/<name>`` (``$HAR_CHECKPOINT_DIR``), None when there is none."""
    directory = default_checkpoint(name)
    if not (directory / CARD_FILE).is_file():
        return None
    return read_card(directory)


def model_cards_markdown(bank: ModelBank) -> str:
    """Every registry model: its card, or why it has none."""
    blocks = []
    for entry in bank.entries.values():
        card = getattr(entry.model, "card", None) if entry.model is not None else None
        try:
            card = card or read_model_card(entry.name)
        except HarError as err:
            blocks.append(f"### {entry.name}\n\n{err}")
            continue
        if card:
            blocks.append(card_markdown(entry.name, card))
        elif entry.available:
            blocks.append(f"### {entry.name}\n\n{msg('no_card')} ({entry.source})")
        else:
            blocks.append(f"### {entry.name}\n\n{unavailable_line(entry)}")
    return "\n\n---\n\n".join(blocks)


def runs_root() -> Path:
    """Where the training runner writes run folders (``$HAR_RUNS_DIR``, default ``runs/``)."""
    return Path(os.environ.get("HAR_RUNS_DIR", PROJECT_ROOT / "runs"))


def newest_results_file() -> Path | None:
    """The newest results table: ``<checkpoints>/RESULTS.md`` or a run folder's ``results.md``
    (``<runs>/*/``, ``<checkpoints>/runs/*/``), by modification time."""
    roots = [checkpoint_root(), checkpoint_root() / "runs", runs_root()]
    found = []
    for root in roots:
        for name in RESULT_NAMES:
            found += [p for p in root.glob(name) if p.is_file()]
            found += [p for p in root.glob(f"*/{name}") if p.is_file()]
    return max(found, key=lambda p: p.stat().st_mtime) if found else None


def results_markdown() -> str:
    path = newest_results_file()
    heading = strings()["results_heading"]
    if path is None:
        return f"{heading}\n\n{msg('no_results')}"
    try:
        body = path.read_text(encoding="utf-8", errors="replace")
    except OSError as err:
        return f"{heading}\n\n{path.name}: cannot read ({err.strerror or err})"
    return f"{heading}\n\n<small>{path.name} ({path.parent.name})</small>\n\n{body}"
