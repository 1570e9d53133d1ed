"""Safe extraction of an uploaded zip of class folders (the app's batch tab, the CLI).

Accepted layout: ``<class>/.../<image>`` or ``<top>/<class>/.../<image>`` (one top folder). The whole
zip is rejected (``DataError``) before anything is written when an entry's path is absolute or
climbs out (``..``), an entry is a symlink or encrypted, there are more than ``max_files`` images,
the declared sizes add up to more than ``max_total_bytes``, or an entry's compression ratio exceeds
``max_ratio`` (zip bomb). While extracting, the bytes actually written are counted too, so a zip
whose headers lie is stopped at the same limits. Non-image files (and ``__MACOSX``, dot files) are
skipped and counted in ``info["skipped_non_image"]``.

Several zips of one request share one ``ExtractBudget`` (images and uncompressed bytes in total),
checked on the declared sizes before and on the real bytes while extracting. Entry names with a
part over ``MAX_NAME_BYTES``, nested deeper than ``MAX_DEPTH`` folders, or an image that is also
a folder of another entry are refused up front with one line; a file-system error while writing
names the entry and its cause.
"""

from __future__ import annotations

import difflib
import os
import stat
import zipfile
from pathlib import Path, PurePosixPath

from ..errors import DataError
from ..labels import CLASSES
from .datasets import Sample, SampleList, is_image_file, normalize_class_name, resolve_class_name

_CHUNK = 1 << 16
MAX_NAME_BYTES = 255  # one path component (most file systems' limit)
MAX_DEPTH = 16  # folders inside the zip (class folder and top folder included)


class ExtractBudget:
    """What is left for one request: images and uncompressed bytes across all its zips."""

    def __init__(self, max_files: int, max_bytes: int) -> None:
        self.max_files, self.max_bytes = max_files, max_bytes
        self.files_left, self.bytes_left = max_files, max_bytes

    def over(self, what: str) -> DataError:
        limit = f"{self.max_files} images" if what == "files" else f"{self.max_bytes / 2**20:.0f} MiB uncompressed"
        return DataError(f"the uploads add up to more than {limit} in total; send fewer or smaller zips")


# Characters that look like a slash (division slash, fraction slash, fullwidth solidus, big solidus):
# a name using them is not the folder path it shows.
_LOOKALIKE_SLASHES = ("\u2215", "\u2044", "\uff0f", "\u29f8")


def _entry_parts(info: zipfile.ZipInfo, zip_name: str) -> tuple[str, ...]:
    """Path components of a zip entry; rejects absolute paths, path traversal, names cut at a NUL
    byte (``zipfile`` silently drops the rest) and names with look-alike slashes."""
    if "\x00" in getattr(info, "orig_filename", ""):
        raise DataError(f"{zip_name}: unsafe entry {_shown(info.orig_filename)} (a NUL byte in its name); nothing extracted")
    if any(ch in info.filename for ch in _LOOKALIKE_SLASHES):
        raise DataError(f"{zip_name}: unsafe entry {_shown(info.filename)} (a look-alike slash in its name); nothing extracted")
    name = info.filename.replace("\\", "/")
    if name.startswith("/") or (len(name) > 1 and name[1] == ":"):
        raise DataError(f"{zip_name}: unsafe entry {_shown(info.filename)} (absolute path); nothing extracted")
    parts = tuple(p for p in PurePosixPath(name).parts if p not in ("", "."))
    if any(p == ".." for p in parts):
        raise DataError(f"{zip_name}: unsafe entry {_shown(info.filename)} (path traversal '..'); nothing extracted")
    long = [p for p in parts if len(p.encode("utf-8", "surrogateescape")) > MAX_NAME_BYTES]
    if long:
        raise DataError(
            f"{zip_name}: entry {_shown(info.filename)} has a name part of {len(long[0].encode('utf-8', 'surrogateescape'))} "
            f"bytes (at most {MAX_NAME_BYTES}); nothing extracted"
        )
    if len(parts) > MAX_DEPTH + 1:
        raise DataError(f"{zip_name}: entry {_shown(info.filename)} is nested {len(parts) - 1} folders deep (at most {MAX_DEPTH}); nothing extracted")
    return parts


