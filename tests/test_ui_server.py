"""Deployment settings: models loaded once, a bounded queue with one concurrency group for model
work, no analytics / web fonts, only the examples folder allowed, ``@spaces.GPU`` when present."""

from __future__ import annotations

import os
import types

import pytest

from har_demo.ui import gpu, layout, server
from har_demo.ui.text import examples_dir


def test_app_is_queued_with_bounded_size_and_shared_model_group(bank, monkeypatch):
    calls = []
    monkeypatch.setattr(server.ModelBank, "load", classmethod(lambda cls, *a, **k: calls.append(1) or bank))
    demo = server.create_app()
    assert calls == [1]  # loaded once, at start-up
    assert demo.analytics_enabled is False
    assert demo._queue.max_size == server.QUEUE_SIZE
    named = {fn.api_name: fn for fn in demo.fns.values() if fn.api_name}
    model_events = ["predict", "explain", "batch", "ui_analyse", "ui_people", "ui_target", "ui_batch"] + [f"ui_method_{n}" for n in bank.available_names()]
    for name in model_events:
        assert named[name].concurrency_id == "models" and named[name].concurrency_limit == layout.CONCURRENCY, name
    assert named["ui_opacity"].concurrency_id != "models"  # re-blending never waits behind model runs
    private = [fn for fn in demo.fns.values() if (fn.api_name or "").startswith("ui_")]
    assert private and all(fn.api_visibility == "private" for fn in private)


def test_launch_settings_serve_only_examples_and_use_system_fonts():
    kw = server.launch_kwargs()
    assert kw["allowed_paths"] == [str(examples_dir())]
    assert kw["ssr_mode"] is False and kw["show_error"] is False
    fonts = [getattr(f, "name", f) for f in kw["theme"].font]
    assert not any(type(f).__name__ == "GoogleFont" for f in kw["theme"].font), fonts
    assert kw["css_paths"][0].is_file()


def test_gpu_decorator_uses_spaces_when_present(monkeypatch):
    def f():
        return 1

    monkeypatch.setattr(gpu, "_spaces", None)
    assert gpu.gpu(f) is f and gpu.on_zero_gpu() is False
    fake = types.SimpleNamespace(GPU=lambda fn: ("wrapped", fn))
    monkeypatch.setattr(gpu, "_spaces", fake)
    assert gpu.gpu(f) == ("wrapped", f)
    monkeypatch.setenv("SPACES_ZERO_GPU", "true")
    assert gpu.on_zero_gpu() is True


@pytest.mark.parametrize("raw, expected", [("", 2), ("3", 3), (" 8 ", 8)])
def test_env_int(monkeypatch, raw, expected):
    from har_demo.ui.settings import env_int

    monkeypatch.setenv("HAR_TEST_KNOB", raw)
    assert env_int("HAR_TEST_KNOB", 2) == expected


@pytest.mark.parametrize("raw, match", [("two", "whole number"), ("0", "at least 1")])
def test_bad_setting_is_one_line(monkeypatch, raw, match):
    from har_demo.errors import HarError
    from har_demo.ui.settings import env_int

    monkeypatch.setenv("HAR_TEST_KNOB", raw)
    with pytest.raises(HarError, match=f"HAR_TEST_KNOB must be .*{match}|{match}"):
        env_int("HAR_TEST_KNOB", 2)


def test_app_py_reports_a_bad_setting_without_a_traceback():
    import subprocess
    import sys

    from tests.test_ui_support import REPO

    env = dict(os.environ)
    env.update(HAR_CONCURRENCY="lots", HF_HUB_OFFLINE="1", GRADIO_ANALYTICS_ENABLED="False")
    proc = subprocess.run([sys.executable, "app.py"], cwd=REPO, env=env, capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 2
    assert proc.stderr.strip() == "error: HAR_CONCURRENCY must be a whole number, got 'lots'"
