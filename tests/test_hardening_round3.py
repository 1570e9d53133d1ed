"""Hardening, round 3 (issue 22): bounded by construction - untrusted files are decoded in a sandbox
(``data.sandbox``: worker processes under RLIMIT_AS / RLIMIT_CPU / a wall-time limit), budgets count
the pixels (and sandbox CPU-seconds) actually decoded, and the issue's decoder cases (items 1, 2, 5,
8, 10) each have a test that fails on the code before it.

The hostile files are generated here in a few lines (nothing downloaded); the generators are shared
with ``tests/test_hardening_corpus.py``.
"""

from __future__ import annotations

import io
import struct
import time
import tracemalloc
import zlib

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from har_demo.data import io as dio
from har_demo.data import sandbox as sb
from har_demo.errors import DataError, ImageLoadError
from tests.test_hardening_round2 import float_tiff, nan_reference

FAST_S = 2.0


# ---- generators (shared with the corpus) ------------------------------------------------------------
def tiff(entries: list[tuple[int, int, list[int]]], payload: bytes = b"", at: int | None = None) -> bytes:
    """A little-endian one-directory TIFF: ``entries`` (tag, type 3=SHORT / 4=LONG, values); values
    that do not fit in 4 bytes go after the directory; ``payload`` follows them. A value equal to
    ``-1`` is replaced by the payload's offset (strip / tile offsets)."""
    entries = sorted(entries)
    ifd_end = 8 + 2 + 12 * len(entries) + 4
    extra = b""
    size = {3: 2, 4: 4}
    offsets_needed = []
    for _tag, typ, values in entries:
        if len(values) * size[typ] > 4:
            offsets_needed.append(ifd_end + len(extra))
            extra += b"\0" * (len(values) * size[typ])
        else:
            offsets_needed.append(None)
    payload_at = ifd_end + len(extra) if at is None else at
    out = bytearray(b"II*\x00" + struct.pack("<IH", 8, len(entries)))
    blob = bytearray(extra)
    for (tag, typ, values), where in zip(entries, offsets_needed):
        values = [payload_at if v == -1 else v for v in values]
        packed = struct.pack("<" + ("H" if typ == 3 else "I") * len(values), *values)
        if where is None:
            out += struct.pack("<HHI", tag, typ, len(values)) + packed.ljust(4, b"\0")
        else:
            out += struct.pack("<HHII", tag, typ, len(values), where)
            blob[where - ifd_end : where - ifd_end + len(packed)] = packed
    return bytes(out + b"\0\0\0\0" + blob + payload)


def strip_flood_float_tiff(w: int = 1, h: int = 1, spp: int = 1, strips: int = 100_000, block: int = 2**20) -> bytes:
    """Item 1: an uncompressed float64 TIFF whose ``strips`` strips all point at one ``block``-byte
    block (~1.8 MB for the defaults); today's reader joined every strip before any size check."""
    return tiff([(256, 4, [w]), (257, 4, [h]), (258, 3, [64]), (259, 3, [1]), (262, 3, [2 if spp == 3 else 1]),
                 (273, 4, [-1] * strips), (277, 3, [spp]), (278, 4, [1]), (279, 4, [block] * strips), (339, 3, [3])],
                b"\x3f" * block)


def giant_tile_tiff(side: int = 4000, tile: int = 26752) -> bytes:
    """Item 2: a deflate-tiled TIFF under the pixel cap whose single tile is ``tile``^2 pixels."""
    data = zlib.compress(b"\0" * 4096)
    return tiff([(256, 4, [side]), (257, 4, [side]), (258, 3, [8]), (259, 3, [8]), (262, 3, [1]), (277, 3, [1]),
                 (322, 4, [tile]), (323, 4, [tile]), (324, 4, [-1]), (325, 4, [len(data)])], data)


