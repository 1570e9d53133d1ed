"""What a visitor may see of the server: no absolute paths, no echoed input of any length.

``redact_paths`` rewrites every absolute path in a message: inside the project -> relative to it
(``checkpoints/cnn_base``), inside the checkpoint root (``$HAR_CHECKPOINT_DIR``) ->
``checkpoints/...``, anything else -> its last component only. ``echo`` makes a visitor's value fit
for a one-line message (control characters escaped, cut to a few dozen characters).
"""

from __future__ import annotations

import os
import re
from pathlib import PurePosixPath

from .. import settings
from ..data.io import safe_label
from .text import PROJECT_ROOT

ECHO_CHARS = 60
# an absolute POSIX path: "/" after start / space / quote / bracket / "=", up to a space, quote or bracket
_ABS_PATH = re.compile(r"(?<![\w.~/:-])/(?:[^\s'\"()\[\]{}<>,;:|`]+)")


def _roots() -> list[tuple[str, str]]:
    ckpt = str(settings.get("HAR_CHECKPOINT_DIR"))  # its default lies under PROJECT_ROOT: labelled the same either way
    roots = [(os.path.realpath(ckpt), "checkpoints"), (os.path.abspath(ckpt), "checkpoints")]
    roots.append((os.path.realpath(PROJECT_ROOT), ""))
    roots.append((os.path.abspath(PROJECT_ROOT), ""))
    return roots


def _shorten(match: re.Match) -> str:
    path = match.group(0).rstrip(".")
    tail = match.group(0)[len(path) :]
    for root, shown in _roots():
        if path == root or path.startswith(root.rstrip("/") + "/"):
            rel = path[len(root) :].lstrip("/")
            return (str(PurePosixPath(shown, rel)) if shown else (rel or ".")) + tail
    name = PurePosixPath(path).name
    return (name or "/") + tail


def redact_paths(text: object) -> str:
    """``text`` with every absolute server path made relative (project / checkpoints) or cut to its name."""
    return _ABS_PATH.sub(_shorten, str(text))


def echo(value: object, limit: int = ECHO_CHARS) -> str:
    """A visitor's value quoted for a message: escaped, at most ``limit`` characters."""
    return repr(safe_label(value, limit))
