"""CLIP and SigLIP classifiers on open_clip image towers.

Heads (all map an image to logits over ``labels.CLASSES``):

* ``clip_zeroshot``: ``logit_scale * cos(image_emb, class_emb)``, where ``class_emb`` is the
  prompt ensemble of ``labels.prompts_for(cls)`` (each prompt encoded and L2-normalised, averaged
  per class, renormalised). Computed once at build time and kept as the buffer ``class_emb``.
* ``clip_cs``: those 3 scaled cosine similarities -> small MLP (image tower frozen).
* ``clip_em``: frozen L2-normalised image embedding -> MLP.
* ``clip_ft`` / ``siglip_ft``: the whole image tower trains; the linear head starts as the
  zero-shot classifier (weight = logit_scale * class_emb, bias = logit_bias), so before training
  the model *is* the zero-shot model, which makes WiSE-FT (``wise_ft``) meaningful.

The text tower is not part of the module (no text work at inference, small checkpoints); it stays
recoverable: ``encode_text`` rebuilds it from the recorded weight source on demand.

Config keys (stored in ``model.config``; checkpoints rebuild from it):
``model_name`` (open_clip name or ``hf-hub:org/repo``), ``weights`` (open_clip tag, local file,
or ``hf-hub:`` id - see ``sources``; ``pretrained="<str>"`` given to a builder means the same; the
key cannot be called ``pretrained`` because builders take ``pretrained: bool``), ``quick_gelu``,
``model_cfg`` (a literal open_clip model config, e.g. a tiny test model; without ``weights`` it is
a random init seeded by ``init_seed`` and needs nothing from the hub), ``mean``/``std``,
``image_size`` (train/run at another resolution: position embeddings interpolated at build time, so
a checkpoint rebuilds with matching shapes), and head options ``hidden``/``dropout`` (``clip_cs``,
``clip_em``).

Checkpoints: ``partial_state_keys()`` lists what is not part of the base weights (head, class
embeddings, logit scale/bias, temperature). That is a complete checkpoint for the frozen-backbone
heads; for ``clip_ft``/``siglip_ft`` it drops the fine-tuned tower, so the trainer saves their full
state (always for tiny/local models) and uses partial keys only when it kept the tower frozen.
"""

from __future__ import annotations

import copy
import functools
import math
from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..data.transforms import CLIP_MEAN, CLIP_STD
from ..errors import ModelUnavailable
from ..labels import CLASSES, prompts_for
from . import sources
from .base import HarModel, ViTSpec
from .vit import NativePosEmbed, _check_keys, _replace_param, layerwise_param_groups, resize_timm_vit, timm_vit_spec

# the builders' options and their types (``builder.options``: ``--config clip_cs.KEY=V`` is checked against them)
_BASE_OPTIONS: dict[str, Any] = {
    "model_name": str | None, "weights": str | None, "model_cfg": dict | None, "init_seed": int, "quick_gelu": bool | None,
    "mean": list[float] | None, "std": list[float] | None, "image_size": int | None,
}
_BASE_KEYS = set(_BASE_OPTIONS)
_HEAD_DEFAULTS: dict[str, dict] = {
    "zeroshot": {},
    "cs": {"hidden": 32, "dropout": 0.0},
    "em": {"hidden": 256, "dropout": 0.2},
    "ft": {},
}


# ---- open_clip plumbing --------------------------------------------------------------------------
def _source(family: str, config: Mapping) -> sources.ClipSource:
    weights = config.get("weights")
    if weights is None and isinstance(config.get("pretrained"), str):
        weights = config["pretrained"]
    return sources.resolve_clip(family, config.get("model_name"), weights, config.get("model_cfg"), config.get("quick_gelu"))


def instantiate(model_cfg: dict, quick_gelu: bool = False) -> nn.Module:
    """An open_clip model (random weights) from a literal config dict (as in open_clip's
    model_configs/*.json); the benchmark builds the text side of tiny configs with it."""
    import open_clip

    cfg = copy.deepcopy(dict(model_cfg))
    custom = cfg.pop("custom_text", False) or "hf_model_name" in cfg.get("text_cfg", {})
    if quick_gelu:
        cfg["quick_gelu"] = True
    return (open_clip.CustomTextCLIP if custom else open_clip.CLIP)(**cfg)