def rle8_bmp(w: int = 6000, h: int = 6000, run: int = 4, seed: int | None = None) -> bytes:
    """Item 5: a run-length (BI_RLE8) BMP - Pillow's decoder for it is pure Python, one step per
    run - of w x h pixels in runs of ``run`` (~18 MB, ~20 KB zipped; ~3-4 CPU-s to decode). With
    ``seed`` every run gets a random colour (it no longer zips like a bomb)."""
    if seed is None:
        row = bytes([run, 1]) * (w // run) + (bytes([w % run, 1]) if w % run else b"") + b"\x00\x00"
        pixels = row * h + b"\x00\x01"
    else:
        n = w // run
        pairs = np.empty((h, n, 2), np.uint8)
        pairs[..., 0] = run
        pairs[..., 1] = np.random.default_rng(seed).integers(0, 256, (h, n), dtype=np.uint8)
        tail = np.tile(np.frombuffer((bytes([w % run, 0]) if w % run else b"") + b"\x00\x00", np.uint8), (h, 1))
        pixels = np.concatenate([pairs.reshape(h, -1), tail], axis=1).tobytes() + b"\x00\x01"
    palette = b"".join(bytes([i, i, i, 0]) for i in range(256))
    info = struct.pack("<IiiHHIIiiII", 40, w, h, 1, 8, 1, len(pixels), 2835, 2835, 256, 0)
    offset = 14 + len(info) + len(palette)
    return b"BM" + struct.pack("<IHHI", offset + len(pixels), 0, 0, offset) + info + palette + pixels


def sparse_nan_float(w: int = 400, h: int = 300, share: float = 0.06, seed: int = 0) -> np.ndarray:
    """Item 10: a float32 ramp with ``share`` of its pixels NaN, scattered."""
    arr = np.tile(np.linspace(0.0, 2.0, w, dtype=np.float32), (h, 1))
    arr[np.random.default_rng(seed).random((h, w)) < share] = np.nan
    return arr


def sos_in_comment_jpeg(img: Image.Image, n: int = 101) -> bytes:
    """Item 10: a baseline JPEG with ``n`` FF DA byte pairs inside a COM segment (not scans)."""
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=92)
    data = buf.getvalue()
    com = b"note " + b"\xff\xda" * n
    return data[:2] + b"\xff\xfe" + struct.pack(">H", len(com) + 2) + com + data[2:]


def _encoded(img: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **kw)
    return buf.getvalue()


def _rgb(w: int = 64, h: int = 48) -> np.ndarray:
    return np.random.default_rng(1).integers(0, 255, (h, w, 3), dtype=np.uint8)


# ---- item 1: float TIFF strips -------------------------------------------------------------------------
def test_strip_flood_float_tiff_reads_only_the_bytes_it_needs():
    data = strip_flood_float_tiff(strips=300)  # 300 strips over one 1 MiB block: 300 MiB joined before
    tracemalloc.start()
    try:
        im = dio.load_image(data, name="flood.tif", sandbox=False)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert im.size == (1, 1) and peak < 20 * 2**20, peak


def test_declared_40mp_float_tiff_in_one_mb_is_refused_fast():
    data = strip_flood_float_tiff(w=6324, h=6324, spp=3, strips=6324)
    assert len(data) < 1_200_000
    for sandbox in (False, True):
        start = time.perf_counter()
        with pytest.raises(ImageLoadError, match=r"^big\.tif: float64 TIFF is truncated \(\d+ bytes in the file, \d+ pixel bytes") as err:
            dio.load_image(data, name="big.tif", sandbox=sandbox)
        assert "\n" not in str(err.value) and time.perf_counter() - start < FAST_S


# ---- item 2: a giant tile --------------------------------------------------------------------------------
def test_giant_tile_tiff_is_refused_from_its_header():
    data = giant_tile_tiff()
    assert len(data) < 2000
    with Image.open(io.BytesIO(data)) as im:  # Pillow would open it (4000x4000 is under the pixel cap)
        assert im.size == (4000, 4000)
    start = time.perf_counter()
    with pytest.raises(ImageLoadError, match=r"^tiles\.tif: TIFF tile is 26752x26752 = 716 megapixels, over the 40 MP limit"):
        dio.load_image(data, name="tiles.tif")
    assert time.perf_counter() - start < FAST_S


# ---- the sandbox's own limits (items 1, 2, 5 and any bomb the fast path does not know) ------------------
def _bomb_png(side: int = 6300) -> bytes:
    """An RGBA PNG of side^2 zero pixels (under the 40 MP cap: ~160 MB decoded) in ~150 KB."""
    raw = zlib.compressobj(9)
    row = b"\0" * (side * 4 + 1)
    body = b"".join(raw.compress(row) for _ in range(side)) + raw.flush()

    def chunk(kind: bytes, payload: bytes) -> bytes:
        return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload) & 0xFFFFFFFF)

    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", side, side, 8, 6, 0, 0, 0)) + chunk(b"IDAT", body) + chunk(b"IEND", b"")


