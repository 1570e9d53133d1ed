"""Per-model summaries over seeds and the tables/figures a run writes (results.md/json, PNGs)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ..labels import CLASSES
from ..models.registry import get_spec
from .plots import confusion_png
from .runner import EntryResult
from .stats import BOOTSTRAP_METHOD, bootstrap_accuracy_ci, mean_std
from .study import STUDY_DATA, STUDY_REFERENCE, STUDY_RESULTS

METRICS = ("accuracy", "macro_precision", "macro_recall", "macro_f1")
SPLIT_TITLES = {
    "test": "Test (held-out images from the training sources)",
    "test_cross": "Cross-source test (sources never seen in training)",
}


def _weights_kind(r: EntryResult) -> str:
    """from scratch | pretrained | random init (a tiny/local config of a pretrained-family model)."""
    if get_spec(r.entry.model).init == "scratch":
        return "from scratch"
    described = " ".join(str(m.get("backbone_source") or "") for m in r.runs)
    if not r.entry.pretrained or "random init" in described:
        return "random init (tiny/local config)"
    return "pretrained"


def summarise_split(runs: Sequence[dict], split: str) -> dict | None:
    """Mean/std over seeds of each metric, pooled confusion, bootstrap CI on accuracy, per source."""
    reps = [m["reports"][split] for m in runs if split in m["reports"]]
    if not reps:
        return None
    out: dict = {"n": reps[0]["n"], "seeds": len(reps)}
    for k in METRICS:
        mean, std = mean_std([r[k] for r in reps])
        out[k] = {"mean": mean, "std": std, "values": [r[k] for r in reps]}
    preds = [m["predictions"][split] for m in runs if split in m.get("predictions", {})]
    same_images = preds and all(p["paths"] == preds[0]["paths"] for p in preds)
    if same_images:
        y = np.asarray(preds[0]["y_true"])
        correct = np.stack([np.asarray(p["probs"]).argmax(1) == y for p in preds])
        lo, hi = bootstrap_accuracy_ci(correct)
        out["accuracy_ci95"] = [lo, hi]
        out["ci_method"] = BOOTSTRAP_METHOD
    out["confusion_pooled"] = np.sum([np.asarray(r["confusion"]) for r in reps], axis=0).tolist()
    sources = sorted({s for r in reps for s in r.get("per_source", {})})
    out["per_source"] = {
        s: {"n": reps[0]["per_source"][s]["n"], "accuracy": mean_std([r["per_source"][s]["accuracy"] for r in reps])[0]}
        for s in sources
        if all(s in r.get("per_source", {}) for r in reps)
    }
    cal = [r["calibration"] for r in reps if "calibration" in r]
    if cal:
        out["calibration"] = {k: mean_std([c[k] for c in cal])[0] for k in ("ece_before", "ece_after", "nll_before", "nll_after")}
    return out


def summarise(r: EntryResult) -> dict:
    """One table row (as JSON) for an entry."""
    row = {
        "label": r.entry.label,
        "model": r.entry.model,
        "weights": _weights_kind(r),
        "augment": list(r.entry.train.augment),
        "status": "skipped" if r.skipped else "ok",
        "reason": r.skipped,
        "notes": list(r.entry.notes),
        "backbone_source": next((m.get("backbone_source") for m in r.runs if m.get("backbone_source")), None),
        "seeds": [m["seed"] for m in r.runs],
        "run_dirs": [str(d) for d in r.run_dirs],
        "train_options": r.entry.train.to_dict(),
        "model_config": dict(r.entry.config),
    }
    if r.skipped or not r.runs:
        return row
    row["splits"] = {s: summarise_split(r.runs, s) for s in ("val", "test", "test_cross")}
    row["splits"] = {k: v for k, v in row["splits"].items() if v}
    row["temperature"] = mean_std([m["temperature"] for m in r.runs])[0]
    row["best_epoch"] = mean_std([m["fit"]["best_epoch"] for m in r.runs])[0]
    row["epochs_run"] = mean_std([m["fit"]["epochs_run"] for m in r.runs])[0]
    row["seconds_per_run"] = mean_std([m["seconds"] for m in r.runs])[0]
    alphas = [m["wise_ft"]["alpha"] for m in r.runs if m.get("wise_ft")]
    if alphas:
        row["wise_ft_alpha"] = alphas
    return row


# ---- markdown -------------------------------------------------------------------------------------
def _pm(d: dict) -> str:
    return f"{d['mean']:.3f} ± {d['std']:.3f}"


def _ci(split: dict) -> str:
    ci = split.get("accuracy_ci95")
    return f"[{ci[0]:.3f}, {ci[1]:.3f}]" if ci else "n/a"


def split_table(rows: Sequence[dict], split: str, with_study: bool = True) -> list[str]:
    head = "| model | weights | seeds | accuracy | 95% CI (acc.) | macro P | macro R | macro F1 | ECE before → after |"
    sep = "|---|---|---|---|---|---|---|---|---|"
    if with_study:
        head += " study acc. |"
        sep += "---|"
    lines = [head, sep]
    for row in rows:
        study = STUDY_RESULTS.get(row["model"]) if row["label"] == row["model"] else None
        study_cell = f" {study[1]:.2f} ({study[0]}) |" if with_study and study else (" — |" if with_study else "")
        if row["status"] == "skipped":
            lines.append(f"| {row['label']} | — | 0 | skipped: {row['reason']} | | | | | |" + study_cell)
            continue
        s = row.get("splits", {}).get(split)
        if not s:
            continue
        cal = s.get("calibration", {})
        ece = f"{cal['ece_before']:.3f} → {cal['ece_after']:.3f}" if cal else "n/a"
        lines.append(
            f"| {row['label']} | {row['weights']} | {s['seeds']} | {_pm(s['accuracy'])} | {_ci(s)} | {_pm(s['macro_precision'])} | "
            f"{_pm(s['macro_recall'])} | {_pm(s['macro_f1'])} | {ece} |" + study_cell
        )
    return lines


def per_source_table(rows: Sequence[dict], split: str) -> list[str]:
    ok = [r for r in rows if r["status"] == "ok" and split in r.get("splits", {})]
    sources = sorted({s for r in ok for s in r["splits"][split]["per_source"]})
    if not ok or len(sources) < 2:
        return []
    n = {s: next(r["splits"][split]["per_source"][s]["n"] for r in ok if s in r["splits"][split]["per_source"]) for s in sources}
    lines = ["| model | " + " | ".join(f"{s} (n={n[s]})" for s in sources) + " |", "|---|" + "---|" * len(sources)]
    for r in ok:
        ps = r["splits"][split]["per_source"]
        lines.append(f"| {r['label']} | " + " | ".join(f"{ps[s]['accuracy']:.3f}" if s in ps else "—" for s in sources) + " |")
    return lines


def data_lines(info: dict) -> list[str]:
    sp = info.get("splits", {})
    sizes = ", ".join(f"{k} {v['n']}" for k, v in sp.items())
    lines = [
        (
            f"- Data: `{info.get('path')}` ({info.get('kind')}); split seed {info.get('split_seed')}, fractions "
            f"{info.get('split_fractions')}, {info.get('split_method')}; sizes: {sizes}."
        ),
    ]
    if info.get("holdout_sources"):
        lines.append(f"- Held-out sources (cross-source test, never seen in training or validation): {', '.join(info['holdout_sources'])}.")
    for k, v in sp.items():
        lines.append(f"  - {k}: " + ", ".join(f"{c} {v['per_class'][c]}" for c in CLASSES) + f"; sources: {v['per_source']}")
    return lines


def render_markdown(rows: Sequence[dict], info: dict, command: str, seeds: Sequence[int], title: str = "Results") -> str:
    lines = [f"# {title}", ""]
    if command:
        lines += [f"Reproduce: `{command}`", ""]
    lines += data_lines(info)
    lines += [
        f"- Seeds (model init, batch order, augmentation): {list(seeds)}; the split is the same for every model and seed.",
        "- accuracy / macro P / R / F1: mean ± sample std over seeds. 95% CI: " + BOOTSTRAP_METHOD + ".",
        "- ECE (15 bins) on the test split before → after temperature scaling fitted on validation.",
        "",
    ]
    splits = [s for s in ("test", "test_cross") if any(s in r.get("splits", {}) for r in rows)]
    for split in splits or ["test"]:
        lines += [f"## {SPLIT_TITLES[split]}", ""]
        lines += split_table(rows, split, with_study=split == "test")
        src = per_source_table(rows, split)
        if src:
            lines += ["", "Accuracy per source (mean over seeds):", "", *src]
        lines.append("")
    skipped = [r for r in rows if r["status"] == "skipped"]
    measured = [r for r in rows if r["status"] == "ok"]
    lines += ["## What was measured", ""]
    lines.append("- Trained and measured here: " + (", ".join(f"{r['label']} ({r['weights']})" for r in measured) or "none") + ".")
    for r in measured:
        if r.get("backbone_source"):
            lines.append(f"  - {r['label']} backbone: {r['backbone_source']}")
    if skipped:
        lines.append("- Not measured (weights unavailable here): " + "; ".join(f"{r['label']}: {r['reason']}" for r in skipped) + ".")
    for r in rows:
        for note in r.get("notes", []):
            lines.append(f"- {r['label']}: {note}")
    lines += [
        "",
        "## The study's numbers (context only)",
        "",
        f"{STUDY_REFERENCE}; data: {STUDY_DATA}. Different data and split from ours: not directly comparable.",
        "",
        "| study model | our registry name | study test accuracy | where stated |",
        "|---|---|---|---|",
    ]
    for model, (name, acc, where) in STUDY_RESULTS.items():
        lines.append(f"| {name} | {model} | {acc:.2f} | {where} |")
    return "\n".join(lines) + "\n"


def write_results(
    results: Sequence[EntryResult],
    info: dict,
    out_dir: str | Path,
    command: str = "",
    seeds: Sequence[int] = (),
    name: str = "results",
    title: str = "Results",
    extra: dict | None = None,
) -> dict:
    """Write ``<name>.md``, ``<name>.json`` and pooled confusion PNGs; return the JSON document."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rows = [summarise(r) for r in results]
    for row, r in zip(rows, results):
        for split, suffix in (("test", ""), ("test_cross", "_cross")):
            s = row.get("splits", {}).get(split)
            if s:
                png = out / f"confusion_{r.entry.dirname}{suffix}.png"
                confusion_png(s["confusion_pooled"], png, f"{row['label']}: {split}, pooled over {s['seeds']} seed(s)")
                s["confusion_png"] = png.name
    doc = {
        "command": command,
        "seeds": list(seeds),
        "data": info,
        "bootstrap": BOOTSTRAP_METHOD,
        "study": {"reference": STUDY_REFERENCE, "data": STUDY_DATA, "results": {k: {"name": v[0], "accuracy": v[1], "where": v[2]} for k, v in STUDY_RESULTS.items()}},
        "rows": rows,
        **(extra or {}),
    }
    (out / f"{name}.json").write_text(json.dumps(doc, indent=1, default=float) + "\n", encoding="utf-8")
    (out / f"{name}.md").write_text(render_markdown(rows, info, command, seeds, title), encoding="utf-8")
    return doc
