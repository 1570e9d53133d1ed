"""Robust image decoding: every photo that reaches a model went through ``load_image``.

* EXIF orientation applied; any PIL mode (CMYK, I;16, P, LA, RGBA, 1, ...) converted to RGB
  (transparency composited on white); first frame of animated / multi-page files.
* A clear ``ImageLoadError`` naming the file for missing, unreadable, empty, truncated, non-image files,
  files over ``MAX_FILE_BYTES`` and images over ``MAX_PIXELS`` (decompression bombs).
* Only the decoders in ``DECODE_FORMATS`` are used (never EPS, which would run Ghostscript).
* Float arrays with values in [0, 1] are scaled to 0..255.
"""

from __future__ import annotations

import io
import json
import os
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from ..errors import DataError, HarError, ImageLoadError

MAX_PIXELS = int(os.environ.get("HAR_MAX_PIXELS", "40000000"))  # ~ 6300 x 6300
MAX_FILE_BYTES = int(os.environ.get("HAR_MAX_FILE_BYTES", str(25 * 1024 * 1024)))
MIN_SIDE = 1
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff")
# Only these decoders are ever tried (no EPS/Ghostscript, no exotic plugins); MPO is opened by JPEG.
DECODE_FORMATS = ("JPEG", "PNG", "GIF", "BMP", "WEBP", "TIFF")

ImageSource = str | Path | bytes | Image.Image | np.ndarray


def _to_rgb(im: Image.Image) -> Image.Image:
    if im.mode == "RGB":
        return im
    if im.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        arr = np.asarray(im, dtype=np.float64)
        lo, hi = float(arr.min()), float(arr.max())
        arr = (arr - lo) / (hi - lo) * 255.0 if hi > lo else np.zeros_like(arr)
        return Image.fromarray(arr.astype(np.uint8)).convert("RGB")
    if im.mode == "P" and "transparency" in im.info:
        im = im.convert("RGBA")
    if im.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        im = im.convert("RGBA")
        bg = Image.new("RGBA", im.size, (255, 255, 255, 255))
        return Image.alpha_composite(bg, im).convert("RGB")
    return im.convert("RGB")


def _check_size(w: int, h: int, label: str) -> None:
    if w < MIN_SIDE or h < MIN_SIDE:
        raise ImageLoadError(f"{label}: image has no pixels ({w}x{h})")
    if w * h > MAX_PIXELS:
        raise ImageLoadError(
            f"{label}: image is {w}x{h} = {w * h / 1e6:.0f} megapixels, over the {MAX_PIXELS / 1e6:.0f} MP limit "
            "(possible decompression bomb); resize it first"
        )


def load_image(source: ImageSource, name: str | None = None) -> Image.Image:
    """Decode ``source`` (path, bytes, PIL image or HxWx{1,3,4} uint8 array) to an RGB PIL image."""
    label = name or (str(source) if isinstance(source, (str, Path)) else "image")
    if isinstance(source, np.ndarray):
        arr = source
        if arr.ndim == 2:
            arr = np.stack([arr] * 3, axis=-1)
        if arr.ndim != 3 or arr.shape[2] not in (1, 3, 4):
            raise ImageLoadError(f"{label}: array of shape {arr.shape} is not an image")
        _check_size(arr.shape[1], arr.shape[0], label)
        if arr.dtype != np.uint8:
            arr = np.asarray(arr, dtype=np.float64)
            if arr.size and np.issubdtype(source.dtype, np.floating) and float(np.nanmax(arr)) <= 1.0:
                arr = arr * 255.0  # float images in [0, 1]
            arr = np.clip(np.nan_to_num(arr), 0, 255).astype(np.uint8)
        if arr.shape[2] == 1:
            arr = np.repeat(arr, 3, axis=2)
        return _to_rgb(Image.fromarray(arr))
    if isinstance(source, Image.Image):
        _check_size(*source.size, label)
        try:  # a lazily opened PIL image may still fail to decode here
            return _to_rgb(ImageOps.exif_transpose(source) or source)
        except (OSError, SyntaxError, ValueError, EOFError) as err:
            raise ImageLoadError(f"{label}: image is corrupt or truncated ({err})") from None
    if isinstance(source, (str, Path)):
        path = Path(source)
        if not path.exists():
            raise ImageLoadError(f"{label}: file not found")
        if not path.is_file():
            raise ImageLoadError(f"{label}: not a file")
        size = path.stat().st_size
        if size == 0:
            raise ImageLoadError(f"{label}: file is empty (0 bytes)")
        if size > MAX_FILE_BYTES:
            raise ImageLoadError(f"{label}: file is {size / 2**20:.1f} MiB, over the {MAX_FILE_BYTES / 2**20:.0f} MiB limit")
        try:
            data = path.read_bytes()
        except OSError as err:
            raise ImageLoadError(f"{label}: cannot read file ({err.strerror or err})") from None
    elif isinstance(source, (bytes, bytearray)):
        data = bytes(source)
        if not data:
            raise ImageLoadError(f"{label}: file is empty (0 bytes)")
        if len(data) > MAX_FILE_BYTES:
            raise ImageLoadError(f"{label}: file is {len(data) / 2**20:.1f} MiB, over the {MAX_FILE_BYTES / 2**20:.0f} MiB limit")
    else:
        raise ImageLoadError(f"{label}: unsupported input type {type(source).__name__}")
    return _decode(data, label)


def _decode(data: bytes, label: str) -> Image.Image:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # PIL's notes on odd metadata (e.g. corrupt EXIF) must not reach users
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            im = Image.open(io.BytesIO(data), formats=DECODE_FORMATS)
            _check_size(*im.size, label)  # header only: nothing decoded yet
            im.seek(0)
            im.load()
            im = ImageOps.exif_transpose(im) or im
            return _to_rgb(im)
    except ImageLoadError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise ImageLoadError(f"{label}: image is too large (possible decompression bomb)") from None
    except UnidentifiedImageError:
        raise ImageLoadError(f"{label}: not a recognised image file (JPEG, PNG, GIF, BMP, WebP, TIFF)") from None
    except (OSError, SyntaxError, ValueError, EOFError) as err:
        raise ImageLoadError(f"{label}: image is corrupt or truncated ({err})") from None


def read_json_file(path: str | Path, what: str, error: type[HarError] = DataError, label: str | None = None):
    """Parse a JSON file; a missing file or bad JSON raises ``error`` with one line naming
    ``label`` (default: the path) and ``what`` the file should be."""
    name = label or str(path)
    p = Path(path)
    if not p.is_file():
        raise error(f"{name}: {what} file not found")
    try:
        return json.loads(p.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise error(f"{name}: not a valid JSON file ({err})") from None
