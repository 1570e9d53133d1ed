"""The one registry of models: every fact about a model lives in its ``ModelSpec`` line.

A new model = one builder function in its family file + one ``_register`` line below. The line
says how to build it (``builder``), whether its pretrained weights can be had here (``check``),
a ``tiny`` builder config that builds offline in well under a second (tests, ``bench --quick``),
its training defaults (``train``: ``training.config.TrainConfig`` fields), how its head starts
(``init``), its default explanation method and how to enable it when it cannot run (``hint``).
The contract test (``tests/test_models_contract.py``) runs over every line: a new line is tested
with no other edit.

Builders are referenced as ``"module:function"`` strings and imported lazily, so listing the zoo
never imports open_clip or timm.

Builder contract: ``builder(pretrained: bool = True, **config) -> HarModel``. ``pretrained=False``
builds the architecture without fetching backbone weights (checkpoints supply them). The builder's
options - their names and types - are read from its signature (``builder_options``): its own
keyword parameters, else those of the class its return annotation names, else a ``builder.options``
table ``{name: type}`` the family file attaches (CLIP, ViT: their options go to more than one
place). ``build_model`` refuses an unknown option or a wrong type in one line (``ConfigError``).
Availability contract: ``check(**config) -> str | None`` - ``None`` when the model's pretrained
weights can be obtained here, else a one-line reason with how to enable it.

Loading a model for use (a checkpoint, or pretrained weights) is ``models.loading``; this module
knows nothing about checkpoints.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from ..data.transforms import STUDY_AUGMENT
from ..errors import ConfigError, ModelUnavailable, UnknownName
from ..options import check, check_keys, signature_kinds
from .base import TTA_MODES, HarModel
from .tiny import tiny_clip_cfg, tiny_siglip_cfg

# How a model's head starts before training (what WiSE-FT and the results tables need to know):
#   scratch  - the whole model starts from random weights;
#   imagenet - a pretrained backbone (ImageNet, or a frozen CLIP tower) with a new, random head;
#   text     - a pretrained CLIP/SigLIP backbone with a head initialised from class-prompt text
#              embeddings (a zero-shot classifier before any training; WiSE-FT interpolates to it).
INITS = ("scratch", "imagenet", "text")


def _frozen(d: Mapping[str, Any] | None) -> Mapping[str, Any]:
    return MappingProxyType(dict(d or {}))


@dataclass(frozen=True)
class ModelSpec:
    """Everything the code knows about one registry model. Fields after ``summary`` are keywords;
    add new ones with a default so existing lines keep working."""

    name: str
    builder: str  # "module:function", relative to har_demo.models (or an absolute dotted module)
    family: str  # cnn | mlp | effnet | clip | vit (| person ...): groups models in tables and docs
    summary: str
    needs_training: bool = True  # True: meaningless without a trained checkpoint
    check: str | None = None  # "module:function" availability check, None = always available
    default_method: str = "gradcam"
    init: str = "scratch"  # one of INITS
    tiny: Mapping[str, Any] = field(default_factory=dict)  # builder config: offline, < 1 s
    train: Mapping[str, Any] = field(default_factory=dict)  # training defaults (TrainConfig fields)
    hint: str = ""  # how to enable it when unavailable; "{name}" is replaced by the model name
    config: Mapping[str, Any] = field(default_factory=dict)  # default builder config (e.g. person_crop), under the caller's
    composed_of: tuple[str, ...] = ()  # made from these models' trained checkpoints (tools/make_ensemble.py), never trained itself

    @property
    def trainable(self) -> bool:
        """What ``train.py`` trains: a model that needs training and is not put together from others."""
        return self.needs_training and not self.composed_of

    def __post_init__(self) -> None:
        if self.init not in INITS:
            raise ValueError(f"{self.name}: init {self.init!r} is not one of {', '.join(INITS)}")
        object.__setattr__(self, "tiny", _frozen(self.tiny))
        object.__setattr__(self, "train", _frozen(self.train))
        object.__setattr__(self, "config", _frozen(self.config))

    def resolve(self, ref: str) -> Callable:
        """``"module:function"`` relative to ``har_demo.models`` (``"cnn:build_cnn_base"``), or an
        absolute dotted module (``"my_pkg.models:build"``)."""
        module, func = ref.split(":")
        return getattr(importlib.import_module(module if "." in module else f"har_demo.models.{module}"), func)

    def unavailable_reason(self, **config) -> str | None:
        """None when the pretrained weights can be had here, else one line saying why not."""
        if not self.check:
            return None
        try:
            return self.resolve(self.check)(**config)
        except ImportError as err:
            return f"a package it needs is not installed ({err})"


    def tiny_config(self, **overrides) -> dict[str, Any]:
        """A fresh, mutable copy of ``tiny`` (nested dicts copied too) with ``overrides`` on top."""
        import copy

        return {**copy.deepcopy(dict(self.tiny)), **overrides}

    def enable_hint(self) -> str:
        return self.hint.format(name=self.name)


MODELS: dict[str, ModelSpec] = {}


def register(spec: ModelSpec) -> ModelSpec:
    """Add (or replace) a registry line; returns the spec. Tests register throw-away lines."""
    MODELS[spec.name] = spec
    return spec


_register = register

# ---- shared facts of the lines below -------------------------------------------------------------
_TINY_CNN = {"input_size": 32, "widths": [4, 8, 8], "hidden": 16, "pool": 2}
_TINY_CLIP = {"model_cfg": tiny_clip_cfg()}  # open_clip ViT tower (nn.MultiheadAttention blocks)
_TINY_SIGLIP = {"model_cfg": tiny_siglip_cfg(image_size=64)}  # SigLIP-2-like open_clip TimmModel tower
_TINY_VIT = {"timm_kwargs": {"img_size": 32, "patch_size": 8, "embed_dim": 32, "depth": 2, "num_heads": 2}}
_FINE_TUNE = {"epochs": 10, "lr": 1e-4, "backbone_lr": 1e-5, "lr_decay": 0.8, "patience": 4, "augment": ("hflip", "rrc")}
# The pretrained CNN backbone stays frozen and only its head trains, on cached backbone features
# (``training.features``: 4 views per photo - clean, mirrored, 2 augmented): on har3 that beat
# fine-tuning the top 30 % of the backbone at 144 px (test 0.823 over 5 seeds vs 0.700) at a
# fraction of the CPU time (a head epoch is ~0.1 s). To fine-tune the backbone instead (e.g. on a
# GPU): ``--backbone-trainable 1``.
_EFFNET_TRAIN = {
    "epochs": 40, "lr": 3e-3, "backbone_lr_scale": 0.1, "backbone_trainable": 0.0, "patience": 10,
    "augment": ("hflip", "rrc", "color_jitter"), "feature_views": 4,
}
_CKPT = "HAR_CHECKPOINT_DIR (default checkpoints/)"
# How to enable a model, short (the UI lists them folded; the reason it is unavailable says what is missing).
_HINT_TRAINED = "train it (`python train.py --models {name} ...`) or put its folder {name}/ (model.safetensors + card.json) under " + _CKPT
_HINT_CLIP = (
    "needs the CLIP weights: cache them once online, or set HAR_CLIP_PRETRAINED to a local file or an hf-hub: id; "
    "trained variants also need {name}/ under " + _CKPT
)
_HINT_SIGLIP = (
    "needs the SigLIP 2 weights: cache them once online, or set HAR_SIGLIP_PRETRAINED to a local file or an hf-hub: id; "
    "it also needs {name}/ under " + _CKPT
)
# The pretrained transformer families look at the person box by default (``person_crop``): on the
# offline pool it lifted EfficientNet-Lite0 on unseen sources (README "Results"); with no CLIP/ViT
# weights here it is not measured for them. ``--config MODEL.person_crop=false`` turns it off.
_CROP = {"person_crop": True}
_HINT_VIT = (
    "needs the ViT weights: cache them once online, or set HAR_VIT_WEIGHTS to a local .safetensors file or a timm name; "
    "the trained head also needs {name}/ under " + _CKPT
)

# ---- the zoo: one line per model -----------------------------------------------------------------
_register(ModelSpec("cnn_base", "cnn:build_cnn_base", "cnn", "Study baseline CNN: 3 conv blocks + 2-layer FC head",
                    tiny=_TINY_CNN, hint=_HINT_TRAINED))
_register(ModelSpec("cnn_gen", "cnn:build_cnn_gen", "cnn", "Baseline CNN with batch norm + dropout (trained with augmentation)",
                    tiny=_TINY_CNN, train={"augment": STUDY_AUGMENT}, hint=_HINT_TRAINED))
_register(ModelSpec("fnn", "cnn:build_fnn", "mlp", "Flattened-pixel MLP baseline", default_method="integrated_gradients",
                    tiny={"input_size": 16, "hidden": [16]}, hint=_HINT_TRAINED))
_register(ModelSpec("effnet_lite0", "effnet:build_effnet_lite0", "effnet", "EfficientNet-Lite0, ImageNet-pretrained, new 3-class head",
                    check="effnet:check_effnet", init="imagenet", tiny={"input_size": 64}, train=_EFFNET_TRAIN, hint=_HINT_TRAINED))
_register(ModelSpec("clip_zeroshot", "clip:build_clip_zeroshot", "clip", "CLIP ViT-B/32 zero-shot, prompt-ensemble text head",
                    needs_training=False, check="clip:check_clip", default_method="legrad", init="text", tiny=_TINY_CLIP, hint=_HINT_CLIP,
                    config=_CROP))
_register(ModelSpec("clip_cs", "clip:build_clip_cs", "clip", "CLIP cosine similarities to class prompts -> small MLP",
                    check="clip:check_clip", default_method="legrad", init="imagenet", tiny=_TINY_CLIP,
                    train={"epochs": 30, "lr": 1e-3}, hint=_HINT_CLIP, config=_CROP))
_register(ModelSpec("clip_em", "clip:build_clip_em", "clip", "Frozen CLIP image embedding -> MLP",
                    check="clip:check_clip", default_method="legrad", init="imagenet", tiny=_TINY_CLIP,
                    train={"epochs": 30, "lr": 1e-3}, hint=_HINT_CLIP, config=_CROP))
_register(ModelSpec("clip_ft", "clip:build_clip_ft", "clip", "CLIP ViT-B/32 full fine-tune, head initialised from prompts",
                    check="clip:check_clip", default_method="legrad", init="text", tiny=_TINY_CLIP, train=_FINE_TUNE, hint=_HINT_CLIP,
                    config=_CROP))
_register(ModelSpec("siglip_ft", "clip:build_siglip_ft", "clip", "SigLIP2 ViT-B/16 fine-tune, head initialised from prompts",
                    check="clip:check_siglip", default_method="legrad", init="text", tiny=_TINY_SIGLIP, train=_FINE_TUNE, hint=_HINT_SIGLIP,
                    config=_CROP))
_register(ModelSpec("vit", "vit:build_vit", "vit", "Vision-only ViT-B/32 (timm, ImageNet) with a 3-class head",
                    check="vit:check_vit", default_method="legrad", init="imagenet", tiny=_TINY_VIT,
                    train={**_FINE_TUNE, "lr": 1e-3}, hint=_HINT_VIT, config=_CROP))


# Person-centred models (``models/person.py``): the person finder's crop + pose vector. Only the head
# trains, on cached features (person crops: 4 views; the pose vector mirrored with its image).
# The head is an exact L2 logistic regression (``head_solver="lbfgs"``, C = 0.01): in a 5-fold
# cross-validation over the Flickr8k photos (har3 always in training) strong L2 on the raw image
# features + standardised pose vector beat weaker settings and the early-stopped AdamW head.
_PERSON_TRAIN = {**_EFFNET_TRAIN, "head_solver": "lbfgs", "head_c": 0.01}
_HINT_PERSON = "needs the person finder (`pip install mediapipe==0.10.14`) and a trained folder {name}/ under " + _CKPT
_register(ModelSpec("effnet_person", "person:build_effnet_person", "person",
                    "Person crop (BlazePose box) through EfficientNet-Lite0 + pose geometry, one fused head",
                    check="person:check_effnet_person", init="imagenet", tiny={"input_size": 32}, train=_PERSON_TRAIN, hint=_HINT_PERSON,
                    config={"person_crop": True}))
_register(ModelSpec("pose_mlp", "person:build_pose_mlp", "person", "BlazePose landmarks + joint angles only -> small MLP",
                    check="person:check_person", default_method="landmarks", tiny={"input_size": 16, "hidden": 8},
                    train={"epochs": 80, "lr": 3e-3, "augment": ("hflip",), "patience": 15}, hint=_HINT_PERSON))
# The two above averaged, with flip test-time averaging (``models/ensemble.py`` says why; measured in
# README "Results"): put together from their checkpoints by ``tools/make_ensemble.py``.
_register(ModelSpec("person_ensemble", "ensemble:build_person_ensemble", "person",
                    "Mean of effnet_person and pose_mlp, each averaged with the mirrored photo",
                    check="person:check_effnet_person", init="imagenet", tiny={"input_size": 32, "hidden": 8},
                    hint="needs the person finder (`pip install mediapipe==0.10.14`) and a folder {name}/ under " + _CKPT
                    + " (`python tools/make_ensemble.py`)", config={"person_crop": True, "tta": "flip"},
                    composed_of=("effnet_person", "pose_mlp")))


# ---- lookups ----------------------------------------------------------------------------------
def model_names() -> list[str]:
    return list(MODELS)


def get_spec(name: str) -> ModelSpec:
    try:
        return MODELS[name]
    except KeyError:
        raise UnknownName(f"unknown model {name!r}; available: {', '.join(MODELS)}") from None


def builder_options(name: str) -> tuple[dict[str, Any], bool]:
    """``({option: type}, open)`` of a registry model's builder config (module doc): ``open`` when
    the builder may accept options it does not list (then only the listed ones are type-checked).
    ``person_crop`` (bool) and ``tta`` (``none`` / ``flip``) are every model's options
    (``HarModel.person_crop``, ``HarModel.flip_tta``)."""
    spec = get_spec(name)
    builder = spec.resolve(spec.builder)
    kinds, open_ = signature_kinds(builder, skip=("pretrained",))
    declared = getattr(builder, "options", None)
    if declared is not None:
        kinds.update(declared)
        open_ = False
    elif open_:
        made = inspect.signature(builder, eval_str=True).return_annotation
        if inspect.isclass(made):
            more, open_ = signature_kinds(made.__init__, skip=("self", "pretrained"))
            kinds.update(more)
    kinds["person_crop"] = bool
    kinds["tta"] = str
    return kinds, open_


def builder_kind(name: str, key: str, where: str) -> Any:
    """The type of one builder option (``ConfigError`` naming the known ones when there is none)."""
    kinds, open_ = builder_options(name)
    if key not in kinds and not open_:
        check_keys({key: None}, kinds, where, f"{name} builder option")
    return kinds.get(key, Any)


def check_builder_config(name: str, config: Mapping[str, Any], where: str | None = None) -> dict[str, Any]:
    """``config`` checked against the builder's options (unknown key or wrong type: one
    ``ConfigError`` line); returns it normalised (e.g. an int given for a float option -> float)."""
    where = where or f"{name} builder config"
    kinds, open_ = builder_options(name)
    if not open_:
        check_keys(config, kinds, where, f"{name} builder option")
    return {k: check(v, kinds.get(k, Any), f"{where} {k}") for k, v in config.items()}


def build_model(name: str, pretrained: bool = True, **config) -> HarModel:
    """Build a registry model (fresh head). Raises ModelUnavailable when weights can't be had,
    ConfigError for an option the builder does not take or a value of the wrong type."""
    spec = get_spec(name)
    config = check_builder_config(name, config)
    if pretrained:
        reason = spec.unavailable_reason(**config)
        if reason:
            raise ModelUnavailable(f"{name}: {reason}")
    config = {**spec.config, **config}
    # ``person_crop`` is a preprocessing option every model has (``HarModel.person_crop``): applied
    # here, so no builder needs to know it.
    crop = config.pop("person_crop", None)
    tta = config.pop("tta", None)
    if tta not in (None, *TTA_MODES):
        raise ConfigError(f"{name}: tta must be one of {', '.join(TTA_MODES)}, got {tta!r}")
    model = spec.resolve(spec.builder)(pretrained=pretrained, **config)
    if crop is not None:
        model.set_person_crop(bool(crop))
    if tta is not None:
        model.config["tta"] = tta
    model.name = name
    return model


def build_tiny(name: str, pretrained: bool = False, **overrides) -> HarModel:
    """The model in its registry ``tiny`` config (offline, random weights unless ``pretrained``)."""
    return build_model(name, pretrained=pretrained, **get_spec(name).tiny_config(**overrides))
