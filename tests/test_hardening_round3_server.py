"""Hardening, round 3 (issue 22), the server side over raw HTTP: request limits before any parsing
(items 3, 9), no hidden event callable by name (item 6), ``/queue/join`` with a bad ``fn_index``
(item 10), per-client job caps (item 4) and the choice errors' echo (item 9)."""

from __future__ import annotations

import asyncio
import json
import os
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import SimpleNamespace

import pytest

from har_demo.ui import limits


@pytest.fixture(scope="session")
def app_server(request, tmp_path_factory):
    from tests.test_hardening_files import hardening_app

    return hardening_app(request.config, tmp_path_factory)


def _post(url: str, body: bytes, headers: dict | None = None, timeout: float = 30) -> tuple[int, bytes, float]:
    req = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json", **(headers or {})}, method="POST")
    start = time.perf_counter()
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.read(), time.perf_counter() - start
    except urllib.error.HTTPError as err:
        return err.code, err.read(), time.perf_counter() - start


def _files_in(folder: Path) -> int:
    return sum(len(files) for _, _, files in os.walk(folder))


def _one_line(body: bytes, limit: int = 300) -> str:
    text = body.decode("utf-8", "replace")
    assert "\n" not in text.strip() and len(text) < limit and "Traceback" not in text, text[:400]
    return text


# ---- item 3: body and file-count limits before parsing -----------------------------------------------------
def test_huge_json_bodies_are_refused_before_parsing_and_leave_no_temp_files(app_server):
    base = app_server.url.rstrip("/")
    before = _files_in(app_server.tmp)
    entry = {"path": "x.jpg", "meta": {"_type": "gradio.FileData"}}
    flood = json.dumps({"data": [[entry] * 100_000, ""]}).encode()  # item 3: 100,000 FileData entries (6.8 MB)
    assert len(flood) > 5_000_000
    status, body, seconds = _post(f"{base}/gradio_api/call/batch", flood)
    assert status == 413 and seconds < 5 and "byte limit" in _one_line(body)
    few = json.dumps({"data": [[entry] * 1000, ""]}).encode()  # small body, too many files
    status, body, _ = _post(f"{base}/gradio_api/call/batch", few)
    assert status == 413 and "1000 files, over the limit of 520" in _one_line(body)
    status, _, _ = _post(f"{base}/gradio_api/call/models", json.dumps({"data": []}).encode())
    assert status == 200  # ordinary calls pass
    assert _files_in(app_server.tmp) <= before + 1


# ---- item 6: hidden events ---------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["ui_analyse", "ui_batch", "ui_upload", "ui_cards"])
def test_hidden_ui_events_are_not_callable_by_name(app_server, name):
    base = app_server.url.rstrip("/")
    for route in (f"/gradio_api/call/{name}", f"/gradio_api/run/{name}", f"/gradio_api/call/v2/{name}"):
        status, body, _ = _post(base + route, json.dumps({"data": [None]}).encode())
        assert status == 404 and "not a public endpoint" in _one_line(body), route


# ---- item 10 / 9: /queue/join with a bad fn_index; echo cut ------------------------------------------------------
@pytest.mark.parametrize("index", [-1, 10**30, "0", 1.5, True, 99_999])
def test_queue_join_with_a_bad_fn_index_is_a_clean_4xx(app_server, index):
    base = app_server.url.rstrip("/")
    body = json.dumps({"data": [], "fn_index": index, "session_hash": "abc", "trigger_id": None}).encode()
    status, reply, _ = _post(f"{base}/gradio_api/queue/join", body)
    assert 400 <= status < 500 and "is not an event of this app" in _one_line(reply)
    assert "Internal Server Error" not in app_server.log()[-2000:]


def test_malformed_body_is_not_echoed_whole(app_server):
    base = app_server.url.rstrip("/")
    junk = json.dumps({"data": "x" * 1_500_000, "fn_index": {"y" * 1000: 1}}).encode()  # under the body limit
    status, reply, _ = _post(f"{base}/gradio_api/call/predict", junk)
    assert 400 <= status < 500 and len(reply) < 4000, (status, len(reply))
    assert "x" * 61 not in reply.decode() and "y" * 61 not in reply.decode()


def test_choice_errors_echo_at_most_60_characters():
    import gradio as gr

    limits.guard_choices()
    radio = gr.Radio(choices=["a", "b"])
    with pytest.raises(gr.Error) as err:
        radio.preprocess("z" * 1_000_000)
    assert len(str(err.value)) < 150 and "is not one of the choices" in str(err.value)


# ---- item 4: per-client job cap ------------------------------------------------------------------------------
def _scope(host: str, xff: str | None = None) -> SimpleNamespace:
    headers = [(b"x-forwarded-for", xff.encode())] if xff else []
    return SimpleNamespace(scope={"client": (host, 1234), "headers": headers})


def test_client_key_trusts_forwarded_for_only_from_loopback():
    assert limits.client_key(_scope("203.0.113.5", "10.0.0.1")) == "203.0.113.5"
    assert limits.client_key(_scope("127.0.0.1", "10.0.0.1, 127.0.0.1")) == "10.0.0.1"
    assert limits.client_key(_scope("127.0.0.1"), "sess") == "session:sess"


