"""UI text and the examples list, read from files next to this module (no strings in the code).

* ``strings.json`` - titles, labels, messages (``msg(key, **fields)`` formats one); a model's
  "how to enable" hint is part of its registry line (``ModelSpec.hint``);
* ``help.md``      - the help tab;
* ``examples.json`` - the example photos (files under the repository's ``examples/`` folder, or
  ``$HAR_EXAMPLES_DIR``).
"""

from __future__ import annotations

import json
import os
import re
from functools import cache
from pathlib import Path
from typing import Any

UI_DIR = Path(__file__).resolve().parent
PROJECT_ROOT = UI_DIR.parents[1]


@cache
def strings() -> dict[str, Any]:
    return json.loads((UI_DIR / "strings.json").read_text(encoding="utf-8"))


def text(section: str, key: str) -> str:
    """One label, e.g. ``text("controls", "run")``."""
    return strings()[section][key]


def msg(key: str, **fields: Any) -> str:
    """A formatted message from ``strings.json["messages"]``."""
    return strings()["messages"][key].format(**fields)


@cache
def help_markdown() -> str:
    return (UI_DIR / "help.md").read_text(encoding="utf-8")


@cache
def _examples_spec() -> dict[str, Any]:
    return json.loads((UI_DIR / "examples.json").read_text(encoding="utf-8"))


def examples_dir() -> Path:
    """The example photos' folder (the only folder the app serves besides Gradio's own cache)."""
    env = os.environ.get("HAR_EXAMPLES_DIR")
    return Path(env).resolve() if env else (PROJECT_ROOT / _examples_spec()["directory"]).resolve()


def examples() -> list[dict[str, str]]:
    """Example entries whose file exists: ``{"path", "label", "caption"}``."""
    root = examples_dir()
    out = []
    for entry in _examples_spec()["examples"]:
        path = root / entry["file"]
        if path.is_file():
            out.append({"path": str(path), "label": entry["label"], "caption": entry["caption"]})
    return out


_ABS_PATH = re.compile(r"(?<![\w.:/])/(?:[^\s/:;,'\"()\[\]]+/)*[^\s/:;,'\"()\[\]]*")


def public_text(line: str) -> str:
    """``line`` with every absolute server path shortened: inside the project -> relative to it
    (``checkpoints/cnn_base``), a checkpoint root elsewhere -> ``checkpoints/...``, anything else ->
    its last part. The UI and the API never show where the server keeps its files."""
    roots = [(str(PROJECT_ROOT), "")]
    env_ckpt = os.environ.get("HAR_CHECKPOINT_DIR")
    if env_ckpt:
        roots.insert(0, (str(Path(env_ckpt).resolve()), "checkpoints"))
        roots.insert(0, (str(Path(env_ckpt)), "checkpoints"))

    def short(match: re.Match) -> str:
        path = match.group(0)
        for root, name in roots:
            if path == root or path.startswith(root.rstrip("/") + "/"):
                rest = path[len(root):].lstrip("/")
                return "/".join(p for p in (name, rest) if p) or "."
        return Path(path).name or path

    return _ABS_PATH.sub(short, str(line))