def _shown(name: str) -> str:
    """An entry name for a message: quoted, control characters escaped, long names cut."""
    from .io import safe_label

    return repr(safe_label(name, 100))


def _is_symlink(info: zipfile.ZipInfo) -> bool:
    return info.create_system == 3 and stat.S_ISLNK(info.external_attr >> 16)


def _junk(parts: tuple[str, ...]) -> bool:
    return any(p.startswith(".") or p == "__MACOSX" for p in parts) or parts[-1].lower() in ("thumbs.db", "desktop.ini")


def extract_zip_dataset(
    zip_path: str | Path,
    dest_dir: str | Path,
    max_files: int = 2000,
    max_total_bytes: int = 500 * 2**20,
    max_ratio: float = 100,
    budget: ExtractBudget | None = None,
) -> list[Sample]:
    """Validate and extract a zip of class folders into ``dest_dir``; returns its samples
    (a ``SampleList`` whose ``info`` has ``images``, ``skipped_non_image``, ``bytes`` and ``top_folder``).
    ``budget`` (shared by the zips of one request) is charged with the images and bytes written."""
    from .io import safe_label

    zname = safe_label(Path(zip_path).name, 100)
    if budget is not None:
        max_files, max_total_bytes = min(max_files, budget.files_left), min(max_total_bytes, budget.bytes_left)
    if not Path(zip_path).is_file():
        raise DataError(f"{zip_path}: zip file not found")
    try:
        zf = zipfile.ZipFile(zip_path)
    except (zipfile.BadZipFile, OSError, ValueError):
        raise DataError(f"{zname}: not a zip file (or a damaged one)") from None
    with zf:
        images: list[tuple[zipfile.ZipInfo, tuple[str, ...]]] = []
        skipped = 0
        declared = 0
        for info in zf.infolist():
            parts = _entry_parts(info, zname)
            if _is_symlink(info):
                raise DataError(f"{zname}: entry {_shown(info.filename)} is a symbolic link; nothing extracted")
            if info.is_dir() or not parts:
                continue
            if info.flag_bits & 0x1:
                raise DataError(f"{zname}: entry {_shown(info.filename)} is encrypted; give an unencrypted zip")
            if _junk(parts) or not is_image_file(parts[-1]):
                skipped += 1
                continue
            if info.file_size and (info.compress_size == 0 or info.file_size / info.compress_size > max_ratio):
                raise DataError(
                    f"{zname}: entry {_shown(info.filename)} expands {info.file_size} bytes from {info.compress_size} "
                    f"(ratio over {max_ratio:g}; possible zip bomb); nothing extracted"
                )
            declared += info.file_size
            images.append((info, parts))
            if len(images) > max_files:
                if budget is not None and max_files == budget.files_left:
                    raise budget.over("files")
                raise DataError(f"{zname}: more than {max_files} images; split it into smaller zips")
            if declared > max_total_bytes:
                if budget is not None and max_total_bytes == budget.bytes_left:
                    raise budget.over("bytes")
                raise DataError(
                    f"{zname}: images add up to more than {max_total_bytes / 2**20:.0f} MiB uncompressed; nothing extracted"
                )
        if not images:
            extra = f" ({skipped} non-image files skipped)" if skipped else ""
            raise DataError(f"{zname}: no images in the zip{extra}; expected class folders {', '.join(CLASSES)}")

        rels, top = _class_layout(images, zname)
        dest = Path(dest_dir)
        dest.mkdir(parents=True, exist_ok=True)
        written = 0
        samples = SampleList()
        done: list[Path] = []
        try:
            for (info, _), (label, rel) in zip(images, rels):
                target = dest.joinpath(label, *rel)
                try:
                    target.parent.mkdir(parents=True, exist_ok=True)
                except OSError as err:
                    raise DataError(f"{zname}: cannot extract {_shown(info.filename)} ({err.strerror or type(err).__name__})") from None
                written += _copy_limited(zf, info, target, zname, max_total_bytes - written, max_ratio)
                done.append(target)
                group = PurePosixPath(label, *rel).as_posix()
                samples.append(Sample(path=os.path.abspath(target), label=label, group=group, source=zname))
        except DataError:
            for f in done:  # leave no half-extracted dataset behind (a failing cleanup never hides the cause)
                try:
                    f.unlink(missing_ok=True)
                except OSError:
                    pass
            raise
    if budget is not None:
        budget.files_left -= len(samples)
        budget.bytes_left -= written
    samples.info.update(images=len(samples), skipped_non_image=skipped, bytes=written, top_folder=top)
    return samples


