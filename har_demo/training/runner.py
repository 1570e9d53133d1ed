"""Seeds x models on one saved split: train, WiSE-FT, calibrate, test, save checkpoint + card.

Layout of a run directory ``OUT``::

    OUT/splits.json [splits_cross.json]       the one split every model and seed uses
    OUT/results.md  results.json               per model: mean +- std over seeds, bootstrap CI
    OUT/confusion_<label>[_cross].png          pooled over seeds
    OUT/<label>/seed<k>/model.safetensors      checkpoint (loadable with --checkpoint OUT/<label>/seed<k>)
    OUT/<label>/seed<k>/card.json              data, split sizes, seed, metrics, calibration, command
    OUT/<label>/seed<k>/history.json           per-epoch train loss / val metrics
    OUT/<label>/seed<k>/metrics.json           val/test reports + test predictions
"""

from __future__ import annotations

import json
import logging
import shutil
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from ..errors import HarError, ModelUnavailable
from ..evaluate import classification_report
from ..labels import CLASSES
from ..models.base import HarModel
from ..models.checkpoint import CARD_FILE, WEIGHTS_FILE, read_card, save_checkpoint, write_card
from ..models.registry import build_model, get_spec
from .calibration import calibration_summary, fit_temperature, softmax
from .card import TrainingCard
from .config import ConfigError, TrainConfig
from .data import ImageCache, make_datasets
from .dataprep import RunData
from .features import FeatureStore, backbone_fingerprint, fit_frozen, uses_frozen_features
from .loop import FitResult, eval_loader, fit, predict_logits, split_metrics, state_copy
from .seeding import seed_everything
from .wise import choose_alpha

log = logging.getLogger(__name__)

HALF_ABOVE_BYTES = 10_000_000  # save_dtype "auto": fp16 when the fp32 tensors to store exceed this
METRICS_FILE = "metrics.json"
HISTORY_FILE = "history.json"


@dataclass
class Entry:
    """One row of a results table: a registry model with its builder config and training options."""

    label: str
    model: str
    config: dict = field(default_factory=dict)
    train: TrainConfig = field(default_factory=TrainConfig)
    pretrained: bool = True
    image_size: int | None = None  # --image-size: builder option input_size, else set_input_size
    notes: list[str] = field(default_factory=list)

    @property
    def dirname(self) -> str:
        return "".join(ch if ch.isalnum() or ch in "-_+." else "_" for ch in self.label)


# ---- building ------------------------------------------------------------------------------------
def unavailable_reason(entry: Entry) -> str | None:
    """Why the entry's pretrained weights cannot be had here (None: they can, or none are needed)."""
    if not entry.pretrained:
        return None
    return get_spec(entry.model).unavailable_reason(**entry.config)


def build_entry_model(entry: Entry) -> HarModel:
    """Build the entry's model (fresh head). Raises ModelUnavailable or ConfigError (one line)."""

    def build(config: dict) -> HarModel:
        try:
            return build_model(entry.model, pretrained=entry.pretrained, **config)
        except HarError:
            raise
        except (TypeError, ValueError) as err:
            raise ConfigError(f"{entry.label}: builder options {config} rejected: {err}") from None

    if entry.image_size and "input_size" not in entry.config:
        try:
            return build({**entry.config, "input_size": int(entry.image_size)})
        except ConfigError:
            model = build(entry.config)
            if model.input_size != entry.image_size:
                model.set_input_size(int(entry.image_size))
                note = f"--image-size {entry.image_size} applied with set_input_size (not a builder option of {entry.model}; not in the card config)"
                if note not in entry.notes:
                    entry.notes.append(note)
            return model
    return build(entry.config)


def input_size_of(entry: Entry) -> int:
    if entry.image_size:
        return int(entry.image_size)
    if "input_size" in entry.config:
        return int(entry.config["input_size"])
    return int(build_entry_model(entry).input_size)


def input_geometry_of(entry: Entry) -> tuple[int, str, str]:
    """(input size, resize mode, crop) of the entry's model: what the image cache holds for it."""
    if "resize" in entry.config and "person_crop" in entry.config:
        return input_size_of(entry), str(entry.config["resize"]), "person" if entry.config["person_crop"] else ""
    model = build_entry_model(entry)
    return int(model.input_size), model.resize, "person" if model.person_crop else ""


