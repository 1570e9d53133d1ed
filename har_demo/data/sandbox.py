"""Decode untrusted image files in worker processes under hard limits (bounded by construction).

Per-format checks (``io.check_decode_work``) only refuse the bombs someone thought of. Here every
file that is not refused by them is decoded (and reduced) in a worker process that runs under

* ``RLIMIT_AS`` (``SANDBOX_MEMORY``, default 1.5 GiB): an allocation beyond it fails in the worker;
* ``RLIMIT_CPU`` (``SANDBOX_CPU_S`` CPU-seconds per image, default 5): the kernel kills the worker;
* a wall-time limit in the parent (``SANDBOX_WALL_S``, default 15 s): the worker is killed;

a killed or failed worker is replaced, and the caller gets ONE line naming the limit. Only the
reduced RGB array comes back (a small JSON header + raw bytes, checked against the header; no
pickle from the worker), so no format bomb, known or not, can take the server's memory or CPU.

The pool holds ``SANDBOX_WORKERS`` (default 2, at most the CPU count) processes, started lazily on
the first decode and reused; a worker still holding more than ``RECYCLE_RSS`` after a job is
replaced, so the memory goes back to the system. Workers are plain ``python -c`` child
processes talking over ``multiprocessing.connection`` pipes: ``multiprocessing``'s spawn /
forkserver start methods re-import the parent's ``__main__`` in every worker (``python -m
har_demo`` would run the CLI again there, ``app.py`` would import Gradio), which costs seconds
and hundreds of MB per worker.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from multiprocessing.connection import Connection
from pathlib import Path

import numpy as np
from PIL import Image

from .. import settings
from ..errors import ImageLoadError

SANDBOX_MEMORY = int(settings.get("HAR_SANDBOX_MEMORY_GB") * 2**30)
SANDBOX_CPU_S = settings.get("HAR_SANDBOX_CPU_S")
SANDBOX_WALL_S = settings.get("HAR_SANDBOX_WALL_S")
SANDBOX_WORKERS = settings.get("HAR_SANDBOX_WORKERS") or min(2, os.cpu_count() or 1)
RECYCLE_RSS = 300 * 2**20  # a worker whose RSS is above this after its job is replaced
MAX_JOBS = 1000  # ... and any worker after this many jobs
START_TIMEOUT_S = 30.0  # a worker must answer its first request within this (interpreter start)
_ROOT = str(Path(__file__).resolve().parents[2])  # the folder holding the har_demo package


def limits_text() -> str:
    return f"{SANDBOX_MEMORY / 2**30:.1f} GiB memory, {SANDBOX_CPU_S} CPU-s, {SANDBOX_WALL_S:g} s"


# ---- the worker (runs in the child process) -----------------------------------------------------
def _cpu_spent() -> float:
    import resource

    used = resource.getrusage(resource.RUSAGE_SELF)
    return used.ru_utime + used.ru_stime


def _set_cpu_limit(seconds: int) -> float:
    """The soft CPU limit moved to ``seconds`` (+ <1 s rounding) past what this worker spent so far."""
    import resource

    spent = _cpu_spent()
    _, hard = resource.getrlimit(resource.RLIMIT_CPU)
    resource.setrlimit(resource.RLIMIT_CPU, (int(spent) + seconds + 1, hard))
    return spent


def _rss_now() -> int:
    """This worker's resident memory now (``ru_maxrss`` would not do: Linux carries the parent's
    peak over fork + exec)."""
    try:
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0


def _one_line(text: object, limit: int = 400) -> str:
    out = " ".join(str(text).split())
    return out if len(out) <= limit else out[: limit - 3] + "..."


def serve(read_fd: int, write_fd: int, memory: int, job: Callable) -> None:
    """The worker loop: (header, bytes) in -> (header, RGB bytes) out, until the parent goes away.
    ``job(request, data)`` -> (RGB uint8 array, full (W, H), pixels decoded) or raises
    ``ImageLoadError`` / ``MemoryError`` (``io._sandbox_job``; passed in, so this module does
    not import the decoder it runs)."""
    import resource

    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))  # a killed worker writes no core file
    resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
    with contextlib.suppress(OSError):
        os.nice(5)  # a decode never outranks the server's own threads (model runs, HTTP)
    rx, tx = Connection(read_fd, writable=False), Connection(write_fd, readable=False)
    while True:
        try:
            request = json.loads(rx.recv_bytes())
            data = rx.recv_bytes()
        except (EOFError, OSError):
            return
        label = request["label"]
        cpu_start = _set_cpu_limit(int(request["cpu_s"]))
        reply: dict = {}
        arr = None
        try:
            arr, size, decoded = job(request, data)
            arr = np.ascontiguousarray(arr, dtype=np.uint8)
            reply = {"ok": True, "shape": list(arr.shape), "size": [int(v) for v in size], "decoded": int(decoded)}
        except MemoryError:
            reply = {"ok": False, "error": "memory"}
        except ImageLoadError as err:
            text = str(err)
            reply = {"ok": False, "error": "memory" if "out of memory" in text.lower() else text}
        except Exception as err:  # noqa: BLE001 - any decoder failure is one line for the parent
            reply = {"ok": False, "error": f"{label}: image is corrupt or truncated ({_one_line(err, 160)})"}
        del data
        reply["rss"] = _rss_now()
        reply["cpu"] = _cpu_spent() - cpu_start
        try:
            tx.send_bytes(json.dumps(reply).encode())
            if arr is not None:
                tx.send_bytes(memoryview(arr).cast("B"))
        except (OSError, ValueError):
            return
        if not reply["ok"] and reply["error"] == "memory":
            return  # a fresh process for the next file


# ---- the parent side ----------------------------------------------------------------------------
class _Worker:
    def __init__(self, memory: int) -> None:
        req_r, req_w = os.pipe()
        rep_r, rep_w = os.pipe()
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (_ROOT, env.get("PYTHONPATH", "")) if p)
        for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
            env[var] = "1"  # one thread (and its buffers) per worker
        code = ("import sys; from har_demo.data.sandbox import serve; from har_demo.data.io import _sandbox_job; "
                "serve(int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), _sandbox_job)")
        try:
            self.proc = subprocess.Popen(
                [sys.executable, "-c", code, str(req_r), str(rep_w), str(memory)],
                pass_fds=(req_r, rep_w), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, env=env, cwd=_ROOT,
            )
        finally:
            os.close(req_r)
            os.close(rep_w)
        self.tx, self.rx = Connection(req_w, readable=False), Connection(rep_r, writable=False)
        self.jobs = 0
        self.fresh = True

    def kill(self) -> int | None:
        with contextlib.suppress(OSError):
            self.proc.kill()
        try:
            code = self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            code = None
        for conn in (self.tx, self.rx):
            with contextlib.suppress(OSError):
                conn.close()
        return code


class DecodePool:
    """At most ``size`` workers, each decoding one file at a time; started on first use."""

    def __init__(self, size: int = SANDBOX_WORKERS, memory: int = SANDBOX_MEMORY, cpu_s: int = SANDBOX_CPU_S,
                 wall_s: float = SANDBOX_WALL_S) -> None:
        self.size, self.memory, self.cpu_s, self.wall_s = size, memory, cpu_s, wall_s
        self._slots = threading.BoundedSemaphore(size)
        self._idle: list[_Worker] = []
        self._lock = threading.Lock()
        self._all: set[_Worker] = set()
        self.started = 0  # workers started (tests: replaced on overrun, reused otherwise)

    def _take(self) -> _Worker:
        with self._lock:
            while self._idle:
                worker = self._idle.pop()
                if worker.proc.poll() is None:
                    return worker
                self._all.discard(worker)
                worker.kill()
            worker = _Worker(self.memory)
            self._all.add(worker)
            self.started += 1
            return worker

    def _give(self, worker: _Worker, keep: bool) -> None:
        with self._lock:
            if keep:
                self._idle.append(worker)
                return
            self._all.discard(worker)
        worker.kill()

    def close(self) -> None:
        with self._lock:
            workers, self._idle, self._all = list(self._all), [], set()
        for worker in workers:
            worker.kill()

    def decode(self, data: bytes, label: str, max_side: int | None, limits: dict | None = None,
               ) -> tuple[Image.Image, tuple[int, int], int, float]:
        """(reduced RGB image, full (W, H), pixels decoded, CPU-s spent), or one-line ``ImageLoadError``.
        ``limits``: the decoder's settings for this file (``io``'s MAX_PIXELS, ...)."""
        request = {"label": label, "max_side": max_side, "cpu_s": self.cpu_s, "limits": dict(limits or {})}
        with self._slots:
            worker = self._take()
            keep = False
            try:
                reply, arr = self._exchange(worker, request, data, label)
                keep = reply.get("rss", 0) <= RECYCLE_RSS and worker.jobs < MAX_JOBS and (reply["ok"] or reply["error"] != "memory")
            finally:
                self._give(worker, keep)
        if not reply["ok"]:
            if reply["error"] == "memory":
                raise ImageLoadError(
                    f"{label}: refused: decoding it needs more than the {self.memory / 2**30:.1f} GiB memory limit "
                    "(possible decompression bomb)"
                )
            raise ImageLoadError(_one_line(reply["error"]))
        size = (int(reply["size"][0]), int(reply["size"][1]))
        return Image.fromarray(arr, "RGB"), size, int(reply["decoded"]), float(reply.get("cpu", 0.0))

    def _exchange(self, worker: _Worker, request: dict, data: bytes, label: str) -> tuple[dict, np.ndarray | None]:
        wall = self.wall_s + (START_TIMEOUT_S if worker.fresh else 0.0)
        try:
            worker.tx.send_bytes(json.dumps(request).encode())
            worker.tx.send_bytes(data)
            start = time.monotonic()
            if not worker.rx.poll(wall):
                worker.kill()
                raise ImageLoadError(f"{label}: refused: decoding took longer than the {self.wall_s:g} s time limit")
            reply = json.loads(worker.rx.recv_bytes(maxlength=1 << 16))
            worker.jobs += 1
            worker.fresh = False
            arr = None
            if reply.get("ok"):
                h, w, c = (int(v) for v in reply["shape"])
                if c != 3 or h < 1 or w < 1 or h * w > int(request["limits"].get("MAX_PIXELS", 10**9)):
                    raise ImageLoadError(f"{label}: the decoder answered nonsense (shape {h}x{w}x{c})")
                remaining = max(0.5, wall - (time.monotonic() - start))
                if not worker.rx.poll(remaining):
                    raise EOFError
                raw = worker.rx.recv_bytes(maxlength=h * w * 3)
                if len(raw) != h * w * 3:
                    raise ImageLoadError(f"{label}: the decoder answered nonsense ({len(raw)} bytes for {h}x{w})")
                arr = np.frombuffer(raw, np.uint8).reshape(h, w, 3)
            return reply, arr
        except (EOFError, OSError, ValueError):
            code = worker.kill()
            if code in (-signal.SIGXCPU, -signal.SIGKILL):
                raise ImageLoadError(
                    f"{label}: refused: decoding it needs more than the {self.cpu_s} CPU-second limit (possible decompression bomb)"
                ) from None
            raise ImageLoadError(f"{label}: refused: the image decoder failed on it (exit {code})") from None


_POOL: DecodePool | None = None
_POOL_LOCK = threading.Lock()


def pool() -> DecodePool:
    """The process's decode pool (created on first use; its workers start on first decode)."""
    global _POOL
    with _POOL_LOCK:
        if _POOL is None:
            _POOL = DecodePool()
            atexit.register(_POOL.close)
        return _POOL


def decode_in_sandbox(data: bytes, label: str, max_side: int | None, limits: dict | None = None,
                      ) -> tuple[Image.Image, tuple[int, int], int, float]:
    """Decode (and reduce to ``max_side``) ``data`` in the pool: (RGB image, full (W, H), pixels
    decoded, CPU-seconds spent)."""
    return pool().decode(data, label, max_side, limits)