@functools.lru_cache(maxsize=4)
def _simple_tokenizer(context_length: int):
    import open_clip

    return open_clip.SimpleTokenizer(context_length=context_length)


def _tokenizer(src: sources.ClipSource, model_cfg: dict | None):
    import open_clip

    if model_cfg is not None:
        text_cfg = model_cfg.get("text_cfg", {})
        ctx = int(text_cfg.get("context_length", 77))
        kwargs = dict(text_cfg.get("tokenizer_kwargs", {}))
        if text_cfg.get("hf_tokenizer_name"):
            with sources.hub_access():
                return open_clip.HFTokenizer(
                    text_cfg["hf_tokenizer_name"], context_length=ctx, cache_dir=sources.hf_cache_dir(), **kwargs
                )
        return _simple_tokenizer(ctx) if not kwargs else open_clip.SimpleTokenizer(context_length=ctx, **kwargs)
    with sources.hub_access():
        return open_clip.get_tokenizer(src.model_name, cache_dir=sources.hf_cache_dir())


def _open_clip_model(src: sources.ClipSource, model_cfg: dict | None, seed: int, load_weights: bool) -> nn.Module:
    """The open_clip model in eval mode: both towers, or only the image tower for a named
    architecture without weights. Never downloads when the hub is unreachable (cache only)."""
    import open_clip

    builtin = open_clip.get_model_config(src.model_name) if src.model_name and src.kind != "hf-hub" else None
    shell = _visual_only(builtin, src.quick_gelu) if builtin and not load_weights and model_cfg is None else None
    if model_cfg is not None:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            model = instantiate(model_cfg, src.quick_gelu)
        if load_weights and src.kind == "file":
            open_clip.load_checkpoint(model, str(src.weights))
    elif shell is not None:
        model = shell
    else:
        weights = src.weights if load_weights and src.kind in ("tag", "file") else None
        with sources.hub_access():
            model = open_clip.create_model(
                src.model_name,
                pretrained=weights,
                load_weights=load_weights,
                force_quick_gelu=src.quick_gelu,
                cache_dir=sources.hf_cache_dir(),
            )
    return model.eval()


def _visual_only(model_cfg: dict, quick_gelu: bool) -> nn.Module | None:
    """Architecture-only stand-in for an open_clip model (``.visual`` + initial logit scale/bias):
    when a checkpoint supplies the weights, building the text tower would only cost time and
    memory. None when this open_clip version lacks the (private) tower builder."""
    try:
        from open_clip.model import _build_vision_tower
    except ImportError:  # pragma: no cover - other open_clip versions: build both towers instead
        return None
    cfg = copy.deepcopy(dict(model_cfg))
    vision = dict(cfg["vision_cfg"], timm_model_pretrained=False)
    shell = nn.Module()
    shell.visual = _build_vision_tower(cfg["embed_dim"], vision, bool(quick_gelu or cfg.get("quick_gelu")))
    shell.logit_scale = nn.Parameter(torch.tensor(float(cfg.get("init_logit_scale", math.log(1 / 0.07)))))
    bias = cfg.get("init_logit_bias")
    shell.logit_bias = nn.Parameter(torch.tensor(float(bias))) if bias is not None else None
    shell.embed_dim = int(cfg["embed_dim"])
    return shell


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__


@torch.no_grad()
def prompt_class_embeddings(clip_model: nn.Module, tokenizer, classes=CLASSES) -> torch.Tensor:
    """(n_classes, D): per class, the renormalised mean of its L2-normalised prompt embeddings."""
    device = next(clip_model.parameters()).device
    rows = []
    for cls in classes:
        emb = clip_model.encode_text(tokenizer(prompts_for(cls)).to(device)).float()
        rows.append(F.normalize(F.normalize(emb, dim=-1).mean(0), dim=0))
    return torch.stack(rows)


