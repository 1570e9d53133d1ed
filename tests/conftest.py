"""Shared fixtures: the read-only shared data (skip when absent) and tiny generated datasets.

* ``shared_data``       -> Path of ``../shared/data`` (skips the test when absent)
* ``shared_file``       -> ``shared_file("coco/mini")``: a path under it, or skip
* ``make_image_folder`` -> factory ``(n_per_class=3, size=(32, 24), root=None) -> root`` writing
  ``root/<class>/img<i>.jpg`` small RGB JPEGs whose colour depends on the class (learnable)
* ``tiny_image_folder`` -> such a folder with 3 images per class under ``tmp_path/images``
* ``tiny_manifest``     -> ``tmp_path/manifest.csv`` over ``tiny_image_folder`` (columns
  path,label,group,source,license; 2 images per group, sources ``src_a``/``src_b`` alternating)
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from har_demo.labels import CLASSES

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
CLASS_COLOURS = {"sitting": (200, 40, 40), "standing": (40, 200, 40), "walking_running": (40, 40, 200)}


@pytest.fixture
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"shared data not available at {SHARED_DATA}")
    return SHARED_DATA


@pytest.fixture
def shared_file():
    def get(rel: str) -> Path:
        p = SHARED_DATA / rel
        if not p.exists():
            pytest.skip(f"shared data file not available: {p}")
        return p

    return get


def write_class_image(path: Path, cls: str, index: int = 0, size: tuple[int, int] = (32, 24)) -> Path:
    """A small RGB JPEG: the class colour plus seeded noise (different per index)."""
    rng = np.random.default_rng(index * 31 + CLASSES.index(cls))
    w, h = size
    base = np.array(CLASS_COLOURS.get(cls, (128, 128, 128)), dtype=np.int16)
    arr = np.clip(base + rng.integers(-30, 30, size=(h, w, 3)), 0, 255).astype(np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr, "RGB").save(path, "JPEG", quality=90)
    return path


@pytest.fixture
def make_image_folder(tmp_path):
    def make(n_per_class: int = 3, size: tuple[int, int] = (32, 24), root: Path | None = None) -> Path:
        root = Path(root) if root is not None else tmp_path / "images"
        for cls in CLASSES:
            for i in range(n_per_class):
                write_class_image(root / cls / f"img{i}.jpg", cls, i, size)
        return root

    return make


@pytest.fixture
def tiny_image_folder(make_image_folder) -> Path:
    return make_image_folder(3)


@pytest.fixture
def tiny_manifest(tiny_image_folder, tmp_path) -> Path:
    csv_path = tmp_path / "manifest.csv"
    with open(csv_path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["path", "label", "group", "source", "license"])
        for cls in CLASSES:
            for i, img in enumerate(sorted((tiny_image_folder / cls).glob("*.jpg"))):
                rel = img.relative_to(tmp_path).as_posix()
                w.writerow([rel, cls, f"{cls}_g{i // 2}", "src_a" if i % 2 == 0 else "src_b", "CC0"])
    return csv_path


# ---- the UI tests' tiny model bank (one per test module) ------------------------------------------
@pytest.fixture(scope="module")
def bank(tmp_path_factory):
    """A ``ModelBank`` over tiny random checkpoints (``tests.test_ui_support.tiny_bank``)."""
    from tests.test_ui_support import tiny_bank

    return tiny_bank(tmp_path_factory.mktemp("ckpt"))


@pytest.fixture(scope="module")
def app(bank):
    """(demo, ui, callbacks) built on the tiny bank."""
    from har_demo.ui.layout import build_demo

    return build_demo(bank)
