"""Training hyper-parameters, per-model defaults, and the ``--config`` override mechanism.

Precedence (later wins): ``TrainConfig`` defaults < the model's registry line (``ModelSpec.train``) < explicit CLI flags
(``--epochs``, ``--lr`` ...) < ``--config`` overrides for all models (``train.KEY=V``) <
``--config`` overrides for one model (``MODEL.train.KEY=V``).

``--config`` accepts, any number of times: a JSON file, a JSON object, or ``KEY=VALUE`` pairs.
A VALUE is read by the project's one grammar (``har_demo.options``) against the option's type:
``true``/``false`` in any case, whole numbers, numbers, ``null``/``none``, JSON lists/objects,
``a,b,c`` lists, text. The type is the ``TrainConfig`` field's annotation for training options
and the builder's parameter for builder options (``models.registry.builder_options``); an
unknown key or a value of the wrong type is one ``ConfigError`` line. Keys:

* ``train.KEY`` (or a bare ``KEY`` that is a ``TrainConfig`` field): training, every model;
* ``MODEL.train.KEY``: training, one model;
* ``MODEL.KEY``: that model's builder config (e.g. ``cnn_base.widths=[8,16]``,
  ``effnet_lite0.person_crop=false``); ``MODEL.pretrained=false`` builds it without pretrained
  weights (tiny/local configs).

A JSON object has the same shape: ``{"train": {...}, "cnn_base": {"widths": [8, 16], "train": {...}}}``;
its values are checked against the same types.
"""

from __future__ import annotations

import dataclasses
import json
import typing
from collections.abc import Iterable
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from ..data.io import read_json_file
from ..data.transforms import AUGMENTATIONS, STUDY_AUGMENT
from ..errors import ConfigError, HarError
from ..models.registry import MODELS, builder_kind, get_spec
from ..options import check, from_text

__all__ = ["ConfigError", "Overrides", "TrainConfig", "parse_augment", "parse_overrides", "train_config_for"]


@dataclass
class TrainConfig:
    """Everything the loop needs besides the model and the data."""

    epochs: int = 30
    batch_size: int = 32
    eval_batch_size: int = 64
    lr: float = 1e-3  # head (and whole model when there is no pretrained backbone)
    backbone_lr: float | None = None  # None: lr * backbone_lr_scale
    backbone_lr_scale: float = 0.1
    lr_decay: float | None = None  # layer-wise LR decay for backbones that support it (e.g. 0.75)
    backbone_trainable: float = 1.0  # fraction of backbone tensors (from the output end) that train; rest frozen
    feature_views: int = 4  # backbone_trainable=0: cached feature views per training image (training.features)
    aspect_views: tuple[float, ...] = ()  # frozen features: extra views with the person stretched by each factor (aspect jitter)
    head_solver: str = "adamw"  # frozen features: "adamw" (the loop, early stopping) or "lbfgs" (exact L2 logistic regression)
    head_c: float = 0.01  # head_solver=lbfgs: inverse L2 strength (sklearn's C: loss sum + ||W||^2 / (2 C))
    weight_decay: float = 0.01
    warmup: float = 0.1  # fraction of the phase's optimiser steps spent in linear warm-up
    min_lr_ratio: float = 0.0  # cosine floor, as a fraction of the peak LR
    patience: int = 5  # early stopping on val macro-F1; 0 = never stop early
    label_smoothing: float = 0.0
    max_grad_norm: float | None = 1.0
    augment: tuple[str, ...] = ()
    lp_epochs: int = 0  # LP-FT: epochs of linear probe (backbone LR 0) before the full fine-tune
    wise_ft: bool = False  # WiSE-FT: interpolate zero-shot and fine-tuned weights, alpha chosen on val
    wise_alphas: tuple[float, ...] = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0)
    calibrate: bool = True  # temperature scaling on val
    precision: str = "auto"  # auto | no | fp16 | bf16 (auto: bf16/fp16 on GPU, fp32 on CPU)
    num_workers: int = 0
    save_dtype: str = "auto"  # auto (fp16 when fp32 weights > 10 MB) | float32 | float16

    def __post_init__(self) -> None:
        self.augment = tuple(parse_augment(self.augment))
        self.wise_alphas = tuple(float(a) for a in self.wise_alphas)
        if self.epochs < 0 or self.lp_epochs < 0:
            raise ConfigError(f"epochs ({self.epochs}) and lp_epochs ({self.lp_epochs}) must be >= 0")
        if self.batch_size < 1 or self.eval_batch_size < 1:
            raise ConfigError("batch_size and eval_batch_size must be >= 1")
        if self.precision not in ("auto", "no", "fp16", "bf16"):
            raise ConfigError(f"precision {self.precision!r}: expected auto, no, fp16 or bf16")
        if self.save_dtype not in ("auto", "float32", "float16"):
            raise ConfigError(f"save_dtype {self.save_dtype!r}: expected auto, float32 or float16")
        if not 0 <= self.warmup < 1:
            raise ConfigError(f"warmup {self.warmup!r}: expected a fraction in [0, 1)")
        if self.lr_decay is not None and not 0 < self.lr_decay <= 1:
            raise ConfigError(f"lr_decay {self.lr_decay!r}: expected a number in (0, 1]")
        if self.head_solver not in ("adamw", "lbfgs"):
            raise ConfigError(f"head_solver {self.head_solver!r}: expected adamw or lbfgs")
        if not self.head_c > 0:
            raise ConfigError(f"head_c {self.head_c!r}: expected a number > 0")
        self.aspect_views = tuple(float(a) for a in self.aspect_views)
        if any(not 0.5 <= a <= 2.0 or a == 1.0 for a in self.aspect_views):
            raise ConfigError(f"aspect_views {list(self.aspect_views)!r}: expected stretch factors in [0.5, 2], none equal to 1")
        if self.feature_views < 1:
            raise ConfigError(f"feature_views {self.feature_views!r}: expected an integer >= 1")
        if not 0 <= self.backbone_trainable <= 1:
            raise ConfigError(f"backbone_trainable {self.backbone_trainable!r}: expected a fraction in [0, 1]")
        if any(not 0 <= a <= 1 for a in self.wise_alphas) or not self.wise_alphas:
            raise ConfigError(f"wise_alphas {self.wise_alphas!r}: expected numbers in [0, 1]")

    @property
    def head_lr(self) -> float:
        return float(self.lr)

    @property
    def base_backbone_lr(self) -> float:
        return float(self.backbone_lr if self.backbone_lr is not None else self.lr * self.backbone_lr_scale)

    def replace(self, **changes) -> TrainConfig:
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["augment"] = list(self.augment)
        d["aspect_views"] = list(self.aspect_views)
        d["wise_alphas"] = list(self.wise_alphas)
        return d