# ---- the models ----------------------------------------------------------------------------------
class ClipClassifier(HarModel):
    """Shared part: the open_clip image tower (``self.visual``), the class text embeddings and the
    logit scale/bias as buffers, ``vit_spec`` / ``set_input_size`` / layer-wise LR groups."""

    family = "clip"
    backbone_frozen = False

    def __init__(
        self,
        visual: nn.Module,
        class_emb: torch.Tensor,
        logit_scale: float,
        logit_bias: float,
        mean,
        std,
        config: dict,
        source: str,
        clip_family: str,
    ):
        super().__init__(int(visual.image_size[0]), mean, std, config)
        self.visual = visual
        self.register_buffer("class_emb", class_emb.detach().float().clone())
        self.register_buffer("logit_scale", torch.tensor(float(logit_scale)))
        self.register_buffer("logit_bias", torch.tensor(float(logit_bias)))
        self.source = source
        self.clip_family = clip_family
        self._native_pos = NativePosEmbed()
        if self.backbone_frozen:
            self.visual.requires_grad_(False)

    # -- features ----------------------------------------------------------------------------
    def image_features(self, x: torch.Tensor) -> torch.Tensor:
        """L2-normalised image embeddings (B, D); differentiable."""
        return F.normalize(self.visual(x), dim=-1)

    def cosine_logits(self, feats: torch.Tensor) -> torch.Tensor:
        """``logit_scale * cos(image, class)`` + ``logit_bias``: the zero-shot classifier."""
        return self.logit_scale * feats @ self.class_emb.t() + self.logit_bias

    @property
    def embed_dim(self) -> int:
        return int(self.class_emb.shape[1])

    # -- text side, recoverable on demand -----------------------------------------------------
    def _text_side(self):
        if "_text_side_cache" not in self.__dict__:
            src = _source(self.clip_family, self.config)
            reason = sources.clip_unavailable(src)
            if reason:
                raise ModelUnavailable(f"{self.name}: text tower needs the base weights: {reason}")
            model = _open_clip_model(src, self.config.get("model_cfg"), int(self.config.get("init_seed", 0)), True)
            model.visual = nn.Identity()  # only the text tower is needed
            self.__dict__["_text_side_cache"] = (model, _tokenizer(src, self.config.get("model_cfg")))
        model, tokenizer = self.__dict__["_text_side_cache"]
        return model.to(self.device), tokenizer  # not a submodule: follow the classifier's device

    @torch.no_grad()
    def encode_text(self, texts: list[str]) -> torch.Tensor:
        """L2-normalised text embeddings from the original text tower (rebuilt on first use)."""
        model, tokenizer = self._text_side()
        return F.normalize(model.encode_text(tokenizer(list(texts)).to(self.device)).float(), dim=-1)

    def class_text_embeddings(self) -> torch.Tensor:
        """The prompt-ensemble class embeddings, recomputed from the text tower."""
        model, tokenizer = self._text_side()
        return prompt_class_embeddings(model, tokenizer, self.classes)

    # -- explainers -----------------------------------------------------------------------------
    def vit_spec(self) -> ViTSpec | None:
        v = self.visual
        extra = {"frozen_backbone": self.backbone_frozen}
        if hasattr(v, "trunk"):  # open_clip TimmModel (e.g. SigLIP 2): a timm ViT trunk
            if not hasattr(v.trunk, "blocks"):
                return None
            return timm_vit_spec(v.trunk, self.set_input_size, open_clip_head=v.head, **extra)
        if not hasattr(v, "transformer"):
            return None  # ModifiedResNet towers: use cam_layer
        blocks = list(v.transformer.resblocks)
        return ViTSpec(
            blocks=blocks,
            attn=[b.attn for b in blocks],
            norm1=[b.ln_1 for b in blocks],
            num_prefix_tokens=1,
            patch_size=int(v.patch_size[0]),
            tokens_batch_first=bool(getattr(v.transformer, "batch_first", False)),
            set_input_size=self.set_input_size,
            extra={
                "backend": "open_clip",
                "pool": getattr(v, "pool_type", "tok"),
                "final_norm": v.ln_post,
                "proj": v.proj,
                **extra,
            },
        )

    def cam_layer(self) -> nn.Module | None:
        return getattr(self.visual, "layer4", None)

    def set_input_size(self, size: int) -> None:
        """Run at ``size`` px: position embeddings interpolated from the native ones (bit-exact
        restore when going back to the native size)."""
        size = int(size)
        v = self.visual
        if hasattr(v, "trunk") and hasattr(v.trunk, "patch_embed"):
            resize_timm_vit(v.trunk, size, self._native_pos)
            v.image_size = (size, size)
        elif hasattr(v, "positional_embedding") and hasattr(v, "conv1"):
            _resize_open_clip_vit(v, size, self._native_pos)
        elif size != self.input_size:
            raise ValueError(f"{self.name}: this image tower has a fixed input size {self.input_size}")
        super().set_input_size(size)

    # -- training support ------------------------------------------------------------------------
    def _head_params(self) -> list[nn.Parameter]:
        head = getattr(self, "head", None)
        return list(head.parameters()) if head is not None else []

    def param_groups(self) -> dict[str, list[nn.Parameter]]:
        return {
            "head": [p for p in self._head_params() if p.requires_grad],
            "backbone": [p for p in self.visual.parameters() if p.requires_grad],
        }

    def _n_blocks(self) -> int:
        v = self.visual
        if hasattr(v, "trunk") and hasattr(v.trunk, "blocks"):
            return len(v.trunk.blocks)
        if hasattr(v, "transformer"):
            return len(v.transformer.resblocks)
        return 0

    def layerwise_groups(self, base_lr: float, decay: float = 0.75) -> list[dict]:
        """Optimizer groups with layer-wise LR decay: head ``base_lr``; final norm/projection
        ``base_lr*decay``; block i ``base_lr*decay**(n_blocks-i+1)``; embeddings the smallest."""
        return layerwise_param_groups(self, self._n_blocks(), ("head.",), base_lr, decay)

    def partial_state_keys(self) -> list[str]:
        """State keys not in the base open_clip weights (head, class_emb, logit_scale/bias,
        temperature). See the module docstring for when a partial checkpoint is enough."""
        return [k for k in self.state_dict() if not k.startswith("visual.")]

    def describe(self) -> dict:
        return {**super().describe(), "backbone_source": self.source, "backbone_frozen": self.backbone_frozen}


