"""Before/after figures for issue 14 (hardening, round 2), small enough for a 2-core laptop.

    python benchmarks/hardening_measure.py [--code DIR] [--only scan,tmpdir,rss] [--json]

``--code`` is the source tree to measure (default: this one); for the "before" figures export
the base commit, e.g. ``git archive 9e1caca | tar -x -C /tmp/before`` and pass ``--code
/tmp/before``. Each figure runs in its own subprocess (fresh RSS, its own TMPDIR):

* ``scan``: CPU seconds for ``load_image`` of a progressive-JPEG scan bomb (6000x6000 grayscale,
  3000 AC scans of EOB runs, ~280 KB) until it is decoded or refused (capped at 120 s).
* ``tmpdir``: peak bytes under TMPDIR while ``evaluate_batch`` gets 4 stored zips of 60 MiB each
  (each under the per-zip limit) with ``HAR_BATCH_MAX_BYTES`` = 100 MiB (ignored by code without
  a per-request budget), sampled every 10 ms.
* ``rss``: the process RSS before, after one and after two batches of a zip of 16 x 40 MP 1-bit
  PNGs (~100 KB), tiny offline models, run one after the other in one process.
* ``cancel``: a running ``python app.py`` (loopback, tiny models) gets a ``/batch`` of 480 small
  JPEGs; the client cancels it a quarter of the way in; the server's CPU seconds in the 3 s that
  follow (about 3 = the batch went on; near 0 = it stopped).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

_COMMON = """
import io, json, os, struct, sys, threading, time, zipfile, zlib
from pathlib import Path
def seg(m, p): return b"\\xff" + bytes([m]) + struct.pack(">H", len(p) + 2) + p
def scan_bomb(side=6000, scans=3000):
    blocks = ((side + 7) // 8) ** 2
    out = b"\\xff\\xd8" + seg(0xDB, b"\\x00" + bytes([1] * 64))
    out += seg(0xC2, struct.pack(">BHHB", 8, side, side, 1) + b"\\x01\\x11\\x00")
    out += seg(0xC4, b"\\x00" + bytes([1] + [0] * 15) + b"\\x00") + seg(0xC4, b"\\x10" + bytes([1] + [0] * 15) + b"\\xe0")
    out += seg(0xDA, b"\\x01\\x01\\x00\\x00\\x00\\x00") + b"\\x00" * ((blocks + 7) // 8)
    bits = ("0" + "1" * 14) * -(-blocks // 32767); bits += "1" * (-len(bits) % 8)
    ac = bytes(int(bits[i:i + 8], 2) for i in range(0, len(bits), 8)).replace(b"\\xff", b"\\xff\\x00")
    return out + (seg(0xDA, b"\\x01\\x01\\x00\\x01\\x3f\\x00") + ac) * scans + b"\\xff\\xd9"
def chunk(k, d): return struct.pack(">I", len(d)) + k + d + struct.pack(">I", zlib.crc32(k + d) & 0xFFFFFFFF)
def bilevel_png(side):
    comp = zlib.compressobj(9); row = b"\\0" * (1 + (side + 7) // 8)
    body = b"".join(comp.compress(row) for _ in range(side)) + comp.flush()
    return b"\\x89PNG\\r\\n\\x1a\\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0)) + chunk(b"IDAT", body) + chunk(b"IEND", b"")
def rss_mb():
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS:"): return int(line.split()[1]) / 1024
def hwm_mb():
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"): return int(line.split()[1]) / 1024
"""

_SCAN = """
from har_demo.data.io import load_image
bomb = scan_bomb()
t = time.process_time(); w = time.perf_counter()
try:
    load_image(bomb, name="bomb.jpg"); outcome = "decoded"
except Exception as err:
    outcome = "refused: " + str(err)
print(json.dumps({"bytes": len(bomb), "cpu_s": round(time.process_time() - t, 3), "wall_s": round(time.perf_counter() - w, 3), "outcome": outcome}))
"""

_TMPDIR = """
tmp = Path(os.environ["TMPDIR"]); work = Path(sys.argv[1])
from tests.test_ui_support import tiny_bank
from har_demo.ui import batch as bt
bank = tiny_bank(work / "ck")
zips = []
for k in range(4):
    z = work / f"z{k}.zip"
    with zipfile.ZipFile(z, "w", zipfile.ZIP_STORED) as zf:
        for i in range(6):
            zf.writestr(f"sitting/{i}.bmp", os.urandom(10 * 2**20))
    zips.append(str(z))
peak, stop = [0], threading.Event()
def sample():
    while not stop.is_set():
        total = 0
        for dirpath, _, files in os.walk(tmp):
            for f in files:
                try: total += os.path.getsize(os.path.join(dirpath, f))
                except OSError: pass
        peak[0] = max(peak[0], total); time.sleep(0.01)
th = threading.Thread(target=sample); th.start()
t = time.perf_counter()
try:
    bt.evaluate_batch(bank, zips, ["fnn"]); outcome = "evaluated"
except Exception as err:
    outcome = "refused: " + str(err)[:160]
stop.set(); th.join()
print(json.dumps({"uploads_mib": 240, "tmpdir_peak_mib": round(peak[0] / 2**20, 1), "seconds": round(time.perf_counter() - t, 2), "outcome": outcome}))
"""

_RSS = """
work = Path(sys.argv[1])
from tests.test_ui_support import tiny_bank
from har_demo.ui import batch as bt
bank = tiny_bank(work / "ck")
z = work / "big.zip"
png = bilevel_png(6300)
with zipfile.ZipFile(z, "w", zipfile.ZIP_STORED) as zf:
    for i in range(16):
        zf.writestr(f"sitting/{i}.png", png)
out = {"zip_kb": round(z.stat().st_size / 1024), "images": 16, "megapixels_each": round(6300 * 6300 / 1e6, 1), "rss_start_mb": round(rss_mb())}
for k in (1, 2):
    t = time.perf_counter()
    try:
        r = bt.evaluate_batch(bank, [str(z)], ["fnn"], misclassified_per_model=0); outcome = f"{len(r.predictions)} predictions"
    except Exception as err:
        outcome = "refused: " + str(err)[:160]
    out[f"batch{k}_s"] = round(time.perf_counter() - t, 1)
    out[f"rss_after_batch{k}_mb"] = round(rss_mb())
    out[f"batch{k}"] = outcome
out["rss_peak_mb"] = round(hwm_mb())
print(json.dumps(out))
"""

_CANCEL = """
work = Path(sys.argv[1])
from PIL import Image
from benchmarks.load_test import running_app
from gradio_client import Client, handle_file
z = work / "many.zip"
with zipfile.ZipFile(z, "w") as zf:
    for i in range(480):
        b = io.BytesIO(); Image.new("RGB", (900, 700), (i % 255, 9, 9)).save(b, "JPEG"); zf.writestr(f"sitting/{i}.jpg", b.getvalue())
with running_app(workdir=work / "app") as app:
    def cpu():
        f = open(f"/proc/{app.pid}/stat").read().split(); return (int(f[13]) + int(f[14])) / os.sysconf("SC_CLK_TCK")
    c = Client(app.url, verbose=False, analytics_enabled=False)
    t = time.time(); c.predict([handle_file(str(z))], "fnn", api_name="/batch"); full = time.time() - t
    job = c.submit([handle_file(str(z))], "fnn", api_name="/batch"); time.sleep(max(1.0, full / 4)); job.cancel()
    time.sleep(1.0); c0 = cpu(); time.sleep(3)
    print(json.dumps({"batch_s": round(full, 1), "server_cpu_s_3s_after_cancel": round(cpu() - c0, 2)}))
"""

SCRIPTS = {"scan": _SCAN, "tmpdir": _TMPDIR, "rss": _RSS, "cancel": _CANCEL}
TIMEOUT_S = {"scan": 150, "tmpdir": 300, "rss": 400, "cancel": 300}


def measure(what: str, code: Path, env_extra: dict | None = None) -> dict:
    with tempfile.TemporaryDirectory(prefix=f"har_measure_{what}_") as work:
        tmp = Path(work) / "tmp"
        tmp.mkdir()
        env = {**os.environ, "PYTHONPATH": str(code), "TMPDIR": str(tmp), "HAR_BATCH_MAX_BYTES": str(100 * 2**20),
               "GRADIO_ANALYTICS_ENABLED": "False", "HF_HUB_OFFLINE": "1", **(env_extra or {})}
        src = textwrap.dedent(_COMMON) + textwrap.dedent(SCRIPTS[what])
        try:
            proc = subprocess.run([sys.executable, "-c", src, work], check=False, cwd=code, env=env, capture_output=True, text=True,
                                  timeout=TIMEOUT_S[what])
        except subprocess.TimeoutExpired:
            return {"outcome": f"still running after {TIMEOUT_S[what]} s (killed)"}
        lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
        if proc.returncode or not lines:
            return {"outcome": f"failed (rc {proc.returncode}): {proc.stderr.strip().splitlines()[-1:]}"}
        return json.loads(lines[-1])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--code", type=Path, default=ROOT, help="source tree to measure (default: this one)")
    p.add_argument("--only", default="scan,tmpdir,rss,cancel", help="comma-separated: scan, tmpdir, rss, cancel")
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)
    results = {w: measure(w, args.code.resolve()) for w in args.only.split(",") if w}
    if args.json:
        print(json.dumps(results, indent=2))
    else:
        for w, r in results.items():
            print(f"{w}: " + ", ".join(f"{k}={v}" for k, v in r.items()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