TRAIN_FIELDS = {f.name for f in fields(TrainConfig)}
TRAIN_KINDS: dict[str, Any] = typing.get_type_hints(TrainConfig)  # field -> its type (what a value must be)
PRETRAINED_KIND = bool  # MODEL.pretrained=true|false


def train_value(key: str, value: Any, where: str, text: bool = False) -> Any:
    """One training option's value (``text``: as written after ``=``) checked against its field's type."""
    _check_train_keys([key], where)
    kind = TRAIN_KINDS[key]
    return from_text(value, kind, where) if text else check(value, kind, where)


def builder_value(model: str, key: str, value: Any, where: str, text: bool = False) -> Any:
    """One builder option's value checked against the builder's parameter (``pretrained``: a bool)."""
    kind = PRETRAINED_KIND if key == "pretrained" else builder_kind(model, key, where)
    return from_text(value, kind, where) if text else check(value, kind, where)

def parse_augment(value: str | Iterable[str] | None) -> list[str]:
    """``"vflip,rrc"`` / ``["vflip"]`` / ``"study"`` / ``"all"`` / ``"none"`` -> validated names."""
    if value is None:
        return []
    items = [v.strip() for v in value.split(",")] if isinstance(value, str) else [str(v).strip() for v in value]
    out: list[str] = []
    for item in items:
        if not item or item == "none":
            continue
        names = STUDY_AUGMENT if item == "study" else AUGMENTATIONS if item == "all" else (item,)
        for name in names:
            if name not in AUGMENTATIONS:
                raise ConfigError(f"unknown augmentation {name!r}; expected one of: {', '.join(AUGMENTATIONS)}, study, all, none")
            if name not in out:
                out.append(name)
    return out


@dataclass
class Overrides:
    """Parsed ``--config`` values."""

    train: dict[str, Any] = field(default_factory=dict)
    models: dict[str, dict[str, Any]] = field(default_factory=dict)  # builder config per model
    model_train: dict[str, dict[str, Any]] = field(default_factory=dict)  # training per model

    def merge(self, other: Overrides) -> Overrides:
        out = Overrides(dict(self.train), {k: dict(v) for k, v in self.models.items()}, {k: dict(v) for k, v in self.model_train.items()})
        out.train.update(other.train)
        for k, v in other.models.items():
            out.models.setdefault(k, {}).update(v)
        for k, v in other.model_train.items():
            out.model_train.setdefault(k, {}).update(v)
        return out


