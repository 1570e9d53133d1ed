"""Where pretrained transformer weights come from: the ONE place that knows.

It reads the environment variables, applies the defaults, recognises local weight files, looks into
the local Hugging Face cache (``huggingface_hub.try_to_load_from_cache``, never a download) and
probes whether the hub can be reached. Nothing here downloads anything.

Resolution order for every key: the model's config (checkpoint cards carry it) > environment
variable > default.

=================  ===========================  ==================================================
family             environment variables        default
=================  ===========================  ==================================================
clip_* (CLIP)      HAR_CLIP_MODEL,              open_clip ``ViT-B-32`` + tag ``openai``
                   HAR_CLIP_PRETRAINED
siglip_ft          HAR_SIGLIP_MODEL,            open_clip ``ViT-B-16-SigLIP2`` + tag ``webli``
                   HAR_SIGLIP_PRETRAINED
vit                HAR_VIT_WEIGHTS              timm ``vit_base_patch32_224`` (ImageNet)
=================  ===========================  ==================================================

``*_PRETRAINED`` takes an open_clip tag (``openai``, ``laion2b_s34b_b79k`` ...), a local weights
file, or an ``hf-hub:org/repo`` id (which then names the whole model). ``HAR_VIT_WEIGHTS`` takes a
local file (``.safetensors`` preferred; ``.pth``/``.bin``/``.npz`` work) or a timm hub name
(``vit_base_patch32_224.augreg_in1k``, ``hf-hub:timm/...``).

Hub reachability: ``HF_HUB_OFFLINE=1`` (or ``TRANSFORMERS_OFFLINE=1``) means offline without
probing; otherwise one TCP connect to the hub host (``HF_ENDPOINT``, or the HTTPS proxy when one
is set) with a timeout of at most 2 s, run in a daemon thread so a slow DNS lookup cannot hang
the caller, and remembered for the rest of the process.
"""

from __future__ import annotations

import contextlib
import os
import socket
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

from .. import settings

ENV_CLIP_MODEL = "HAR_CLIP_MODEL"
ENV_CLIP_PRETRAINED = "HAR_CLIP_PRETRAINED"
ENV_SIGLIP_MODEL = "HAR_SIGLIP_MODEL"
ENV_SIGLIP_PRETRAINED = "HAR_SIGLIP_PRETRAINED"
ENV_VIT_WEIGHTS = "HAR_VIT_WEIGHTS"

# family -> (default open_clip model, default tag, model env var, weights env var)
OPEN_CLIP_DEFAULTS: dict[str, tuple[str, str, str, str]] = {
    "clip": ("ViT-B-32", "openai", ENV_CLIP_MODEL, ENV_CLIP_PRETRAINED),
    "siglip": ("ViT-B-16-SigLIP2", "webli", ENV_SIGLIP_MODEL, ENV_SIGLIP_PRETRAINED),
}
DEFAULT_VIT = "vit_base_patch32_224"

HF_PREFIX = "hf-hub:"
WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".npz", ".ckpt")
# Files timm / open_clip look for in a hub repo when no explicit filename is configured.
TIMM_HUB_FILES = ("model.safetensors", "pytorch_model.bin")
OPEN_CLIP_HUB_FILES = ("open_clip_model.safetensors", "open_clip_pytorch_model.bin")

PROBE_TIMEOUT_S = 2.0
_TRUE = {"1", "on", "yes", "true"}


# ---- hub reachability -------------------------------------------------------------------------
_probe_cache: dict[tuple[str, int], bool] = {}
_probe_lock = threading.Lock()


def hub_offline_forced() -> bool:
    """True when the user switched the Hugging Face hub off (``HF_HUB_OFFLINE=1``)."""
    for var in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):
        if os.environ.get(var, "").strip().lower() in _TRUE:
            return True
    return False


def hub_address() -> tuple[str, int]:
    """(host, port) a connection to the hub goes to first: the HTTPS proxy if set, else the hub."""
    for var in ("HTTPS_PROXY", "https_proxy"):
        proxy = os.environ.get(var)
        if proxy:
            url = urlparse(proxy if "://" in proxy else f"http://{proxy}")
            if url.hostname:
                return url.hostname, url.port or 80
    url = urlparse(os.environ.get("HF_ENDPOINT") or "https://huggingface.co")
    return url.hostname or "huggingface.co", url.port or (80 if url.scheme == "http" else 443)


