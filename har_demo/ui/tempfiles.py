"""A request's uploaded files are removed when the request ends (issue 22, item 3), not kept in
Gradio's upload cache until ``delete_cache`` (an hour).

Gradio stores an upload at ``<upload folder>/<content hash>/<name>``: two visitors sending the
same photo share one path. So a file is removed a few seconds after the API call that used it
ends, and only when no running call holds it, no queued or running job names it, and nobody
uploaded it again since (a new upload is a new file: its inode / mtime differ). Files outside the
upload folder (the bundled examples) are never removed.
"""

from __future__ import annotations

import logging
import os
import threading
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

DELETE_DELAY_S = 5.0  # after the call ends: a client that uploaded the same photo has joined by then
_IN_USE: Counter = Counter()
_LOCK = threading.Lock()


def _upload_root() -> Path:
    from gradio.utils import get_upload_folder

    return Path(get_upload_folder()).resolve()


def upload_paths(value: Any, _depth: int = 0) -> list[str]:
    """The files in Gradio's upload folder that ``value`` (call arguments: paths, FileData dicts or
    objects, lists of them) names."""
    if _depth > 4 or value is None:
        return []
    if isinstance(value, (list, tuple)):
        return [p for v in value[:10_000] for p in upload_paths(v, _depth + 1)]
    if isinstance(value, dict):
        value = value.get("path")
    elif not isinstance(value, (str, os.PathLike)):
        value = getattr(value, "path", None)
    if not isinstance(value, (str, os.PathLike)) or not str(value):
        return []
    try:
        path = Path(value).resolve()
    except (OSError, ValueError):
        return []
    root = _upload_root()
    return [str(path)] if root in path.parents else []


def _stat(path: str) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_ino, st.st_mtime_ns


def _named_by_a_job(blocks: Any, path: str) -> bool:
    queue = getattr(blocks, "_queue", None)
    if queue is None:
        return False
    try:
        events = [e for q in queue.event_queue_per_concurrency_id.values() for e in q.queue]
        events += [e for job in queue.active_jobs if job for e in job]
    except (AttributeError, TypeError):
        return True  # cannot tell: keep the file (delete_cache still removes it later)
    return any(path in repr(getattr(getattr(e, "data", None), "data", None)) for e in events)


def remove_unused(held: list[tuple[str, tuple[int, int] | None]], blocks: Any = None) -> list[str]:
    """Remove the files of ``held`` (path, stat at the call's start) nobody uses now; the removed."""
    removed = []
    root = _upload_root()
    for path, seen in held:
        with _LOCK:
            if seen is None or _IN_USE.get(path) or _stat(path) != seen or _named_by_a_job(blocks, path):
                continue
            try:
                os.unlink(path)
            except OSError:
                continue
        removed.append(path)
        parent = Path(path).parent
        if parent != root and root in parent.parents:
            try:
                parent.rmdir()  # the content-hash folder, when empty
            except OSError:
                pass
    return removed


@contextmanager
def request_files(paths: list[str], blocks: Any = None, delay: float | None = None) -> Iterator[None]:
    """Hold ``paths`` while the call runs; when it ends, remove them (``remove_unused``) after ``delay``
    seconds (``DELETE_DELAY_S``; 0 = now, in this thread)."""
    held = [(p, _stat(p)) for p in dict.fromkeys(paths)]
    with _LOCK:
        _IN_USE.update(p for p, _ in held)
    try:
        yield
    finally:
        with _LOCK:
            _IN_USE.subtract(p for p, _ in held)
            for p, _ in held:
                if _IN_USE[p] <= 0:
                    del _IN_USE[p]
        wait = DELETE_DELAY_S if delay is None else delay
        if held and wait <= 0:
            remove_unused(held, blocks)
        elif held:
            timer = threading.Timer(wait, remove_unused, (held, blocks))
            timer.daemon = True
            timer.start()
