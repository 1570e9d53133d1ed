"""The model-cards tab without Gradio: a readable card per model first (what it is, data, test
metrics rounded, unseen-source accuracy, calibration, how to reproduce - collapsed), then every
field of its ``card.json`` (collapsed), then the newest results table written by the training runner.

The readable part reads well-known card fields where present (``metrics.test``, ``calibration``,
``data``, ``unseen_source_accuracy``, ``command``) and skips what a card lacks; the full card is
rendered generically (scalars as a line, nested sections as nested lists, long lists shortened).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from ..errors import HarError
from ..models.checkpoint import applied_temperature, is_calibrated
from ..models.loading import checkpoint_root
from .bank import ModelBank
from .redact import redact_paths
from .render import unavailable_line
from .text import PROJECT_ROOT, msg, strings
from .trust import accuracies, accuracy_line, ranked, read_model_card, unseen_accuracy

# Shown first when present (open); every other field follows in the card's own order (collapsed).
PREFERRED = ("metrics", "calibration", "data")
SKIPPED = ("classes", "format_version", "model", "argv")
MAX_LIST = 8
MAX_DEPTH = 3
MAX_INLINE = 300
RESULT_NAMES = ("RESULTS.md", "results.md")


def _rounded(value: Any) -> Any:
    if isinstance(value, float):
        return float(f"{value:.4g}")
    if isinstance(value, dict):
        return {k: _rounded(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_rounded(v) for v in value]
    return value


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    value = _rounded(value)
    if isinstance(value, list) and len(value) > MAX_LIST:
        return json.dumps(value[:MAX_LIST])[:-1] + f", ... ({len(value)} items)]"
    text = json.dumps(value) if isinstance(value, (list, dict)) else redact_paths(str(value))
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


def _pct(v: Any) -> str:
    return f"{float(v) * 100:.0f} %" if isinstance(v, (int, float)) else "n/a"


def _num(v: Any, nd: int = 3) -> str:
    return f"{float(v):.{nd}f}" if isinstance(v, (int, float)) else "n/a"


def readable_card(entry, card: dict | None) -> str:
    """One model as a visitor reads it: what it is, what it learned from, how well it does."""
    lines = [f"### {entry.name}", "", f"**What it is**: {entry.summary or entry.family}."]
    if not card:
        return "\n".join(lines)
    cfg = card.get("config") if isinstance(card.get("config"), dict) else {}
    if cfg:
        size, resize = cfg.get("input_size"), {"pad": "letterboxed (aspect kept)", "squash": "squashed"}.get(cfg.get("resize"), cfg.get("resize"))
        bits = [f"{size} px input" if size else "", resize or "", "sees the person crop" if cfg.get("person_crop") else ""]
        if any(bits):
            lines[-1] += " " + ", ".join(b for b in bits if b) + "."
    data = card.get("data") if isinstance(card.get("data"), dict) else {}
    sizes = card.get("split_sizes") if isinstance(card.get("split_sizes"), dict) else {}
    if data or sizes:
        where = Path(str(data.get("path", ""))).parent.name or data.get("kind", "")
        split = " / ".join(f"{sizes[k]} {k}" for k in ("train", "val", "test") if k in sizes)
        sources = (data.get("splits") or {}).get("train", {}).get("per_source") if isinstance(data.get("splits"), dict) else None
        line = f"**Trained on**: {where or 'a labelled data set'}" + (f", {data['n_total']} photos" if data.get("n_total") else "")
        line += f" ({split})" if split else ""
        if sources:
            line += f"; {len(sources)} sources ({', '.join(sorted(sources))})"
        lines += ["", line + "."]
    test = (card.get("metrics") or {}).get("test") if isinstance(card.get("metrics"), dict) else None
    if isinstance(test, dict):
        per = test.get("per_class") or {}
        f1 = ", ".join(f"{c} {_num(m.get('f1'), 2)}" for c, m in per.items() if isinstance(m, dict))
        lines += ["", f"**Test photos (same sources as training)**: accuracy **{_pct(test.get('accuracy'))}**, "
                      f"macro F1 {_num(test.get('macro_f1'), 2)}" + (f" (F1 per class: {f1})" if f1 else "") + (f", {test['n']} photos" if test.get("n") else "") + "."]
    acc = unseen_accuracy(card)
    said = accuracy_line(acc)
    lines += ["", f"**Photos from sources it never saw**: {said[0].lower() + said[1:]}."]
    if acc is not None and acc.per_source:
        per = ", ".join(f"{s} {_pct(v.get('accuracy'))} (n={v.get('n', '?')})" for s, v in acc.per_source.items() if isinstance(v, dict))
        lines.append(f"<small>per held-out source: {per}{'; ' + acc.how if acc.how else ''}</small>")
    lines += ["", calibration_line(card)]
    made = " · ".join(x for x in (str(card.get("created", ""))[:10], f"seed {card['seed']}" if "seed" in card else "",
                                  (card.get("selected") or {}).get("rule", "") if isinstance(card.get("selected"), dict) else "") if x)
    if made:
        lines += ["", f"<small>Trained {made}</small>"]
    if card.get("command"):
        lines += ["", "<details><summary>How to reproduce</summary>", "", "```bash", redact_paths(str(card["command"])), "```", "", "</details>"]
    return "\n".join(lines)


def calibration_line(card: dict) -> str:
    """What the bars' probability means for this model: calibrated on photos from sources it never
    saw (the temperature the app applies, ``checkpoint.applied_temperature``), or uncalibrated."""
    cal = card.get("calibration_unseen") if isinstance(card.get("calibration_unseen"), dict) else {}
    unseen = cal.get("unseen") if isinstance(cal.get("unseen"), dict) else {}
    scores = (f"; on photos from unseen sources ECE {_num(unseen.get('ece_before'), 3)} -> {_num(unseen.get('ece_after'), 3)}, "
              f"NLL {_num(unseen.get('nll_before'), 3)} -> {_num(unseen.get('nll_after'), 3)} (cross-checked; lower = the "
              "probabilities mean what they say)") if unseen else ""  # fmt: skip
    if is_calibrated(card):
        return f"**Probabilities**: calibrated on photos from sources the model never saw (temperature {_num(applied_temperature(card), 2)}{scores})."
    if unseen:
        return f"**Probabilities**: uncalibrated - a temperature fitted on unseen sources did not help in the cross-check, so none is applied{scores}."
    return "**Probabilities**: uncalibrated (no calibration on photos from unseen sources for this checkpoint)."


def reliability_plot(bank: ModelBank, name: str | None):
    """The reliability diagram of model ``name``'s card on unseen sources (matplotlib Figure), or
    None when it has no card or no such data."""
    from ..training.plots import reliability_figure

    entry = bank.entries.get(name) if name else None
    if entry is None:
        return None
    card = getattr(entry.model, "card", None) if entry.model is not None else None
    try:
        card = card or read_model_card(entry.name)
    except HarError:
        return None
    return reliability_figure(card, entry.name) if card else None


def model_cards_markdown(bank: ModelBank) -> str:
    """Every registry model - available ones first, by unseen-source accuracy - its card, or why it
    has none."""
    blocks = []
    available = [e.name for e in bank.entries.values() if e.available]
    order = ranked(available, accuracies([bank.get(n) for n in available])) + [e.name for e in bank.unavailable()]
    for entry in (bank.get(n) for n in order):
        card = getattr(entry.model, "card", None) if entry.model is not None else None
        try:
            card = card or read_model_card(entry.name)
        except HarError as err:
            blocks.append(f"### {entry.name}\n\n{err}")
            continue
        if card:
            full = card_markdown(entry.name, card).split("\n", 1)[1]  # without its "### name" line
            blocks.append(readable_card(entry, card) + f"\n\n<details><summary>{msg('card_all_fields')}</summary>\n\n{full}\n\n</details>")
        elif entry.available:
            blocks.append(f"{readable_card(entry, None)}\n\n{msg('no_card')} ({redact_paths(entry.source)})")
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