def _tcp_probe(host: str, port: int, timeout: float) -> bool:
    result: list[bool] = []

    def attempt() -> None:
        try:
            with socket.create_connection((host, port), timeout=timeout):
                result.append(True)
        except Exception:  # noqa: BLE001 - any failure to connect means "unreachable"
            result.append(False)

    worker = threading.Thread(target=attempt, name="har-hub-probe", daemon=True)
    worker.start()
    worker.join(timeout)  # bounds DNS resolution too, which socket timeouts do not cover
    return bool(result and result[0])


def hub_reachable(timeout: float = PROBE_TIMEOUT_S) -> bool:
    """Whether the Hugging Face hub answers a TCP connect (cached per process; <= 2 s)."""
    if hub_offline_forced():
        return False
    address = hub_address()
    with _probe_lock:
        if address not in _probe_cache:
            _probe_cache[address] = _tcp_probe(*address, timeout=min(float(timeout), PROBE_TIMEOUT_S))
        return _probe_cache[address]


def reset_hub_probe() -> None:
    """Forget the cached probe result (tests; a network that came up)."""
    with _probe_lock:
        _probe_cache.clear()


def hub_state() -> str:
    """Short words for why the hub cannot be used (for messages)."""
    if hub_offline_forced():
        return "HF_HUB_OFFLINE=1"
    host, port = hub_address()
    return f"{host}:{port} unreachable"


@contextlib.contextmanager
def hub_access() -> Iterator[None]:
    """Run a builder so it never waits on the network when the hub is unreachable: Hugging Face
    downloads are switched to cache-only for the duration (restored afterwards)."""
    if hub_reachable():
        yield
        return
    try:
        from huggingface_hub import constants
    except ImportError:  # pragma: no cover - huggingface_hub ships with timm/open_clip
        yield
        return
    before = constants.HF_HUB_OFFLINE
    constants.HF_HUB_OFFLINE = True
    try:
        yield
    finally:
        constants.HF_HUB_OFFLINE = before


# ---- local files and the Hugging Face cache ---------------------------------------------------
def hf_cache_dir() -> str | None:
    """The hub cache directory as the environment says now (None = huggingface_hub's default)."""
    if os.environ.get("HF_HUB_CACHE"):
        return os.environ["HF_HUB_CACHE"]
    if os.environ.get("HF_HOME"):
        return os.path.join(os.environ["HF_HOME"], "hub")
    return None


def cached_hf_file(repo_id: str, filenames: Sequence[str]) -> str | None:
    """Local path of the first of ``filenames`` already in the HF cache for ``repo_id``; no network."""
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:  # pragma: no cover
        return None
    for name in filenames:
        try:
            found = try_to_load_from_cache(repo_id, name, cache_dir=hf_cache_dir())
        except Exception:  # noqa: BLE001 - a malformed id or cache simply means "not cached"
            found = None
        if isinstance(found, str) and os.path.isfile(found):
            return found
    return None


def looks_like_path(value: str) -> bool:
    """A weights value meant as a file (even when the file does not exist)."""
    return (
        "/" in value or os.sep in value or value.startswith(("~", ".")) or value.lower().endswith(WEIGHT_SUFFIXES)
    ) and not value.startswith(HF_PREFIX)


def local_file(value: str | None) -> Path | None:
    """``value`` as an existing file path, else None."""
    if not value or value.startswith(HF_PREFIX):
        return None
    path = Path(value).expanduser()
    return path.resolve() if path.is_file() else None


def _hub_files_for(spec: str, default_files: Sequence[str]) -> tuple[str, tuple[str, ...]]:
    """'org/repo/' or 'org/repo/file.bin' (open_clip's hf_hub form) -> (repo, candidate files)."""
    repo, filename = os.path.split(spec) if spec.count("/") >= 2 else (spec.rstrip("/"), "")
    if not filename:
        return repo, tuple(default_files)
    files = [filename]
    if filename.endswith((".bin", ".pth")):
        files.insert(0, filename.rsplit(".", 1)[0] + ".safetensors")
    if filename == "open_clip_pytorch_model.bin":
        files.insert(0, "open_clip_model.safetensors")
    return repo, tuple(files)


# ---- open_clip (CLIP, SigLIP) -----------------------------------------------------------------
@dataclass(frozen=True)
class ClipSource:
    """Resolved weight source of an open_clip model.

    kind: ``tag`` (open_clip pretrained tag, from hub or cache), ``file`` (local weights file),
    ``hf-hub`` (``model_name`` is ``hf-hub:org/repo``), ``random`` (``model_cfg`` without weights:
    seeded random init, always available).
    """

    family: str
    model_name: str | None
    weights: str | None
    kind: str
    quick_gelu: bool
    env_model: str
    env_weights: str

    def describe(self) -> str:
        if self.kind == "random":
            return "random init from model_cfg"
        if self.kind == "hf-hub":
            return str(self.model_name)
        return f"{self.model_name} / {self.weights}"


