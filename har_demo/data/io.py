"""Robust image decoding: every photo that reaches a model went through ``load_image``.

* EXIF orientation applied; any PIL mode (CMYK, I;16, P, LA, RGBA, 1, ...) converted to RGB
  (transparency composited on white); first frame of animated / multi-page files.
* A clear ``ImageLoadError`` naming the file for missing, unreadable, empty, truncated, non-image files,
  files over ``MAX_FILE_BYTES`` and images over ``MAX_PIXELS`` (decompression bombs).
* Only the decoders in ``DECODE_FORMATS`` are used (never EPS, which would run Ghostscript).
* Float arrays with values in [0, 1] are scaled to 0..255; float / 16-bit images are scaled by
  their finite range (NaN / inf pixels never turn the picture black; all non-finite is refused).
* Bounded decode cost whatever the format: before anything is decoded, a JPEG with more than
  ``MAX_JPEG_SCANS`` scans (progressive "scan bombs") and a PNG with more than ``MAX_PNG_CHUNKS``
  chunks (chunk floods) are refused; ``max_side`` decodes JPEGs at a reduced DCT scale (``draft``)
  and reduces every image before any full-size conversion.
* Float16 / float64 TIFFs (which Pillow cannot open) are read when uncompressed, else named;
  JPEGs with a damaged MPF (multi-picture) header are read as the plain JPEG they are.
* Labels are made safe for one-line messages (control characters escaped, long names cut).
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import platform
import re
import struct
import sys
import tempfile
import threading
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from .. import settings
from ..errors import DataError, HarError, ImageLoadError

MAX_PIXELS = settings.get("HAR_MAX_PIXELS")  # ~ 6300 x 6300
MAX_FILE_BYTES = settings.get("HAR_MAX_FILE_BYTES")
MIN_SIDE = 1
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff")
# Only these decoders are ever tried (no EPS/Ghostscript, no exotic plugins); MPO is opened by JPEG.
DECODE_FORMATS = ("JPEG", "PNG", "GIF", "BMP", "WEBP", "TIFF")
# Work limits checked on the raw bytes before decoding (cost is linear in scans x blocks / chunks):
# ordinary progressive JPEGs have ~10 scans (libjpeg-turbo suggests refusing over 500), PNG encoders
# write a few thousand IDAT chunks at most for a 25 MB file.
MAX_JPEG_SCANS = settings.get("HAR_MAX_JPEG_SCANS")
MAX_PNG_CHUNKS = settings.get("HAR_MAX_PNG_CHUNKS")
MAX_LABEL_CHARS = 120
# Decode untrusted files (paths, bytes) in the sandbox (``data.sandbox``: worker processes under hard
# memory / CPU / wall-time limits); "0" decodes in this process (trusted bulk data: training).
SANDBOX = bool(settings.get("HAR_DECODE_SANDBOX"))
# A request's decode budget (``decode_budget``) in sandbox CPU-seconds: ordinary JPEGs cost ~10 ms.
MAX_DECODE_CPU_S = settings.get("HAR_MAX_DECODE_CPU_S")
# Set by the CLI: the C libraries' (libtiff, libjpeg) own stderr lines are captured during a decode
# (process-wide, so only where no other thread writes to stderr) instead of reaching the terminal.
CAPTURE_NATIVE_STDERR = False
_STDERR_LOCK = threading.Lock()

ImageSource = str | Path | bytes | Image.Image | np.ndarray


def safe_label(text: object, limit: int = MAX_LABEL_CHARS) -> str:
    """``text`` fit for a one-line message: control characters (newlines, ANSI escapes) escaped,
    cut to ``limit`` characters (an echoed name never carries a second, caller-controlled line)."""
    out = "".join(ch if ch.isprintable() else ch.encode("unicode_escape").decode("ascii") for ch in str(text))
    return out if len(out) <= limit else out[: limit - 3] + "..."


def _scale_to_uint8(arr: np.ndarray, label: str) -> np.ndarray:
    """Float / wide-integer pixels -> uint8 by their finite min..max; NaN -> 0, +inf -> 255, -inf -> 0.
    Works in place on one float copy (float32 above 4 MP): a 40 MP float image stays well inside
    the decode sandbox's memory limit."""
    src = np.asarray(arr)
    a = src.astype(np.float64 if src.size <= 2**22 else np.float32, copy=True)
    finite = np.isfinite(a)
    if not finite.any():
        raise ImageLoadError(f"{label}: image has no finite pixel values (all NaN or infinite)")
    lo = float(np.min(a, where=finite, initial=np.inf))
    hi = float(np.max(a, where=finite, initial=-np.inf))
    posinf = np.isposinf(a)
    np.copyto(a, lo, where=~finite)  # NaN / -inf -> 0 after scaling
    if hi > lo:
        a -= lo
        a /= hi - lo
        a *= 255.0
    else:
        a[:] = 0.0
    a[posinf] = 255.0
    np.clip(a, 0, 255, out=a)
    return a.astype(np.uint8)