def _resize_open_clip_vit(v: nn.Module, size: int, keep: NativePosEmbed) -> None:
    from timm.layers import resample_abs_pos_embed

    current = int(v.image_size[0])
    if size == current:
        return
    patch = int(v.patch_size[0])
    keep.sync(current, v.positional_embedding)
    if size == keep.size:
        new = keep.tensor
    else:
        g0, g = keep.size // patch, size // patch
        new = resample_abs_pos_embed(keep.tensor[None].float(), new_size=(g, g), old_size=(g0, g0), num_prefix_tokens=1)[0]
    keep.made(_replace_param(v, "positional_embedding", new))
    v.image_size = (size, size)
    v.grid_size = (size // patch, size // patch)


class ClipZeroShot(ClipClassifier):
    """Zero-shot: scaled cosine similarity to the prompt-ensemble class embeddings."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.cosine_logits(self.image_features(x))


class ClipCosineMLP(ClipClassifier):
    """The 3 scaled cosine similarities -> small MLP; image tower frozen."""

    backbone_frozen = True

    def __init__(self, *args, hidden: int = 32, dropout: float = 0.0, **kwargs):
        super().__init__(*args, **kwargs)
        n = len(self.classes)
        self.head = nn.Sequential(nn.Linear(n, hidden), nn.ReLU(), nn.Dropout(dropout), nn.Linear(hidden, n))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.scaled_cosines(x))

    def scaled_cosines(self, x: torch.Tensor) -> torch.Tensor:
        return self.logit_scale * self.image_features(x) @ self.class_emb.t()

    def head_split(self):
        return self.scaled_cosines, self.head


class ClipEmbeddingMLP(ClipClassifier):
    """Frozen L2-normalised image embedding -> MLP."""

    backbone_frozen = True

    def __init__(self, *args, hidden: int = 256, dropout: float = 0.2, **kwargs):
        super().__init__(*args, **kwargs)
        self.head = nn.Sequential(
            nn.Linear(self.embed_dim, hidden), nn.ReLU(), nn.Dropout(dropout), nn.Linear(hidden, len(self.classes))
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.image_features(x))

    def head_split(self):
        return self.image_features, self.head


class ClipFineTune(ClipClassifier):
    """Full fine-tune of the image tower; linear head initialised to the zero-shot classifier."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.head = nn.Linear(self.embed_dim, len(self.classes))
        with torch.no_grad():
            self.head.weight.copy_(self.logit_scale * self.class_emb)
            self.head.bias.fill_(float(self.logit_bias))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.image_features(x))


