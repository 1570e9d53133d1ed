"""The caption-labelled builder on tiny caption files the test writes: COCO JSON, Flickr8k CSV and
Flickr30k ``image|n|caption``; the same labelling rules; the optional per-photo check."""

from __future__ import annotations

import json

import pytest
from PIL import Image

from har_demo.data.captions import build_captioned_subset, read_captions
from har_demo.data.datasets import load_manifest
from har_demo.errors import DataError

CAPTIONS = {
    "sit.jpg": ["A man is sitting on a bench .", "A man sits on a park bench", "A person sitting outside", "Man on a bench", "A man reading"],
    "walk.jpg": ["A woman walking down the street", "A woman walks her bag", "Lady walking in the city", "A woman outside", "Street scene"],
    "dog.jpg": ["A dog is sitting on the grass", "A dog sits", "A brown dog sitting", "A dog", "A dog outside"],
    "tie.jpg": ["A man sitting", "A man sits down", "A man standing", "A man stands up", "A man"],
    "vase.jpg": ["A vase sitting on a table", "A vase sits on a table", "Flowers", "A vase", "A table"],
}


@pytest.fixture()
def images(tmp_path):
    folder = tmp_path / "images"
    folder.mkdir()
    for name in CAPTIONS:
        Image.new("RGB", (32, 32), (100, 100, 100)).save(folder / name)
    return folder


def write_flickr8k(path):
    lines = ["image,caption"] + [f'{name},"{c}"' if "," in c else f"{name},{c}" for name, caps in CAPTIONS.items() for c in caps]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def test_three_formats_read_the_same(tmp_path):
    f8 = tmp_path / "captions.txt"
    write_flickr8k(f8)
    f30 = tmp_path / "results.csv"
    f30.write_text("image_name| comment_number| comment\n" + "".join(f"{n}| {i}| {c}\n" for n, caps in CAPTIONS.items() for i, c in enumerate(caps)), encoding="utf-8")
    coco = tmp_path / "captions.json"
    ids = {n: i for i, n in enumerate(CAPTIONS, 1)}
    coco.write_text(json.dumps({"images": [{"id": i, "file_name": n} for n, i in ids.items()],
                                "annotations": [{"image_id": ids[n], "caption": c} for n, caps in CAPTIONS.items() for c in caps]}))  # fmt: skip
    for path in (f8, f30, coco):
        assert read_captions(path) == CAPTIONS, path.name


def test_builder_labels_by_the_person_rules_and_writes_a_manifest(tmp_path, images):
    caps = tmp_path / "captions.txt"
    write_flickr8k(caps)
    out = tmp_path / "flickr.csv"
    samples = build_captioned_subset(images, caps, "flickr_test", license="test licence", min_agree=2, out_manifest=out)
    labels = {s.path.rsplit("/", 1)[-1]: s.label for s in samples}
    assert labels == {"sit.jpg": "sitting", "walk.jpg": "walking_running"}  # dog, vase: not a person; tie: dropped
    assert samples.info["selected"] == {"sitting": 1, "standing": 0, "walking_running": 1}
    again = load_manifest(out)
    assert [(s.label, s.source, s.license) for s in again] == [(s.label, "flickr_test", "test licence") for s in samples]
    assert len({s.group for s in again}) == 2  # one photo = one group


def test_keep_check_drops_photos_and_is_counted(tmp_path, images):
    caps = tmp_path / "captions.txt"
    write_flickr8k(caps)
    samples = build_captioned_subset(images, caps, "f", min_agree=2, keep=lambda path: not path.endswith("walk.jpg"))
    assert [s.label for s in samples] == ["sitting"]
    assert samples.info["dropped_by_check"]["walking_running"] == 1


def test_bad_caption_files_are_one_line_errors(tmp_path, images):
    with pytest.raises(DataError, match="not found"):
        read_captions(tmp_path / "missing.txt")
    bad = tmp_path / "bad.txt"
    bad.write_text("image,caption\nonlyonefield\n")
    with pytest.raises(DataError, match="expected 'image,caption'"):
        read_captions(bad)
    none = tmp_path / "none.txt"
    none.write_text("image,caption\nsit.jpg,A nice day\n")
    with pytest.raises(DataError, match="no photo qualifies"):
        build_captioned_subset(images, none, "f")