def _to_rgb(im: Image.Image, label: str = "image") -> Image.Image:
    if im.mode == "RGB":
        return im
    if im.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        return Image.fromarray(_scale_to_uint8(np.asarray(im), label)).convert("RGB")
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


def load_image(source: ImageSource, name: str | None = None, max_side: int | None = None,
               sandbox: bool | None = None) -> Image.Image:
    """Decode ``source`` (path, bytes, PIL image or HxWx{1,3,4} uint8 array) to an RGB PIL image;
    with ``max_side`` the result's long side is at most that (reduced while/just after decoding).
    Files and bytes are decoded in the sandbox (``sandbox``; default ``SANDBOX``)."""
    return load_image_sized(source, name, max_side, sandbox)[0]


def load_image_sized(source: ImageSource, name: str | None = None, max_side: int | None = None,
                     sandbox: bool | None = None) -> tuple[Image.Image, tuple[int, int]]:
    """``load_image`` and the image's full (W, H) (after EXIF orientation) before any reduction.
    The pixels actually decoded are charged to the thread's ``decode_budget`` (when one is open)."""
    label = safe_label(name or (str(source) if isinstance(source, (str, Path)) else "image"))
    use = (SANDBOX if sandbox is None else sandbox) and sys.platform != "win32"  # (no rlimits there)
    if use and isinstance(source, (str, Path, bytes, bytearray)):
        from .sandbox import decode_in_sandbox

        data = _read_source(source, label)
        check_decode_work(data, label)  # the fast path: refused here, nothing sent to a worker
        limits = {key: globals()[key] for key in _SANDBOX_LIMITS}
        im, size, decoded, cpu = decode_in_sandbox(data, label, max_side, limits)
    else:
        cpu = 0.0  # (in-process decodes are not metered)
        im = _load(source, label, max_side)
        size = im.info.pop("har_full_size", im.size)
        decoded = im.info.pop("har_decoded_pixels", im.size[0] * im.size[1])
        if max_side:
            im = _reduce(im, max_side, owned=not isinstance(source, Image.Image))
    _charge(decoded, cpu)
    return im, size


_SANDBOX_LIMITS = ("MAX_PIXELS", "MAX_JPEG_SCANS", "MAX_PNG_CHUNKS", "MAX_FILE_BYTES")  # sent with every file


