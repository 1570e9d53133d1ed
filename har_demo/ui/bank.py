"""The models the app serves: loaded once at start-up, shared by every request.

``ModelBank.load()`` walks ``models.registry.MODELS``; each model is either loaded (``load_model``)
or kept as *unavailable* with the one-line reason from ``availability`` (or the load error) plus a
how-to-enable hint. Nothing here knows a model by name. Explanation methods come from the
``explain`` registry (``applicable_methods`` / ``default_method``).

Explainers attach hooks and change a model's mode while they run, so each model has a lock:
concurrent requests take turns per model (different models still run in parallel).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

from .. import settings
from ..errors import HarError
from ..explain import base as explain_base
from ..models.base import HarModel
from ..models.fuse import prepare_for_serving
from ..models.loading import availability, load_model
from ..models.registry import MODELS, ModelSpec
from .gpu import on_zero_gpu

log = logging.getLogger(__name__)


@dataclass
class ModelEntry:
    """One registry model as the app sees it."""

    name: str
    family: str
    summary: str
    model: HarModel | None = None
    source: str = ""  # where the weights came from (available) or why not (unavailable)
    hint: str = ""  # how to enable (unavailable only)
    methods: list[str] = field(default_factory=list)
    default_method: str | None = None
    load_seconds: float = 0.0
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def available(self) -> bool:
        return self.model is not None


def explain_methods(model: HarModel) -> tuple[list[str], str | None]:
    """(applicable methods in registry order, the default one) - from the explain registry.

    Methods whose module cannot be imported here are left out rather than breaking the app."""
    methods = []
    for name in explain_base.EXPLAINERS:
        try:
            if explain_base.get_explainer(name).applies_to(model):
                methods.append(name)
        except ImportError as err:
            log.warning("explanation method %s unavailable: %s", name, err)
    if not methods:
        return [], None
    try:
        default = explain_base.default_method(model)
    except (HarError, ImportError):
        default = methods[0]
    return methods, default if default in methods else methods[0]


def _device() -> str:
    """``$HAR_DEVICE``, else CUDA when present (incl. ZeroGPU Spaces), else CPU."""
    env = settings.get("HAR_DEVICE")
    if env:
        return env
    if on_zero_gpu():
        return "cuda"
    try:
        import torch

        return "cuda" if torch.cuda.is_available() else "cpu"
    except Exception:  # noqa: BLE001 - never fail start-up over device probing
        return "cpu"


class ModelBank:
    """Name -> ``ModelEntry`` for every registry model, in registry order."""

    def __init__(self, entries: Iterable[ModelEntry]) -> None:
        self.entries: dict[str, ModelEntry] = {e.name: e for e in entries}
        self.load_seconds: float = 0.0

    # --- construction -----------------------------------------------------------------------
    @classmethod
    def load(
        cls,
        names: Iterable[str] | None = None,
        loader: Callable[[str], HarModel] = load_model,
        device: str | None = None,
    ) -> ModelBank:
        """Load every (or the named) registry model that is available here; never raises for a
        model that cannot load - it becomes an unavailable entry with its reason."""
        start = time.perf_counter()
        device = device or _device()
        entries = []
        for name in names or MODELS:
            spec = MODELS[name]
            entries.append(cls._load_one(spec, loader, device))
        bank = cls(entries)
        bank.load_seconds = time.perf_counter() - start
        for line in bank.startup_lines():
            log.info("%s", line)
        return bank

    def startup_lines(self) -> list[str]:
        """What the start-up log says: each model loaded (from where, how long) or not (why), then
        the count. No server paths (``redact.redact_paths``)."""
        from .text import msg

        lines = []
        for e in self.entries.values():
            if e.available:
                lines.append(msg("startup_loaded", name=e.name, source=e.source, seconds=e.load_seconds))
            else:
                lines.append(msg("startup_missing", name=e.name, reason=e.source))
        lines.append(msg("startup_summary", available=len(self.available_names()), total=len(self.entries), seconds=self.load_seconds))
        return lines

    @staticmethod
    def _load_one(spec: ModelSpec, loader: Callable[[str], HarModel], device: str) -> ModelEntry:
        start = time.perf_counter()
        entry = ModelEntry(spec.name, spec.family, spec.summary)
        try:
            ok, detail = availability(spec.name)
        except Exception as err:  # noqa: BLE001 - a broken check must not stop the app
            ok, detail = False, f"availability check failed ({type(err).__name__}: {err})"
        if ok:
            try:
                entry.model = prepare_for_serving(loader(spec.name), device)  # BN folded (~1.4x on CPU)
            except HarError as err:
                ok, detail = False, str(err)
            except Exception as err:
                log.exception("loading %s failed", spec.name)
                ok, detail = False, f"loading failed ({type(err).__name__}: {err})"
        from .redact import redact_paths

        entry.source = redact_paths(detail)  # shown to visitors: no absolute server paths
        if ok:
            entry.methods, entry.default_method = explain_methods(entry.model)
        else:
            entry.hint = spec.enable_hint()
        entry.load_seconds = time.perf_counter() - start
        return entry

    @classmethod
    def from_models(cls, models: Mapping[str, HarModel], unavailable: Mapping[str, str] | None = None) -> ModelBank:
        """A bank from ready models (tests, benchmarks); ``unavailable`` maps name -> reason."""
        entries = []
        for name, model in models.items():
            spec = MODELS.get(name)
            model.eval()
            entry = ModelEntry(name, getattr(model, "family", ""), spec.summary if spec else "", model, "given")
            entry.methods, entry.default_method = explain_methods(model)
            entries.append(entry)
        for name, reason in (unavailable or {}).items():
            spec = MODELS.get(name)
            family = spec.family if spec else ""
            entries.append(ModelEntry(name, family, spec.summary if spec else "", None, reason, spec.enable_hint() if spec else ""))
        return cls(entries)

    # --- lookups --------------------------------------------------------------------------------
    def names(self) -> list[str]:
        return list(self.entries)

    def available_names(self) -> list[str]:
        return [n for n, e in self.entries.items() if e.available]

    def unavailable(self) -> list[ModelEntry]:
        return [e for e in self.entries.values() if not e.available]

    def get(self, name: str) -> ModelEntry:
        try:
            return self.entries[name]
        except KeyError:
            from ..errors import UnknownName
            from .redact import echo

            raise UnknownName(f"unknown model {echo(name)}; this app serves: {', '.join(self.entries)}") from None

    def require(self, name: str) -> ModelEntry:
        """The entry of an *available* model, else a one-line ``ModelUnavailable``."""
        entry = self.get(name)
        if not entry.available:
            from ..errors import ModelUnavailable

            raise ModelUnavailable(f"{name} is not available here: {entry.source}")
        return entry

    def select(self, names: Iterable[str] | None) -> list[ModelEntry]:
        """Available entries for ``names`` (None/empty = every available model), registry order."""
        wanted = list(names or [])
        for n in wanted:
            self.get(n)  # unknown names -> UnknownName
        chosen = set(wanted) if wanted else set(self.available_names())
        return [e for n, e in self.entries.items() if n in chosen and e.available]