_CLASSES_BY_KIND = {"zeroshot": ClipZeroShot, "cs": ClipCosineMLP, "em": ClipEmbeddingMLP, "ft": ClipFineTune}


# ---- availability and builders -----------------------------------------------------------------
def _check(family: str, config: Mapping) -> str | None:
    try:
        return sources.clip_unavailable(_source(family, config))
    except ValueError as err:
        return str(err)


def check_clip(**config) -> str | None:
    """None when the CLIP weights can be had here; else one line naming HAR_CLIP_* variables."""
    return _check("clip", config)


def check_siglip(**config) -> str | None:
    """None when the SigLIP weights can be had here; else one line naming HAR_SIGLIP_* variables."""
    return _check("siglip", config)


def _embed_dim(visual: nn.Module, size: int) -> int:
    out_dim = getattr(visual, "output_dim", None)
    if isinstance(out_dim, int):
        return out_dim
    with torch.no_grad():
        return int(visual(torch.zeros(1, 3, size, size)).shape[-1])


def _build(name: str, kind: str, family: str, pretrained: bool | str, config: dict) -> ClipClassifier:
    config = dict(config)
    if isinstance(pretrained, str):
        config["weights"] = pretrained
        pretrained = True
    head_opts = {**_HEAD_DEFAULTS[kind], **{k: config[k] for k in _HEAD_DEFAULTS[kind] if k in config}}
    _check_keys(config, _BASE_KEYS | set(_HEAD_DEFAULTS[kind]), name)
    try:
        src = _source(family, config)
    except ValueError as err:
        raise ModelUnavailable(f"{name}: {err}") from None
    if pretrained:
        reason = sources.clip_unavailable(src)
        if reason:
            raise ModelUnavailable(f"{name}: {reason}")
    model_cfg = config.get("model_cfg")
    seed = int(config.get("init_seed", 0))
    try:
        clip_model = _open_clip_model(src, model_cfg, seed, load_weights=bool(pretrained))
        visual = clip_model.visual
        size = int(visual.image_size[0])
        if pretrained:
            class_emb = prompt_class_embeddings(clip_model, _tokenizer(src, model_cfg))
        else:  # architecture only: the checkpoint supplies class_emb and the head
            dim = (model_cfg or {}).get("embed_dim") or getattr(clip_model, "embed_dim", None)
            class_emb = torch.zeros(len(CLASSES), int(dim) if dim else _embed_dim(visual, size))
    except ModelUnavailable:
        raise
    except Exception as err:  # noqa: BLE001 - one line for the user, not a traceback
        raise ModelUnavailable(f"{name}: cannot build {src.describe()}: {_first_line(err)}") from None
    logit_scale = float(clip_model.logit_scale.detach().exp())
    bias = getattr(clip_model, "logit_bias", None)
    logit_bias = float(bias.detach()) if bias is not None else 0.0
    mean, std = _mean_std(src, clip_model, config)
    del clip_model  # drops the text tower; visual lives on in the classifier

    stored: dict = {}
    if model_cfg is not None:
        stored.update(model_cfg=copy.deepcopy(model_cfg), init_seed=seed)
    if src.model_name:
        stored["model_name"] = src.model_name
    if src.weights:
        stored["weights"] = src.weights
    stored.update(quick_gelu=src.quick_gelu, mean=list(mean), std=list(std), **head_opts)
    if config.get("image_size"):
        stored["image_size"] = int(config["image_size"])
    model = _CLASSES_BY_KIND[kind](
        visual, class_emb, logit_scale, logit_bias, mean, std, stored, src.describe(), family, **head_opts
    )
    if config.get("image_size"):
        model.set_input_size(int(config["image_size"]))
    return model