def resolve_clip(
    family: str,
    model_name: str | None = None,
    weights: str | None = None,
    model_cfg: dict | None = None,
    quick_gelu: bool | None = None,
) -> ClipSource:
    """Config values (may be None) + env + defaults -> a ``ClipSource``. Imports nothing heavy
    unless a tag's QuickGELU flag must be looked up."""
    default_model, default_tag, env_model, env_weights = OPEN_CLIP_DEFAULTS[family]
    if model_cfg is not None and not model_name:
        # A literal architecture: environment variables never change a tiny/local config.
        if weights and weights.startswith(HF_PREFIX):
            raise ValueError(f"model_cfg cannot be combined with hub weights {weights!r}; give a local file")
        if not weights:
            return ClipSource(family, None, None, "random", bool(quick_gelu), env_model, env_weights)
        path = local_file(weights)
        if path is None and not looks_like_path(weights):
            raise ValueError(f"model_cfg needs a local weights file, not the tag {weights!r}")
        return ClipSource(family, None, str(path or weights), "file", bool(quick_gelu), env_model, env_weights)

    name = model_name or settings.get(env_model) or default_model
    if weights is None and not model_name:
        weights = settings.get(env_weights) or None
    if weights and weights.startswith(HF_PREFIX):
        name, weights = weights, None
    if name.startswith(HF_PREFIX):
        return ClipSource(family, name, None, "hf-hub", bool(quick_gelu), env_model, env_weights)
    if not weights:
        weights = default_tag if name == default_model else _first_tag(name, default_tag)
    path = local_file(weights)
    if path is not None or looks_like_path(weights):
        return ClipSource(family, name, str(path or weights), "file", bool(quick_gelu), env_model, env_weights)
    if quick_gelu is None:
        quick_gelu = bool((_open_clip_tag_cfg(name, weights) or {}).get("quick_gelu", False))
    return ClipSource(family, name, weights, "tag", bool(quick_gelu), env_model, env_weights)


def _first_tag(model_name: str, preferred: str) -> str:
    import open_clip

    tags = open_clip.list_pretrained_tags_by_model(model_name)
    return preferred if preferred in tags or not tags else ("openai" if "openai" in tags else tags[0])


def _open_clip_tag_cfg(model_name: str, tag: str) -> dict | None:
    import open_clip

    return open_clip.get_pretrained_cfg(model_name, tag) or None


def open_clip_tag_mean_std(source: ClipSource) -> tuple[tuple, tuple] | None:
    """Normalisation the tag's weights were trained with (no network), if known."""
    if source.kind != "tag":
        return None
    cfg = _open_clip_tag_cfg(str(source.model_name), str(source.weights)) or {}
    if "mean" in cfg and "std" in cfg:
        return tuple(cfg["mean"]), tuple(cfg["std"])
    return None


def _open_clip_cached(source: ClipSource) -> tuple[bool, str]:
    """(weights cached, what is missing) for a tag or hf-hub source."""
    import open_clip

    if source.kind == "hf-hub":
        repo = str(source.model_name)[len(HF_PREFIX) :]
        ok = cached_hf_file(repo, ("open_clip_config.json",)) and cached_hf_file(repo, OPEN_CLIP_HUB_FILES)
        return bool(ok), f"{source.model_name} (config + weights)"
    cfg = _open_clip_tag_cfg(str(source.model_name), str(source.weights)) or {}
    if cfg.get("file") and os.path.isfile(cfg["file"]):
        return True, ""
    if not cfg.get("hf_hub"):
        return False, f"open_clip weights {source.model_name}/{source.weights}"
    repo, files = _hub_files_for(cfg["hf_hub"], OPEN_CLIP_HUB_FILES)
    if not cached_hf_file(repo, files):
        return False, f"open_clip weights {source.model_name}/{source.weights} ({repo})"
    tokenizer_repo = (open_clip.get_model_config(str(source.model_name)) or {}).get("text_cfg", {}).get("hf_tokenizer_name")
    if tokenizer_repo and not cached_hf_file(tokenizer_repo, ("tokenizer_config.json",)):
        return False, f"tokenizer {tokenizer_repo}"
    return True, ""


def _missing_file(source: ClipSource | VitSource) -> str:
    return f"weights file not found: {source.weights} (set {source.env_weights} or the 'weights' option to an existing file)"


