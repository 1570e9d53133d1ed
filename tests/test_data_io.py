"""data/io.load_image: orientation, colour modes, and a clear ImageLoadError for every bad file."""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from har_demo.data import io as hio
from har_demo.data.io import load_image
from har_demo.errors import ImageLoadError


def _jpeg_bytes(im: Image.Image, **kw) -> bytes:
    buf = io.BytesIO()
    im.save(buf, "JPEG", **kw)
    return buf.getvalue()


def _asymmetric(w: int = 40, h: int = 20) -> Image.Image:
    """Red left half, blue right half: orientation is visible in the pixels."""
    arr = np.zeros((h, w, 3), np.uint8)
    arr[:, : w // 2] = (255, 0, 0)
    arr[:, w // 2 :] = (0, 0, 255)
    return Image.fromarray(arr)


def test_exif_rotated_jpeg_is_rotated(tmp_path):
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 CW to display"
    p = tmp_path / "rot.jpg"
    p.write_bytes(_jpeg_bytes(_asymmetric(), exif=exif.tobytes(), quality=95))
    im = load_image(p)
    assert im.size == (20, 40)  # width and height swapped
    arr = np.asarray(im).astype(int)
    top, bottom = arr[2, 10], arr[-3, 10]
    assert top[0] > 200 and top[2] < 60  # the red (left) half is now on top
    assert bottom[2] > 200 and bottom[0] < 60


@pytest.mark.parametrize(
    "mode, fmt",
    [("CMYK", "JPEG"), ("P", "PNG"), ("LA", "PNG"), ("RGBA", "PNG"), ("1", "PNG"), ("L", "PNG"), ("I;16", "PNG")],
)
def test_modes_converted_to_rgb(tmp_path, mode, fmt):
    src = _asymmetric()
    if mode == "I;16":
        arr = (np.arange(40 * 20).reshape(20, 40) * 60).astype(np.uint16)
        im = Image.fromarray(arr, "I;16")
    else:
        im = src.convert(mode)
    p = tmp_path / f"img.{fmt.lower()}"
    im.save(p, fmt)
    out = load_image(p)
    assert out.mode == "RGB" and out.size == (40, 20)
    if mode == "I;16":  # 16-bit range stretched to 0..255, not clipped to white
        a = np.asarray(out)[..., 0]
        assert a.min() == 0 and a.max() == 255


def test_transparency_composited_on_white(tmp_path):
    im = Image.new("RGBA", (8, 8), (0, 0, 0, 0))
    p = tmp_path / "clear.png"
    im.save(p)
    assert np.asarray(load_image(p)).min() == 255


@pytest.mark.parametrize("content, message", [
    (b"", "empty"),
    (b"this is plain text, not a picture\n" * 4, "not a recognised image"),
    (bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8)), "not a recognised image"),
])
def test_bad_files_name_the_file(tmp_path, content, message):
    p = tmp_path / "holiday_photo.jpg"
    p.write_bytes(content)
    with pytest.raises(ImageLoadError, match=message) as err:
        load_image(p)
    assert "holiday_photo.jpg" in str(err.value)


def test_truncated_jpeg(tmp_path):
    rng = np.random.default_rng(1)
    data = _jpeg_bytes(Image.fromarray(rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)))
    p = tmp_path / "cut.jpg"
    p.write_bytes(data[: len(data) // 2])
    with pytest.raises(ImageLoadError, match="cut.jpg.*(corrupt|truncated)"):
        load_image(p)


def test_missing_file_and_directory(tmp_path):
    with pytest.raises(ImageLoadError, match="nope.jpg.*not found"):
        load_image(tmp_path / "nope.jpg")
    with pytest.raises(ImageLoadError, match="not a file"):
        load_image(tmp_path)


def _png_header_only(width: int, height: int) -> bytes:
    """A tiny PNG claiming huge dimensions (decompression bomb shape)."""
    def chunk(tag: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + tag + body + struct.pack(">I", zlib.crc32(tag + body))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + chunk(b"IEND", b"")


@pytest.mark.parametrize("side", [8000, 30000])  # over our limit only / over PIL's own bomb limit too
def test_decompression_bomb(tmp_path, side):
    p = tmp_path / "bomb.png"
    p.write_bytes(_png_header_only(side, side))
    assert p.stat().st_size < 1000
    with pytest.raises(ImageLoadError, match="bomb.png.*(too large|megapixels)"):
        load_image(p)


def test_file_over_byte_limit(tmp_path, monkeypatch):
    monkeypatch.setattr(hio, "MAX_FILE_BYTES", 100)
    p = tmp_path / "big.jpg"
    p.write_bytes(_jpeg_bytes(_asymmetric(64, 64)))
    with pytest.raises(ImageLoadError, match="big.jpg.*MiB"):
        load_image(p)


def test_eps_is_never_decoded(tmp_path):
    p = tmp_path / "doc.jpg"
    p.write_bytes(b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\nshowpage\n")
    with pytest.raises(ImageLoadError, match="not a recognised image"):
        load_image(p)


def test_lazily_opened_truncated_pil_image():
    data = _jpeg_bytes(Image.fromarray(np.random.default_rng(2).integers(0, 255, (64, 64, 3), dtype=np.uint8)))
    im = Image.open(io.BytesIO(data[: len(data) // 2]))
    with pytest.raises(ImageLoadError, match="corrupt or truncated"):
        load_image(im, name="upload.jpg")


def test_arrays_and_bytes():
    assert np.asarray(load_image(np.full((4, 5, 3), 0.5))).max() == 127  # float in [0, 1] scaled
    gray = load_image(np.full((4, 5), 200, np.uint8))
    assert gray.size == (5, 4) and np.asarray(gray)[0, 0].tolist() == [200, 200, 200]
    assert load_image(_jpeg_bytes(_asymmetric())).size == (40, 20)
    with pytest.raises(ImageLoadError, match="shape"):
        load_image(np.zeros((4, 5, 2), np.uint8))
