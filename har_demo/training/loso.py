"""Leave-one-source-out: for each ``source`` of the data, train on the others, test on it.

Photos from one source share a look (camera, scene, crop), so a model can learn the source instead
of the pose; the in-source test split cannot show that. Each fold is an ordinary held-out-source
run (``--holdout-source SRC``: group-aware train/val/test split of the other sources, the held-out
source as ``test_cross``) written to ``OUT/loso/<source>/``; ``loso.md`` / ``loso.json`` gather the
held-out accuracy per source, plus the pooled accuracy over every held-out photo (each photo
predicted by the fold that never saw its source) and the macro average over sources.

Sources with fewer than ``min_images`` photos are not folds (too few to measure); their photos
stay in every fold's training data. The image cache and the frozen-backbone feature cache are
shared by all folds, so each photo is decoded once and (for frozen backbones) encoded once.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ..data.datasets import Sample
from ..errors import DataError
from ..evaluate import classification_report
from ..labels import CLASSES
from .calibration import unseen_calibration, val_fit_policy
from .dataprep import make_run_data
from .features import FeatureStore
from .results import write_results
from .runner import Entry, EntryResult, run_entries
from .stats import bootstrap_accuracy_ci, mean_std

SPLIT = "test_cross"


def loso_sources(samples: Sequence[Sample], min_images: int = 10) -> list[str]:
    """Sources with at least ``min_images`` photos, largest first; at least two are needed."""
    counts = Counter(s.source for s in samples if s.source)
    folds = [src for src, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])) if n >= min_images]
    if len(folds) < 2:
        raise DataError(
            f"leave-one-source-out needs >= 2 sources with >= {min_images} photos; the data has {dict(counts) or 'no source column'}"
        )
    return folds


def run_loso(entries: Sequence[Entry], samples: Sequence[Sample], out_dir: str | Path, seeds: Sequence[int], accelerator,
             split_seed: int = 0, fractions: Sequence[float] = (0.8, 0.1, 0.1), min_images: int = 10,
             source_info: dict | None = None, command: str = "", **common) -> dict:
    """Run every fold; write per-fold results and ``loso.md`` / ``loso.json``; return the summary."""
    out = Path(out_dir)
    folds = loso_sources(samples, min_images)
    common.setdefault("features", FeatureStore())
    per_fold: dict[str, list[EntryResult]] = {}
    fold_sizes: dict[str, dict] = {}
    for src in folds:
        fold_dir = out / "loso" / src
        data = make_run_data(samples, fold_dir, split_seed, fractions, [src], None, source_info, write=accelerator.is_main_process)
        results = run_entries(entries, data, fold_dir, seeds, accelerator, command=command, **common)
        if accelerator.is_main_process:
            write_results(results, data.info, fold_dir, command, seeds, title=f"Results: {src} held out")
        per_fold[src] = results
        fold_sizes[src] = data.info["splits"][SPLIT]
    doc = summarise_loso(per_fold, fold_sizes, list(seeds), command, min_images)
    if accelerator.is_main_process:
        out.mkdir(parents=True, exist_ok=True)
        (out / "loso.json").write_text(json.dumps(doc, indent=1, default=float) + "\n", encoding="utf-8")
        (out / "loso.md").write_text(render_loso(doc), encoding="utf-8")
    return doc


def attach_unseen_accuracy(doc: dict, export_dir: str | Path) -> list[str]:
    """Write each model's pooled leave-one-source-out accuracy into ``export_dir/<model>/card.json``
    as ``unseen_source_accuracy`` (so the app can say how far to trust each model); returns the
    models written. Rows whose label is not an exported checkpoint are left out."""
    from ..models.checkpoint import read_card, write_card
    from .card import unseen_source_record

    written = []
    for row in doc["rows"]:
        card_path = Path(export_dir) / row["label"] / "card.json"
        if row["status"] != "ok" or not card_path.is_file():
            continue
        card = read_card(card_path.parent)
        card["unseen_source_accuracy"] = unseen_source_record(row, doc["folds"], doc["seeds"], doc["command"])
        # the probability the app shows: calibrated on unseen sources only where the cross-check shipped it
        cal = row.get("calibration_unseen") or {"shipped": False, "temperature": 1.0, "reason": "no out-of-source logits"}
        card["calibration_unseen"] = cal
        card["temperature"] = float(cal["temperature"]) if cal.get("shipped") else 1.0
        write_card(card_path.parent, card)
        written.append(row["label"])
    return written


def summarise_loso(per_fold: dict[str, list[EntryResult]], fold_sizes: dict[str, dict], seeds: list[int], command: str = "",
                   min_images: int = 10) -> dict:
    """Per entry: held-out accuracy per source (mean ± std over seeds) and pooled / macro figures."""
    labels = [r.entry.label for r in next(iter(per_fold.values()))]
    rows = []
    for i, label in enumerate(labels):
        row: dict = {"label": label, "sources": {}, "status": "ok"}
        pooled_true: dict[int, list[int]] = {}
        pooled_pred: dict[int, list[int]] = {}
        held_logits: list = []
        held_true: list[int] = []
        held_source: list[str] = []
        held_val_t: list[float] = []
        no_logits = False
        for src, results in per_fold.items():
            r = results[i]
            if r.skipped or not r.runs:
                row["status"], row["reason"] = "skipped", r.skipped or "no runs"
                break
            accs = [m["reports"][SPLIT]["accuracy"] for m in r.runs]
            mean, std = mean_std(accs)
            by_class = fold_sizes[src]["per_class"]
            row["sources"][src] = {"n": fold_sizes[src]["n"], "per_class": by_class, "accuracy": {"mean": mean, "std": std, "values": accs}}
            for m in r.runs:
                p = m["predictions"][SPLIT]
                pooled_true.setdefault(m["seed"], []).extend(p["y_true"])
                pooled_pred.setdefault(m["seed"], []).extend(int(np.argmax(q)) for q in p["probs"])
                if "logits" in p:  # runs from before logits were kept cannot be calibrated afterwards
                    held_logits.extend(p["logits"])
                    held_true.extend(p["y_true"])
                    held_source.extend([src] * len(p["y_true"]))
                    held_val_t.extend([float(m.get("temperature", 1.0))] * len(p["y_true"]))
                else:
                    held_logits.clear()
                    no_logits = True
        if row["status"] == "ok":
            seeds_done = sorted(pooled_true)
            reports = [classification_report(np.array(pooled_true[s]), np.array(pooled_pred[s])) for s in seeds_done]
            correct = np.array([np.array(pooled_true[s]) == np.array(pooled_pred[s]) for s in seeds_done])
            macro = [float(np.mean([row["sources"][src]["accuracy"]["values"][k] for src in row["sources"]])) for k in range(len(seeds_done))]
            row["pooled"] = {
                "n": int(correct.shape[1]),
                "accuracy": dict(zip(("mean", "std"), mean_std([r["accuracy"] for r in reports]))),
                "macro_f1": dict(zip(("mean", "std"), mean_std([r["macro_f1"] for r in reports]))),
                "ci95": list(bootstrap_accuracy_ci(correct)),
                "per_class_recall": {c: float(np.mean([r["per_class"][c]["recall"] for r in reports])) for c in CLASSES},
            }
            row["macro_over_sources"] = dict(zip(("mean", "std"), mean_std(macro)))
            if held_logits and not no_logits:
                row["calibration_unseen"] = unseen_calibration(held_logits, held_true, held_source)
                row["calibration_unseen"]["val_fit_policy"] = val_fit_policy(held_logits, held_true, held_val_t)
        rows.append(row)
    return {"command": command, "seeds": seeds, "folds": list(per_fold), "min_images": min_images, "rows": rows}


def _pm(d: dict) -> str:
    return f"{d['mean']:.3f} ± {d['std']:.3f}"


def render_loso(doc: dict) -> str:
    folds = doc["folds"]
    lines = ["# Leave-one-source-out", ""]
    if doc.get("command"):
        lines += [f"Reproduce: `{doc['command']}`", ""]
    lines += [
        (f"- Each column: train + validate on every other source (group-aware split), test on all photos of that source "
         f"(folds: sources with >= {doc['min_images']} photos). Seeds {doc['seeds']}: mean ± sample std."),
        ("- pooled: accuracy over every held-out photo (each predicted by the fold that never saw its source), "
         "95% CI by bootstrap over those photos; macro: mean of the per-source accuracies."),
        "",
    ]
    first_ok = next((r for r in doc["rows"] if r["status"] == "ok"), None)
    if first_ok:
        lines.append("Held-out photos per class (" + ", ".join(CLASSES) + "): " + "; ".join(
            f"{src} " + "/".join(str(first_ok["sources"][src]["per_class"].get(c, 0)) for c in CLASSES) for src in folds
        ))
        lines.append("")
    lines.append("| model | " + " | ".join(f"{s} (n={first_ok['sources'][s]['n']})" if first_ok else s for s in folds) + " | pooled | 95% CI | pooled macro F1 | macro over sources |")
    lines.append("|---" * (len(folds) + 5) + "|")
    for r in doc["rows"]:
        if r["status"] != "ok":
            lines.append(f"| {r['label']} | skipped: {r.get('reason', '')} |" + " |" * (len(folds) + 3))
            continue
        cells = [_pm(r["sources"][s]["accuracy"]) for s in folds]
        ci = r["pooled"]["ci95"]
        lines.append(
            f"| {r['label']} | " + " | ".join(cells)
            + f" | {_pm(r['pooled']['accuracy'])} | [{ci[0]:.3f}, {ci[1]:.3f}] | {_pm(r['pooled']['macro_f1'])} | {_pm(r['macro_over_sources'])} |"
        )
    cal_rows = [r for r in doc["rows"] if r.get("calibration_unseen", {}).get("unseen")]
    if cal_rows:
        lines += ["", ("Calibration on unseen sources (temperature fitted on the held-out logits above; before -> after is the "
                       "cross-check: each half of the sources scored with the temperature fitted on the other half; shipped only "
                       "if that lowered the NLL both ways):"), "",
                  "| model | fitted T | cross-check T (half A / half B) | NLL before -> after | ECE before -> after | shipped | old policy (val-fit T per fold): NLL / ECE |",
                  "|---|---|---|---|---|---|---|"]  # fmt: skip
        for r in cal_rows:
            c = r["calibration_unseen"]
            u = c["unseen"]
            lines.append(f"| {r['label']} | {c['fitted_temperature']:.2f} | {c['cross_check'][0]['temperature']:.2f} / "
                         f"{c['cross_check'][1]['temperature']:.2f} | {u['nll_before']:.3f} -> {u['nll_after']:.3f} | "
                         f"{u['ece_before']:.3f} -> {u['ece_after']:.3f} | {'yes, T = ' + format(c['temperature'], '.2f') if c['shipped'] else 'no (T = 1)'} | "
                         + (f"{c['val_fit_policy']['nll']:.3f} / {c['val_fit_policy']['ece']:.3f} |" if "val_fit_policy" in c else "- |"))  # fmt: skip
    return "\n".join(lines) + "\n"