def _sandbox_job(request: dict, data: bytes) -> tuple[np.ndarray, tuple[int, int], int]:
    """The sandbox worker's side (``sandbox.serve``): this process's limits set to the parent's,
    ``data`` decoded and reduced; (RGB uint8 array, full (W, H), pixels decoded)."""
    global CAPTURE_NATIVE_STDERR, SANDBOX
    CAPTURE_NATIVE_STDERR = True  # one thread in a worker: libjpeg's lines become our error lines
    SANDBOX = False
    for key, value in request["limits"].items():
        if key in _SANDBOX_LIMITS:
            globals()[key] = int(value)
    im = _decode(data, request["label"], request["max_side"])
    size = im.info.get("har_full_size", im.size)
    decoded = im.info.get("har_decoded_pixels", im.size[0] * im.size[1])
    if request["max_side"]:
        im = _reduce(im, request["max_side"], owned=True)
    return np.asarray(im.convert("RGB") if im.mode != "RGB" else im, dtype=np.uint8), size, decoded


class DecodeBudgetExceeded(DataError):
    """The images of one request decoded more pixels than its budget (stops the request)."""


_BUDGET = threading.local()  # .meter: the open decode_budget of this thread


class _Meter:
    def __init__(self, limit: int, cpu_limit: float) -> None:
        self.limit, self.used, self.cpu_limit, self.cpu = limit, 0, cpu_limit, 0.0


@contextlib.contextmanager
def decode_budget(max_pixels: int, max_cpu_s: float = MAX_DECODE_CPU_S):
    """Within the block, every ``load_image`` on this thread adds the pixels it actually decoded
    (not what a header claims: files Pillow cannot open count too) and the sandbox's CPU-seconds
    for it; over ``max_pixels`` or ``max_cpu_s`` -> ``DecodeBudgetExceeded`` (one line). Yields
    the meter (``.used``, ``.cpu``)."""
    saved = getattr(_BUDGET, "meter", None)
    _BUDGET.meter = meter = _Meter(max_pixels, max_cpu_s)
    try:
        yield meter
    finally:
        _BUDGET.meter = saved


def _charge(pixels: int, cpu: float = 0.0) -> None:
    meter = getattr(_BUDGET, "meter", None)
    if meter is None:
        return
    meter.used += int(pixels)
    meter.cpu += cpu
    if meter.cpu > meter.cpu_limit:
        raise DecodeBudgetExceeded(
            f"the batch's images took more than {meter.cpu_limit:g} CPU-seconds to decode; send fewer or ordinary (JPEG, PNG) images"
        )
    if meter.used > meter.limit:
        raise DecodeBudgetExceeded(
            f"the batch's images add up to more than {meter.limit / 1e6:.0f} megapixels decoded; send fewer or smaller images"
        )


def _reduce(im: Image.Image, max_side: int, owned: bool = False) -> Image.Image:
    """``im`` with its long side at most ``max_side`` (Pillow's ``thumbnail``: box-reduce, then
    LANCZOS); ``owned``: ``im`` may be changed in place (no full-size copy)."""
    if max(im.size) <= max_side:
        return im
    if not owned:
        im = im.copy()
    im.thumbnail((max_side, max_side), Image.LANCZOS)
    return im


def _load(source: ImageSource, label: str, max_side: int | None) -> Image.Image:
    if isinstance(source, np.ndarray):
        arr = source
        if arr.ndim == 2:
            arr = np.stack([arr] * 3, axis=-1)
        if arr.ndim != 3 or arr.shape[2] not in (1, 3, 4):
            raise ImageLoadError(f"{label}: array of shape {arr.shape} is not an image")
        _check_size(arr.shape[1], arr.shape[0], label)
        if arr.dtype != np.uint8:
            arr = np.asarray(arr, dtype=np.float64)
            finite = np.isfinite(arr)
            if arr.size and not finite.any():
                raise ImageLoadError(f"{label}: image has no finite pixel values (all NaN or infinite)")
            if arr.size and np.issubdtype(source.dtype, np.floating) and float(arr[finite].max()) <= 1.0:
                arr = arr * 255.0  # float images in [0, 1]
            arr = np.clip(np.nan_to_num(arr, nan=0.0, posinf=255.0, neginf=0.0), 0, 255).astype(np.uint8)
        if arr.shape[2] == 1:
            arr = np.repeat(arr, 3, axis=2)
        return _to_rgb(Image.fromarray(arr), label)
    if isinstance(source, Image.Image):
        _check_size(*source.size, label)
        try:  # a lazily opened PIL image may still fail to decode here
            return _to_rgb(ImageOps.exif_transpose(source) or source, label)
        except (OSError, SyntaxError, ValueError, EOFError) as err:
            raise ImageLoadError(f"{label}: image is corrupt or truncated ({err})") from None
    if isinstance(source, (str, Path, bytes, bytearray)):
        return _decode(_read_source(source, label), label, max_side)
    raise ImageLoadError(f"{label}: unsupported input type {type(source).__name__}")


