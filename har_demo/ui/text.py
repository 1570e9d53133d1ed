"""UI text and the examples list, read from files next to this module (no strings in the code).

* ``strings.json`` - titles, labels, messages (``msg(key, **fields)`` formats one); a model's
  "how to enable" hint is part of its registry line (``ModelSpec.hint``);
* ``help.md``      - the help tab;
* ``examples.json`` - the example photos (files under the repository's ``examples/`` folder, or
  ``$HAR_EXAMPLES_DIR``).
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

from .. import settings

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
    env = settings.get("HAR_EXAMPLES_DIR")
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