def _class_layout(images, zname: str):
    """``(label, path-inside-class)`` per image, and the stripped top folder ("" when none)."""
    firsts = {parts[0] for _, parts in images}
    top = ""
    if len(firsts) == 1 and all(len(parts) >= 3 for _, parts in images):
        only = next(iter(firsts))
        seconds = {normalize_class_name(parts[1]) for _, parts in images}
        looks_like_class = difflib.get_close_matches(normalize_class_name(only), CLASSES, n=1, cutoff=0.5)
        if normalize_class_name(only) not in CLASSES and (seconds & set(CLASSES) or not looks_like_class):
            top = only  # "<top>/<class>/..." (a zipped folder); else the first level must be the classes
    out = []
    seen: dict[tuple, str] = {}
    folders: dict[tuple, str] = {}  # every folder an image lies in (lower case) -> one entry inside it
    for info, parts in images:
        inner = parts[1:] if top else parts
        if len(inner) < 2:
            raise DataError(
                f"{zname}: {_shown(info.filename)} is not inside a class folder; expected folders {', '.join(CLASSES)}"
            )
        label = resolve_class_name(inner[0], f"{zname}: folder {_shown('/'.join(parts[: len(parts) - len(inner) + 1]))}")
        key = (label, *(p.lower() for p in inner[1:]))
        if key in seen:
            raise DataError(f"{zname}: {_shown(info.filename)} and {_shown(seen[key])} would extract to the same file")
        seen[key] = info.filename
        for k in range(2, len(key)):
            folders.setdefault(key[:k], info.filename)
        out.append((label, inner[1:]))
    for key, name in seen.items():
        if key in folders:
            raise DataError(f"{zname}: {_shown(name)} is both an image and a folder (of {_shown(folders[key])}); rename one")
    return out, top


def _copy_limited(zf: zipfile.ZipFile, info: zipfile.ZipInfo, target: Path, zname: str, budget: int, max_ratio: float) -> int:
    """Stream one entry to ``target`` counting real bytes; aborts past the budget, the declared size or the ratio."""
    limit = min(budget, info.file_size)
    n = 0
    try:
        with zf.open(info) as src, open(target, "wb") as dst:
            while True:
                chunk = src.read(_CHUNK)
                if not chunk:
                    break
                n += len(chunk)
                if n > limit or n > max_ratio * max(info.compress_size, 1):
                    raise DataError(f"{zname}: entry {_shown(info.filename)} is larger than declared or over the size limit; stopped")
                dst.write(chunk)
    except DataError:
        _unlink_quietly(target)
        raise
    except OSError as err:
        _unlink_quietly(target)
        raise DataError(f"{zname}: cannot extract {_shown(info.filename)} ({err.strerror or err})") from None
    except (zipfile.BadZipFile, EOFError, NotImplementedError, RuntimeError) as err:
        _unlink_quietly(target)
        raise DataError(f"{zname}: cannot extract {_shown(info.filename)} ({err})") from None
    return n


def _unlink_quietly(path: Path) -> None:
    try:
        path.unlink(missing_ok=True)
    except OSError:  # e.g. a folder of that name: the original error is the one to report
        pass
