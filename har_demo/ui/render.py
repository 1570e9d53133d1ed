"""Text of the compare tab (Markdown / HTML / Label values) from analysis results. No Gradio, no models.

Everything a visitor reads about one answer is worded here from library numbers: the headline
verdict (best model by unseen-source accuracy, ``trust``), each card's accuracy badge, where the
map looks (``analysis.shares``: person share, a user box overriding the finder), the ambiguity of
any close top-2 pair with the body evidence (``person.describe_pose``), the map colour legend.
"""

from __future__ import annotations

import html
import math
from collections.abc import Iterable, Mapping

from ..explain.overlay import DEFAULT_COLORMAP
from .analysis import Analysis, CardResult, ambiguity, people_line, shares
from .bank import ModelEntry
from .picking import is_personal
from .redact import redact_paths
from .text import msg
from .trust import UnseenAccuracy, accuracy_line


def card_header(entry: ModelEntry, acc: UnseenAccuracy | None = None, lead: bool = False) -> str:
    """Title, accuracy on unseen sources (plain words) and one line: summary + weight source."""
    badge = msg("card_lead") if lead else ""
    lines = [msg("card_title", name=entry.name, badge=badge)]
    if entry.available:
        lines.append(msg("card_accuracy", line=accuracy_line(acc, short=True), summary=entry.summary))
    else:
        lines.append(unavailable_line(entry))
    return "\n\n".join(lines)


def unavailable_line(entry: ModelEntry) -> str:
    """One line: why the model is not available, and how to enable it."""
    line = msg("unavailable_line", name=entry.name, reason=redact_paths(entry.source).rstrip("."))
    if entry.hint:
        line += " " + msg("how_to_enable", hint=redact_paths(entry.hint))
    return line


SHORT_REASON = 90  # a reason this short is shown in the folded list (e.g. a missing pip package); longer ones stay in the API


def short_unavailable_line(entry: ModelEntry) -> str:
    """The folded list's line: the model, a short reason when there is one, how to enable it."""
    reason = redact_paths(entry.source).rstrip(".")
    line = f"**{entry.name}**"
    if reason and len(reason) <= SHORT_REASON:
        line += f" ({reason})"
    hint = redact_paths(entry.hint) if entry.hint else ""
    return f"{line}: {hint}." if hint else f"{line}: {reason}."


def label_value(card: CardResult | None) -> dict[str, float] | None:
    """``gr.Label`` value: class -> probability (bars), None without a result."""
    if card is None or card.error or not card.probs:
        return None
    return dict(card.probs)


def share_line(sh: Mapping) -> str | None:
    """Where the map looks, in plain words, against chance (``analysis.shares``): the share, the
    chance a uniform map over the model's view would get and the lift; the verdict comes from
    the lift (``explain.metrics.lift_verdict``), never from the raw share - a person-crop model
    sees little but the body, so a high share alone says nothing. None without a map/person."""
    from ..explain.metrics import lift_verdict

    if sh.get("from") == "your box":
        prefix, key = "box", "share_box"
    elif sh.get("person_share") is not None:
        prefix, key = "person", "share_person"
    elif sh.get("box_share") is not None:
        prefix, key = "box", "share_person_box"
    else:
        return None
    share, chance, lift = (sh.get(f"{prefix}_{k}") for k in ("share", "chance", "lift"))
    if share is None or math.isnan(share):
        return msg("share_empty")
    verdict = lift_verdict(lift)
    if verdict is None:
        return msg("share_outside")
    return msg(key, pct=share * 100, chance=chance * 100, lift=lift, verdict=msg(f"share_{verdict}"))


def pose_line(analysis: Analysis) -> str:
    """The body evidence from the landmarks (one sentence), or why there is none."""
    from ..person import describe_pose

    if analysis.person is None:
        return analysis.person_note or msg("no_person")
    return describe_pose(analysis.person)


def ambiguity_line(analysis: Analysis, card: CardResult, clear: bool = True, pose: bool = True) -> str | None:
    """A close call between any two classes, with the body evidence (``pose``; the compact cards
    leave it to the headline: it is the same photo for every card); ``clear``: else say how clear
    the lead is (the headline does, the compact cards stay short)."""
    amb = ambiguity(card)
    if amb is None:
        return None
    if amb["flag"]:
        a, b = amb["pair"].split("/")
        if not pose:
            return msg("ambiguous_short", a=a, b=b, margin=amb["margin"] * 100)
        return msg("ambiguous", a=a, b=b, margin=amb["margin"] * 100, pose=pose_line(analysis))
    return msg("not_ambiguous", margin=amb["margin"] * 100) if clear else None