# ---- checkpoint storage policy -----------------------------------------------------------------
def _float_bytes(state: dict[str, torch.Tensor], keys: Sequence[str]) -> int:
    return sum(state[k].numel() * 4 for k in keys if state[k].is_floating_point())


def partial_keys_for(model: HarModel, entry: Entry) -> tuple[list[str] | None, str]:
    """Keys to store relative to the named base weights, or None for a full checkpoint; plus why.

    Only models offering ``partial_state_keys()`` and built from pretrained weights qualify. The
    base is rebuilt from ``model.config`` exactly as ``load_checkpoint`` will, and only tensors that
    differ from it (plus the model's own partial keys and the temperature) are stored. When the base
    is not reproducible (random init) every tensor differs and the checkpoint is full."""
    own_keys = model.partial_state_keys()
    if own_keys is None:
        return None, "full: this model has no partial-checkpoint support (all its weights are stored)"
    if not entry.pretrained:
        return None, "full: built without pretrained weights (pretrained=false), so there is no base to be relative to"
    base = build_model(entry.model, pretrained=True, **model.config).state_dict()
    state = model.state_dict()
    keys = set(own_keys) | {"temperature"}
    for k, v in state.items():
        b = base.get(k)
        if b is None or b.shape != v.shape or not torch.equal(b, v.detach().cpu().to(b.dtype)):
            keys.add(k)
    ordered = [k for k in state if k in keys]
    if len(ordered) >= len(state):
        return None, "full: every tensor differs from the base weights"
    return ordered, f"partial: {len(ordered)} of {len(state)} tensors differ from the base weights; the rest load from them"


def _round_to_half(model: HarModel, keys: Sequence[str]) -> None:
    """Round the stored float tensors to fp16 precision in place, so the metrics in the card are
    those of the weights that ship."""
    state = model.state_dict()
    with torch.no_grad():
        for k in keys:
            t = state[k]
            if t.is_floating_point() and k != "temperature":
                t.copy_(t.half().to(t.dtype))


# ---- one run -------------------------------------------------------------------------------------
def per_source_accuracy(correct: np.ndarray, samples) -> dict:
    """``{source: {"n", "accuracy"}}`` of per-photo hits ``correct`` (the cards' ``per_source``)."""
    src = Counter(s.source or "(none)" for s in samples)
    return {
        name: {"n": n, "accuracy": float(np.mean([c for c, s in zip(correct, samples) if (s.source or "(none)") == name]))}
        for name, n in sorted(src.items())
    }


def _report(logits: np.ndarray, y: np.ndarray, temperature: float, samples) -> dict:
    rep = classification_report(y, logits.argmax(1))
    rep["per_source"] = per_source_accuracy(logits.argmax(1) == y, samples)
    rep["calibration"] = calibration_summary(logits, y, temperature)
    return rep


def _json_dump(obj, path: Path) -> None:
    path.write_text(json.dumps(obj, indent=1, default=float) + "\n", encoding="utf-8")


def run_is_complete(run_dir: Path) -> bool:
    return all((run_dir / f).is_file() for f in (WEIGHTS_FILE, CARD_FILE, METRICS_FILE, HISTORY_FILE))


@dataclass
class _Run:
    """One (entry, seed) while it trains: the recipe's steps below read and fill it."""

    entry: Entry
    cfg: TrainConfig
    model: HarModel
    datasets: dict
    eval_names: list[str]
    generator: torch.Generator
    accelerator: object
    zeroshot: dict | None = None  # weights before fine-tuning (WiSE-FT's other end)
    features: FeatureStore | None = None  # the run's frozen-backbone feature cache (set by _fit)

    def logits_of(self, split: str) -> tuple[np.ndarray, np.ndarray]:
        """Logits and labels of a split. On the frozen-backbone path the head runs on cached clean
        features of the (stored, possibly fp16-rounded) backbone: every seed and fold of a run shares
        them, so evaluating costs one backbone pass per photo per run instead of one per seed and fold."""
        ds = self.datasets[split]
        if self.features is not None:  # set by _fit on the frozen-backbone path only
            self.model.eval()
            _, head = self.model.head_split()
            device = self.accelerator.device
            f = self.features.views(backbone_fingerprint(self.model), self.model, ds, [(ds.transform, 0.0)], device, self.cfg.eval_batch_size)[0]
            with torch.no_grad():
                z = head(f.to(device)).float().cpu().numpy() if len(ds) else np.zeros((0, len(CLASSES)), np.float32)
            return z, ds.targets.numpy()
        loader = self.accelerator.prepare(eval_loader(ds, self.cfg.eval_batch_size, self.cfg.num_workers))
        return predict_logits(self.model, loader, self.accelerator)


