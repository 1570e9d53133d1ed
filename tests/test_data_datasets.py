"""data/datasets: class folders, manifests (round trip and errors), ImageDataset."""

from __future__ import annotations

import os
import shutil

import pytest
import torch

from har_demo.data.datasets import (
    ImageDataset,
    Sample,
    class_counts,
    load_dataset,
    load_folder,
    load_manifest,
    write_manifest,
)
from har_demo.errors import DataError, ImageLoadError
from har_demo.labels import CLASSES


def test_load_folder(tiny_image_folder):
    (tiny_image_folder / "sitting" / "notes.txt").write_text("not an image")
    (tiny_image_folder / "standing" / "deeper").mkdir()
    shutil.copy(tiny_image_folder / "standing" / "img0.jpg", tiny_image_folder / "standing" / "deeper" / "x.PNG")
    (tiny_image_folder / ".hidden").mkdir()
    samples = load_folder(tiny_image_folder)
    assert class_counts(samples) == {"sitting": 3, "standing": 4, "walking_running": 3}
    assert all(os.path.isabs(s.path) and os.path.isfile(s.path) for s in samples)
    assert len({s.group for s in samples}) == len(samples)  # default group: unique per image
    assert "standing/deeper/x.PNG" in {s.group for s in samples}


def test_folder_names_case_and_separator_insensitive(make_image_folder, tmp_path):
    root = make_image_folder(1)
    (root / "walking_running").rename(root / "Walking-Running")
    assert class_counts(load_folder(root))["walking_running"] == 1


def test_misspelled_class_folder(tiny_image_folder):
    (tiny_image_folder / "sitting").rename(tiny_image_folder / "siting")
    with pytest.raises(DataError) as err:
        load_folder(tiny_image_folder)
    msg = str(err.value)
    assert "'siting'" in msg and "did you mean 'sitting'" in msg
    assert all(c in msg for c in CLASSES)


def test_folder_without_images(tmp_path):
    (tmp_path / "sitting").mkdir()
    with pytest.raises(DataError, match="no images"):
        load_folder(tmp_path)
    with pytest.raises(DataError, match="not found"):
        load_folder(tmp_path / "absent")


def test_manifest_roundtrip(tiny_manifest, tmp_path):
    samples = load_manifest(tiny_manifest)
    assert len(samples) == 9 and {s.source for s in samples} == {"src_a", "src_b"}
    assert samples[0].group == "sitting_g0" and samples[0].license == "CC0"
    out = write_manifest(samples, tmp_path / "sub" / "copy.csv")
    text = out.read_text()
    assert str(tmp_path) not in text and "../images/" in text  # relative to the CSV's folder
    assert load_manifest(out) == samples


def test_manifest_default_group_and_extra_columns(tiny_image_folder, tmp_path):
    csv_path = tmp_path / "m.csv"
    csv_path.write_text("\ufeffPath,Label,note\nimages/sitting/img0.jpg,sitting,hello\n")
    [s] = load_manifest(csv_path)
    assert s == Sample(str(tiny_image_folder / "sitting" / "img0.jpg"), "sitting", "images/sitting/img0.jpg")


@pytest.mark.parametrize("text, pattern", [
    ("file,label\nimages/sitting/img0.jpg,sitting\n", "missing column.*path"),
    ("path,label\nimages/sitting/img0.jpg,sitting\nimages/sitting/img1.jpg,sleeping\n", "line 3.*'sleeping'"),
    ("path,label\nimages/sitting/img0.jpg,sitting\nimages/sitting/nope.jpg,sitting\n", "not found.*line 3.*nope.jpg"),
    ("path,label\nimages/sitting/img0.jpg,sitting\nimages/sitting/img0.jpg,sitting\n", "listed twice"),
    ("path,label\n", "no rows"),
])
def test_manifest_errors(tiny_image_folder, tmp_path, text, pattern):
    csv_path = tmp_path / "bad.csv"
    csv_path.write_text(text)
    with pytest.raises(DataError, match=pattern) as err:
        load_manifest(csv_path)
    assert "bad.csv" in str(err.value)


def test_load_dataset_dispatch(tiny_image_folder, tiny_manifest, tmp_path):
    assert len(load_dataset(tiny_image_folder)) == 9
    assert load_dataset(tiny_manifest) == load_manifest(tiny_manifest)
    assert load_dataset(tmp_path) == load_manifest(tiny_manifest)  # a folder with manifest.csv
    (tmp_path / "data.zip").write_bytes(b"PK")
    with pytest.raises(DataError, match="extract_zip_dataset"):
        load_dataset(tmp_path / "data.zip")


def test_har3_manifest(shared_file):
    samples = load_dataset(shared_file("har3"))
    counts = class_counts(samples)
    assert sum(counts.values()) == len(samples) > 0 and all(counts.values())
    assert all(s.source and s.group for s in samples)


def test_image_dataset(tiny_image_folder, tmp_path):
    samples = load_folder(tiny_image_folder)
    ds = ImageDataset(samples, transform=None, cache=True)
    x, y = ds[0]
    assert isinstance(x, torch.Tensor) and x.shape == (3, 24, 32) and 0 <= x.min() <= x.max() <= 1
    assert y == CLASSES.index(samples[0].label) and ds.targets[-1] == CLASSES.index(samples[-1].label)
    os.remove(samples[0].path)
    assert torch.equal(ds[0][0], x)  # served from the cache
    fresh = ImageDataset(samples, transform=lambda im: im.size)
    with pytest.raises(ImageLoadError, match="img0.jpg"):
        fresh[0]
    assert fresh[1] == ((32, 24), y)