def _read_source(source: str | Path | bytes | bytearray, label: str) -> bytes:
    """The bytes of a file or buffer, after the cheap checks (missing, not a file, empty, too big)."""
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
            return path.read_bytes()
        except OSError as err:
            raise ImageLoadError(f"{label}: cannot read file ({err.strerror or err})") from None
    data = bytes(source)
    if not data:
        raise ImageLoadError(f"{label}: file is empty (0 bytes)")
    if len(data) > MAX_FILE_BYTES:
        raise ImageLoadError(f"{label}: file is {len(data) / 2**20:.1f} MiB, over the {MAX_FILE_BYTES / 2**20:.0f} MiB limit")
    return data


# ---- work limits on the raw bytes ---------------------------------------------------------------
# The next marker in entropy-coded data: 0xFF not followed by a stuffed 00, a restart marker or fill.
_JPEG_NEXT_MARKER = re.compile(rb"\xff[^\x00\xd0-\xd7\xff]")


def _jpeg_scans(data: bytes) -> int:
    """Start-of-scan markers of the first image, found by walking the marker segments (bytes inside
    a COM / APPn segment or an EXIF thumbnail are skipped by length; entropy-coded data is searched
    for its next marker); linear in the file size."""
    pos, scans, end = 2, 0, len(data)
    while pos + 4 <= end:
        if data[pos] != 0xFF:  # garbage between segments: resynchronise on the next marker
            m = _JPEG_NEXT_MARKER.search(data, pos)
            if m is None:
                break
            pos = m.start()
            continue
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        if marker == 0xD9:  # EOI: later MPO frames are never decoded
            break
        if marker in (0x01, 0xD8) or 0xD0 <= marker <= 0xD7:
            pos += 2
            continue
        (length,) = struct.unpack_from(">H", data, pos + 2)
        pos += 2 + max(length, 2)
        if marker == 0xDA:
            scans += 1
            m = _JPEG_NEXT_MARKER.search(data, pos)
            if m is None:
                break
            pos = m.start()
    return scans


def _tiff_ifd(data: bytes):
    """The first directory of a TIFF (Pillow's tag parser; nothing decoded) or None."""
    from PIL import TiffImagePlugin

    try:
        ifd = TiffImagePlugin.ImageFileDirectory_v2(data[:8])
        fp = io.BytesIO(data)
        fp.seek(ifd.next)
        ifd.load(fp)
        return ifd
    except Exception:  # noqa: BLE001 - not even a readable TIFF directory
        return None


def _tag(ifd, tag: int, default: int = 0) -> int:
    value = ifd.get(tag, default)
    value = value[0] if isinstance(value, tuple) and value else value
    try:
        return int(value)
    except (TypeError, ValueError):
        return default