def test_pooled_data_sets_load_once_and_are_summarised_as_parts(tmp_path, images, monkeypatch):
    """``train.py --data A --data B --captions ...``: every set read once, samples in order, and a
    "mixed" summary naming each part (the card's training-data summary)."""
    from har_demo.training import dataprep
    from tests.test_training_end_to_end import make_manifest

    a, b = make_manifest(tmp_path / "a", per_class=2), make_manifest(tmp_path / "b", per_class=2)
    caps = tmp_path / "captions.txt"
    write_flickr8k(caps)
    calls = []
    real = dataprep.load_dataset
    monkeypatch.setattr(dataprep, "load_dataset", lambda p: calls.append(str(p)) or real(p))
    samples, info = dataprep.load_samples([str(a), str(b)], captions=str(caps), caption_images=str(images), out_dir=tmp_path / "run")
    assert calls == [str(a), str(b)]  # one read per --data set
    assert len(samples) == 2 * 6 + 2 and samples[0].path == real(a)[0].path and samples[-1].path.endswith("walk.jpg")
    assert info["kind"] == "mixed" and [p["kind"] for p in info["parts"]] == ["manifest", "manifest", "captions"]
    assert info["path"] == f"{a} + {b} + {caps}"
    only, pooled = dataprep.load_samples([str(a), str(b)])
    assert len(only) == 12 and pooled["path"] == f"{a} + {b}" and len(pooled["parts"]) == 2


def test_several_caption_sets_train_together_each_under_its_own_source(tmp_path, images):
    """``--captions A --caption-images IA --caption-source a --captions B ... --caption-source b``:
    both sets pooled, each photo under its own set's source (leave-one-source-out holds them out
    separately), one manifest per set; mismatched repeats refused in one line."""
    import shutil

    from har_demo.training import dataprep

    other = tmp_path / "other"
    shutil.copytree(images, other)
    caps = tmp_path / "captions.txt"
    write_flickr8k(caps)
    samples, info = dataprep.load_samples(captions=[str(caps), str(caps)], caption_images=[str(images), str(other)],
                                          caption_source=["orig", "squashed"], out_dir=tmp_path / "run")  # fmt: skip
    assert [(s.source, s.path.split("/")[-2]) for s in samples] == [("orig", "images")] * 2 + [("squashed", "other")] * 2
    assert len({s.group for s in samples}) == 4  # the same file name in two sets is two photos
    assert info["kind"] == "mixed" and [p["source"] for p in info["parts"]] == ["orig", "squashed"]
    assert (tmp_path / "run" / "orig_manifest.csv").is_file() and (tmp_path / "run" / "squashed_manifest.csv").is_file()
    with pytest.raises(DataError, match="--caption-source"):
        dataprep.load_samples(captions=[str(caps), str(caps)], caption_images=[str(images), str(other)], caption_source=["orig"])
    with pytest.raises(DataError, match="must differ"):
        dataprep.load_samples(captions=[str(caps), str(caps)], caption_images=[str(images), str(other)], caption_source=["a", "a"])
    with pytest.raises(DataError, match="--caption-images"):
        dataprep.load_samples(captions=[str(caps), str(caps)], caption_images=[str(images)], caption_source=["a", "b"])
    single, one = dataprep.load_samples(captions=str(caps), caption_images=str(images))
    assert {s.source for s in single} == {"captions"} and one["kind"] == "captions"


def test_caption_fraction_keeps_nested_seeded_subsets_per_class(tmp_path):
    """``--caption-fraction``: a seeded share of each class; 0.5's photos are inside 1.0's and the
    smaller share's inside the larger (a learning curve adds photos, never swaps them)."""
    from har_demo.training import dataprep

    folder = tmp_path / "imgs"
    folder.mkdir()
    lines = ["image,caption"]
    for k in range(8):
        for kind, cap in (("sit", "A man is sitting on a bench"), ("walk", "A woman walking down the street")):
            Image.new("RGB", (8, 8), (k, 0, 0)).save(folder / f"{kind}{k}.jpg")
            lines += [f"{kind}{k}.jpg,{cap}"] * 3
    caps = tmp_path / "captions.txt"
    caps.write_text("\n".join(lines) + "\n", encoding="utf-8")
    full, _ = dataprep.load_samples(captions=str(caps), caption_images=str(folder))
    half, info = dataprep.load_samples(captions=str(caps), caption_images=str(folder), caption_fraction=0.5)
    quarter, _ = dataprep.load_samples(captions=str(caps), caption_images=str(folder), caption_fraction=[0.25])
    by = lambda xs: {c: {s.path for s in xs if s.label == c} for c in ("sitting", "walking_running")}
    assert {c: len(v) for c, v in by(full).items()} == {"sitting": 8, "walking_running": 8}
    assert {c: len(v) for c, v in by(half).items()} == {"sitting": 4, "walking_running": 4}
    assert {c: len(v) for c, v in by(quarter).items()} == {"sitting": 2, "walking_running": 2}
    assert all(by(quarter)[c] <= by(half)[c] <= by(full)[c] for c in by(full))
    assert info["fraction"] == 0.5 and info["counts"]["fraction_used"]["sitting"] == 4
    with pytest.raises(DataError, match="caption-fraction"):
        dataprep.load_samples(captions=str(caps), caption_images=str(folder), caption_fraction=0.0)
