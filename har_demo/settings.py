"""Every ``HAR_*`` environment variable the project reads, in one table: its type, default and
meaning. Code reads a setting with ``get(NAME)`` - never ``os.environ`` directly - so a bad value
(``HAR_MAX_PIXELS=abc``) is one ``ConfigError`` line naming the variable, wherever it is read.

``get`` reads the environment when it is called: a module that wants a value fixed at import
(``data.io.MAX_PIXELS``) calls it at import, a function that should follow the environment
(``models.loading.checkpoint_root``) calls it each time. An unset or empty variable is its
default. The faces (``python -m har_demo``, ``train.py``, ``app.py``) call ``check_all()`` first,
so a bad value stops them with one line before anything else runs.

The README's settings table is this table: ``python -m har_demo.settings`` prints it
(``tests/test_settings.py`` checks that the two agree).

This module is a leaf: every layer may import it (it imports only ``errors`` and ``options``).
"""

from __future__ import annotations

import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import ConfigError
from .options import from_text

REPO_ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Setting:
    name: str
    kind: type  # int | float | str | Path
    default: Any  # the value when unset; None: the reader's fallback, which ``shown`` describes
    meaning: str  # one line
    shown: str = ""  # the default as the README shows it (default: str(default))
    minimum: float | None = None  # ints and floats
    maximum: float | None = None
    pattern: str | None = None  # strs: a full match is required (any case) ...
    expect: str = ""  # ... described so: "cpu, cuda, cuda:N or mps"

    @property
    def default_text(self) -> str:
        return self.shown or str(self.default)

    def parse(self, raw: str) -> Any:
        """The variable's text -> its typed value (``ConfigError`` naming the variable if bad)."""
        text = raw.strip()
        if self.kind in (int, float):
            try:
                value = from_text(text, self.kind, self.name)
            except ConfigError:
                what = "a whole number" if self.kind is int else "a number"
                raise ConfigError(f"{self.name} must be {what}, got {raw!r}") from None
            if self.minimum is not None and value < self.minimum:
                raise ConfigError(f"{self.name} must be at least {self.minimum}, got {value}")
            if self.maximum is not None and value > self.maximum:
                raise ConfigError(f"{self.name} must be at most {self.maximum}, got {value}")
            return value
        if self.kind is Path:
            return Path(text).expanduser()
        if self.pattern and not re.fullmatch(self.pattern, text, re.IGNORECASE):
            raise ConfigError(f"{self.name} must be {self.expect}, got {raw!r}")
        return text


