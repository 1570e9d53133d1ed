"""The compare tab's analyses, kept across sessions in one LRU with a byte budget (issue 22, item 7).

Gradio keeps a session's ``gr.State`` for up to 10,000 sessions and an hour each: holding the
``Analysis`` there (working image, maps, person mask: ~3.6 MB) grew memory with every new visitor.
The page's ``gr.State`` now holds only a key; the analyses live here, the least recently used ones
dropped once ``budget`` bytes are held (a redraw of a dropped one asks for Analyse again).
"""

from __future__ import annotations

import dataclasses
import threading
import time
import uuid
from collections import OrderedDict
from typing import Any

import numpy as np
from PIL import Image

from .. import settings


def held_bytes(value: Any, _depth: int = 0) -> int:
    """The array / image bytes ``value`` holds (dataclasses, dicts, lists walked; 6 levels deep)."""
    if _depth > 6 or value is None:
        return 0
    if isinstance(value, np.ndarray):
        return int(value.nbytes)
    if isinstance(value, Image.Image):
        return value.width * value.height * len(value.getbands())
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return sum(held_bytes(getattr(value, f.name, None), _depth + 1) for f in dataclasses.fields(value))
    if isinstance(value, dict):
        return sum(held_bytes(v, _depth + 1) for v in value.values())
    if isinstance(value, (list, tuple)):
        return sum(held_bytes(v, _depth + 1) for v in value)
    return 0


class AnalysisStore:
    """key -> analysis, least recently used first out once over ``budget`` bytes (thread-safe)."""

    def __init__(self, budget: int | None = None) -> None:
        self.budget = settings.get("HAR_SESSION_STORE_BYTES") if budget is None else budget
        self._items: OrderedDict[str, tuple[Any, int]] = OrderedDict()
        self._keys: dict[int, str] = {}  # id(analysis) -> its key (a cached example analysed twice: one entry)
        self._lock = threading.Lock()
        self.bytes = 0

    def put(self, analysis: Any) -> str:
        with self._lock:
            key = self._keys.get(id(analysis))
            if key is not None and self._items.get(key, (None,))[0] is analysis:
                self._items.move_to_end(key)
                return key
            key = uuid.uuid4().hex
            size = held_bytes(analysis)
            self._items[key] = (analysis, size)
            self._keys[id(analysis)] = key
            self.bytes += size
            while self.bytes > self.budget and len(self._items) > 1:
                _old, (gone, gone_size) = self._items.popitem(last=False)
                self._keys.pop(id(gone), None)
                self.bytes -= gone_size
            return key

    def get(self, key: Any) -> Any:
        with self._lock:
            if not isinstance(key, str) or key not in self._items:
                return None
            self._items.move_to_end(key)
            return self._items[key][0]

    def __len__(self) -> int:
        return len(self._items)


TRIM_DELAY_S = 2.0  # a burst of /predict calls ends when none came for this long
TRIM_EVERY_S = 30.0  # under steady load, trim at least this often
_trim = {"timer": None, "last": 0.0}
_trim_lock = threading.Lock()


def trim_after_burst() -> None:
    """Hand freed heap back to the OS (``batch.release_memory``) once a burst of calls is over:
    ``TRIM_DELAY_S`` after the last call, or now when the last trim is ``TRIM_EVERY_S`` old.
    ``gc.collect`` + ``malloc_trim`` after every call cost more than the call (measured 16 s ->
    114 s for 200 tiny-model /predict calls); once per burst costs nothing a visitor waits for."""
    from . import batch as bt

    def run() -> None:
        with _trim_lock:
            _trim["last"] = time.monotonic()
        bt.release_memory()

    with _trim_lock:
        if _trim["timer"] is not None:
            _trim["timer"].cancel()
            _trim["timer"] = None
        due = time.monotonic() - _trim["last"] >= TRIM_EVERY_S and _trim["last"] > 0
        if TRIM_DELAY_S > 0 and not due:
            timer = threading.Timer(TRIM_DELAY_S, run)
            timer.daemon = True
            _trim["timer"] = timer
            timer.start()
            return
    run()
