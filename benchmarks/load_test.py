"""Load test of the running app: N concurrent ``gradio_client`` clients x M ``/predict`` requests
against ``python app.py`` on 127.0.0.1 with tiny offline checkpoints.

    python benchmarks/load_test.py [--clients 20] [--requests 5] [--url http://127.0.0.1:PORT/]
        [--pid SERVER_PID] [--burst 0] [--json]

Without ``--url`` the app is started here (``app.py``, free loopback port, tiny checkpoints written
by the UI tests' helper into a temporary ``HAR_CHECKPOINT_DIR``) and stopped afterwards. Reports:
requests sent / answered / failed (a failure = an exception, a timeout or a malformed answer),
p50 / p95 / max latency, wall time, the largest queue length the server reported
(``/gradio_api/queue/status``, sampled) against its limit, and the server's RSS (start, end,
peak = max of the samples and the kernel's VmHWM). ``--burst N`` also submits N requests at once
from one client to show the queue limit refusing the overflow with one line.

Bounded on purpose: every request has a timeout, only loopback addresses are accepted, and the
whole run stops by itself. A measurement, not a test (tests/test_hardening_load.py runs it small).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from har_demo.labels import CLASSES

PHOTOS = sorted((ROOT / "examples").glob("*.jpg"))
REQUEST_TIMEOUT_S = 120.0  # one request, queue wait included
LOOPBACK = ("127.", "localhost", "[::1]")


# ---- the server process -------------------------------------------------------------------------
@dataclass
class AppProcess:
    url: str
    proc: subprocess.Popen
    env: dict
    log_path: Path

    @property
    def pid(self) -> int:
        return self.proc.pid

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


@contextlib.contextmanager
def running_app(checkpoint_dir: Path | None = None, extra_env: dict | None = None, workdir: Path | None = None) -> Iterator[AppProcess]:
    """``python app.py`` on a free 127.0.0.1 port (tiny checkpoints unless ``checkpoint_dir`` is
    given), waited for and terminated on exit. ``workdir`` holds the log and, by default, TMPDIR."""
    from har_demo.ui.process import app_process
    from tests.test_ui_support import write_tiny_checkpoints

    with contextlib.ExitStack() as stack:
        work = Path(workdir) if workdir else Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="har_load_")))
        if checkpoint_dir is None:
            checkpoint_dir = write_tiny_checkpoints(work / "checkpoints")
        (work / "tmp").mkdir(parents=True, exist_ok=True)
        env = {
            "HAR_RUNS_DIR": str(work / "runs"),
            "TMPDIR": str(work / "tmp"),  # Gradio's upload cache and the batch temp folders live here
            "GRADIO_TEMP_DIR": None,
            **(extra_env or {}),
        }
        log_path = work / "app.log"
        log = stack.enter_context(open(log_path, "w+"))
        with app_process(checkpoint_dir, log, env) as app:
            yield AppProcess(app.url, app.proc, app.env, log_path)


# ---- memory and queue sampling -----------------------------------------------------------------
def rss_bytes(pid: int) -> tuple[int, int]:
    """(current RSS, peak RSS so far) of ``pid`` in bytes: psutil when installed, else /proc.
    The peak is the kernel's VmHWM where /proc has it, else the current RSS."""
    current = peak = 0
    try:
        import psutil

        current = psutil.Process(pid).memory_info().rss
    except ImportError:
        pass
    try:
        fields = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines() if ":" in line)
        current = current or int(fields["VmRSS"].split()[0]) * 1024
        peak = int(fields["VmHWM"].split()[0]) * 1024
    except (OSError, KeyError, ValueError):
        pass
    return current, max(peak, current)


