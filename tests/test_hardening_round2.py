"""Hardening, round 2 (issue 14): bounded decode cost, one disk/pixel budget per batch, streamed
batches, no silent black image for non-finite floats, one-line messages everywhere, no leaks.

The hostile files are generated here in a few lines (nothing downloaded); the helpers are shared
with ``tests/test_hardening_corpus.py``.
"""

from __future__ import annotations

import csv
import io
import json
import re
import struct
import time
import urllib.request
import zipfile
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from har_demo.cli import main as cli_main
from har_demo.data import io as dio
from har_demo.data.zipdata import ExtractBudget, extract_zip_dataset
from har_demo.errors import DataError, HarError, ImageLoadError
from har_demo.labels import CLASSES
from har_demo.ui import analysis as an
from har_demo.ui import batch as bt
from tests.test_ui_support import tiny_bank

FAST_S = 2.0  # a refusal must come long before the ~5 s budget


@pytest.fixture(scope="session")
def app_server(request, tmp_path_factory):
    """The hardening tests' shared ``python app.py`` (``test_hardening_files.hardening_app``)."""
    from tests.test_hardening_files import hardening_app

    return hardening_app(request.config, tmp_path_factory)


# ---- generators (shared with the corpus) ----------------------------------------------------------
def _seg(marker: int, payload: bytes) -> bytes:
    return b"\xff" + bytes([marker]) + struct.pack(">H", len(payload) + 2) + payload