def clip_unavailable(source: ClipSource) -> str | None:
    """None when the source's weights can be had here (local file, HF cache or reachable hub),
    else one line saying what is missing and how to enable it."""
    if source.kind == "random":
        return None
    if source.kind == "file":
        if local_file(source.weights) is None:
            return _missing_file(source)
        if source.model_name:
            tokenizer_reason = _tokenizer_unavailable(source)
            if tokenizer_reason:
                return tokenizer_reason
        return None
    if source.kind == "tag":
        import open_clip

        if source.model_name not in open_clip.list_models():
            return f"unknown open_clip model {source.model_name!r} (check {source.env_model})"
        if not _open_clip_tag_cfg(str(source.model_name), str(source.weights)):
            tags = ", ".join(open_clip.list_pretrained_tags_by_model(str(source.model_name))[:6])
            return (
                f"unknown pretrained tag {source.weights!r} for {source.model_name} (known: {tags}; check {source.env_weights})"
            )
    cached, missing = _open_clip_cached(source)
    if cached or hub_reachable():
        return None
    return (
        f"{missing} not in the local HF cache and hub offline ({hub_state()}); set {source.env_weights} to a "
        f"local weights file ({source.env_model} = its architecture) or a cached tag / hf-hub: id"
    )


def _tokenizer_unavailable(source: ClipSource) -> str | None:
    """A named model with a local file may still need a hub tokenizer (SigLIP)."""
    import open_clip

    cfg = open_clip.get_model_config(str(source.model_name))
    if cfg is None:
        return f"unknown open_clip model {source.model_name!r} (check {source.env_model})"
    repo = cfg.get("text_cfg", {}).get("hf_tokenizer_name")
    if not repo or cached_hf_file(repo, ("tokenizer_config.json",)) or hub_reachable():
        return None
    return f"tokenizer {repo} not in the local HF cache and hub offline ({hub_state()}); run once online to cache it"


# ---- timm ViT --------------------------------------------------------------------------------
@dataclass(frozen=True)
class VitSource:
    """Resolved timm weights: kind ``file`` (``weights`` is a local file, ``model_name`` the
    architecture), ``hub`` (``model_name`` is a timm name[.tag] or ``hf-hub:`` id) or ``random``."""

    model_name: str
    weights: str | None
    kind: str
    env_weights: str = ENV_VIT_WEIGHTS

    def describe(self) -> str:
        return {"file": f"{self.model_name} + {self.weights}", "random": f"{self.model_name} random init"}.get(
            self.kind, self.model_name
        )


def resolve_vit(model_name: str | None = None, weights: str | None = None, timm_kwargs: dict | None = None) -> VitSource:
    """Config values + ``HAR_VIT_WEIGHTS`` + default -> a ``VitSource``."""
    arch = model_name or DEFAULT_VIT
    if weights is None and not timm_kwargs and not model_name:
        weights = settings.get(ENV_VIT_WEIGHTS) or None
    if not weights:
        return VitSource(arch, None, "random" if timm_kwargs else "hub")
    path = local_file(weights)
    if path is not None or looks_like_path(weights):
        return VitSource(arch, str(path or weights), "file")
    return VitSource(weights, None, "hub")


def _timm_hub_files(name: str) -> tuple[str, tuple[str, ...]] | None:
    if name.startswith(HF_PREFIX):
        return name[len(HF_PREFIX) :].split("@")[0], TIMM_HUB_FILES
    import timm

    try:
        cfg = timm.models.get_pretrained_cfg(name)
    except RuntimeError:
        return None
    if cfg is None or not cfg.hf_hub_id:
        return None
    files = (cfg.hf_hub_filename,) if cfg.hf_hub_filename else TIMM_HUB_FILES
    return cfg.hf_hub_id.split("@")[0], files


def vit_unavailable(source: VitSource) -> str | None:
    """None when the timm weights can be had here, else one line with how to enable them."""
    if source.kind == "random":
        return None
    if source.kind == "file":
        if local_file(source.weights) is None:
            return _missing_file(source)
        return None
    hub = _timm_hub_files(source.model_name)
    if hub is None:
        return f"no pretrained timm weights known for {source.model_name!r} (set {source.env_weights} to a timm name or a local file)"
    repo, files = hub
    if cached_hf_file(repo, files) or hub_reachable():
        return None
    return (
        f"timm weights {source.model_name} ({repo}) not in the local HF cache and hub offline ({hub_state()}); "
        f"set {source.env_weights} to a local .safetensors file or a cached timm name"
    )