class Sampler:
    """Background sampling (every ``period`` s) of the server's RSS and the queue length it reports."""

    def __init__(self, url: str, pid: int | None, period: float = 0.1) -> None:
        self.url, self.pid, self.period = url, pid, period
        self.max_rss = 0
        self.max_queue = 0
        self.queue_samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Sampler:  # noqa: PYI034
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _run(self) -> None:
        status_url = urllib.parse.urljoin(self.url, "gradio_api/queue/status")
        while not self._stop.is_set():
            if self.pid:
                self.max_rss = max(self.max_rss, rss_bytes(self.pid)[0])
            try:
                with urllib.request.urlopen(status_url, timeout=2) as r:
                    self.max_queue = max(self.max_queue, int(json.load(r).get("queue_size") or 0))
                    self.queue_samples += 1
            except (OSError, ValueError):
                pass
            self._stop.wait(self.period)


# ---- the load --------------------------------------------------------------------------------------
@dataclass
class LoadReport:
    clients: int
    requests_per_client: int
    sent: int = 0
    ok: int = 0
    failed: int = 0
    failures: list[str] = field(default_factory=list)
    p50_s: float = 0.0
    p95_s: float = 0.0
    max_s: float = 0.0
    wall_s: float = 0.0
    queue_limit: int | None = None
    max_queue_seen: int = 0
    rss_start_mb: float = 0.0
    rss_end_mb: float = 0.0
    rss_peak_mb: float = 0.0

    def lines(self) -> list[str]:
        return [
            f"clients x requests : {self.clients} x {self.requests_per_client} = {self.sent} /predict calls",
            f"answered / failed  : {self.ok} / {self.failed}",
            f"latency p50 / p95  : {self.p50_s:.2f} s / {self.p95_s:.2f} s (max {self.max_s:.2f} s)",
            f"wall time          : {self.wall_s:.1f} s ({self.sent / max(self.wall_s, 1e-9):.2f} requests/s)",
            f"queue length       : max {self.max_queue_seen} seen, limit {self.queue_limit}",
            f"server RSS         : start {self.rss_start_mb:.0f} MB, end {self.rss_end_mb:.0f} MB, peak {self.rss_peak_mb:.0f} MB",
        ] + [f"failure            : {f}" for f in self.failures[:5]]


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in [0, 100]); 0 for no values."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = max(1, min(len(ordered), -(-len(ordered) * q // 100)))
    return ordered[int(rank) - 1]


def check_loopback(url: str) -> None:
    host = urllib.parse.urlsplit(url).netloc
    if not host.startswith(LOOPBACK):
        raise SystemExit(f"load_test: refusing to load {url}: loopback addresses only")


def _client(url: str, download_dir: str):
    from gradio_client import Client

    return Client(url, verbose=False, download_files=download_dir, analytics_enabled=False)


def _valid(result) -> str | None:
    """None when ``result`` is a well-formed /predict answer, else what is wrong with it."""
    try:
        data, gallery = result
        rows = data["models"]
        if not rows:
            return "no model rows"
        for row in rows:
            if row.get("label") not in CLASSES or abs(sum(row["probs"].values()) - 1) > 1e-3:
                return f"bad row {row}"
        if len(gallery) != len(rows):
            return f"{len(gallery)} overlays for {len(rows)} models"
    except (TypeError, ValueError, KeyError) as err:
        return f"malformed answer ({type(err).__name__}: {err})"
    return None


def _one_user(url: str, n_requests: int, start_gate: threading.Barrier, download_dir: str, offset: int) -> list[tuple[float, str | None]]:
    """One simulated user: its own client, ``n_requests`` sequential /predict calls."""
    from gradio_client import handle_file

    out: list[tuple[float, str | None]] = []
    try:
        client = _client(url, download_dir)
    except Exception as err:  # noqa: BLE001 - a failed connection is a failed request, counted
        start_gate.wait(timeout=REQUEST_TIMEOUT_S)
        return [(0.0, f"connect: {type(err).__name__}: {err}")] * n_requests
    start_gate.wait(timeout=REQUEST_TIMEOUT_S)
    for i in range(n_requests):
        photo = PHOTOS[(offset + i) % len(PHOTOS)]
        t0 = time.perf_counter()
        try:
            job = client.submit(handle_file(str(photo)), "", "predicted", 0.5, api_name="/predict")
            problem = _valid(job.result(timeout=REQUEST_TIMEOUT_S))
        except Exception as err:  # noqa: BLE001 - every failure is counted and reported
            problem = f"{type(err).__name__}: {str(err)[:200]}"
        out.append((time.perf_counter() - t0, problem))
    with contextlib.suppress(Exception):
        client.close()
    return out