def scan_bomb(side: int = 6000, scans: int = 3000) -> bytes:
    """A progressive (SOF2) one-component JPEG: one DC scan, then ``scans`` identical AC scans made
    of EOB runs (a few bytes each, every one a pass over all side^2/64 blocks)."""
    blocks = ((side + 7) // 8) ** 2
    out = b"\xff\xd8" + _seg(0xDB, b"\x00" + bytes([1] * 64))
    out += _seg(0xC2, struct.pack(">BHHB", 8, side, side, 1) + b"\x01\x11\x00")
    out += _seg(0xC4, b"\x00" + bytes([1] + [0] * 15) + b"\x00")  # DC: code '0' -> category 0
    out += _seg(0xC4, b"\x10" + bytes([1] + [0] * 15) + b"\xe0")  # AC: code '0' -> EOB run (14 more bits)
    out += _seg(0xDA, b"\x01\x01\x00\x00\x00\x00") + b"\x00" * ((blocks + 7) // 8)
    bits = ("0" + "1" * 14) * -(-blocks // 32767)
    bits += "1" * (-len(bits) % 8)
    ac = bytes(int(bits[i : i + 8], 2) for i in range(0, len(bits), 8)).replace(b"\xff", b"\xff\x00")
    return out + (_seg(0xDA, b"\x01\x01\x00\x01\x3f\x00") + ac) * scans + b"\xff\xd9"


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def png_chunk_flood(chunks: int = 300_000) -> bytes:
    """A 4x4 PNG with ``chunks`` empty ancillary chunks before its pixels (~3.6 MB)."""
    png = io.BytesIO()
    Image.new("RGB", (4, 4), (1, 2, 3)).save(png, "PNG")
    data = png.getvalue()
    i = data.find(b"IDAT") - 4
    return data[:i] + _png_chunk(b"teXx", b"") * chunks + data[i:]


def float_tiff(arr: np.ndarray, bits: int) -> bytes:
    """An uncompressed one-strip SampleFormat=3 (IEEE float) TIFF of ``arr`` at ``bits`` per sample."""
    arr = np.ascontiguousarray(arr.astype({16: "<f2", 32: "<f4", 64: "<f8"}[bits]))
    h, w = arr.shape
    data = arr.tobytes()
    entries = [(256, 3, w), (257, 3, h), (258, 3, bits), (259, 3, 1), (262, 3, 1), (273, 4, 0), (277, 3, 1),
               (278, 3, h), (279, 4, len(data)), (339, 3, 3)]
    start = 8 + 2 + 12 * len(entries) + 4
    out = b"II*\x00" + struct.pack("<IH", 8, len(entries))
    for tag, typ, val in entries:
        val = start if tag == 273 else val
        out += struct.pack("<HHI", tag, typ, 1) + (struct.pack("<HH", val, 0) if typ == 3 else struct.pack("<I", val))
    return out + b"\0\0\0\0" + data


def damaged_mpf_jpeg(img: Image.Image) -> bytes:
    """A JPEG whose APP2 MPF header claims two pictures but is cut short (MPO detection fails)."""
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=95)
    jpeg = buf.getvalue()
    mpf = b"MPF\x00MM\x00*\x00\x00\x00\x08\x00\x02\xb0\x00\x00\x07\x00\x00\x00\x040100\xb0\x01\x00\x04\x00\x00\x00\x01\x00\x00\x00\x02"
    return jpeg[:2] + b"\xff\xe2" + struct.pack(">H", len(mpf) + 2) + mpf + jpeg[2:]


def corrupt_jpeg_tiff() -> bytes:
    """A JPEG-compressed TIFF with garbage in the middle of its strip (libtiff reports an error and
    Pillow would return a half-decoded picture)."""
    arr = np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, "TIFF", compression="jpeg")
    data = bytearray(buf.getvalue())
    im = Image.open(io.BytesIO(bytes(data)))
    off, cnt = im.tag_v2[273][0], im.tag_v2[279][0]
    for i in range(off + cnt // 3, off + 2 * cnt // 3):
        data[i] = (i * 37) & 0xFF
    return bytes(data)


def nan_float(w: int = 48, h: int = 32) -> np.ndarray:
    arr = np.tile(np.linspace(-1.0, 3.0, w, dtype=np.float32), (h, 1))
    arr[3, 5], arr[10, 10], arr[0, 0] = np.nan, np.inf, -np.inf
    return arr


def nan_reference(arr: np.ndarray) -> np.ndarray:
    """What a person sees: finite range scaled to 0..255, NaN / -inf black, +inf white."""
    finite = arr[np.isfinite(arr)]
    out = (np.nan_to_num(arr, nan=0, posinf=0, neginf=0) - finite.min()) / (finite.max() - finite.min()) * 255
    out = np.where(np.isposinf(arr), 255, np.where(np.isnan(arr) | np.isneginf(arr), 0, out))
    return np.repeat(np.clip(out, 0, 255).astype(np.uint8)[..., None], 3, 2)


def _jpeg(seed: int = 0, size=(24, 20)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, (30 + seed, 90, 150)).save(buf, "JPEG")
    return buf.getvalue()


def _zip(path: Path, entries: dict[str, bytes], compression=zipfile.ZIP_DEFLATED) -> Path:
    with zipfile.ZipFile(path, "w", compression) as zf:
        for name, data in entries.items():
            zf.writestr(name, data)
    return path


# ---- 1. bounded decode cost ------------------------------------------------------------------------
def test_scan_bomb_is_refused_fast_with_one_line():
    bomb = scan_bomb(scans=3000)
    assert len(bomb) < 400_000 and bomb[:2] == b"\xff\xd8"
    with Image.open(io.BytesIO(bomb)) as im:  # a valid header: Pillow would decode it (for ~10-70 s)
        assert im.size == (6000, 6000) and im.mode == "L"
    start = time.process_time()
    with pytest.raises(ImageLoadError, match=r"bomb\.jpg: JPEG has 3001 scans, over the limit of \d+") as err:
        dio.load_image(bomb, name="bomb.jpg")
    assert time.process_time() - start < FAST_S and "\n" not in str(err.value)


def test_ordinary_progressive_jpeg_is_still_read():
    buf = io.BytesIO()
    Image.new("RGB", (300, 200), (10, 120, 200)).save(buf, "JPEG", progressive=True)
    assert dio.load_image(buf.getvalue()).size == (300, 200)


def test_png_chunk_flood_is_refused_fast():
    flood = png_chunk_flood()
    start = time.process_time()
    with pytest.raises(ImageLoadError, match=r"flood\.png: PNG has more than \d+ chunks"):
        dio.load_image(flood, name="flood.png")
    assert time.process_time() - start < FAST_S


def test_big_jpeg_is_decoded_reduced_and_keeps_its_full_size():
    buf = io.BytesIO()
    Image.new("RGB", (4000, 3000), (10, 200, 30)).save(buf, "JPEG")
    img, size = dio.load_image_sized(buf.getvalue(), max_side=640)
    assert size == (4000, 3000) and max(img.size) == 640 and img.mode == "RGB"
    work, full = an.working_image(buf.getvalue())
    assert full == (4000, 3000) and work.size == img.size


def test_extreme_aspect_ratio_is_reduced_before_the_models_in_the_cli(tmp_path, capsys, monkeypatch):
    from tests.test_ui_support import write_tiny_checkpoints

    strip = tmp_path / "strip.png"
    Image.new("L", (39_000, 1000), 128).save(strip)
    ck = write_tiny_checkpoints(tmp_path / "ck")
    seen = []
    from har_demo.models import base as mbase

    original = mbase.HarModel.predict_proba

    def spy(self, images, *a, **k):
        seen.extend(im.size for im in images)
        return original(self, images, *a, **k)

    monkeypatch.setattr(mbase.HarModel, "predict_proba", spy)
    start = time.process_time()
    assert cli_main(["predict", str(strip), "--model", "cnn_base", "--checkpoint", str(ck / "cnn_base"), "--json"]) == 0
    assert time.process_time() - start < 10
    assert seen and max(max(s) for s in seen) <= 1024
    assert json.loads(capsys.readouterr().out)[0]["label"] in CLASSES


# ---- 2. one disk budget per request -------------------------------------------------------------------
def _class_zip(path: Path, n: int, size: int) -> Path:
    """``n`` stored (uncompressed) BMP-named images of ``size`` bytes each, under one class."""
    entries = {f"sitting/{i}.bmp": bytes([i % 256]) * size for i in range(n)}
    return _zip(path, entries, zipfile.ZIP_STORED)


def test_one_budget_across_all_zips_of_a_request(tmp_path, monkeypatch):
    zips = [_class_zip(tmp_path / f"z{k}.zip", 4, 256 * 1024) for k in range(4)]  # 1 MiB each
    monkeypatch.setattr(bt, "BATCH_MAX_BYTES", int(2.5 * 2**20))
    peak = []
    real = extract_zip_dataset

    def spy(*a, **k):
        out = real(*a, **k)
        peak.append(sum(f.stat().st_size for f in (tmp_path / "work").rglob("*") if f.is_file()))
        return out

    monkeypatch.setattr("har_demo.data.zipdata.extract_zip_dataset", spy)
    (tmp_path / "work").mkdir()
    with pytest.raises(DataError, match=r"the uploads add up to more than 2 MiB uncompressed in total"):
        bt.collect_samples(zips, tmp_path / "work")
    assert max(peak) <= 2.5 * 2**20  # never more than the one budget on disk
    budget = ExtractBudget(5, 10 * 2**20)
    extract_zip_dataset(zips[0], tmp_path / "a", budget=budget)
    assert budget.files_left == 1 and budget.bytes_left == 10 * 2**20 - 2**20
    with pytest.raises(DataError, match="more than 5 images in total"):
        extract_zip_dataset(zips[1], tmp_path / "b", budget=budget)


# ---- 3. memory: streamed, capped, returned -------------------------------------------------------------
def test_batch_images_are_decoded_reduced_and_pixels_are_capped(tmp_path, monkeypatch):
    bank = tiny_bank(tmp_path / "ck")
    paths = []
    for i, cls in enumerate(CLASSES):
        p = tmp_path / f"{cls}_{i}.png"
        Image.new("1", (3000, 2000), i % 2).save(p)
        paths.append(p)
    sizes = []
    from har_demo import evaluate as ev  # the batch decodes through evaluate.predict_dataset

    real = ev.load_image

    def spy(*a, **k):
        im = real(*a, **k)
        sizes.append(im.size)
        return im

    monkeypatch.setattr(ev, "load_image", spy)
    result = bt.evaluate_batch(bank, paths, ["fnn"], misclassified_per_model=0)
    assert len(result.predictions) == len(CLASSES) and max(max(s) for s in sizes) <= bt.BATCH_SIDE
    monkeypatch.setattr(bt, "BATCH_MAX_PIXELS", 3000 * 2000 * 2)
    sizes.clear()
    with pytest.raises(DataError, match=r"add up to more than 12 megapixels"):
        bt.evaluate_batch(bank, paths, ["fnn"])
    assert sizes == []  # refused from the headers, before any decode
    bt.release_memory()  # callable anywhere (glibc: malloc_trim; elsewhere a no-op)


# ---- 4. non-finite pixels ----------------------------------------------------------------------------------
def test_float_tiff_with_nan_and_inf_is_not_black(tmp_path):
    arr = nan_float()
    path = tmp_path / "nan.tif"
    Image.fromarray(arr, "F").save(path, "TIFF")
    got = np.asarray(dio.load_image(path))
    assert got.max() > 200 and got.std() > 30
    assert np.abs(got.astype(int) - nan_reference(arr)).mean() < 1
    Image.fromarray(np.full((8, 8), np.nan, np.float32), "F").save(path, "TIFF")
    with pytest.raises(ImageLoadError, match="no finite pixel values"):
        dio.load_image(path)
    assert np.asarray(dio.load_image(np.where(np.isfinite(arr), arr / 4, np.nan).astype(np.float32)[..., None])).max() > 0


# ---- 5. messages -------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("entries", "match"),
    [
        ({"sitting/" + "a" * 300 + ".jpg": b"x"}, r"name part of 304 bytes \(at most 255\)"),
        ({"/".join(["sitting", *["d"] * 20, "a.jpg"]): b"x"}, r"nested 21 folders deep \(at most 16\)"),
        ({"sitting/a.jpg": b"x", "sitting/a.jpg/b.jpg": b"y"}, r"'sitting/a\.jpg' is both an image and a folder"),
    ],
    ids=["long_name", "deep", "file_and_folder"],
)
def test_zip_name_problems_are_one_clear_line(tmp_path, entries, match):
    entries = {k: _jpeg() for k in entries}
    z = _zip(tmp_path / "bad.zip", entries)
    with pytest.raises(DataError, match=match) as err:
        extract_zip_dataset(z, tmp_path / "out")
    assert "\n" not in str(err.value) and not list((tmp_path / "out").rglob("*.jpg"))


def test_zip_write_error_names_the_entry_and_cleanup_never_hides_it(tmp_path, monkeypatch):
    z = _zip(tmp_path / "ok.zip", {"sitting/a.jpg": _jpeg(), "standing/b.jpg": _jpeg(1)})
    real_mkdir = Path.mkdir

    def mkdir(self, *a, **k):
        if self.name == "standing":
            raise OSError(36, "File name too long")
        return real_mkdir(self, *a, **k)

    monkeypatch.setattr(Path, "mkdir", mkdir)
    with pytest.raises(DataError, match=r"ok\.zip: cannot extract 'standing/b\.jpg' \(File name too long\)"):
        extract_zip_dataset(z, tmp_path / "out")
    assert not (tmp_path / "out" / "sitting" / "a.jpg").exists()


@pytest.mark.parametrize("box", ["nan,nan,nan,nan", "0,0,inf,10", "1,2,3", "x" * 1_000_000])
def test_bad_boxes_are_one_short_line(box):
    with pytest.raises(HarError) as err:
        an.parse_box(box, (100, 100))
    assert "\n" not in str(err.value) and len(str(err.value)) < 200


def test_api_opacity_and_names_are_checked_with_one_short_line(tmp_path, monkeypatch):
    from har_demo.ui.api import Api
    from har_demo.ui.callbacks import opacity_value

    assert opacity_value(None) == 0.5 and opacity_value("0.25") == 0.25
    for bad in ("abc", float("nan"), 2, [1]):
        with pytest.raises(HarError, match="opacity must be a number from 0 to 1"):
            opacity_value(bad)
    monkeypatch.setenv("GRADIO_TEMP_DIR", str(tmp_path / "up"))
    photo = tmp_path / "up" / "x" / "p.png"
    photo.parent.mkdir(parents=True)
    Image.new("RGB", (20, 20)).save(photo)
    api = Api(tiny_bank(tmp_path / "ck"))
    import gradio as gr

    for call, match in [
        (lambda: api.predict(str(photo), "", "predicted", "abc"), "opacity must be"),
        (lambda: api.predict(str(photo), "m" * 5000), r"unknown model 'm{50,60}\.\.\.'"),
        (lambda: api.predict(str(photo), "m" * 1_000_000), "models is 1000000 characters long"),
        (lambda: api.explain(str(photo), "m" * 5000), r"unknown model 'm{50,60}\.\.\.'"),
        (lambda: api.explain(str(photo), "fnn", "", "predicted", 0.5, "9," * 3000), r"box '9,9,.{40,60}' must be"),
        (lambda: api.predict({"url": "http://127.0.0.1:9/x.jpg", "meta": {}}), "did not arrive"),
        (lambda: api.predict(12345), "expected an uploaded file"),
        (lambda: api.predict("/etc/passwd"), "not an uploaded file"),
    ]:
        with pytest.raises(gr.Error) as err:
            call()
        assert re.search(match, err.value.message) and len(err.value.message) < 300 and "\n" not in err.value.message


def test_float16_float64_tiff_and_damaged_mpf_jpeg_are_read():
    ramp = np.tile(np.linspace(0, 1, 32), (16, 1))
    for bits in (16, 64):
        got = np.asarray(dio.load_image(float_tiff(ramp, bits)))[..., 0]
        assert np.abs(got.astype(int) - np.round(ramp * 255)).max() <= 1, bits
    base = Image.new("RGB", (40, 30), (200, 30, 60))
    got = np.asarray(dio.load_image(damaged_mpf_jpeg(base)))
    assert np.abs(got.astype(int) - (200, 30, 60)).mean() < 4
    deflated = bytearray(float_tiff(ramp, 16))
    deflated[deflated.find(struct.pack("<HHI", 259, 3, 1)) + 8] = 8  # compression: deflate
    with pytest.raises(ImageLoadError, match=r"float16 TIFF with compression 8 .* is not supported"):
        dio.load_image(bytes(deflated), name="x.tif")


def test_gradio_level_rejections_are_one_line(app_server):
    """Raw HTTP to the running app: what Gradio refuses before our code still gets one line."""
    base = app_server.url.rstrip("/")

    def call(api: str, data: list) -> str:
        req = urllib.request.Request(base + f"/gradio_api/call/{api}", data=json.dumps({"data": data}).encode(),
                                     headers={"Content-Type": "application/json"}, method="POST")
        with urllib.request.urlopen(req, timeout=20) as r:
            event_id = json.load(r)["event_id"]
        with urllib.request.urlopen(f"{base}/gradio_api/call/{api}/{event_id}", timeout=60) as r:
            stream = r.read().decode()
        assert "event: error" in stream, stream[:300]
        payload = json.loads(stream.split("data:", 1)[1].strip().splitlines()[0])
        assert payload["error"] and "\n" not in payload["error"], stream[:300]
        return payload["error"]

    url_only = {"url": "http://127.0.0.1:9/x.jpg", "meta": {"_type": "gradio.FileData"}}
    assert "takes 4 inputs" in call("predict", ["x"])
    assert "image must be an uploaded file" in call("predict", [123, "", "predicted", 0.5])
    assert "image must be an uploaded file" in call("predict", ["/etc/passwd", "", "predicted", 0.5])
    assert "image must be an uploaded file" in call("predict", [url_only, "", "predicted", 0.5])
    assert "opacity 'abc' is not a valid number" in call("predict", [None, "", "predicted", "abc"])
    assert "files must be an uploaded file" in call("batch", [[7], ""])
    assert "Traceback" not in app_server.log()


# ---- 6. CLI ---------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def cli_ckpt(tmp_path_factory) -> Path:
    from tests.test_ui_support import write_tiny_checkpoints

    return write_tiny_checkpoints(tmp_path_factory.mktemp("cli_ck") / "ck")


@pytest.mark.parametrize(
    ("extra", "match"),
    [
        (["--method", "occlusion", "--opt", "batch=0"], "option batch must be a whole number >= 1"),
        (["--method", "occlusion", "--opt", "steps=none"], "has no option steps"),
        (["--method", "integrated_gradients", "--opt", "steps=none"], "option steps must be a whole number >= 1"),
        (["--input-size", "-5"], "input size must be a whole number from 16 to 1024"),
        (["--input-size", "1"], "input size must be a whole number from 16 to 1024"),
    ],
)
def test_cli_explain_bad_options_are_one_line(tmp_path, capsys, cli_ckpt, extra, match):
    photo = tmp_path / "p.png"
    Image.new("RGB", (40, 30), (1, 2, 3)).save(photo)
    argv = ["explain", str(photo), "--model", "cnn_base", "--checkpoint", str(cli_ckpt / "cnn_base"), "--out", str(tmp_path / "o.png"), *extra]
    assert cli_main(argv) == 2
    err = capsys.readouterr().err
    assert match in err and err.count("\n") == 1 and "Traceback" not in err


def test_cli_missing_path_with_a_newline_stays_one_line(capsys, cli_ckpt):
    assert cli_main(["predict", "nope\nerror: all good\x1b[2J.jpg", "--model", "cnn_base", "--checkpoint", str(cli_ckpt / "cnn_base")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "\\n" in err and "\x1b" not in err and "file not found" in err


def test_corrupt_tiff_is_refused_with_libtiffs_reason_and_nothing_on_stderr(capfd):
    with pytest.raises(ImageLoadError, match=r"x\.tif: image is corrupt \(JPEGLib: Unsupported marker"):
        dio.load_image(corrupt_jpeg_tiff(), name="x.tif")  # the app's path: no stderr capture needed
    buf = io.BytesIO()
    Image.new("RGB", (30, 20)).save(buf, "TIFF", compression="tiff_lzw")
    data = bytearray(buf.getvalue())
    data[8 + 30] ^= 0x5A  # inside the LZW strip
    with pytest.raises(ImageLoadError, match=r"image is corrupt"):
        dio.load_image(bytes(data), name="y.tif")
    assert capfd.readouterr().err == ""


def test_cli_corrupt_tiff_is_an_error_and_libtiff_stays_quiet(tmp_path, capfd, cli_ckpt):
    bad = tmp_path / "corrupt.tif"
    bad.write_bytes(corrupt_jpeg_tiff())
    assert cli_main(["predict", str(bad), "--model", "cnn_base", "--checkpoint", str(cli_ckpt / "cnn_base")]) == 2
    out = capfd.readouterr()
    assert out.err.startswith("error: ") and out.err.count("\n") == 1 and "corrupt.tif: image is corrupt" in out.err
    ok = tmp_path / "ok.tif"
    Image.new("RGB", (30, 20), (5, 6, 7)).save(ok, "TIFF", compression="tiff_lzw")
    assert cli_main(["predict", str(ok), "--model", "cnn_base", "--checkpoint", str(cli_ckpt / "cnn_base")]) == 0
    assert capfd.readouterr().err == ""


# ---- 7. leaks and exposure ---------------------------------------------------------------------------------------
def test_no_absolute_server_paths_in_model_listing_cards_or_errors(tmp_path, monkeypatch):
    from har_demo.ui.bank import ModelBank
    from har_demo.ui.redact import redact_paths
    from har_demo.ui.render import card_header
    from tests.test_ui_support import write_tiny_checkpoints

    root = write_tiny_checkpoints(tmp_path / "deep" / "secret" / "checkpoints")
    monkeypatch.setenv("HAR_CHECKPOINT_DIR", str(root))
    bank = ModelBank.load(["cnn_base", "fnn", "cnn_gen"], device="cpu")
    text = " ".join(e.source + card_header(e) for e in bank.entries.values())
    assert str(tmp_path) not in text and "checkpoints/cnn_base" in text and "checkpoints/cnn_gen" in text
    assert redact_paths("cannot read /srv/x/y/model.pt; see https://huggingface.co/a/b") == "cannot read model.pt; see https://huggingface.co/a/b"


def test_batch_csv_cells_cannot_be_formulas(tmp_path):
    rows = [{"file": name, "true": "", "model": "fnn", "predicted": "sitting", **{f"p_{c}": 0.2 for c in CLASSES}, "correct": ""}
            for name in ("=HYPERLINK(\"http://x\")", "+1.jpg", "-2.jpg", "@SUM(A1).jpg", "\tx.jpg", "ok.jpg")]
    with bt.write_csv(rows).open(encoding="utf-8") as fh:
        files = [r["file"] for r in csv.DictReader(fh)]
    assert files[:5] == ["'=HYPERLINK(\"http://x\")", "'+1.jpg", "'-2.jpg", "'@SUM(A1).jpg", "'\tx.jpg"] and files[5] == "ok.jpg"


def test_ui_events_are_private_and_safe_with_hostile_values(tmp_path):
    from har_demo.ui.layout import build_demo

    demo, _ui, cb = build_demo(tiny_bank(tmp_path / "ck"))
    deps = demo.config["dependencies"]
    ui_deps = [d for d in deps if str(d.get("api_name", "")).startswith("ui_")]
    assert ui_deps and all(d["api_visibility"] == "private" for d in ui_deps)
    assert sorted(d["api_name"] for d in deps if d["api_visibility"] == "public") == ["batch", "explain", "models", "predict"]
    state = an.analyse(cb.bank, Image.new("RGB", (32, 32), (9, 9, 9)), ["fnn"])
    for out in (
        cb.analyse({"path": "/etc/passwd"}, ["fnn"], "predicted", 0.5, "", True, False),
        cb.analyse(42, ["fnn"], "predicted", 0.5, "", True, False),
        cb.redraw(state, "abc", "", True, False),
        cb.box_changed(state, 0.5, "nan,nan,nan,nan" * 1000, True, False),
        cb.target_changed(state, "x" * 100_000, 0.5, "", True, False),
        cb.batch(["/etc/passwd"], ["fnn"], progress=lambda *a, **k: None),
    ):
        line = out.get(cb.ui.status) or out.get(cb.ui.batch_status)
        assert isinstance(line, str) and line and "\n" not in line and len(line) < 400 and "/etc" not in line, line
        assert "went wrong" not in line, line  # each value is named, not an unexpected error (e.g. a wrong call)


def test_batch_stops_when_the_client_has_gone(tmp_path):
    from types import SimpleNamespace

    from har_demo.ui.callbacks import client_gone

    bank = tiny_bank(tmp_path / "ck")
    paths = []
    for i in range(bt.CHUNK * 2):
        p = tmp_path / f"sitting_{i}.png"
        Image.new("RGB", (16, 16), (i, 9, 9)).save(p)
        paths.append(p)
    asked = []

    def cancelled() -> bool:
        asked.append(1)
        return len(asked) > 1  # gone after the first photo (asked before each photo and model call)

    with pytest.raises(bt.BatchCancelled, match=rf"batch stopped after 1 of {2 * bt.CHUNK} images"):
        bt.evaluate_batch(bank, paths, ["fnn"], cancelled=cancelled)
    event = SimpleNamespace(session_hash="s1", alive=True)
    blocks = SimpleNamespace(_queue=SimpleNamespace(active_jobs=[None, [event]]))
    gone = client_gone(blocks, SimpleNamespace(session_hash="s1"))
    assert gone() is False
    event.alive = False  # what Gradio's queue does when the client's stream disconnects
    assert gone() is True
    event.alive = True
    blocks._queue.active_jobs[1] = None  # what a cancel does: the event leaves the running jobs
    assert gone() is True
    assert client_gone(blocks, None) is None and client_gone(None, SimpleNamespace(session_hash="s1")) is None
