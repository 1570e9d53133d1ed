"""Request limits in front of Gradio (issue 22): what a visitor can make the server hold or parse.

``RequestLimits`` is ASGI middleware that runs before any route parses a body:

* a body over ``MAX_JSON_BODY`` (API / queue calls) or ``MAX_UPLOAD_BODY`` (``/upload``) is refused
  with 413 from its Content-Length, or as soon as a chunked body goes over;
* more than ``MAX_FILES_PER_REQUEST`` files (FileData entries in a JSON body, parts of an upload)
  -> 413, before Gradio creates one temporary file per entry;
* the UI's private events are not callable by name (``/call/ui_*``, ``/run/ui_*``, ``/api/ui_*``: 404);
* ``/queue/join`` with an ``fn_index`` that is not an event of this app -> 422 (not a 500);
* every 4xx reply echoes at most ``ECHO_CHARS`` characters of any value (FastAPI's 422 bodies
  repeat the whole input).

``guard_queue`` caps the jobs one client may have queued or running (``MAX_JOBS_PER_CLIENT``; the
client is its address - from a loopback peer the X-Forwarded-For address, else the session),
drops jobs nobody listens for before they run, and
``guard_choices`` cuts the value Gradio's choice checks echo into replies and logs.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections import Counter
from collections.abc import Callable
from urllib.parse import parse_qs

from .. import settings
from ..data.io import safe_label

MAX_JSON_BODY = settings.get("HAR_MAX_JSON_BODY")
MAX_UPLOAD_BODY = settings.get("HAR_MAX_UPLOAD_BODY")
MAX_FILES_PER_REQUEST = settings.get("HAR_MAX_FILES_PER_REQUEST")  # a batch: 500 images + zips/CSV
MAX_JOBS_PER_CLIENT = settings.get("HAR_MAX_JOBS_PER_CLIENT")
ECHO_CHARS = 60
LISTEN_GRACE_S = settings.get("HAR_LISTEN_GRACE_S")  # a job's client must be listening by then
# Who is listening for results right now: session hashes with an open /queue/data stream and
# event ids with an open /call/<api>/<event_id> stream (kept by RequestLimits, read by guard_queue).
LISTENING: Counter = Counter()
_STREAM = re.compile(r"^/call/(?:v2/)?[^/]+/([0-9a-fA-F]{8,64})$")
_PREFIX = "/gradio_api"
_HIDDEN = re.compile(r"^/(call|run|api)(/v2)?/ui_")
_LOOPBACK = ("127.0.0.1", "::1", "localhost")


def cut(value: object, limit: int = ECHO_CHARS) -> object:
    """``value`` with every string cut to ``limit`` characters and long lists / dicts shortened:
    what a reply may echo of a visitor's input."""
    if isinstance(value, str):
        return safe_label(value, limit)
    if isinstance(value, list):
        out = [cut(v, limit) for v in value[:5]]
        return out + [f"... {len(value) - 5} more"] if len(value) > 5 else out
    if isinstance(value, dict):
        items = list(value.items())
        out = {safe_label(k, limit): cut(v, limit) for k, v in items[:20]}
        if len(items) > 20:
            out["..."] = f"{len(items) - 20} more"
        return out
    return value


def client_key(scope_or_request, session: str | None = None) -> str:
    """The client a request comes from: its address. From this machine (a loopback peer: a local
    proxy, or tests) the first X-Forwarded-For address, else the Gradio session (every local
    visitor shares the address)."""
    scope = getattr(scope_or_request, "scope", scope_or_request)
    host = (scope.get("client") or ("?", 0))[0]
    if host in _LOOPBACK:
        for name, value in scope.get("headers") or []:
            if name == b"x-forwarded-for":
                first = value.decode("latin-1").split(",")[0].strip()
                if first:
                    return first[:64]
        if session:
            return f"session:{session[:64]}"
    return str(host)


class _Refused(Exception):
    def __init__(self, status: int, text: str) -> None:
        super().__init__(text)
        self.status, self.text = status, text


async def _drain(receive, limit: int = 16 * 2**20) -> None:
    """Read and drop the rest of a refused body (up to ``limit`` bytes, nothing kept) so that the
    client reads the refusal instead of a connection reset; beyond that the connection just closes."""
    seen = 0
    while seen <= limit:
        message = await receive()
        if message["type"] != "http.request":
            return
        seen += len(message.get("body", b""))
        if not message.get("more_body"):
            return