def test_queue_push_refuses_a_clients_job_over_its_cap():
    from fastapi import HTTPException

    pushed = []

    async def original(body, request, username):
        pushed.append(request)
        return True, "id", "success"

    def event(xff: str, alive: bool = True) -> SimpleNamespace:
        return SimpleNamespace(alive=alive, request=_scope("127.0.0.1", xff), session_hash="s")

    async def process(events, batch, begin_time, fn):
        return None

    waiting = [event("10.0.0.1"), event("10.0.0.1"), event("10.0.0.1", alive=False)]
    queue = SimpleNamespace(push=original, event_queue_per_concurrency_id={"models": SimpleNamespace(queue=waiting)},
                            active_jobs=[[event("10.0.0.1")], None], process_events=process)
    limits.guard_queue(SimpleNamespace(_queue=queue), max_jobs=3)
    body = SimpleNamespace(session_hash="s")
    with pytest.raises(HTTPException) as err:
        asyncio.run(queue.push(body=body, request=_scope("127.0.0.1", "10.0.0.1"), username=None))
    assert err.value.status_code == 429 and "at most 3 queued or running" in err.value.detail
    assert asyncio.run(queue.push(body=body, request=_scope("127.0.0.1", "10.0.0.2"), username=None))[0]
    assert len(pushed) == 1  # the other client's job went in; the flooding one's never reached the queue


def test_one_client_flooding_the_queue_gets_429_and_others_still_get_in(app_server):
    base = app_server.url.rstrip("/")
    body = json.dumps({"data": []}).encode()  # /models: cheap, but queued like any event

    def flood(_):
        return _post(f"{base}/gradio_api/call/models", body, {"X-Forwarded-For": "10.6.6.6"})[0]

    with ThreadPoolExecutor(16) as pool:
        codes = list(pool.map(flood, range(64)))
    assert 429 in codes and codes.count(200) >= 1, codes
    assert _post(f"{base}/gradio_api/call/models", body, {"X-Forwarded-For": "10.1.1.1"})[0] == 200


def test_upload_with_too_many_files_is_refused_while_streaming(app_server):
    base = app_server.url.rstrip("/")
    boundary = "harboundary42"
    part = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"files\"; filename=\"a.jpg\"\r\n"
            "Content-Type: image/jpeg\r\n\r\n").encode() + b"\xff\xd8\xff\xd9\r\n"
    body = part * 600 + f"--{boundary}--\r\n".encode()
    before = _files_in(app_server.tmp)
    status, reply, seconds = _post(f"{base}/gradio_api/upload", body, {"Content-Type": f"multipart/form-data; boundary={boundary}"})
    assert status == 413 and "more than 520 files" in _one_line(reply) and seconds < 10
    status, _, _ = _post(f"{base}/gradio_api/upload", part * 2 + f"--{boundary}--\r\n".encode(),
                         {"Content-Type": f"multipart/form-data; boundary={boundary}"})
    assert status == 200  # a normal upload passes
    assert _files_in(app_server.tmp) <= before + 2


def test_jobs_nobody_listens_for_are_dropped_before_they_run():
    ran = []

    async def process(events, batch, begin_time, fn):
        ran.extend(e._id for e in events if e.alive)

    queue = SimpleNamespace(push=None, event_queue_per_concurrency_id={}, active_jobs=[], process_events=process)
    limits.guard_queue(SimpleNamespace(_queue=queue), max_jobs=3, grace_s=0.2)
    now = time.monotonic()
    listened = SimpleNamespace(_id="e1", session_hash="s1", alive=True, enqueue_time=now)
    deaf = SimpleNamespace(_id="e2", session_hash="s2", alive=True, enqueue_time=now)
    late = SimpleNamespace(_id="e3", session_hash="s3", alive=True, enqueue_time=now)
    limits.LISTENING["session:s1"] += 1

    async def main():
        async def connect_late():
            await asyncio.sleep(0.05)
            limits.LISTENING["event:e3"] += 1  # a client that POSTs, then opens its result stream

        task = asyncio.create_task(connect_late())
        await queue.process_events([listened, deaf, late], False, now, None)
        await task

    try:
        asyncio.run(main())
    finally:
        limits.LISTENING.clear()
    assert ran == ["e1", "e3"] and deaf.alive is False


def test_result_streams_are_seen_by_the_middleware():
    seen = []

    async def app(scope, receive, send):
        seen.append(dict(limits.LISTENING))

    mw = limits.RequestLimits(app)

    async def call(path, query=b""):
        await mw({"type": "http", "method": "GET", "path": path, "query_string": query, "headers": []}, None, None)

    asyncio.run(call("/gradio_api/queue/data", b"session_hash=abc"))
    asyncio.run(call("/gradio_api/call/predict/0123456789abcdef"))
    assert seen == [{"session:abc": 1}, {"event:0123456789abcdef": 1}] and not limits.LISTENING
