"""Before/after figures for issue 22 (hardening, round 3): the decoder cases, one subprocess each.

    python benchmarks/hardening_round3.py [--code DIR] [--only item1_flood,...] [--json]
    python benchmarks/hardening_round3.py --overhead     # the sandbox's cost per image

``--code`` is the source tree whose ``load_image`` is measured (default: this one); for "before"
export the base commit (``git archive e2fc695 | tar -x -C /tmp/before``) and pass ``--code
/tmp/before``. The files are generated here (``tests/test_hardening_round3.py``'s generators);
each case runs ``load_image(path, max_side=640)`` in a fresh process capped at 3 GiB of address
space (RLIMIT_AS: the old code's unbounded cases stop with MemoryError instead of taking the
machine) and 120 s, and reports the outcome line, that process's peak RSS (VmHWM: the server's
share) and CPU seconds including its decode workers (closed, then counted as reaped children).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import textwrap
import zlib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
CAP_BYTES = 3 * 2**30
TIMEOUT_S = 120

_SCRIPT = """
import json, os, resource, sys, time
resource.setrlimit(resource.RLIMIT_AS, (int(sys.argv[2]), int(sys.argv[2])))
from har_demo.data.io import load_image
from har_demo.errors import HarError
t0, w0 = os.times(), time.perf_counter()
try:
    im = load_image(sys.argv[1], max_side=640)
    outcome = f"decoded {im.size[0]}x{im.size[1]}"
except HarError as err:
    outcome = "refused: " + str(err)
except MemoryError:
    outcome = "MemoryError (hit the 3 GiB cap of this measurement)"
wall = time.perf_counter() - w0
try:
    from har_demo.data import sandbox
    if sandbox._POOL is not None:
        sandbox._POOL.close()
except ImportError:
    pass
t1 = os.times()
hwm = [int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmHWM")][0] / 1024
print(json.dumps({"outcome": outcome[:160], "peak_rss_mb": round(hwm), "wall_s": round(wall, 2),
                  "cpu_s_self": round(t1.user + t1.system - t0.user - t0.system, 2),
                  "cpu_s_workers": round(t1.children_user + t1.children_system - t0.children_user - t0.children_system, 2)}))
"""


def _real_giant_tile(side: int = 4000, tile: int = 26752) -> bytes:
    """Item 2 with a real deflate stream: one tile^2 gray tile of zeros (~0.7 MB)."""
    from tests.test_hardening_round3 import tiff

    z = zlib.compressobj(9)
    row = b"\0" * tile
    data = b"".join(z.compress(row) for _ in range(tile)) + z.flush()
    return tiff([(256, 4, [side]), (257, 4, [side]), (258, 3, [8]), (259, 3, [8]), (262, 3, [1]), (277, 3, [1]),
                 (322, 4, [tile]), (323, 4, [tile]), (324, 4, [-1]), (325, 4, [len(data)])], data)


def cases() -> dict[str, tuple[str, bytes]]:
    import io

    import numpy as np
    from PIL import Image

    from tests.test_hardening_round3 import rle8_bmp, sos_in_comment_jpeg, sparse_nan_float, strip_flood_float_tiff

    def tif(arr):
        buf = io.BytesIO()
        Image.fromarray(arr, "F").save(buf, "TIFF")
        return buf.getvalue()

    smooth = np.dstack([np.tile(np.linspace(0, 255, 640), (480, 1))] * 3).astype(np.uint8)
    return {
        "item1_flood": ("flood.tif", strip_flood_float_tiff()),
        "item1_40mp": ("liar.tif", strip_flood_float_tiff(6324, 6324, 3, strips=6324)),
        "item2_tile": ("tile.tif", _real_giant_tile()),
        "item5_rle_bmp": ("rle.bmp", rle8_bmp()),
        "item10_sparse_nan": ("sparse.tif", tif(sparse_nan_float(1200, 900))),
        "item10_sos_in_comment": ("com.jpg", sos_in_comment_jpeg(Image.fromarray(smooth))),
    }


def measure(path: Path, code: Path) -> dict:
    env = {**os.environ, "PYTHONPATH": str(code)}
    try:
        proc = subprocess.run([sys.executable, "-c", textwrap.dedent(_SCRIPT), str(path), str(CAP_BYTES)], cwd=code, env=env,
                              capture_output=True, text=True, timeout=TIMEOUT_S, check=False)
    except subprocess.TimeoutExpired:
        return {"outcome": f"still running after {TIMEOUT_S} s (killed)"}
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if not lines:
        tail = (proc.stderr.strip().splitlines() or [""])[-1]
        return {"outcome": f"process died (rc {proc.returncode}): {tail[:160]}"}
    return json.loads(lines[-1])


def overhead() -> dict:
    """The sandbox's cost: first call (a worker starts) and ms per image, in-process vs sandbox."""
    import io
    import time

    import numpy as np
    from PIL import Image

    from har_demo.data import io as dio

    rng = np.random.default_rng(0)

    def enc(w, h, fmt):
        buf = io.BytesIO()
        Image.fromarray(rng.integers(0, 255, (h, w, 3), dtype=np.uint8)).save(buf, fmt)
        return buf.getvalue()

    small, photo = enc(48, 32, "PNG"), enc(1600, 1200, "JPEG")
    t = time.perf_counter()
    dio.load_image(small)
    out = {"first_call_s": round(time.perf_counter() - t, 2)}
    for name, data, side, n in (("png_48x32", small, None, 200), ("jpeg_1600x1200_to_640", photo, 640, 40)):
        for sandbox in (False, True):
            t = time.perf_counter()
            for _ in range(n):
                dio.load_image(data, max_side=side, sandbox=sandbox)
            out[f"{name}_{'sandbox' if sandbox else 'in_process'}_ms"] = round((time.perf_counter() - t) / n * 1000, 1)
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--code", type=Path, default=ROOT, help="source tree to measure (default: this one)")
    p.add_argument("--only", default="", help="comma-separated case names (default: all)")
    p.add_argument("--overhead", action="store_true", help="only the sandbox's per-image overhead (this tree)")
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)
    if args.overhead:
        print(json.dumps(overhead(), indent=2 if args.json else None))
        return 0
    wanted = [w for w in args.only.split(",") if w]
    results = {}
    with tempfile.TemporaryDirectory(prefix="har_round3_") as work:
        for name, (filename, data) in cases().items():
            if wanted and name not in wanted:
                continue
            path = Path(work) / filename
            path.write_bytes(data)
            results[name] = {"file_kb": round(len(data) / 1024), **measure(path, args.code.resolve())}
            if not args.json:
                print(name, json.dumps(results[name]), flush=True)
    if args.json:
        print(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