@dataclass
class _Storage:
    partial: list[str] | None  # keys stored relative to the base weights; None = full checkpoint
    note: str
    stored: list[str]
    half: bool


def _prepare(entry: Entry, data: RunData, cache: ImageCache, seed: int, accelerator) -> _Run:
    """Seed, build the model, make the datasets; keep the starting weights when WiSE-FT needs them."""
    cfg = entry.train
    if not get_spec(entry.model).needs_training:
        cfg = cfg.replace(epochs=0, lp_epochs=0)
    generator = seed_everything(seed)
    model = build_entry_model(entry)
    eval_names = ["val", *data.eval_splits]
    parts = {"train": data.splits["train"], **{k: data.splits[k] for k in eval_names}}
    ds = make_datasets(cache, parts, model.input_size, model.mean, model.std, cfg.augment, model.resize, model=model)
    model.fit_input_stats(ds["train"])  # e.g. pose-vector standardisation, from the training split only
    return _Run(entry, cfg, model, ds, eval_names, generator, accelerator, state_copy(model) if cfg.wise_ft else None)


def _fit(run: _Run, desc: str, features: FeatureStore | None, quiet: bool) -> FitResult:
    """The training loop: on cached frozen-backbone features when the model and config allow it."""
    if uses_frozen_features(run.model, run.cfg):
        run.features = features if features is not None else FeatureStore()
        return fit_frozen(run.model, run.datasets, run.cfg, run.accelerator, run.features, run.generator, desc, quiet)
    return fit(run.model, run.datasets["train"], run.datasets["val"], run.cfg, run.accelerator, run.generator, desc=desc, quiet=quiet)


def _wise_ft(run: _Run, result: FitResult) -> dict | None:
    """WiSE-FT: interpolate back towards the starting (text-initialised) weights, alpha chosen on val."""
    if not (run.cfg.wise_ft and result.epochs_run > 0):
        return None
    wise = choose_alpha(run.model, run.zeroshot, state_copy(run.model), run.cfg.wise_alphas, lambda m: split_metrics(*run.logits_of("val")))
    wise["chosen_on"] = "val macro-F1 (ties: val loss, then larger alpha)"
    return wise


def _storage(run: _Run) -> _Storage:
    """What the checkpoint stores (partial or full; fp16 when big), rounded in place to fp16 when
    half so the metrics measured next are those of the weights that ship."""
    partial, note = partial_keys_for(run.model, run.entry)
    state = run.model.state_dict()
    stored = partial if partial is not None else list(state)
    save_dtype = run.cfg.save_dtype
    half = save_dtype == "float16" or (save_dtype == "auto" and _float_bytes(state, stored) > HALF_ABOVE_BYTES)
    if half:
        _round_to_half(run.model, stored)
    return _Storage(partial, note, stored, half)


def _evaluate(run: _Run, data: RunData) -> tuple[float, dict, dict]:
    """(val temperature, split -> report, non-val split -> predictions with raw logits).

    The temperature fitted on val is a diagnostic only (each report's ``calibration`` shows what it
    would do on the other splits): ~100 val photos from the training sources do not calibrate for
    new sources (it made ECE worse on unseen ones), so the model keeps T = 1 here and only a
    temperature fitted on leave-one-source-out predictions and confirmed by a cross-check is ever
    shipped (``calibration.unseen_calibration``)."""
    logits = {k: run.logits_of(k) for k in run.eval_names}
    temperature = fit_temperature(*logits["val"]) if run.cfg.calibrate else 1.0
    run.model.temperature.fill_(1.0)
    reports = {k: _report(z, y, temperature, data.splits[k]) for k, (z, y) in logits.items()}
    predictions = {
        k: {"y_true": y.tolist(), "probs": softmax(z, 1.0).round(6).tolist(), "logits": np.asarray(z, np.float64).round(5).tolist(),
            "paths": [s.path for s in data.splits[k]]}
        for k, (z, y) in logits.items()
        if k != "val"
    }
    return temperature, reports, predictions