@pytest.fixture
def small_pool():
    pools = []

    def make(**kw) -> sb.DecodePool:
        pools.append(sb.DecodePool(size=1, **kw))
        return pools[-1]

    yield make
    for p in pools:
        p.close()


def test_sandbox_memory_limit_refuses_in_one_line_and_the_worker_is_replaced(small_pool):
    pool = small_pool(memory=260 * 2**20)
    start = time.perf_counter()
    with pytest.raises(ImageLoadError, match=r"^mem\.png: refused: decoding it needs more than the 0\.3 GiB memory limit") as err:
        pool.decode(_bomb_png(), "mem.png", 256)
    assert "\n" not in str(err.value) and time.perf_counter() - start < 15
    im, size, decoded, _ = pool.decode(_encoded(Image.fromarray(_rgb()), "PNG"), "ok.png", 32)
    assert im.size == (32, 24) and size == (64, 48) and decoded == 64 * 48 and pool.started == 2


def test_sandbox_cpu_limit_kills_a_pure_python_decoder(small_pool):
    pool = small_pool(cpu_s=1, wall_s=60)
    start = time.perf_counter()
    with pytest.raises(ImageLoadError, match=r"^rle\.bmp: refused: decoding it needs more than the 1 CPU-second limit"):
        pool.decode(rle8_bmp(), "rle.bmp", 256)
    assert time.perf_counter() - start < 30
    assert pool.decode(_encoded(Image.fromarray(_rgb()), "BMP"), "ok.bmp", None)[0].size == (64, 48)
    assert pool.started == 2


def test_sandbox_wall_limit_kills_and_replaces(small_pool):
    pool = small_pool(cpu_s=60, wall_s=0.5)
    pool.decode(_encoded(Image.fromarray(_rgb()), "PNG"), "warm.png", None)  # the interpreter start is not timed
    start = time.perf_counter()
    with pytest.raises(ImageLoadError, match=r"^slow\.bmp: refused: decoding took longer than the 0\.5 s time limit"):
        pool.decode(rle8_bmp(), "slow.bmp", 256)
    assert time.perf_counter() - start < 3
    assert pool.decode(_encoded(Image.fromarray(_rgb()), "PNG"), "ok.png", None)[0].size == (64, 48) and pool.started == 2


def test_sandbox_workers_are_reused_and_return_the_reduced_pixels(small_pool):
    pool = small_pool()
    base = _rgb(640, 480)
    png = _encoded(Image.fromarray(base), "PNG")
    for _ in range(3):
        im, size, decoded, cpu = pool.decode(png, "a.png", 160)
    expected = Image.fromarray(base)
    expected.thumbnail((160, 160), Image.LANCZOS)
    assert pool.started == 1 and size == (640, 480) and decoded == 640 * 480 and 0 <= cpu < 5
    assert np.array_equal(np.asarray(im), np.asarray(expected))


def test_cli_and_app_decode_in_the_sandbox_by_default(monkeypatch):
    calls = []
    real = sb.decode_in_sandbox
    monkeypatch.setattr(sb, "decode_in_sandbox", lambda *a: calls.append(a[1]) or real(*a))
    dio.load_image(_encoded(Image.fromarray(_rgb()), "PNG"), name="x.png", max_side=32)
    assert calls == ["x.png"] and dio.SANDBOX


# ---- item 5 / 8: budgets count what was decoded ----------------------------------------------------------
def test_batch_budget_counts_pixels_of_files_pillow_cannot_open(tmp_path, monkeypatch):
    from har_demo.labels import CLASSES
    from har_demo.ui import batch as bt
    from tests.test_ui_support import tiny_bank

    ramp = np.tile(np.linspace(0, 1, 300), (200, 1))
    paths = []
    for i in range(6):
        p = tmp_path / f"{CLASSES[i % 3]}_{i}.tif"
        p.write_bytes(float_tiff(ramp, 16))  # Pillow cannot open float16: its header counted 0 pixels
        paths.append(p)
    bank = tiny_bank(tmp_path / "ck")
    assert bt.check_pixels([bt.Sample(path=str(p), label="", group=p.name) for p in paths]) == 0  # the header path
    monkeypatch.setattr(bt, "BATCH_MAX_PIXELS", 300 * 200 * 4)
    with pytest.raises(DataError, match=r"add up to more than 0 megapixels decoded"):
        bt.evaluate_batch(bank, paths, ["fnn"], misclassified_per_model=0)
    monkeypatch.setattr(bt, "BATCH_MAX_PIXELS", 300 * 200 * 6)
    assert len(bt.evaluate_batch(bank, paths, ["fnn"], misclassified_per_model=0).predictions) == 6