def card_info(analysis: Analysis, card: CardResult | None, box: tuple[int, int, int, int] | None) -> str:
    """Map line, where the map looks (person share), close-call flag with the body evidence - or the card's error."""
    if card is None:
        return ""
    if card.error:
        return f"**{redact_paths(card.error)}**"
    lines = [msg("map_line", method=card.method, target=card.target) if card.method else msg("no_map")]
    if analysis.selected is not None:  # a person picked: say whom this card is about
        key = "card_person" if is_personal(analysis, card.name) else "card_whole_photo"
        lines.insert(0, msg(key, n=analysis.selected))
    line = share_line(shares(analysis, card.name, box))
    if line:
        lines.append(line)
    amb = ambiguity_line(analysis, card, clear=False, pose=False)
    if amb:
        lines.append(amb)
    return "  \n".join(lines)


def person_summary(analysis: Analysis) -> str:
    """One line about the person the maps are scored against."""
    p = analysis.person
    if p is None:
        return analysis.person_note or msg("no_person")
    line = msg("person_found", score=p.score * 100)
    if analysis.several_people:
        line += " " + msg("person_others")
    return line


def verdict_markdown(analysis: Analysis | None, lead: str | None, acc: Mapping[str, UnseenAccuracy | None],
                     box: tuple[int, int, int, int] | None = None) -> str:
    """The headline: the leading model's answer, why that model leads, and what its map shows."""
    if analysis is None or lead is None or lead not in analysis.cards:
        return msg("verdict_empty")
    card = analysis.cards[lead]
    if card.error or not card.probs:
        return msg("verdict_failed", name=lead, error=redact_paths(card.error or ""))
    label = card.label
    a = acc.get(lead)
    why = msg("verdict_why", name=lead, pct=a.accuracy * 100) if a else msg("verdict_why_unmeasured", name=lead)
    heading = "verdict_person" if is_personal(analysis, lead) else "verdict"  # a picked person: the lead answers for them
    lines = [msg(heading, label=label.replace("_", " / "), pct=card.probs[label] * 100, n=analysis.selected), why]
    if a is not None and a.near_chance:
        lines.append(msg("verdict_chance"))
    if analysis.several_people:
        lines.append(several_people_line(analysis, lead))
    others = [c for n, c in analysis.cards.items() if n != lead and not c.error and c.probs]
    if others:
        lines.append(agreement_line(label, others, acc))
    for line in (share_line(shares(analysis, lead, box)), ambiguity_line(analysis, card)):
        if line:
            lines.append(line)
    lead_amb = ambiguity(card)
    if not (lead_amb and lead_amb["flag"]) and any((amb := ambiguity(c)) and amb["flag"] for c in others):
        lines.append(msg("pose_for_cards", pose=pose_line(analysis)))  # the cards' close calls: the body evidence, once
    if analysis.selected is not None and not any(pose_line(analysis) in line for line in lines):
        lines.append(msg("verdict_picked_pose", n=analysis.selected, pose=pose_line(analysis)))  # the picked person's body, once
    return "  \n".join(lines)


def agreement_line(label: str, others: list[CardResult], acc: Mapping[str, UnseenAccuracy | None]) -> str:
    """How many of the other models give the same answer - near-chance models are not counted
    (their agreement says nothing); unmeasured models are."""
    counted = [c for c in others if not (acc.get(c.name) is not None and acc[c.name].near_chance)]
    skipped = len(others) - len(counted)
    if not counted:
        return msg("verdict_others_none")
    agree = sum(1 for c in counted if c.label == label)
    if skipped:
        return msg("verdict_others_chance", agree=agree, total=len(counted), n=skipped)
    return msg("verdict_others", agree=agree, total=len(counted))


