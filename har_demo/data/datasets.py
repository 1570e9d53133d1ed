"""Labelled image datasets: class folders, CSV manifests, and a torch ``Dataset`` over them.

A dataset is a plain ``list[Sample]``; every loader validates labels and files up front and raises
``DataError`` with a one-line message naming the file / folder / row at fault.

* folder:   ``root/<class>/**/*.jpg`` (class folder names are matched case-insensitively, with
  ``-``/space treated as ``_``); hidden folders and ``__MACOSX`` are ignored.
* manifest: CSV with columns ``path,label`` and optionally ``group,source,license`` (other columns
  are ignored); relative paths are relative to the CSV's folder.
"""

from __future__ import annotations

import csv
import difflib
import os
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from PIL import Image

from ..errors import DataError
from ..labels import CLASSES
from .io import IMAGE_EXTENSIONS, load_image

MANIFEST_COLUMNS = ("path", "label", "group", "source", "license")
_IGNORED_DIRS = ("__MACOSX",)


@dataclass(frozen=True)
class Sample:
    """One labelled image. ``group`` is the unit a split never cuts (near-duplicates share one)."""

    path: str  # absolute path string
    label: str  # one of labels.CLASSES
    group: str  # split unit; default: unique per image (its relative path)
    source: str = ""
    license: str = ""

    def to_dict(self) -> dict[str, str]:
        return asdict(self)


class SampleList(list):
    """A ``list[Sample]`` that also carries ``info`` (how it was built: counts, skipped files, ...)."""

    def __init__(self, samples: Iterable[Sample] = (), info: dict[str, Any] | None = None):
        super().__init__(samples)
        self.info: dict[str, Any] = dict(info or {})


def _abspath(path: str | Path) -> str:
    return os.path.abspath(os.fspath(path))


def is_image_file(path: str | Path) -> bool:
    """True for a visible file with an image extension (``._x.jpg`` macOS forks are not images)."""
    name = Path(path).name
    return not name.startswith(".") and Path(name).suffix.lower() in IMAGE_EXTENSIONS


def normalize_class_name(name: str) -> str:
    """``"Walking-Running "`` -> ``"walking_running"`` (case, spaces and dashes do not matter)."""
    return "_".join(name.strip().lower().replace("-", " ").replace("_", " ").split())


def resolve_class_name(name: str, where: str) -> str:
    """Map a folder/label name to a class in ``CLASSES`` or raise ``DataError`` suggesting the closest."""
    norm = normalize_class_name(name)
    if norm in CLASSES:
        return norm
    close = difflib.get_close_matches(norm, CLASSES, n=1, cutoff=0.5)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    raise DataError(f"{where}: unknown class {name!r}{hint}; valid class names: {', '.join(CLASSES)}")


def load_folder(root: str | Path) -> list[Sample]:
    """Samples from ``root/<class>/**/<image>``; group = path relative to ``root``."""
    root_p = Path(root)
    if not root_p.is_dir():
        raise DataError(f"{root}: dataset folder not found")
    samples: list[Sample] = []
    for sub in sorted(root_p.iterdir()):
        if not sub.is_dir() or sub.name.startswith(".") or sub.name in _IGNORED_DIRS:
            continue
        label = resolve_class_name(sub.name, f"{root}: class folder {sub.name!r}")
        for f in sorted(sub.rglob("*")):
            rel = f.relative_to(root_p)
            if any(part.startswith(".") or part in _IGNORED_DIRS for part in rel.parts[:-1]):
                continue
            if f.is_file() and is_image_file(f):
                samples.append(Sample(path=_abspath(f), label=label, group=rel.as_posix()))
    if not samples:
        raise DataError(
            f"{root}: no images found; expected class subfolders {', '.join(CLASSES)} holding "
            f"{'/'.join(e.lstrip('.') for e in IMAGE_EXTENSIONS)} files"
        )
    return samples