_MIB = 2**20
_CKPT = "checkpoints/ in the repository"
# name -> Setting; the order is the README's. Keep each meaning to one line.
SETTINGS: dict[str, Setting] = {s.name: s for s in (
    # where things are
    Setting("HAR_CHECKPOINT_DIR", Path, REPO_ROOT / "checkpoints", "where trained checkpoints are found: one `<model>/` folder each", _CKPT),
    Setting("HAR_RUNS_DIR", Path, REPO_ROOT / "runs", "run folders the app's Model cards tab reads (training writes to `--out`)", "runs/ in the repository"),
    Setting("HAR_EXAMPLES_DIR", Path, None, "folder of the app's example photos", "the folder `har_demo/ui/examples.json` names"),
    Setting("HAR_PERSON_CACHE", Path, Path.home() / ".cache" / "har_demo" / "person", "on-disk cache of person-finder results for data sets", "~/.cache/har_demo/person"),
    Setting("HAR_FEATURE_CACHE", Path, Path.home() / ".cache" / "har_demo" / "features", "on-disk cache of frozen-backbone features for training (`train.py --feature-cache` wins)", "~/.cache/har_demo/features"),
    # pretrained weights (models/sources.py: a model's own config wins over these)
    Setting("HAR_CLIP_MODEL", str, None, "open_clip architecture of the clip_* models", "ViT-B-32"),
    Setting("HAR_CLIP_PRETRAINED", str, None, "their weights: an open_clip tag, a local weights file or an `hf-hub:org/repo` id", "openai"),
    Setting("HAR_SIGLIP_MODEL", str, None, "open_clip architecture of siglip_ft", "ViT-B-16-SigLIP2"),
    Setting("HAR_SIGLIP_PRETRAINED", str, None, "its weights: an open_clip tag, a local weights file or an `hf-hub:` id", "webli"),
    Setting("HAR_VIT_WEIGHTS", str, None, "the vit model's weights: a local file or a timm hub name", "vit_base_patch32_224 (timm, ImageNet)"),
    # image decoding limits (data/io.py; read once at import)
    Setting("HAR_MAX_PIXELS", int, 40_000_000, "largest image decoded, in pixels (larger ones are refused before decoding)", "40000000", minimum=1),
    Setting("HAR_MAX_FILE_BYTES", int, 25 * _MIB, "largest image file read, in bytes", "26214400 (25 MiB)", minimum=1),
    Setting("HAR_MAX_JPEG_SCANS", int, 100, "JPEGs with more scans are refused (progressive-JPEG decoding cost)", minimum=1),
    Setting("HAR_MAX_PNG_CHUNKS", int, 20_000, "PNGs with more chunks are refused", minimum=1),
    # the app (read once at start-up)
    Setting("HAR_HOST", str, None, "interface the app listens on (`--host` wins; then GRADIO_SERVER_NAME)", "127.0.0.1"),
    Setting("HAR_PORT", int, None, "port of the app (`--port` wins; then GRADIO_SERVER_PORT)", "7860", minimum=1, maximum=65535),
    Setting("HAR_DEVICE", str, None, "torch device of the app's models", "cuda when present, else cpu",
            pattern=r"cpu|cuda(:\d+)?|mps", expect="cpu, cuda, cuda:N or mps"),
    Setting("HAR_CONCURRENCY", int, 2, "model runs at a time, all the app's model events together", minimum=1),
    Setting("HAR_QUEUE_SIZE", int, 64, "waiting app requests beyond this are refused", minimum=1),
    Setting("HAR_MAX_UPLOAD", str, "100mb", "largest upload Gradio accepts", pattern=r"\d+\s*(b|kb|mb|gb|tb)",
            expect="a whole number with a unit (b, kb, mb, gb, tb), e.g. 100mb"),
    Setting("HAR_BATCH_MAX_IMAGES", int, 500, "images per Batch request", minimum=1),
    Setting("HAR_BATCH_MAX_BYTES", int, 500 * _MIB, "bytes per Batch request, across its uploads (zips counted extracted)", "524288000 (500 MiB)", minimum=1),
    Setting("HAR_BATCH_MAX_PIXELS", int, 1_000_000_000, "decoded pixels per Batch request (summed from the headers before decoding)", "1000000000", minimum=1),
    # the decode sandbox (data/sandbox.py, data/io.py; read once at import)
    Setting("HAR_DECODE_SANDBOX", int, 1, "1: untrusted files are decoded in sandboxed worker processes; 0: in this process", minimum=0, maximum=1),
    Setting("HAR_SANDBOX_WORKERS", int, None, "sandbox worker processes", "min(2, CPU cores)", minimum=1),
    Setting("HAR_SANDBOX_MEMORY_GB", float, 1.5, "address-space limit of a sandbox worker, in GiB", minimum=0.25),
    Setting("HAR_SANDBOX_CPU_S", int, 5, "CPU seconds a sandbox worker may spend on one image", minimum=1),
    Setting("HAR_SANDBOX_WALL_S", float, 15.0, "wall seconds one sandboxed decode may take before the worker is killed", minimum=0.5),
    Setting("HAR_MAX_DECODE_CPU_S", float, 30.0, "sandbox CPU seconds per Batch request, across its images", minimum=0.1),
    # request limits in front of Gradio (ui/limits.py; read once at start-up)
    Setting("HAR_MAX_JSON_BODY", int, 2 * _MIB, "largest JSON request body, in bytes (refused before parsing)", "2097152 (2 MiB)", minimum=1),
    Setting("HAR_MAX_UPLOAD_BODY", int, 256 * _MIB, "largest upload request body, in bytes", "268435456 (256 MiB)", minimum=1),
    Setting("HAR_MAX_FILES_PER_REQUEST", int, 520, "files in one upload request (a batch: 500 images + zips/CSV)", minimum=1),
    Setting("HAR_MAX_JOBS_PER_CLIENT", int, 4, "queued or running jobs one client (address or session) may have", minimum=1),
    Setting("HAR_SESSION_STORE_BYTES", int, 256 * _MIB, "bytes of compare-tab analyses kept across all sessions (LRU)", "268435456 (256 MiB)", minimum=1),
    Setting("HAR_LISTEN_GRACE_S", float, 3.0, "seconds a job's client has to start listening before the job is dropped", minimum=0),
)}


def get(name: str) -> Any:
    """The setting's value now: the environment's (typed, checked) or its default."""
    try:
        setting = SETTINGS[name]
    except KeyError:
        raise KeyError(f"{name} is not a har_demo setting (add it to har_demo/settings.py)") from None
    raw = os.environ.get(name, "")
    if not raw.strip():
        return setting.default
    return setting.parse(raw)


def check_all() -> None:
    """Every setting the environment sets, checked (the first bad one: ``ConfigError``, one line)."""
    for name in SETTINGS:
        get(name)


def check_or_exit() -> None:
    """``check_all`` for an entry point before it imports the library: a bad value is one line on
    stderr and exit code 2 (modules such as ``data.io`` read their settings at import)."""
    try:
        check_all()
    except ConfigError as err:
        print(f"error: {err}", file=sys.stderr)
        raise SystemExit(2) from None


def markdown_table() -> str:
    """The README's table of settings."""
    lines = ["| variable | type | default | meaning |", "|---|---|---|---|"]
    kinds = {int: "integer", float: "number", str: "text", Path: "path"}
    for s in SETTINGS.values():
        kind = kinds[s.kind]
        if s.minimum is not None:
            kind += f" >= {s.minimum:g}" if s.maximum is None else f" {s.minimum:g}-{s.maximum:g}"
        lines.append(f"| `{s.name}` | {kind} | {s.default_text} | {s.meaning} |")
    return "\n".join(lines)


if __name__ == "__main__":  # pragma: no cover - python -m har_demo.settings
    print(markdown_table())