def check_decode_work(data: bytes, label: str) -> None:
    """Refuse, before decoding, files whose decode cost is out of proportion to their size. The
    fast path only: whatever gets through is still bounded by the decode sandbox's limits."""
    if data[:2] == b"\xff\xd8":
        scans = _jpeg_scans(data)
        if scans > MAX_JPEG_SCANS:
            raise ImageLoadError(
                f"{label}: JPEG has {scans} scans, over the limit of {MAX_JPEG_SCANS} "
                "(every scan is another pass over the whole image); re-save it as an ordinary JPEG"
            )
    elif data[:8] == b"\x89PNG\r\n\x1a\n":
        pos, chunks, end = 8, 0, len(data)
        while pos + 8 <= end:
            (length,) = struct.unpack_from(">I", data, pos)
            chunks += 1
            if chunks > MAX_PNG_CHUNKS:
                raise ImageLoadError(
                    f"{label}: PNG has more than {MAX_PNG_CHUNKS} chunks (a chunk flood); re-save it as an ordinary PNG"
                )
            if data[pos + 4 : pos + 8] == b"IEND":
                break
            pos += 12 + length
    elif data[:4] in (b"II*\x00", b"MM\x00*"):
        ifd = _tiff_ifd(data)
        if ifd is None:
            return
        tw, th = _tag(ifd, 322), _tag(ifd, 323)
        if tw * th > MAX_PIXELS:  # one tile is decoded whole, whatever the image size
            raise ImageLoadError(
                f"{label}: TIFF tile is {tw}x{th} = {tw * th / 1e6:.0f} megapixels, over the {MAX_PIXELS / 1e6:.0f} MP limit "
                "(possible decompression bomb); re-save it untiled"
            )


_TIFF_STATE = threading.local()  # .errors: the libtiff errors of the decode running on this thread
_TIFF_HANDLERS: list = []  # the installed ctypes callbacks (kept alive), empty until installed
_TIFF_INSTALL_LOCK = threading.Lock()


def _install_tiff_handlers() -> None:
    """Route libtiff's (process-wide) error and warning handlers here: warnings are dropped, errors
    are recorded for the decode that raised them (``_libtiff_errors``) - nothing goes to stderr,
    and a strip libtiff could not decode is refused instead of returned half-decoded. Best effort:
    without a loadable libtiff nothing changes."""
    with _TIFF_INSTALL_LOCK:
        if _TIFF_HANDLERS:
            return
        import ctypes
        import ctypes.util
        import glob
        import re

        import PIL

        candidates = sorted(glob.glob(os.path.join(os.path.dirname(PIL.__file__), "..", "pillow.libs", "libtiff*.so*")))
        candidates.append(ctypes.util.find_library("tiff") or "")
        handler_t = ctypes.CFUNCTYPE(None, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_void_p)

        libc = None
        if platform.machine() in ("x86_64", "AMD64") and sys.platform.startswith("linux"):
            with contextlib.suppress(OSError):  # va_list is a plain pointer there: vsnprintf can format it
                libc = ctypes.CDLL(None)
                libc.vsnprintf.argtypes = [ctypes.c_char_p, ctypes.c_size_t, ctypes.c_char_p, ctypes.c_void_p]

        def on_error(module, fmt, args) -> None:
            errors = getattr(_TIFF_STATE, "errors", None)
            if errors is None or len(errors) >= 4:
                return
            text = ""
            if libc is not None and fmt and args:
                buf = ctypes.create_string_buffer(240)
                libc.vsnprintf(buf, len(buf), fmt, args)
                text = buf.value.decode("utf-8", "replace")
            if not text:
                text = re.sub(r"%[-#0-9.*]*[hljztL]*[a-zA-Z]", "?", (fmt or b"").decode("utf-8", "replace"))
            where = (module or b"").decode("utf-8", "replace")
            where = "libtiff" if not where or where.lower().endswith((".tif", ".tiff")) else where  # not Pillow's temp name
            errors.append(f"{where}: {text}".strip())

        def on_warning(module, fmt, _args) -> None:
            return None

        for name in candidates:
            if not name:
                continue
            try:
                lib = ctypes.CDLL(name)
                err_cb, warn_cb = handler_t(on_error), handler_t(on_warning)
                lib.TIFFSetErrorHandler.restype = ctypes.c_void_p
                lib.TIFFSetWarningHandler.restype = ctypes.c_void_p
                lib.TIFFSetErrorHandler(err_cb)
                lib.TIFFSetWarningHandler(warn_cb)
            except (OSError, AttributeError):
                continue
            _TIFF_HANDLERS.extend([lib, err_cb, warn_cb])
        if not _TIFF_HANDLERS:
            _TIFF_HANDLERS.append(None)  # tried: do not try again


