"""``@gpu``: ``spaces.GPU`` when the Hugging Face ``spaces`` package is importable (ZeroGPU
Spaces), a no-op otherwise. No hard dependency on ``spaces``."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import TypeVar

F = TypeVar("F", bound=Callable)

try:  # pragma: no cover - only on Hugging Face Spaces
    import spaces as _spaces
except ImportError:
    _spaces = None


def on_zero_gpu() -> bool:
    """True on a ZeroGPU Space (models go to CUDA; work runs inside ``@gpu`` functions)."""
    return _spaces is not None and os.environ.get("SPACES_ZERO_GPU", "").lower() in ("1", "true")


def gpu(fn: F) -> F:
    """Mark a function that runs models (the GPU is attached only while it runs on ZeroGPU)."""
    if _spaces is None:
        return fn
    return _spaces.GPU(fn)  # pragma: no cover
