"""``python app.py`` as a child process on a free loopback port: one launcher for the cold-start
benchmark (``har_demo.commands.bench``), the load test (``benchmarks/load_test.py``) and the end-to-end
tests, so they start, wait for and stop the app the same way."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from ..errors import HarError

ROOT = Path(__file__).resolve().parents[2]  # the folder holding app.py
STARTUP_TIMEOUT_S = 180


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def app_env(checkpoint_dir: str | Path, port: int, extra: dict | None = None) -> dict[str, str]:
    """The child's environment: these checkpoints, loopback only, no hub, no analytics."""
    env = {
        **os.environ,
        "HAR_CHECKPOINT_DIR": str(checkpoint_dir),
        "HAR_HOST": "127.0.0.1",
        "HAR_PORT": str(port),
        "HF_HUB_OFFLINE": "1",
        "GRADIO_ANALYTICS_ENABLED": "False",
        "PYTHONUNBUFFERED": "1",
        **(extra or {}),
    }
    return {k: v for k, v in env.items() if v is not None}


def wait_until_up(url: str, proc: subprocess.Popen, log: IO[str], timeout_s: float = STARTUP_TIMEOUT_S) -> None:
    """Poll ``url + 'config'`` until it answers; HarError (with the log's tail) if the app exits or
    does not answer within ``timeout_s``."""
    deadline = time.time() + timeout_s
    while time.time() < deadline:
        if proc.poll() is not None:
            log.seek(0)
            raise HarError(f"app.py exited with {proc.returncode}:\n{log.read()[-3000:]}")
        try:
            with urllib.request.urlopen(url + "config", timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.2)
    raise HarError(f"app.py did not answer within {timeout_s:.0f} s")


@dataclass
class RunningApp:
    url: str
    proc: subprocess.Popen
    env: dict[str, str]


@contextlib.contextmanager
def app_process(checkpoint_dir: str | Path, log: IO[str], extra_env: dict | None = None,
                timeout_s: float = STARTUP_TIMEOUT_S) -> Iterator[RunningApp]:
    """Start ``python app.py`` (output to ``log``, a text file opened ``w+``); yield it once it
    answers; terminate it (kill after 20 s) on exit. ``extra_env`` values of None unset."""
    port = free_port()
    url = f"http://127.0.0.1:{port}/"
    env = app_env(checkpoint_dir, port, extra_env)
    proc = subprocess.Popen([sys.executable, "app.py"], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_until_up(url, proc, log, timeout_s)
        yield RunningApp(url, proc, env)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=20)