async def _reply(send, status: int, text: str) -> None:
    body = json.dumps({"error": text}).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


class RequestLimits:
    """ASGI middleware: the limits above, enforced before Gradio reads a body (see module doc)."""

    def __init__(self, app, valid_fn: Callable[[int], bool] | None = None, max_json: int | None = None,
                 max_upload: int | None = None, max_files: int | None = None) -> None:
        self.app = app
        self.valid_fn = valid_fn
        self.max_json = MAX_JSON_BODY if max_json is None else max_json
        self.max_upload = MAX_UPLOAD_BODY if max_upload is None else max_upload
        self.max_files = MAX_FILES_PER_REQUEST if max_files is None else max_files

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope.get("path", "")
        route = path.removeprefix(_PREFIX)
        if _HIDDEN.match(route):
            await _reply(send, 404, "not a public endpoint; the API is /predict, /explain, /batch and /models")
            return
        raw_send, send = send, self._cut_errors(send)  # our own refusals are short already: sent as they are
        if scope.get("method") not in ("POST", "PUT", "PATCH"):
            key = _listener_key(route, scope) if scope.get("method") == "GET" else None
            if key:
                LISTENING[key] += 1
            try:
                await self.app(scope, receive, send)
            finally:
                if key:
                    LISTENING[key] -= 1
                    if LISTENING[key] <= 0:
                        del LISTENING[key]
            return
        upload = route.startswith("/upload")
        limit = self.max_upload if upload else self.max_json
        headers = dict(scope.get("headers") or [])
        try:
            length = int(headers.get(b"content-length", b"-1"))
        except ValueError:
            length = -1
        if length > limit:
            await _drain(receive)
            await _reply(raw_send, 413, f"request body of {length} bytes is over the {limit} byte limit")
            return
        if upload:
            await self._upload(scope, receive, send, raw_send, limit, headers.get(b"content-type", b""))
            return
        try:
            body = await self._read(receive, limit)
            self._check_json(route, body)
        except _Refused as err:
            await _reply(raw_send, err.status, err.text)
            return
        sent = False

        async def replay():
            nonlocal sent
            if sent:
                return await receive()
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}

        await self.app(scope, replay, send)

    async def _read(self, receive, limit: int) -> bytes:
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise _Refused(400, "client disconnected")
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                if message.get("more_body"):
                    await _drain(receive)
                raise _Refused(413, f"request body is over the {limit} byte limit")
            chunks.append(chunk)
            if not message.get("more_body"):
                return b"".join(chunks)

    def _check_json(self, route: str, body: bytes) -> None:
        files = body.count(b"gradio.FileData")
        if files > self.max_files:
            raise _Refused(413, f"request names {files} files, over the limit of {self.max_files} per request")
        if route.rstrip("/") != "/queue/join" or self.valid_fn is None:
            return
        try:
            data = json.loads(body)
        except (ValueError, RecursionError):
            raise _Refused(422, "request body is not valid JSON") from None
        if not isinstance(data, dict) or "fn_index" not in data or data["fn_index"] is None:
            return
        index = data["fn_index"]
        if isinstance(index, bool) or not isinstance(index, int) or not self.valid_fn(index):
            raise _Refused(422, f"fn_index {safe_label(repr(index), ECHO_CHARS)} is not an event of this app")

    async def _upload(self, scope, receive, send, raw_send, limit: int, content_type: bytes) -> None:
        match = re.search(rb'boundary="?([^";]+)', content_type)
        marker = b"--" + match.group(1) if match else None
        state = {"size": 0, "parts": 0, "tail": b"", "started": False}

        async def counted():
            message = await receive()
            chunk = message.get("body", b"")
            state["size"] += len(chunk)
            if state["size"] > limit:
                raise _Refused(413, f"upload is over the {limit} byte limit")
            if marker:
                window = state["tail"] + chunk
                state["parts"] += window.count(marker) - state["tail"].count(marker)
                state["tail"] = window[-(len(marker) - 1):] if len(marker) > 1 else b""
                if state["parts"] - 1 > self.max_files:  # the closing boundary is not a file
                    raise _Refused(413, f"upload has more than {self.max_files} files, over the limit per request")
            return message

        async def tracked(message):
            if message["type"] == "http.response.start":
                state["started"] = True
            await send(message)

        try:
            await self.app(scope, counted, tracked)
        except _Refused as err:
            if state["started"]:
                raise
            await _reply(raw_send, err.status, err.text)

    @staticmethod
    def _cut_errors(send):
        """``send`` that rewrites 4xx JSON bodies with every echoed value cut to ``ECHO_CHARS``."""
        held: dict = {}

        async def wrapped(message):
            kind = message["type"]
            if kind == "http.response.start":
                status = message.get("status", 200)
                ctype = dict(message.get("headers") or []).get(b"content-type", b"")
                if 400 <= status < 500 and b"json" in ctype:
                    held["start"], held["body"] = message, []
                    return
                await send(message)
                return
            if kind == "http.response.body" and "start" in held:
                held["body"].append(message.get("body", b""))
                if message.get("more_body"):
                    return
                raw = b"".join(held.pop("body"))
                start = held.pop("start")
                try:
                    raw = json.dumps(cut(json.loads(raw))).encode()
                except (ValueError, RecursionError):
                    raw = safe_label(raw.decode("utf-8", "replace"), 200).encode()
                headers = [(k, v) for k, v in start.get("headers") or [] if k != b"content-length"]
                headers.append((b"content-length", str(len(raw)).encode()))
                await send({**start, "headers": headers})
                await send({"type": "http.response.body", "body": raw})
                return
            await send(message)

        return wrapped


