"""The app's knobs, read once from the environment (a bad value stops start-up with one line)."""

from __future__ import annotations

import os

from ..errors import HarError


def env_int(name: str, default: int, minimum: int = 1) -> int:
    """An integer environment variable (``default`` when unset)."""
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise HarError(f"{name} must be a whole number, got {raw!r}") from None
    if value < minimum:
        raise HarError(f"{name} must be at least {minimum}, got {value}")
    return value


CONCURRENCY = env_int("HAR_CONCURRENCY", 2)  # model runs at a time, all model events together
QUEUE_SIZE = env_int("HAR_QUEUE_SIZE", 64)  # waiting requests beyond this are refused
BATCH_MAX_IMAGES = env_int("HAR_BATCH_MAX_IMAGES", 500)
# One budget per /batch request, across all its uploads: uncompressed bytes extracted from zips
# (plus the loose images) and decoded pixels (headers summed before any image is decoded).
BATCH_MAX_BYTES = env_int("HAR_BATCH_MAX_BYTES", 500 * 2**20)
BATCH_MAX_PIXELS = env_int("HAR_BATCH_MAX_PIXELS", 1_000_000_000)
MAX_UPLOAD = os.environ.get("HAR_MAX_UPLOAD", "100mb")  # Gradio refuses larger uploads