def _mean_std(src: sources.ClipSource, clip_model: nn.Module, config: Mapping) -> tuple[tuple, tuple]:
    if config.get("mean") and config.get("std"):
        return tuple(config["mean"]), tuple(config["std"])
    known = sources.open_clip_tag_mean_std(src)
    if known:
        return known
    pp = getattr(clip_model.visual, "preprocess_cfg", None) or {}
    if src.kind == "hf-hub" and pp.get("mean") and pp.get("std"):
        return tuple(pp["mean"]), tuple(pp["std"])
    return CLIP_MEAN, CLIP_STD


def build_clip_zeroshot(pretrained: bool | str = True, **config) -> ClipZeroShot:
    return _build("clip_zeroshot", "zeroshot", "clip", pretrained, config)


def build_clip_cs(pretrained: bool | str = True, **config) -> ClipCosineMLP:
    return _build("clip_cs", "cs", "clip", pretrained, config)


def build_clip_em(pretrained: bool | str = True, **config) -> ClipEmbeddingMLP:
    return _build("clip_em", "em", "clip", pretrained, config)


def build_clip_ft(pretrained: bool | str = True, **config) -> ClipFineTune:
    return _build("clip_ft", "ft", "clip", pretrained, config)


def build_siglip_ft(pretrained: bool | str = True, **config) -> ClipFineTune:
    return _build("siglip_ft", "ft", "siglip", pretrained, config)


for _builder, _kind in ((build_clip_zeroshot, "zeroshot"), (build_clip_cs, "cs"), (build_clip_em, "em"),
                        (build_clip_ft, "ft"), (build_siglip_ft, "ft")):
    _builder.options = {**_BASE_OPTIONS, **{k: type(v) for k, v in _HEAD_DEFAULTS[_kind].items()}}


# ---- WiSE-FT --------------------------------------------------------------------------------------
def wise_ft(
    zeroshot_state: Mapping[str, torch.Tensor], finetuned_state: Mapping[str, torch.Tensor], alpha: float
) -> dict[str, torch.Tensor]:
    """Weight-space ensemble (Wortsman et al. 2022): ``(1-alpha)*zero-shot + alpha*fine-tuned``
    for every float tensor (exact at alpha=0 and alpha=1); other tensors come from the fine-tuned
    state. Both states must come from the same architecture (e.g. a clip_ft before/after training)."""
    alpha = float(alpha)
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"WiSE-FT alpha must be in [0, 1], got {alpha}")
    if set(zeroshot_state) != set(finetuned_state):
        diff = sorted(set(zeroshot_state) ^ set(finetuned_state))
        raise ValueError(f"WiSE-FT states differ in keys, e.g. {diff[0]}")
    out: dict[str, torch.Tensor] = {}
    for key, ft in finetuned_state.items():
        zs = zeroshot_state[key]
        if zs.shape != ft.shape:
            raise ValueError(f"WiSE-FT: {key} has shape {tuple(zs.shape)} vs {tuple(ft.shape)}")
        if ft.is_floating_point():
            out[key] = torch.lerp(zs.detach().to(ft.device, ft.dtype), ft.detach(), alpha)
        else:
            out[key] = ft.detach().clone()
    return out