def queue_limit(env: dict | None = None) -> int:
    """The app's queue limit for ``env`` (default: this process's environment): ``HAR_QUEUE_SIZE``
    or its default, read as the app reads it at start-up (``har_demo/settings.py``)."""
    from har_demo.settings import SETTINGS

    setting = SETTINGS["HAR_QUEUE_SIZE"]
    raw = (env if env is not None else os.environ).get(setting.name, "")
    return setting.parse(raw) if raw.strip() else setting.default


def run_load(url: str, clients: int = 20, requests: int = 5, server_pid: int | None = None, limit: int | None = None) -> LoadReport:
    """``clients`` concurrent users x ``requests`` sequential /predict calls each."""
    check_loopback(url)
    if not PHOTOS:
        raise SystemExit(f"load_test: no example photos under {ROOT / 'examples'}")
    report = LoadReport(clients, requests, sent=clients * requests, queue_limit=limit if limit is not None else queue_limit())
    if server_pid:
        report.rss_start_mb = rss_bytes(server_pid)[0] / 2**20
    gate = threading.Barrier(clients)
    with tempfile.TemporaryDirectory(prefix="har_load_dl_") as dl, Sampler(url, server_pid) as sampler:
        t0 = time.perf_counter()
        with ThreadPoolExecutor(max_workers=clients) as pool:
            futures = [pool.submit(_one_user, url, requests, gate, dl, k) for k in range(clients)]
            results = [r for f in futures for r in f.result()]
        report.wall_s = time.perf_counter() - t0
    latencies = [t for t, problem in results if problem is None]
    report.failures = [problem for _, problem in results if problem is not None]
    report.ok, report.failed = len(latencies), len(report.failures)
    report.p50_s, report.p95_s = percentile(latencies, 50), percentile(latencies, 95)
    report.max_s = max(latencies, default=0.0)
    report.max_queue_seen = sampler.max_queue
    if server_pid:
        current, peak = rss_bytes(server_pid)
        report.rss_end_mb = current / 2**20
        report.rss_peak_mb = max(peak, sampler.max_rss, current) / 2**20
    return report


@dataclass
class BurstReport:
    submitted: int
    ok: int = 0
    queue_full: int = 0
    other: list[str] = field(default_factory=list)
    messages: list[str] = field(default_factory=list)