def test_decode_budget_counts_sandbox_cpu_seconds():
    png = _encoded(Image.fromarray(_rgb(640, 480)), "PNG")
    with dio.decode_budget(10**9, max_cpu_s=1e-9) as meter, pytest.raises(DataError, match=r"took more than 1e-09 CPU-seconds to decode"):
        for _ in range(20):  # some decode takes measurable CPU time
            dio.load_image(png, max_side=64)
    assert meter.cpu > 0 and meter.used >= 640 * 480


# ---- item 10: decoder smaller cases ----------------------------------------------------------------------
def test_sparse_nan_float_tiff_is_read_not_refused():
    arr = sparse_nan_float()
    data = _encoded(Image.fromarray(arr, "F"), "TIFF")
    im = dio.load_image(data, name="sparse.tif", max_side=100)
    ref = Image.fromarray(nan_reference(arr))
    ref.thumbnail((100, 100), Image.LANCZOS)
    assert im.size == ref.size == (100, 75)
    assert float(np.abs(np.asarray(im, np.float64) - np.asarray(ref, np.float64)).mean()) < 1.5


def test_sos_bytes_inside_a_comment_are_not_scans():
    base = np.dstack([np.tile(np.linspace(0, 255, 64), (48, 1))] * 3).astype(np.uint8)  # smooth: JPEG keeps it
    data = sos_in_comment_jpeg(Image.fromarray(base))
    assert data.count(b"\xff\xda") == 102
    im = dio.load_image(data, name="com.jpg")
    assert float(np.abs(np.asarray(im, np.float64) - base).mean()) < 4


# ---- property: random malformed headers through the sandbox ------------------------------------------------
SEEDS = {
    "TIFF": _encoded(Image.fromarray(_rgb(24, 16)), "TIFF"),
    "PNG": _encoded(Image.fromarray(_rgb(24, 16)), "PNG"),
    "BMP": _encoded(Image.fromarray(_rgb(24, 16)), "BMP"),
    "GIF": _encoded(Image.fromarray(_rgb(24, 16)), "GIF"),
    "WEBP": _encoded(Image.fromarray(_rgb(24, 16)), "WEBP", lossless=True),
}


def _rss() -> int:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * 4096


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(fmt=st.sampled_from(sorted(SEEDS)),
       edits=st.lists(st.tuples(st.integers(0, 63), st.sampled_from([0, 1, 0x7F, 0x80, 0xFF]) | st.integers(0, 255)),
                      min_size=1, max_size=8),
       big=st.none() | st.tuples(st.integers(0, 60), st.integers(0, 2**32 - 1)))
def test_random_malformed_headers_stay_inside_the_sandbox_limits(fmt, edits, big):
    data = bytearray(SEEDS[fmt])
    for pos, value in edits:
        data[pos % len(data)] = value
    if big is not None:  # a huge width / height / count / offset somewhere in the header
        data[big[0] : big[0] + 4] = struct.pack("<I", big[1])
    before = _rss()
    start = time.perf_counter()
    try:
        im = dio.load_image(bytes(data), name=f"fuzz.{fmt.lower()}", max_side=64)
    except ImageLoadError as err:
        text = str(err)
        assert "\n" not in text and text.startswith(f"fuzz.{fmt.lower()}: ") and len(text) < 600, text
    else:
        assert im.mode == "RGB" and max(im.size) <= 64
    assert time.perf_counter() - start < sb.SANDBOX_WALL_S + 5
    assert _rss() - before < 64 * 2**20  # whatever was decoded stayed in the worker