def _listener_key(route: str, scope) -> str | None:
    """The session / event a GET streams results for (None for other routes)."""
    if route == "/queue/data":
        session = parse_qs(scope.get("query_string", b"").decode("latin-1")).get("session_hash", [""])[0]
        return f"session:{session}" if session else None
    match = _STREAM.match(route)
    return f"event:{match.group(1)}" if match else None


def _listened(event) -> bool:
    return f"session:{event.session_hash}" in LISTENING or f"event:{event._id}" in LISTENING


def guard_queue(demo, max_jobs: int | None = None, grace_s: float | None = None) -> None:
    """At most ``max_jobs`` queued or running jobs per client (``client_key``); more -> 429. A job
    whose client is not listening for its result when it is due to run (after ``grace_s`` from
    being queued) is dropped before it runs (needs ``RequestLimits`` in front, which sees the
    result streams)."""
    from fastapi import HTTPException

    queue = demo._queue
    limit = MAX_JOBS_PER_CLIENT if max_jobs is None else max_jobs
    if getattr(queue, "har_guarded", False):
        return
    original = queue.push

    def jobs_of(key: str) -> int:
        events = [e for q in queue.event_queue_per_concurrency_id.values() for e in q.queue]
        events += [e for job in queue.active_jobs if job for e in job]
        return sum(1 for e in events if e.alive and e.request is not None and client_key(e.request, e.session_hash) == key)

    async def push(body, request, username):
        key = client_key(request, getattr(body, "session_hash", None))
        if jobs_of(key) >= limit:
            raise HTTPException(status_code=429, detail=f"too many requests from this client: at most {limit} queued or running")
        return await original(body=body, request=request, username=username)

    grace = LISTEN_GRACE_S if grace_s is None else grace_s
    original_process = queue.process_events

    async def process_events(events, batch, begin_time, fn):
        for event in events:
            if not event.alive or _listened(event):
                continue
            wait = event.enqueue_time + grace - time.monotonic()
            while wait > 0 and not _listened(event):  # a client that posts, then opens its stream
                await asyncio.sleep(min(0.05, wait))
                wait = event.enqueue_time + grace - time.monotonic()
            if not _listened(event):
                event.alive = False  # nobody will read it: the slot goes to the next job
        return await original_process(events, batch, begin_time, fn)

    queue.push = push
    queue.process_events = process_events
    queue.har_guarded = True


def guard_choices() -> None:
    """Gradio's "value is not in the list of choices" errors echo the whole value (a 1 MB string
    goes into the reply and the log): the value is cut to ``ECHO_CHARS`` (idempotent)."""
    from gradio import components
    from gradio.exceptions import Error

    for cls in (components.Dropdown, components.Radio, components.CheckboxGroup):
        original = cls.preprocess
        if getattr(original, "har_cut", False):
            continue

        def preprocess(self, payload, _original=original):
            try:
                return _original(self, payload)
            except Error as err:
                if "list of choices" not in str(err):
                    raise
                raise Error(f"value {safe_label(repr(payload), ECHO_CHARS)} is not one of the choices") from None

        preprocess.har_cut = True
        cls.preprocess = preprocess