def load_manifest(csv_path: str | Path) -> list[Sample]:
    """Samples from a CSV manifest (see module doc); every row is validated, files must exist."""
    csv_p = Path(csv_path)
    if not csv_p.is_file():
        raise DataError(f"{csv_path}: manifest not found")
    try:
        with open(csv_p, newline="", encoding="utf-8-sig") as fh:
            reader = csv.DictReader(fh)
            header = [h.strip().lower() for h in (reader.fieldnames or [])]
            missing = [c for c in ("path", "label") if c not in header]
            if missing:
                raise DataError(
                    f"{csv_path}: missing column(s) {', '.join(missing)}; found: {', '.join(header) or '(none)'}"
                )
            reader.fieldnames = header
            rows = list(reader)
    except UnicodeDecodeError:
        raise DataError(f"{csv_path}: not a UTF-8 text CSV file") from None
    except csv.Error as err:
        raise DataError(f"{csv_path}: malformed CSV ({err})") from None
    base = csv_p.parent
    samples: list[Sample] = []
    missing_files: list[str] = []
    seen: dict[str, int] = {}
    for line, row in enumerate(rows, start=2):  # line 1 is the header
        rel = (row.get("path") or "").strip()
        if not rel:
            raise DataError(f"{csv_path}: line {line}: empty path")
        label = resolve_class_name(row.get("label") or "", f"{csv_path}: line {line}")
        path = _abspath(base / rel)
        if path in seen:
            raise DataError(f"{csv_path}: line {line}: {rel} is listed twice (also line {seen[path]})")
        seen[path] = line
        if not os.path.isfile(path):
            missing_files.append(f"line {line}: {rel}")
        group = (row.get("group") or "").strip() or Path(rel).as_posix()
        samples.append(
            Sample(
                path=path,
                label=label,
                group=group,
                source=(row.get("source") or "").strip(),
                license=(row.get("license") or "").strip(),
            )
        )
    if missing_files:
        more = f" (+{len(missing_files) - 3} more)" if len(missing_files) > 3 else ""
        raise DataError(f"{csv_path}: {len(missing_files)} file(s) not found: {'; '.join(missing_files[:3])}{more}")
    if not samples:
        raise DataError(f"{csv_path}: manifest has no rows")
    return samples


def _relpath(path: str, base: Path) -> str:
    try:
        return Path(os.path.relpath(path, base)).as_posix()
    except ValueError:  # another drive (Windows): keep it absolute
        return Path(path).as_posix()


def write_manifest(samples: Sequence[Sample], csv_path: str | Path) -> Path:
    """Write ``samples`` as a manifest CSV, paths relative to the CSV's folder; returns the path."""
    csv_p = Path(csv_path)
    csv_p.parent.mkdir(parents=True, exist_ok=True)
    base = Path(_abspath(csv_p.parent))
    with open(csv_p, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(MANIFEST_COLUMNS)
        for s in samples:
            writer.writerow([_relpath(s.path, base), s.label, s.group, s.source, s.license])
    return csv_p


def load_dataset(path: str | Path) -> list[Sample]:
    """A folder (its ``manifest.csv`` if it has one, else class subfolders) or a ``.csv`` manifest."""
    p = Path(path)
    if p.is_dir():
        manifest = p / "manifest.csv"
        return load_manifest(manifest) if manifest.is_file() else load_folder(p)
    if p.suffix.lower() == ".csv":
        return load_manifest(p)
    if not p.exists():
        raise DataError(f"{path}: dataset not found")
    hint = " (extract it with har_demo.data.zipdata.extract_zip_dataset)" if p.suffix.lower() == ".zip" else ""
    raise DataError(f"{path}: not a dataset; give a folder of class subfolders or a .csv manifest{hint}")


def class_counts(samples: Iterable[Sample]) -> dict[str, int]:
    """Images per class, every class in ``CLASSES`` order (zeros included)."""
    counts = Counter(s.label for s in samples)
    return {c: counts.get(c, 0) for c in CLASSES}


class ImageDataset(torch.utils.data.Dataset):
    """``(transform(image), class_index)`` pairs; images decoded with ``data.io.load_image``.

    ``cache=True`` keeps decoded PIL images in memory (meant for small datasets; with DataLoader
    workers each worker holds its own cache). ``transform=None`` yields float CHW tensors in [0, 1].
    """

    def __init__(
        self,
        samples: Sequence[Sample],
        transform: Callable[[Image.Image], Any] | None = None,
        cache: bool = False,
    ) -> None:
        self.samples: list[Sample] = list(samples)
        self.targets: list[int] = [CLASSES.index(s.label) for s in self.samples]
        if transform is None:
            from torchvision.transforms import v2 as T

            transform = T.Compose([T.ToImage(), T.ToDtype(torch.float32, scale=True)])
        self.transform = transform
        self.cache = cache
        self._cache: dict[int, Image.Image] = {}

    def __len__(self) -> int:
        return len(self.samples)

    def image(self, index: int) -> Image.Image:
        """The decoded RGB image (from the cache when enabled)."""
        if self.cache and index in self._cache:
            return self._cache[index]
        im = load_image(self.samples[index].path, sandbox=False)  # training data (DataLoader workers)
        if self.cache:
            self._cache[index] = im
        return im

    def __getitem__(self, index: int):
        if index < 0:
            index += len(self.samples)
        return self.transform(self.image(index)), self.targets[index]


__all__ = [
    "ImageDataset",
    "Sample",
    "SampleList",
    "class_counts",
    "is_image_file",
    "load_dataset",
    "load_folder",
    "load_manifest",
    "normalize_class_name",
    "resolve_class_name",
    "write_manifest",
]