def burst(url: str, n: int, photo: str | Path | None = None, models: str = "", settle: Callable[[list], None] | None = None) -> BurstReport:
    """Submit ``n`` /predict requests (of ``photo``, default the example photos; ``models``, default
    all) at once, each client at most its per-client job cap (``ui.limits.MAX_JOBS_PER_CLIENT``):
    with a queue limit below ``n`` the overflow must be refused ('queue is full'), everything
    accepted must be answered. ``settle(jobs)``, when given, runs after the submissions and before
    any answer is awaited (a test holds the server's workers busy until every job is queued or
    refused, then lets them go)."""
    from gradio_client import handle_file

    from har_demo.ui.limits import MAX_JOBS_PER_CLIENT

    check_loopback(url)
    report = BurstReport(n)
    with tempfile.TemporaryDirectory(prefix="har_load_dl_") as dl:
        clients = [_client(url, dl) for _ in range(-(-n // MAX_JOBS_PER_CLIENT))]
        photos = [Path(photo)] if photo else PHOTOS
        jobs = [clients[k // MAX_JOBS_PER_CLIENT].submit(handle_file(str(photos[k % len(photos)])), models, "predicted", 0.5,
                                                         api_name="/predict") for k in range(n)]
        if settle is not None:
            settle(jobs)
        for job in jobs:
            try:
                problem = _valid(job.result(timeout=REQUEST_TIMEOUT_S))
            except Exception as err:  # noqa: BLE001 - sorted below
                text = str(err)
                if "queue is full" in text.lower():
                    report.queue_full += 1
                    report.messages.append(text)
                    continue
                problem = f"{type(err).__name__}: {text[:200]}"
            if problem is None:
                report.ok += 1
            else:
                report.other.append(problem)
        for client in clients:
            with contextlib.suppress(Exception):
                client.close()
    return report


# ---- one attacker during the load (issue 22) -----------------------------------------------------
ATTACKS = ("flood", "float_tiff", "tile", "rle_zip")
ATTACKER_IP = "10.66.66.66"  # told to the app in X-Forwarded-For (trusted from loopback only)


def attack_files(folder: Path) -> dict[str, Path]:
    """The attacker's files (issue 22 items 1, 2, 5), written into ``folder``."""
    import io
    import zipfile

    from tests.test_hardening_round3 import giant_tile_tiff, rle8_bmp, strip_flood_float_tiff

    out = {"float_tiff": folder / "flood.tif", "tile": folder / "tile.tif", "rle_zip": folder / "rle.zip"}
    out["float_tiff"].write_bytes(strip_flood_float_tiff(6324, 6324, 3, strips=6324))
    out["tile"].write_bytes(giant_tile_tiff())
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for i in range(5):  # random run colours: not refused as a zip bomb; ~4 sandbox CPU-s each
            zf.writestr(f"sitting/{i}.bmp", rle8_bmp(seed=i))
    out["rle_zip"].write_bytes(buf.getvalue())
    return out


def _flood(url: str, photo: Path, stop: threading.Event, counts: dict) -> None:
    """Item 4 as the issue ran it: one client POSTs /call/predict 200 times in 7 s, over and over,
    and never listens for the results (raw HTTP, one uploaded photo)."""
    import uuid

    base = url.rstrip("/")
    xff = {"X-Forwarded-For": ATTACKER_IP}
    boundary = uuid.uuid4().hex
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"files\"; filename=\"p.jpg\"\r\n"
            "Content-Type: image/jpeg\r\n\r\n").encode() + photo.read_bytes() + f"\r\n--{boundary}--\r\n".encode()
    req = urllib.request.Request(f"{base}/gradio_api/upload", data=body, method="POST",
                                 headers={"Content-Type": f"multipart/form-data; boundary={boundary}", **xff})
    with urllib.request.urlopen(req, timeout=30) as r:
        path = json.load(r)[0]
    payload = json.dumps({"data": [{"path": path, "meta": {"_type": "gradio.FileData"}}, "", "predicted", 0.5]}).encode()
    while not stop.is_set():
        t0 = time.monotonic()
        for i in range(200):
            if stop.is_set():
                break
            counts["sent"] += 1
            req = urllib.request.Request(f"{base}/gradio_api/call/predict", data=payload, method="POST",
                                         headers={"Content-Type": "application/json", **xff})
            try:
                with urllib.request.urlopen(req, timeout=30) as r:
                    r.read()
                counts["answered"] += 1  # accepted into the queue (its result is never fetched)
            except urllib.error.HTTPError as err:
                counts["refused"] += 1
                counts.setdefault("codes", {}).setdefault(str(err.code), 0)
                counts["codes"][str(err.code)] += 1
            except OSError:
                counts["refused"] += 1
            stop.wait(max(0.0, t0 + (i + 1) * 7 / 200 - time.monotonic()))  # 200 in 7 s
        stop.wait(max(0.0, 7 - (time.monotonic() - t0)))


def attacker(url: str, kind: str, stop: threading.Event, folder: Path, files: dict[str, Path] | None = None) -> dict:
    """Runs ``kind`` over and over until ``stop``: 'flood' = item 4 (200 /call/predict POSTs in
    7 s, nobody listens), 'float_tiff' / 'tile' = items 1 / 2 through /predict, 'rle_zip' = item 5
    through /batch, each from one address. Returns counts of what the app answered."""
    from gradio_client import Client, handle_file

    check_loopback(url)
    counts = {"sent": 0, "refused": 0, "answered": 0}
    if kind == "flood":
        _flood(url, PHOTOS[0], stop, counts)
        return counts
    files = files or attack_files(folder)
    client = Client(url, verbose=False, download_files=str(folder), analytics_enabled=False, headers={"X-Forwarded-For": ATTACKER_IP})
    deadline = time.monotonic() + 600
    while not stop.is_set() and time.monotonic() < deadline:
        try:
            counts["sent"] += 1
            if kind == "rle_zip":
                client.predict([handle_file(str(files[kind]))], "", api_name="/batch")
            else:
                client.predict(handle_file(str(files[kind])), "", "predicted", 0.5, api_name="/predict")
            counts["answered"] += 1
        except Exception:  # noqa: BLE001 - refused with a message: counted, the attacker goes on
            counts["refused"] += 1
    with contextlib.suppress(Exception):
        client.close()
    return counts


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--clients", type=int, default=20, help="concurrent clients (default 20)")
    p.add_argument("--requests", type=int, default=5, help="sequential /predict calls per client (default 5)")
    p.add_argument("--url", help="a running app on a loopback address (default: start one here)")
    p.add_argument("--pid", type=int, help="the running app's process id (for its RSS)")
    p.add_argument("--burst", type=int, default=0, help="also submit N requests at once from one client")
    p.add_argument("--attack", choices=ATTACKS, help="one attacker (issue 22 items 1, 2, 4, 5) during the load")
    p.add_argument("--json", action="store_true", help="print JSON")
    args = p.parse_args(argv)
    if not 1 <= args.clients <= 200 or not 1 <= args.requests <= 100:
        p.error("--clients must be 1-200 and --requests 1-100 (this test stays bounded)")
    with contextlib.ExitStack() as stack:
        url, pid, limit = args.url, args.pid, queue_limit()
        if not url:
            app = stack.enter_context(running_app())
            url, pid, limit = app.url, app.pid, queue_limit(app.env)
        attack = None
        if args.attack:
            stop = threading.Event()
            folder = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="har_attack_")))
            pool = stack.enter_context(ThreadPoolExecutor(1))
            files = attack_files(folder) if args.attack != "flood" else None  # written before the clock starts
            attack = pool.submit(attacker, url, args.attack, stop, folder, files)
            time.sleep(5)  # the attack is under way before the visitors come
        try:
            report = run_load(url, args.clients, args.requests, pid, limit)
        finally:
            if attack is not None:
                stop.set()
        extra = asdict(burst(url, args.burst)) if args.burst else None
        if attack is not None:
            extra = {**(extra or {}), "attack": args.attack, "attacker": attack.result(timeout=REQUEST_TIMEOUT_S)}
    if args.json:
        print(json.dumps({"load": asdict(report), "burst": extra}, indent=2))
    else:
        print("\n".join(report.lines()))
        if extra and "attack" in extra:
            print(f"attacker           : {extra['attack']}: {extra['attacker']}")
        if extra and "submitted" in extra:
            print(f"burst              : {extra['submitted']} at once -> {extra['ok']} answered, "
                  f"{extra['queue_full']} refused (queue full), {len(extra['other'])} other failures")
            print("\n".join(f"burst failure      : {f}" for f in extra["other"][:5]))
    return 0 if report.failed == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
