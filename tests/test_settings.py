"""Every ``HAR_*`` environment variable is read through ``har_demo/settings.py`` (one table: type,
default, meaning), listed in the README's table, and a bad value is one line naming it."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from har_demo import settings
from har_demo.errors import ConfigError

REPO = Path(__file__).resolve().parents[1]
PKG = REPO / "har_demo"


def _readme_table() -> str:
    text = (REPO / "README.md").read_text(encoding="utf-8")
    m = re.search(r"<!-- settings-table:begin -->\n(.*?)\n<!-- settings-table:end -->", text, re.DOTALL)
    assert m, "README has no settings table between the settings-table markers"
    return m.group(1)


def test_readme_table_is_the_modules_table():
    assert _readme_table() == settings.markdown_table(), "regenerate it: python -m har_demo.settings"
    listed = re.findall(r"^\| `(HAR_\w+)` \|", _readme_table(), re.MULTILINE)
    assert listed == list(settings.SETTINGS)


def test_every_har_variable_in_the_code_is_in_the_table_and_read_only_by_settings():
    """Each ``HAR_*`` name the package's code mentions is a setting; ``os.environ`` / ``getenv``
    reads of a HAR_* variable happen in settings.py alone."""
    mentioned, direct_reads = set(), []
    for path in [*PKG.rglob("*.py"), REPO / "app.py", REPO / "train.py"]:
        text = path.read_text(encoding="utf-8")
        mentioned |= set(re.findall(r"\bHAR_[A-Z][A-Z0-9_]*[A-Z0-9]\b", text))
        if path.name != "settings.py" or path.parent != PKG:
            direct_reads += [f"{path.name}: {m}" for m in re.findall(r"(?:environ\.get|environ\[|getenv)\(?\s*[\"']HAR_\w+", text)]
            direct_reads += [f"{path.name}: {m}" for m in re.findall(r"environ\.get\((?:env_\w+|ENV_\w+)", text)]
    assert not direct_reads, direct_reads
    assert mentioned - set(settings.SETTINGS) == set(), "HAR_* names not in har_demo/settings.py"
    assert len(settings.SETTINGS) >= 22


def test_each_setting_has_a_type_a_default_and_a_one_line_meaning():
    for s in settings.SETTINGS.values():
        assert s.kind in (int, float, str, Path) and s.meaning and "\n" not in s.meaning and "|" not in s.meaning
        assert s.default_text
        if s.kind is int and s.default is not None:
            assert isinstance(s.default, int) and (s.minimum is None or s.default >= s.minimum)


@pytest.mark.parametrize("name, raw, message", [
    ("HAR_MAX_PIXELS", "abc", "HAR_MAX_PIXELS must be a whole number, got 'abc'"),
    ("HAR_MAX_PIXELS", "1.5e6", "HAR_MAX_PIXELS must be a whole number, got '1.5e6'"),
    ("HAR_QUEUE_SIZE", "0", "HAR_QUEUE_SIZE must be at least 1, got 0"),
    ("HAR_PORT", "70000", "HAR_PORT must be at most 65535, got 70000"),
    ("HAR_DEVICE", "gpu", "HAR_DEVICE must be cpu, cuda, cuda:N or mps, got 'gpu'"),
    ("HAR_MAX_UPLOAD", "lots", "HAR_MAX_UPLOAD must be a whole number with a unit"),
    ("HAR_SANDBOX_WALL_S", "soon", "HAR_SANDBOX_WALL_S must be a number, got 'soon'"),
    ("HAR_SANDBOX_MEMORY_GB", "0.1", "HAR_SANDBOX_MEMORY_GB must be at least 0.25, got 0.1"),
    ("HAR_DECODE_SANDBOX", "2", "HAR_DECODE_SANDBOX must be at most 1, got 2"),
])
def test_a_bad_value_is_one_line_naming_the_variable(monkeypatch, name, raw, message):
    monkeypatch.setenv(name, raw)
    with pytest.raises(ConfigError) as info:
        settings.get(name)
    assert str(info.value).startswith(message) and "\n" not in str(info.value)
    with pytest.raises(ConfigError, match=name):
        settings.check_all()


def test_values_are_typed_and_unset_or_empty_is_the_default(monkeypatch, tmp_path):
    monkeypatch.setenv("HAR_MAX_PIXELS", " 1234 ")
    monkeypatch.setenv("HAR_CHECKPOINT_DIR", str(tmp_path))
    monkeypatch.setenv("HAR_DEVICE", "CUDA:1")
    monkeypatch.setenv("HAR_QUEUE_SIZE", "")
    monkeypatch.setenv("HAR_LISTEN_GRACE_S", "2.5")
    assert settings.get("HAR_LISTEN_GRACE_S") == 2.5
    assert settings.get("HAR_MAX_PIXELS") == 1234
    assert settings.get("HAR_CHECKPOINT_DIR") == tmp_path
    assert settings.get("HAR_DEVICE") == "CUDA:1"
    assert settings.get("HAR_QUEUE_SIZE") == 64
    from har_demo.models.loading import checkpoint_root

    assert checkpoint_root() == tmp_path  # read when called: follows the environment


@pytest.mark.parametrize("argv", [["-m", "har_demo", "models"], ["train.py", "--data", "x", "--out", "y"]])
def test_faces_refuse_a_bad_setting_in_one_line(argv):
    # before: data/io.py's int(os.environ[...]) raised a ValueError traceback at import
    env = {**os.environ, "HAR_MAX_PIXELS": "abc", "HF_HUB_OFFLINE": "1"}
    proc = subprocess.run([sys.executable, *argv], cwd=REPO, env=env, capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.strip() == "error: HAR_MAX_PIXELS must be a whole number, got 'abc'"