def several_people_line(analysis: Analysis, lead: str) -> str:
    """The headline's line for a photo with several people: which one the answer is about and,
    when a person-centred model judged each person, the compact per-person list ("1: sitting
    94 %, 2: standing 81 %") - the lead model's verdicts when it is person-centred."""
    answered = {m["model"] for rec in analysis.people for m in rec["models"] if "label" in m}
    model = lead if lead in answered else next((m["model"] for rec in analysis.people for m in rec["models"] if "label" in m), None)
    line = people_line(analysis.people, model) if model else ""
    if analysis.selected is not None:  # the visitor picked someone: say clearly whom the cards are about
        whole = [n for n in analysis.cards if not is_personal(analysis, n)]
        out = msg("verdict_picked", n=analysis.selected)
        if whole:
            out += " " + msg("verdict_picked_whole", models=", ".join(whole))
        if line:
            out += " " + msg("verdict_picked_list", model=model, line=line)
        return out
    return msg("verdict_people", model=model, line=line) if line else msg("verdict_several")


def photo_note(analysis: Analysis | None, box: tuple[int, int, int, int] | None = None) -> str:
    """Under the photo view: its size (box coordinates are in these pixels), the person, the box."""
    if analysis is None:
        return msg("photo_note_empty")
    parts = [msg("photo_size", w=analysis.size[0], h=analysis.size[1]), person_summary(analysis)]
    hint = "photo_box_hint_people" if len(analysis.everyone) > 1 else "photo_box_hint" if analysis.person is not None else "photo_box_hint_none"
    parts.append(msg("photo_box", box=", ".join(map(str, box))) if box else msg(hint))
    return " ".join(parts)


def legend_html(colormap: str = DEFAULT_COLORMAP) -> str:
    """The map colour scale (the overlay's colormap: blue = ignored ... red = decisive)."""
    stops = {"jet": "#00007f, #0000ff, #00ffff, #7fff7f, #ffff00, #ff0000, #7f0000",
             "turbo": "#30123b, #4686fb, #1ae4b6, #a2fc3c, #fabb39, #e4460a, #7a0403",
             "inferno": "#000004, #57106e, #bc3754, #f98e09, #fcffa4",
             "viridis": "#440154, #3b528b, #21918c, #5ec962, #fde725"}.get(colormap, "#00007f, #00ffff, #ffff00, #7f0000")
    low, high, what = (html.escape(msg(k)) for k in ("legend_low", "legend_high", "legend_what"))
    return (
        f'<div class="har-legend" id="legend"><span>{low}</span>'
        f'<span class="har-legend-bar" style="background: linear-gradient(to right, {stops})"></span>'
        f"<span>{high}</span><small>{what}</small></div>"
    )


def ambiguity_count(analysis: Analysis) -> int:
    flags = (ambiguity(c) for c in analysis.cards.values() if not c.error)
    return sum(1 for a in flags if a and a["flag"])


def status_line(analysis: Analysis, seconds: float, ran: int | None = None, cached: bool = False) -> str:
    """"3 model(s) in 0.84 s." for the models this event ran (``ran``; default all cards), or
    "from the cache" when nothing ran; plus ambiguity and failures."""
    ok = [c for c in analysis.cards.values() if not c.error]
    if cached:
        parts = [msg("done_cached", n=len(ok))]
    else:
        parts = [msg("done", n=len(ok) if ran is None else ran, seconds=seconds)]
    n_amb = ambiguity_count(analysis)
    if n_amb:
        parts.append(msg("ambiguity_summary", n=n_amb, total=len(ok)))
    failed = [c for c in analysis.cards.values() if c.error]
    parts += [msg("model_failed", name=c.name, error=redact_paths(c.error)) for c in failed]
    return " ".join(parts)


def unavailable_markdown(entries: Iterable[ModelEntry]) -> str:
    """Unavailable models folded into one line that opens to the per-model reasons."""
    entries = list(entries)
    if not entries:
        return ""
    needs = sorted({e.family for e in entries if e.family})
    summary = msg("unavailable_summary", n=len(entries), families=", ".join(needs) or "weights")
    body = "\n".join(f"<li>{_inline_md(short_unavailable_line(e))}</li>" for e in entries)
    return f'<details id="unavailable-details"><summary>{html.escape(summary)}</summary>\n<ul>\n{body}\n</ul>\n</details>'


def _inline_md(text: str) -> str:
    """The little Markdown our lines use (**bold**, `code`) as HTML, everything else escaped."""
    import re

    out = html.escape(text, quote=False)
    out = re.sub(r"\*\*(.+?)\*\*", r"<b>\1</b>", out)
    return re.sub(r"`(.+?)`", r"<code>\1</code>", out)
