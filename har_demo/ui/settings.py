"""The app's knobs, read once at start-up from the project's one settings table
(``har_demo/settings.py``: type, default and meaning of every ``HAR_*`` variable); a bad value
stops start-up with one line naming the variable."""

from __future__ import annotations

import os

from .. import settings
from ..settings import Setting


def env_int(name: str, default: int, minimum: int = 1) -> int:
    """An integer environment variable outside the settings table (``default`` when unset), read
    and checked as the table's integers are (``ConfigError``: one line naming the variable)."""
    raw = os.environ.get(name, "")
    return Setting(name, int, default, "", minimum=minimum).parse(raw) if raw.strip() else default


CONCURRENCY: int = settings.get("HAR_CONCURRENCY")  # model runs at a time, all model events together
QUEUE_SIZE: int = settings.get("HAR_QUEUE_SIZE")  # waiting requests beyond this are refused
BATCH_MAX_IMAGES: int = settings.get("HAR_BATCH_MAX_IMAGES")
# One budget per /batch request, across all its uploads: uncompressed bytes extracted from zips
# (plus the loose images) and decoded pixels (headers summed before any image is decoded).
BATCH_MAX_BYTES: int = settings.get("HAR_BATCH_MAX_BYTES")
BATCH_MAX_PIXELS: int = settings.get("HAR_BATCH_MAX_PIXELS")
MAX_UPLOAD: str = settings.get("HAR_MAX_UPLOAD")  # Gradio refuses larger uploads