def _card(run: _Run, data: RunData, seed: int, result: FitResult, wise, storage: _Storage, temperature: float, reports: dict,
          command: str, argv: Sequence[str] | None) -> TrainingCard:
    acc = run.accelerator
    return TrainingCard(
        label=run.entry.label,
        seed=seed,
        data=data.info,
        split_sizes={k: len(v) for k, v in data.splits.items()},
        metrics=TrainingCard.card_metrics(reports),
        calibration=TrainingCard.calibration_of(temperature, reports),
        wise_ft=wise,
        training={
            **run.cfg.to_dict(),
            **result.to_dict(),
            "pretrained": run.entry.pretrained,
            "precision": str(acc.mixed_precision),
            "device": str(acc.device),
            "processes": acc.num_processes,
            "notes": list(run.entry.notes),
        },
        weights={"storage": storage.note, "stored_tensors": len(storage.stored), "half": storage.half,
                 "description": run.model.describe().get("backbone_source")},
        command=command,
        argv=list(argv or []),
    )


def input_importance(run: _Run) -> dict:
    """Permutation importance of the pose-vector groups on the validation split (``training.importance``)."""
    from .importance import permutation_importance

    val = run.datasets["val"]
    x = torch.stack([val[i][0] for i in range(len(val))]).to(run.model.device)
    rows = permutation_importance(run.model, x, val.targets.to(x.device))
    return {"method": "permutation importance on the validation split (accuracy drop when a group is shuffled across photos, 5 repeats)",
            "groups": rows}


def person_found_rates(cache: ImageCache, data: RunData) -> dict:
    """Per split: photos in which the person finder found someone (the others use the whole photo)."""
    persons = cache.persons()
    out = {"finder": "MediaPipe BlazePose (mediapipe 0.10.14), most prominent person; none found -> whole photo, pose vector 'found'=0"}
    for split, samples in data.splits.items():
        found = sum(persons[cache.index[s.path]] is not None for s in samples)
        out[split] = {"found": found, "n": len(samples), "rate": round(found / max(1, len(samples)), 4)}
    return out


def train_one(
    entry: Entry,
    data: RunData,
    cache: ImageCache,
    seed: int,
    run_dir: Path,
    accelerator,
    command: str = "",
    argv: Sequence[str] | None = None,
    quiet: bool = False,
    features: FeatureStore | None = None,
) -> dict:
    """Train one (entry, seed); write its checkpoint, card, history and metrics; return the metrics.
    ``features``: the run's frozen-backbone feature cache (shared across seeds and folds)."""
    started = time.perf_counter()
    run = _prepare(entry, data, cache, seed, accelerator)
    result = _fit(run, f"{entry.label} seed {seed}", features, quiet)
    wise = _wise_ft(run, result)
    storage = _storage(run)
    temperature, reports, predictions = _evaluate(run, data)
    metrics = {
        "label": entry.label,
        "model": entry.model,
        "seed": seed,
        "backbone_source": run.model.describe().get("backbone_source"),
        "fit": result.to_dict(),
        "temperature": temperature,
        "wise_ft": wise,
        "reports": reports,
        "predictions": predictions,
        "seconds": round(time.perf_counter() - started, 2),
    }
    if accelerator.is_main_process:
        run_dir.mkdir(parents=True, exist_ok=True)
        card = _card(run, data, seed, result, wise, storage, temperature, reports, command, argv)
        if run.model.needs_person:
            card.person_finder = person_found_rates(cache, data)
        if run.model.aux_features and not run.model.uses_image:
            card.input_importance = input_importance(run)
        save_checkpoint(run.model, run_dir, card.to_dict(), partial_keys=storage.partial, half=storage.half)
        _json_dump(result.history, run_dir / HISTORY_FILE)
        _json_dump(metrics, run_dir / METRICS_FILE)
    accelerator.wait_for_everyone()
    return metrics


