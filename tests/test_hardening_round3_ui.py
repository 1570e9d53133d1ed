"""Hardening, round 3 (issue 22, item 6): the UI's hidden ``ui_*`` events stay callable through
``/queue/join`` with an ``fn_index`` (the page needs them), so each one is as bounded as the named
API: inputs bounded and echoed at most 60 characters, and the upload check in its own concurrency
group (not the one ``/models`` shares). Over raw HTTP on loopback, as an attacker would call them."""

from __future__ import annotations

import json
import urllib.request
import uuid

import pytest

from har_demo.errors import HarError
from har_demo.ui import callbacks as cbm

from .test_hardening_round3_server import _post


@pytest.fixture(scope="session")
def app_server(request, tmp_path_factory):
    from tests.test_hardening_files import hardening_app

    return hardening_app(request.config, tmp_path_factory)


def _fn_index(base: str, api_name: str) -> int:
    with urllib.request.urlopen(f"{base}/config", timeout=30) as r:
        config = json.loads(r.read())
    return next(d["id"] for d in config["dependencies"] if d.get("api_name") == api_name)


def _call_hidden(base: str, api_name: str, data: list, timeout: float = 60) -> dict:
    """``/queue/join`` with the event's fn_index, then its result from ``/queue/data`` (SSE)."""
    session = uuid.uuid4().hex[:12]
    body = json.dumps({"data": data, "fn_index": _fn_index(base, api_name), "session_hash": session, "trigger_id": None,
                       "event_data": None}).encode()
    status, reply, _ = _post(f"{base}/gradio_api/queue/join", body)
    assert status == 200, reply[:300]
    with urllib.request.urlopen(f"{base}/gradio_api/queue/data?session_hash={session}", timeout=timeout) as stream:
        for raw in stream:
            line = raw.decode("utf-8", "replace").strip()
            if line.startswith("data:"):
                msg = json.loads(line[5:])
                if msg.get("msg") == "process_completed":
                    return msg
    raise AssertionError("no process_completed message")


def _texts(msg: dict) -> list[str]:
    out = msg.get("output") or {}
    values = out.get("data") or []
    found = [v for v in values if isinstance(v, str)]
    found += [v.get("value") for v in values if isinstance(v, dict) and isinstance(v.get("value"), str)]
    if out.get("error"):
        found.append(str(out["error"]))
    return found


def test_hidden_upload_check_refuses_a_server_path_in_one_line(app_server):
    base = app_server.url.rstrip("/")
    done = _call_hidden(base, "ui_upload", [{"path": "/etc/passwd", "meta": {"_type": "gradio.FileData"}}])
    lines = [t for t in _texts(done) if "uploaded file" in t]  # Gradio's check or ours: one line either way
    assert lines and all("\n" not in t and len(t) < 200 and "root:" not in t for t in lines), _texts(done)


def test_hidden_box_event_refuses_a_huge_value_and_echoes_at_most_60_characters(app_server):
    base = app_server.url.rstrip("/")
    huge = "1," * 100_000  # 200 KB of box text
    done = _call_hidden(base, "ui_box_submit", [None, 0.5, huge, True, False])
    texts = _texts(done)
    refusal = [t for t in texts if "character limit" in t]
    assert refusal, texts
    assert all(len(t) < 300 and "\n" not in t for t in refusal)
    assert all(huge[:80] not in t for t in texts)


def test_upload_check_has_its_own_group_apart_from_models(app):
    demo, _ui, _cb = app
    fns = {fn.api_name: fn for fn in demo.fns.values()}
    upload, models, analyse = fns["ui_upload"], fns["models"], fns["ui_analyse"]
    assert upload.concurrency_id not in (models.concurrency_id, analyse.concurrency_id)
    assert upload.concurrency_limit == 1  # hammered uploads queue behind each other
    assert fns["ui_upload"].preprocess is False  # the file reaches our sandboxed check undecoded


@pytest.mark.parametrize("args", [("x" * (cbm.MAX_TEXT + 1),), ([None] * 10_000,), (["y" * 5000],)])
def test_bounded_inputs_refuse_in_one_short_line(args):
    with pytest.raises(HarError) as err:
        cbm.bounded_inputs(args)
    line = str(err.value)
    assert "\n" not in line and len(line) < 160 and "x" * 61 not in line and "y" * 61 not in line


@pytest.mark.parametrize("index", [["1e999", 3], [float("nan"), 1], ["a" * 10_000, 2], 5, [-1, 2], [2]])
def test_click_points_must_be_two_finite_bounded_numbers(index):
    with pytest.raises(HarError) as err:
        cbm.click_point(index)
    assert len(str(err.value)) < 160 and "a" * 61 not in str(err.value)


def test_click_point_passes_a_real_click():
    assert cbm.click_point([12.4, "7"]) == (12.4, 7.0)