@contextlib.contextmanager
def _libtiff_errors(label: str, data: bytes):
    """For a TIFF: libtiff errors raised while the block decodes make it an ``ImageLoadError``."""
    if data[:4] not in (b"II*\x00", b"MM\x00*"):
        yield
        return
    _install_tiff_handlers()
    _TIFF_STATE.errors = []
    try:
        yield
    except (OSError, ValueError, SyntaxError, EOFError):
        if not _TIFF_STATE.errors:
            raise
    finally:
        errors, _TIFF_STATE.errors = _TIFF_STATE.errors, None
    if errors:  # libtiff's own reason beats Pillow's "decoder error -2"
        raise ImageLoadError(f"{label}: image is corrupt ({safe_label(errors[0], 160)})")


@contextlib.contextmanager
def _native_stderr(label: str):
    """With ``CAPTURE_NATIVE_STDERR``: the C libraries' stderr lines during the block are captured;
    warnings are dropped, any other line makes the image an ``ImageLoadError``. libtiff no longer
    writes here (its handlers report through ``_libtiff_errors``); this is for libjpeg's lines."""
    if not CAPTURE_NATIVE_STDERR:
        yield
        return
    with _STDERR_LOCK, tempfile.TemporaryFile() as capture:
        sys.stderr.flush()
        saved = os.dup(2)
        try:
            os.dup2(capture.fileno(), 2)
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)
        capture.seek(0)
        lines = capture.read(4096).decode("utf-8", "replace").splitlines()
    bad = [ln for ln in lines if ln.strip() and "warning" not in ln.lower()]  # libtiff: "<module>: Warning, ..."
    if bad:
        raise ImageLoadError(f"{label}: image is corrupt ({safe_label(bad[0].strip(), 160)})")


def _decode(data: bytes, label: str, max_side: int | None = None) -> Image.Image:
    try:
        check_decode_work(data, label)
        with warnings.catch_warnings(), _native_stderr(label), _libtiff_errors(label, data):
            warnings.simplefilter("ignore")  # PIL's notes on odd metadata (e.g. corrupt EXIF) must not reach users
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            im = _open(data, label)
            full = im.size
            _check_size(*full, label)  # header only: nothing decoded yet
            im.seek(0)
            if max_side and im.format == "JPEG" and max(full) > max_side:
                im.draft(im.mode if im.mode in ("L", "RGB") else None, (max_side, max_side))  # DCT-scaled decode
            im.load()
            decoded = im.size[0] * im.size[1]  # after a DCT-scaled draft: the pixels really decoded
            swap = im.getexif().get(0x0112, 1) in (5, 6, 7, 8)
            if im.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
                # scaled to 8 bits by the finite range *before* any reduction (a resampling filter
                # spreads NaN over its neighbours); 1 byte per pixel, smaller than the source
                im = Image.fromarray(_scale_to_uint8(np.asarray(im), label), "L")
            if max_side and im.mode in ("1", "L", "RGB", "RGBA", "LA"):
                im = _reduce(im.convert("L") if im.mode == "1" else im, max_side, owned=True)  # before any full-size conversion
            im = ImageOps.exif_transpose(im) or im
            out = _to_rgb(im, label)
            out.info["har_full_size"] = (full[1], full[0]) if swap else full
            out.info["har_decoded_pixels"] = decoded
            return out
    except ImageLoadError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise ImageLoadError(f"{label}: image is too large (possible decompression bomb)") from None
    except UnidentifiedImageError:
        raise ImageLoadError(f"{label}: not a recognised image file (JPEG, PNG, GIF, BMP, WebP, TIFF)") from None
    except (OSError, SyntaxError, ValueError, EOFError, struct.error, KeyError, IndexError, TypeError) as err:
        raise ImageLoadError(f"{label}: image is corrupt or truncated ({safe_label(err, 160)})") from None