# ---- an experiment -------------------------------------------------------------------------------
@dataclass
class EntryResult:
    entry: Entry
    runs: list[dict] = field(default_factory=list)
    skipped: str | None = None
    run_dirs: list[Path] = field(default_factory=list)


def run_entries(
    entries: Sequence[Entry],
    data: RunData,
    out_dir: str | Path,
    seeds: Sequence[int],
    accelerator,
    cache: ImageCache | None = None,
    command: str = "",
    argv: Sequence[str] | None = None,
    quiet: bool = False,
    resume: bool = False,
    features: FeatureStore | None = None,
) -> list[EntryResult]:
    """Every entry x seed. Entries whose weights are unavailable are returned with ``skipped`` set
    (the reason goes into the table); nothing is skipped silently. ``features``: frozen-backbone
    feature cache to share (e.g. across cross-source folds); a new one by default."""
    out = Path(out_dir)
    features = features if features is not None else FeatureStore()
    results = [EntryResult(e) for e in entries]
    for r in results:
        r.skipped = unavailable_reason(r.entry)
    live = [r for r in results if not r.skipped]
    sizes = set()
    for r in live:
        try:
            sizes.add(input_geometry_of(r.entry))
        except ModelUnavailable as err:
            r.skipped = str(err)
    cache = cache or ImageCache(data.all_samples)
    cache.prepare(sizes)
    for r in results:
        if r.skipped:
            if not quiet:
                accelerator.print(f"[skip] {r.entry.label}: {r.skipped}")
            continue
        for seed in seeds:
            run_dir = out / r.entry.dirname / f"seed{seed}"
            r.run_dirs.append(run_dir)
            if resume and run_is_complete(run_dir):
                r.runs.append(json.loads((run_dir / METRICS_FILE).read_text(encoding="utf-8")))
                continue
            try:
                m = train_one(r.entry, data, cache, seed, run_dir, accelerator, command, argv, quiet, features)
            except ModelUnavailable as err:
                r.skipped = str(err)
                break
            r.runs.append(m)
            if not quiet:
                test = m["reports"].get("test") or next(iter(m["reports"].values()))
                accelerator.print(
                    f"[done] {r.entry.label} seed {seed}: val F1 {m['reports']['val']['macro_f1']:.3f}  "
                    f"test acc {test['accuracy']:.3f}  ({m['fit']['epochs_run']} epochs, best {m['fit']['best_epoch']}, {m['seconds']:.0f}s)"
                )
        if accelerator.device.type != "cpu":
            accelerator.free_memory()  # release this entry's prepared models/loaders (GPU memory)
    accelerator.free_memory()  # on CPU once at the end: its gc.collect() is slow and CPU models are small
    return results


def export_best(results: Sequence[EntryResult], dest_root: str | Path) -> dict[str, str]:
    """Copy, per trained model, the seed with the best *validation* macro-F1 (never chosen on test)
    to ``dest_root/<model>/`` (checkpoint, card, history). Returns model -> source run dir."""
    dest_root = Path(dest_root)
    chosen = {}
    for r in results:
        if r.skipped or not r.runs:
            continue
        best = max(range(len(r.runs)), key=lambda i: (r.runs[i]["reports"]["val"]["macro_f1"], -r.runs[i]["seed"]))
        src = r.run_dirs[best]
        dest = dest_root / r.entry.model
        dest.mkdir(parents=True, exist_ok=True)
        for name in (WEIGHTS_FILE, HISTORY_FILE):
            shutil.copy2(src / name, dest / name)
        card = read_card(src)
        card["selected"] = {
            "from": str(src),
            "rule": "seed with the best validation macro-F1",
            "val_macro_f1_by_seed": {str(m["seed"]): m["reports"]["val"]["macro_f1"] for m in r.runs},
        }
        write_card(dest, card)
        chosen[r.entry.model] = str(src)
    return chosen