def _check_train_keys(keys: Iterable[str], where: str) -> None:
    bad = sorted(set(keys) - TRAIN_FIELDS)
    if bad:
        raise ConfigError(f"{where}: unknown training option(s) {', '.join(bad)}; known: {', '.join(sorted(TRAIN_FIELDS))}")


def _model_name(name: str, where: str) -> str:
    try:
        get_spec(name)
    except HarError:
        raise ConfigError(f"{where}: {name!r} is neither 'train', a training option nor a registry model") from None
    return name


def _from_mapping(doc: dict, where: str) -> Overrides:
    out = Overrides()
    for key, value in doc.items():
        if key == "train":
            if not isinstance(value, dict):
                raise ConfigError(f"{where}: 'train' must be an object")
            out.train.update({k: train_value(k, v, f"{where} train.{k}") for k, v in value.items()})
        elif key in TRAIN_FIELDS:
            out.train[key] = train_value(key, value, f"{where} {key}")
        else:
            name = _model_name(key, where)
            if not isinstance(value, dict):
                raise ConfigError(f"{where}: {key!r} must be an object of builder options")
            value = dict(value)
            tr = value.pop("train", {})
            if not isinstance(tr, dict):
                raise ConfigError(f"{where}: '{key}.train' must be an object")
            tr = {k: train_value(k, v, f"{where} {key}.train.{k}") for k, v in tr.items()}
            out.models.setdefault(name, {}).update({k: builder_value(name, k, v, f"{where} {key}.{k}") for k, v in value.items()})
            if tr:
                out.model_train.setdefault(name, {}).update(tr)
    return out


def parse_overrides(items: Iterable[str] | None) -> Overrides:
    """Parse ``--config`` values (JSON files, JSON objects, ``KEY=VALUE`` pairs) in order."""
    out = Overrides()
    for item in items or ():
        item = item.strip()
        if not item:
            continue
        if item.startswith("{"):
            try:
                doc = json.loads(item)
            except json.JSONDecodeError as err:
                raise ConfigError(f"--config {item[:40]!r}: not valid JSON ({err})") from None
            out = out.merge(_from_mapping(doc, "--config JSON"))
        elif "=" in item:
            key, _, raw = item.partition("=")
            key = key.strip()
            parts = key.split(".")
            where = f"--config {key}"
            if (len(parts) == 1 or parts[0] == "train") and len(parts) <= 2:
                out.train[parts[-1]] = train_value(parts[-1], raw, where, text=True)
            elif len(parts) == 3 and parts[1] == "train":
                name = _model_name(parts[0], where)
                out.model_train.setdefault(name, {})[parts[2]] = train_value(parts[2], raw, where, text=True)
            elif len(parts) == 2:
                name = _model_name(parts[0], where)
                out.models.setdefault(name, {})[parts[1]] = builder_value(name, parts[1], raw, where, text=True)
            else:
                raise ConfigError(f"{where}: expected train.KEY, MODEL.KEY or MODEL.train.KEY")
        else:
            path = Path(item)
            if not path.is_file():
                raise ConfigError(f"--config {item}: not a file, a JSON object or KEY=VALUE")
            doc = read_json_file(path, "config", ConfigError, f"--config {item}")
            if not isinstance(doc, dict):
                raise ConfigError(f"--config {item}: expected a JSON object")
            out = out.merge(_from_mapping(doc, f"--config {item}"))
    return out


def train_config_for(model: str, cli: dict[str, Any] | None = None, overrides: Overrides | None = None, **extra) -> TrainConfig:
    """The effective ``TrainConfig`` for one model (see module doc for the precedence)."""
    values: dict[str, Any] = {}
    values.update(get_spec(model).train)
    values.update({k: v for k, v in (cli or {}).items() if v is not None})
    values.update(extra)
    if overrides:
        values.update(overrides.train)
        values.update(overrides.model_train.get(model, {}))
    where = f"training options for {model}"
    _check_train_keys(values, where)
    values = {k: check(v, TRAIN_KINDS[k], f"{where}: {k}") for k, v in values.items()}
    try:
        cfg = TrainConfig(**values)
    except (TypeError, ValueError) as err:
        raise ConfigError(f"training options for {model}: {err}") from None
    check_wise_ft(model, cfg)
    return cfg


def check_wise_ft(model: str, cfg: TrainConfig) -> None:
    """WiSE-FT interpolates towards the zero-shot head, so it needs one: refused (one line) for a
    model whose head does not start from text embeddings (registry ``init``)."""
    spec = get_spec(model)
    if cfg.wise_ft and spec.init != "text":
        text = ", ".join(n for n, s in MODELS.items() if s.init == "text")
        raise ConfigError(f"--wise-ft needs a head initialised from text embeddings ({text}); {model}'s head starts random (registry init {spec.init!r})")