def _open(data: bytes, label: str) -> Image.Image:
    """``Image.open`` with the two fallbacks Pillow lacks: a JPEG whose MPF header is damaged is read
    as the plain JPEG it is; an uncompressed float16 / float64 TIFF is read with numpy."""
    try:
        return Image.open(io.BytesIO(data), formats=DECODE_FORMATS)
    except (UnidentifiedImageError, KeyError, ValueError, struct.error):
        if data[:2] == b"\xff\xd8":
            from PIL import JpegImagePlugin

            with contextlib.suppress(Exception):  # not a JPEG after all: the original error stands
                return JpegImagePlugin.JpegImageFile(io.BytesIO(data))
        elif data[:4] in (b"II*\x00", b"MM\x00*"):
            im = _float_tiff(data, label)
            if im is not None:
                return im
        raise


_TIFF_FLOAT = {16: "e", 32: "f", 64: "d"}


def _float_tiff(data: bytes, label: str) -> Image.Image | None:
    """A float16 / float64 TIFF (SampleFormat 3) Pillow cannot open, as a mode "F" image; None when
    it is not one; a one-line ``ImageLoadError`` for a variant not read here (compressed, tiled...)."""
    ifd = _tiff_ifd(data)
    if ifd is None:
        return None
    fmt = ifd.get(339, (1,))
    bits = ifd.get(258, (0,))
    fmt, bits = (fmt[0] if isinstance(fmt, tuple) else fmt), (bits[0] if isinstance(bits, tuple) else bits)
    if fmt != 3 or bits not in (16, 64):
        return None
    w, h, spp = int(ifd.get(256, 0)), int(ifd.get(257, 0)), int(ifd.get(277, 1))
    compression, planar = int(ifd.get(259, 1)), int(ifd.get(284, 1))
    offsets, counts = ifd.get(273), ifd.get(279)
    what = f"float{bits} TIFF"
    if compression != 1 or spp not in (1, 3) or (spp > 1 and planar != 1) or not offsets or not counts:
        raise ImageLoadError(
            f"{label}: {what} with compression {compression} / {spp} samples per pixel is not supported; "
            "save it as 8- or 16-bit integer or 32-bit float TIFF"
        )
    _check_size(w, h, label)
    offsets = offsets if isinstance(offsets, tuple) else (offsets,)
    counts = counts if isinstance(counts, tuple) else (counts,)
    need = w * h * spp * bits // 8
    if need > len(data):  # uncompressed: the pixels must be in the file (bounds what is read to its size)
        raise ImageLoadError(f"{label}: {what} is truncated ({len(data)} bytes in the file, {need} pixel bytes declared)")
    parts, got = [], 0
    for o, c in zip(offsets, counts):  # only the bytes the image needs: strips may all point at one block
        if got >= need:
            break
        part = data[int(o) : int(o) + min(int(c), need - got)]
        parts.append(part)
        got += len(part)
    raw = b"".join(parts)
    if len(raw) < need:
        raise ImageLoadError(f"{label}: {what} is truncated ({len(raw)} of {need} pixel bytes)")
    order = "<" if data[:2] == b"II" else ">"
    arr = np.frombuffer(raw[:need], dtype=order + _TIFF_FLOAT[bits]).reshape(h, w, spp).astype(np.float32)
    if spp == 3:
        return Image.fromarray(_scale_to_uint8(arr, label), "RGB")
    return Image.fromarray(arr[..., 0], "F")


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
    except RecursionError:  # e.g. 100,000 nested [[[...: Python's parser gives up, we say why
        raise error(f"{name}: not a usable JSON file (nested too deeply)") from None