# ---- item 10: CLI inputs ----------------------------------------------------------------------------------
def test_deeply_nested_json_is_one_line_not_a_traceback(tmp_path, capsys):
    from har_demo.cli import main as cli_main
    from har_demo.errors import CheckpointError
    from har_demo.models.checkpoint import read_card

    nested = tmp_path / "nested.json"
    nested.write_text("[" * 200_000 + "]" * 200_000)
    with pytest.raises(DataError, match=r"nested\.json: not a usable JSON file \(nested too deeply\)"):
        dio.read_json_file(nested, "splits")
    card_dir = tmp_path / "ck"
    card_dir.mkdir()
    (card_dir / "card.json").write_text("{\"a\":" * 100_000 + "1" + "}" * 100_000)
    with pytest.raises(CheckpointError, match=r"card\.json is not usable JSON \(nested too deeply\)"):
        read_card(card_dir)
    for cls in ("sitting", "standing", "walking_running"):
        (tmp_path / "data" / cls).mkdir(parents=True)
        Image.new("RGB", (8, 8)).save(tmp_path / "data" / cls / "p.png")
    rc = cli_main(["evaluate", "--data", str(tmp_path / "data"), "--model", "cnn_base", "--splits", str(nested), "--split", "test"])
    err = capsys.readouterr().err
    assert rc != 0 and "nested too deeply" in err and "Traceback" not in err, err[-500:]


@pytest.mark.parametrize("value", ["nan", "-0.5", "2"])
def test_explain_threshold_must_be_a_number_from_0_to_1(tmp_path, capsys, value):
    from har_demo.cli import main as cli_main

    photo = tmp_path / "p.png"
    Image.new("RGB", (8, 8)).save(photo)
    rc = cli_main(["explain", str(photo), "--model", "cnn_base", "--threshold", value])
    err = capsys.readouterr().err
    assert rc != 0 and "--threshold must be a number from 0 to 1" in err and len(err.strip().splitlines()) == 1, err


def _zip_bytes(entries: dict[str, bytes]) -> bytes:
    import zipfile

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data in entries.items():
            zf.writestr(name, data)
    return buf.getvalue()


def test_zip_names_with_a_nul_or_a_lookalike_slash_are_refused_by_name(tmp_path):
    from har_demo.data.zipdata import extract_zip_dataset

    jpg = _encoded(Image.fromarray(_rgb()), "JPEG")
    ok = {"sitting/a.jpg": jpg, "standing/b.jpg": jpg}
    nul = tmp_path / "nul.zip"
    nul.write_bytes(_zip_bytes({**ok, "sitting/c.jpgX.txt": jpg}).replace(b"c.jpgX.txt", b"c.jpg\x00.txt"))
    with pytest.raises(DataError, match=r"nul\.zip: unsafe entry 'sitting/c\.jpg\\\\x00\.txt' \(a NUL byte in its name\)"):
        extract_zip_dataset(nul, tmp_path / "out1")
    slash = tmp_path / "slash.zip"
    slash.write_bytes(_zip_bytes({**ok, "sitting/..\u2215..\u2215x.jpg": jpg}))
    with pytest.raises(DataError, match=r"slash\.zip: unsafe entry .* \(a look-alike slash in its name\)"):
        extract_zip_dataset(slash, tmp_path / "out2")
    assert not (tmp_path / "out1").exists() and not (tmp_path / "out2").exists()
    fine = tmp_path / "fine.zip"
    fine.write_bytes(_zip_bytes(ok))
    assert len(extract_zip_dataset(fine, tmp_path / "out3")) == 2


def test_cli_predict_with_nan_weights_is_an_error_not_a_label(tmp_path, capsys, monkeypatch):
    from har_demo.cli import main as cli_main
    from har_demo.models import fuse, loading

    class NanModel:
        def predict_proba(self, images):
            return np.full((len(images), 3), np.nan, np.float32)

    monkeypatch.setattr(loading, "load_model", lambda *a, **k: NanModel())
    monkeypatch.setattr(fuse, "prepare_for_serving", lambda m: m)
    photo = tmp_path / "p.png"
    Image.new("RGB", (8, 8)).save(photo)
    rc = cli_main(["predict", str(photo), "--model", "cnn_base", "--json"])
    out, err = capsys.readouterr()
    assert rc != 0 and "NaN" not in out and "gives non-finite probabilities" in err and len(err.strip().splitlines()) == 1, (out, err)
