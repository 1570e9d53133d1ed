"""The model-cards tab without Gradio: a readable card per model first (what it is, data, test
metrics rounded, unseen-source accuracy, calibration, how to reproduce - collapsed), then every
field of its ``card.json`` (collapsed), then the newest results table written by the training runner.

The readable part reads well-known card fields where present (``metrics.test``, ``calibration``,
``data``, ``unseen_source_accuracy``, ``command``) and skips what a card lacks; the full card is
rendered generically (scalars as a line, nested sections as nested lists, long lists shortened).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from .. import settings
from ..errors import HarError
from ..models.checkpoint import applied_temperature, is_calibrated
from ..models.loading import checkpoint_root
from .bank import ModelBank
from .redact import redact_paths
from .render import unavailable_markdown
from .text import msg, strings
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


def input_words(entry, card: dict | None) -> str:
    """What the model looks at, per family: "224 px input, letterboxed, the person crop + the
    BlazePose pose vector"; a pose-only model (``uses_image = False``) reads no pixels at all."""
    cfg = card.get("config") if isinstance((card or {}).get("config"), dict) else {}
    pose = "the BlazePose pose vector (33 landmarks + joint angles)"
    if entry.model is not None and getattr(entry.model, "uses_image", True) is False:
        return f"{pose} only - no pixels"
    size, resize = cfg.get("input_size"), {"pad": "letterboxed (aspect kept)", "squash": "squashed"}.get(cfg.get("resize"), cfg.get("resize"))
    bits = [f"{size} px input" if size else "", resize or "", "sees the person crop" if cfg.get("person_crop") else ""]
    if entry.family == "person":
        bits.append(f"plus {pose}")
    return ", ".join(b for b in bits if b)


def data_sets(data: dict) -> list[str]:
    """The data sets of a card's ``data.path`` - one path, or several joined by " + " (mixed
    training data) - each named by its folder: "../data/har3/manifest.csv" -> "har3"."""
    parts = [p.strip() for p in str(data.get("path") or "").split(" + ") if p.strip()]
    return [Path(p).parent.name or p for p in parts]


def photos_per_source(data: dict) -> dict[str, int]:
    """Photos per source over every split (train + val + test), most first."""
    splits = data.get("splits") if isinstance(data.get("splits"), dict) else {}
    total: dict[str, int] = {}
    for split in splits.values():
        per = split.get("per_source") if isinstance(split, dict) else None
        for source, n in (per or {}).items():
            if isinstance(n, (int, float)):
                total[source] = total.get(source, 0) + int(n)
    return dict(sorted(total.items(), key=lambda kv: (-kv[1], kv[0])))


def trained_on(card: dict) -> str | None:
    """"har3 + flickr8k, 1025 photos (821 train / 102 val / 102 test); per source: inria_person
    399, flickr8k 220, ..." - or None when the card says nothing about its data."""
    data = card.get("data") if isinstance(card.get("data"), dict) else {}
    sizes = card.get("split_sizes") if isinstance(card.get("split_sizes"), dict) else {}
    if not data and not sizes:
        return None
    where = " + ".join(data_sets(data)) or str(data.get("source") or data.get("kind") or "a labelled data set")
    split = " / ".join(f"{sizes[k]} {k}" for k in ("train", "val", "test") if k in sizes)
    line = where + (f", {data['n_total']} photos" if data.get("n_total") else "") + (f" ({split})" if split else "")
    per = photos_per_source(data)
    if per:
        line += "; photos per source: " + ", ".join(f"{k} {v}" for k, v in per.items())
    return line


def calibration_state(card: dict | None) -> dict | None:
    """The card's temperature scaling: ``{"temperature", "test_ece_before", "test_ece_after",
    "helped"}`` (ECE on the test split, lower = probabilities mean what they say), None if uncalibrated."""
    if not isinstance(card, dict):
        return None
    cal = card.get("calibration") if isinstance(card.get("calibration"), dict) else {}
    t = cal.get("temperature", card.get("temperature"))
    if not isinstance(t, (int, float)):
        return None
    test = cal.get("test") if isinstance(cal.get("test"), dict) else {}
    before, after = test.get("ece_before"), test.get("ece_after")
    known = isinstance(before, (int, float)) and isinstance(after, (int, float))
    return {"temperature": round(float(t), 3), "test_ece_before": round(float(before), 4) if known else None,
            "test_ece_after": round(float(after), 4) if known else None, "helped": bool(after < before) if known else None}


def card_summary(entry, card: dict | None) -> str:
    """One line for API clients: what it is, its input, what it was trained on, unseen-source accuracy."""
    bits = [entry.summary or entry.family]
    if card:
        bits.append(input_words(entry, card))
        data = card.get("data") if isinstance(card.get("data"), dict) else {}
        if data:
            bits.append("trained on " + (" + ".join(data_sets(data)) or "a labelled data set") + (f" ({data['n_total']} photos)" if data.get("n_total") else ""))
        acc = unseen_accuracy(card)
        bits.append(f"{acc.accuracy * 100:.0f} % right on photos from sources it never saw" if acc else "not measured on unseen sources")
    return "; ".join(b for b in bits if b)


def readable_card(entry, card: dict | None) -> str:
    """One model as a visitor reads it: what it is, what it learned from, how well it does."""
    lines = [f"### {entry.name}", "", f"**What it is**: {entry.summary or entry.family}."]
    if not card:
        return "\n".join(lines)
    looks = input_words(entry, card)
    if looks:
        lines += ["", f"**Input**: {looks}."]
    data = trained_on(card)
    if data:
        lines += ["", f"**Trained on**: {data}."]
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
    """Every available model by unseen-source accuracy with its card (or why it has none), then the
    unavailable ones folded into one line that opens to short how-to-enable hints."""
    blocks = []
    available = [e.name for e in bank.entries.values() if e.available]
    for entry in (bank.get(n) for n in ranked(available, accuracies([bank.get(n) for n in available]))):
        card = getattr(entry.model, "card", None) if entry.model is not None else None
        try:
            card = card or read_model_card(entry.name)
        except HarError as err:
            blocks.append(f"### {entry.name}\n\n{err}")
            continue
        if card:
            full = card_markdown(entry.name, card).split("\n", 1)[1]  # without its "### name" line
            blocks.append(readable_card(entry, card) + f"\n\n<details><summary>{msg('card_all_fields')}</summary>\n\n{full}\n\n</details>")
        else:
            blocks.append(f"{readable_card(entry, None)}\n\n{msg('no_card')} ({redact_paths(entry.source)})")
    folded = unavailable_markdown(bank.unavailable())
    return "\n\n---\n\n".join(blocks + ([folded] if folded else []))


def runs_root() -> Path:
    """Where the training runner writes run folders (``$HAR_RUNS_DIR``, default ``runs/``)."""
    return Path(settings.get("HAR_RUNS_DIR"))


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
