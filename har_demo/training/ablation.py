"""The study's augmentation ablation: ``cnn_gen`` trained with no augmentation, each single
augmentation of ``AUGMENTATIONS``, the study's set and all of them combined."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from ..data.transforms import AUGMENTATIONS, STUDY_AUGMENT
from .results import _ci, _pm, data_lines, summarise
from .runner import Entry, EntryResult
from .stats import BOOTSTRAP_METHOD

ABLATION_MODEL = "cnn_gen"


def ablation_variants() -> list[tuple[str, tuple[str, ...]]]:
    """(name, augmentations) in table order."""
    return [("none", ()), *[(a, (a,)) for a in AUGMENTATIONS], ("study", tuple(STUDY_AUGMENT)), ("all", tuple(AUGMENTATIONS))]


def ablation_entries(base: Entry) -> list[Entry]:
    """One entry per variant, sharing ``base``'s model config and training options."""
    return [
        Entry(f"{base.model}+{name}", base.model, dict(base.config), base.train.replace(augment=augs), base.pretrained, base.image_size)
        for name, augs in ablation_variants()
    ]


def render_ablation(rows: Sequence[dict], info: dict, command: str, seeds: Sequence[int], split: str = "test") -> str:
    lines = ["# Augmentation ablation (cnn_gen)", ""]
    if command:
        lines += [f"Reproduce: `{command}`", ""]
    lines += data_lines(info)
    lines += [f"- Seeds: {list(seeds)}; mean ± sample std over seeds; 95% CI: {BOOTSTRAP_METHOD}.", ""]
    lines += [
        "| variant | augmentations | accuracy | 95% CI (acc.) | macro F1 | Δ accuracy vs none |",
        "|---|---|---|---|---|---|",
    ]
    ok = {r["label"]: r for r in rows if r["status"] == "ok" and split in r.get("splits", {})}
    base = next((r for r in ok.values() if not r["augment"]), None)
    for r in rows:
        augs = ", ".join(r["augment"]) or "none"
        if r["label"] not in ok:
            lines.append(f"| {r['label']} | {augs} | {'skipped: ' + str(r['reason']) if r['status'] == 'skipped' else 'n/a'} | | | |")
            continue
        s = r["splits"][split]
        delta = f"{s['accuracy']['mean'] - base['splits'][split]['accuracy']['mean']:+.3f}" if base else "n/a"
        lines.append(f"| {r['label']} | {augs} | {_pm(s['accuracy'])} | {_ci(s)} | {_pm(s['macro_f1'])} | {delta} |")
    return "\n".join(lines) + "\n"


def write_ablation(results: Sequence[EntryResult], info: dict, out_dir: str | Path, command: str = "", seeds: Sequence[int] = ()) -> dict:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rows = [summarise(r) for r in results]
    doc = {"command": command, "seeds": list(seeds), "data": info, "bootstrap": BOOTSTRAP_METHOD, "rows": rows}
    (out / "ablation.json").write_text(json.dumps(doc, indent=1, default=float) + "\n", encoding="utf-8")
    (out / "ablation.md").write_text(render_ablation(rows, info, command, seeds), encoding="utf-8")
    return doc
