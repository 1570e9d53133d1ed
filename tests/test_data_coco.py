"""data/coco: caption rules, the subset builder (tiny COCO JSON written here + the real mini set),
person masks / boxes."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from har_demo.data.coco import (
    build_coco_subset,
    caption_activity,
    image_activity,
    load_coco,
    person_boxes,
    person_mask,
    select_coco_images,
)
from har_demo.data.datasets import load_manifest
from har_demo.errors import DataError
from har_demo.labels import CLASSES

W, H = 100, 80  # tiny image size: 5 % of the area = 400 px


@pytest.mark.parametrize("caption, expected", [
    ("A man sitting on a bench in the park.", "sitting"),
    ("Two women sit at a table eating pizza.", "sitting"),
    ("A seated man reads a newspaper.", "sitting"),
    ("Sitting on the couch is a young girl.", "sitting"),
    ("A woman is standing in a kitchen.", "standing"),
    ("A group of people who are standing in the grass.", "standing"),
    ("A man on a snowboard standing in the snow.", "standing"),
    ("A man walking down a busy street.", "walking_running"),
    ("A woman holding an umbrella walks past a bus.", "walking_running"),
    ("A baseball player running to first base.", "walking_running"),
    ("A girl jogging along the beach.", "walking_running"),
    ("An old couple strolling through the market.", "walking_running"),
    ("A man sitting on a bench as people walk by.", "sitting"),
    ("A cat sitting on a couch.", None),
    ("A vase sitting on a table.", None),
    ("A bus stands at the station.", None),
    ("A clock standing in the middle of a square.", None),
    ("Two giraffes standing next to a man.", None),
    ("A woman pets the cat that is standing on the rocks.", None),
    ("A couple of carrots sit next to a spoon.", None),
    ("A man at a fruit stand buying apples.", None),
    ("A batter hits a home run.", None),
    ("Fans watch the game from the stands.", None),
    ("A living room with a sitting area and a TV.", None),
    ("A sink with running water.", None),
    ("A group of people standing and sitting on a field.", None),
    ("A kitchen with a stove and a refrigerator.", None),
])
def test_caption_activity(caption, expected):
    assert caption_activity(caption) == expected


def test_image_activity_votes():
    sit, stand = "A man sitting on a chair.", "A man standing by a chair."
    other = "A chair in a room."
    assert image_activity([sit, sit, sit, other, stand]) == "sitting"
    assert image_activity([sit, sit, stand, stand, other]) is None  # tie
    assert image_activity([sit, sit, other, other, other]) is None  # under min_agree
    assert image_activity([sit, sit, other], min_agree=2) == "sitting"
    assert image_activity([]) is None


# ----------------------------------------------------------------- tiny COCO set written here
CAPTIONS = {
    "sitting": "A man sitting on a bench.",
    "standing": "A woman standing on a sidewalk.",
    "walking_running": "A person walking down the street.",
}
# image name -> (class by captions or special, persons [(area, iscrowd, num_keypoints)])
TINY = {
    "s1": ("sitting", [(2000, 0, 12)]),
    "s2": ("sitting", [(2000, 0, 12), (1800, 0, 12)]),  # two prominent persons
    "s3": ("sitting", [(2000, 0, 3), (100, 0, 0)]),  # small bystander; few keypoints
    "s4": ("sitting", []),  # no person annotated
    "t1": ("standing", [(2000, 0, 12)]),
    "t2": ("standing", [(1500, 0, 12)]),
    "t3": ("standing", [(900, 0, 12)]),
    "w1": ("walking_running", [(2000, 0, 12)]),
    "w2": ("walking_running", [(2000, 0, 12)]),
    "w3": ("walking_running", [(2000, 0, 12)]),
    "w4": ("walking_running", [(2000, 0, 12)]),
    "w5": ("walking_running", [(2000, 0, 12), (3000, 1, 0)]),  # big crowd region
    "cat": ("cat", []),
    "mixed": ("mixed", [(2000, 0, 12)]),
}


def _captions_for(kind: str) -> list[str]:
    if kind in CAPTIONS:
        return [CAPTIONS[kind]] * 3 + ["A photo taken outside.", "Some trees and a road."]
    if kind == "cat":
        return ["A cat sitting on a couch.", "A cat sits on a sofa.", "A kitten sitting.", "A cat.", "A couch."]
    return [CAPTIONS["sitting"]] * 2 + [CAPTIONS["standing"]] * 2 + ["A park."]


def _rect(x: float, y: float, w: float, h: float) -> list[float]:
    return [x, y, x + w, y, x + w, y + h, x, y + h]


@pytest.fixture
def tiny_coco(tmp_path):
    img_dir = tmp_path / "images"
    img_dir.mkdir()
    images, caps, inst, kps = [], [], [], []
    ann_id = 1
    for k, (name, (kind, persons)) in enumerate(TINY.items(), start=1):
        fname = f"{name}.jpg"
        Image.new("RGB", (W, H), (k * 10, 100, 100)).save(img_dir / fname)
        images.append({"id": k, "file_name": fname, "width": W, "height": H, "license": 1 + k % 2})
        caps += [{"id": 100 * k + j, "image_id": k, "caption": c} for j, c in enumerate(_captions_for(kind))]
        for j, (area, crowd, nkp) in enumerate(persons):
            side = int(area**0.5)
            x = 2 + j * 50
            seg = {"size": [H, W], "counts": [0]} if crowd else [_rect(x, 2, side / 2, side * 2)]
            if crowd:  # a real RLE from a mask: the crowd region
                from pycocotools import mask as mask_util

                m = np.zeros((H, W), np.uint8, order="F")
                m[40:, 50:] = 1
                seg = mask_util.encode(m)
                seg["counts"] = seg["counts"].decode()
            ann = {"id": ann_id, "image_id": k, "category_id": 1, "iscrowd": crowd, "area": float(area),
                   "bbox": [x, 2, side / 2, side * 2], "segmentation": seg}
            inst.append(ann)
            kps.append({**ann, "num_keypoints": nkp, "keypoints": [0] * 51})
            ann_id += 1
        if name == "cat":
            inst.append({"id": ann_id, "image_id": k, "category_id": 17, "iscrowd": 0, "area": 3000.0,
                         "bbox": [0, 0, 50, 60], "segmentation": [_rect(0, 0, 50, 60)]})
            ann_id += 1
    licenses = [{"id": 1, "name": "Attribution License", "url": "http://creativecommons.org/licenses/by/2.0/"},
                {"id": 2, "name": "Attribution-ShareAlike License", "url": "http://creativecommons.org/licenses/by-sa/2.0/"}]
    cats = [{"id": 1, "name": "person", "supercategory": "person"}, {"id": 17, "name": "cat", "supercategory": "animal"}]
    files = {}
    for key, doc in {
        "captions": {"images": images, "annotations": caps, "licenses": licenses},
        "instances": {"images": images, "annotations": inst, "licenses": licenses, "categories": cats},
        "keypoints": {"images": images, "annotations": kps, "licenses": licenses, "categories": cats[:1]},
    }.items():
        files[key] = tmp_path / f"{key}.json"
        files[key].write_text(json.dumps(doc))
    files["images"] = img_dir
    return files


def _names(samples) -> dict[str, set[str]]:
    out = {c: set() for c in CLASSES}
    for s in samples:
        out[s.label].add(Path(s.path).stem)
    return out


def test_builder_balances_down_to_smallest_class(tiny_coco):
    samples = build_coco_subset(tiny_coco["images"], tiny_coco["captions"], per_class=10)
    names = _names(samples)
    assert {c: len(v) for c, v in names.items()} == {c: 3 for c in CLASSES}  # standing has only 3
    assert names["standing"] == {"t1", "t2", "t3"}
    assert not {"cat", "mixed"} & set().union(*names.values())  # animal captions / disagreement
    assert samples.info["candidates"] == {"sitting": 4, "standing": 3, "walking_running": 5}
    assert "smallest class (standing)" in samples.info["balance"]


def test_builder_per_class_and_seeds(tiny_coco):
    a = build_coco_subset(tiny_coco["images"], tiny_coco["captions"], per_class=2, seed=0)
    assert "every class has enough" in a.info["balance"]
    assert Counter(s.label for s in a) == {c: 2 for c in CLASSES}
    again = build_coco_subset(tiny_coco["images"], tiny_coco["captions"], per_class=2, seed=0)
    assert list(a) == list(again)
    picks = {tuple(s.path for s in build_coco_subset(tiny_coco["images"], tiny_coco["captions"], per_class=2, seed=k))
             for k in range(6)}
    assert len(picks) > 1


def test_builder_single_person_with_instances(tiny_coco):
    samples = build_coco_subset(tiny_coco["images"], tiny_coco["captions"], tiny_coco["instances"],
                                per_class=10, single_person=True)
    names = _names(samples)
    assert names["sitting"] == {"s1", "s3"}  # s2: two persons, s4: none
    assert "w5" not in names["walking_running"] and len(names["walking_running"]) == 2
    assert samples.info["single_person"] == {"sitting": 2, "standing": 3, "walking_running": 4}
    strict = build_coco_subset(tiny_coco["images"], tiny_coco["captions"], tiny_coco["instances"], per_class=10,
                               single_person=True, min_person_area=0.2)  # 1600 px: t2, t3 too small
    assert _names(strict)["standing"] == {"t1"}


def test_builder_single_person_with_keypoints(tiny_coco):
    samples = build_coco_subset(tiny_coco["images"], tiny_coco["captions"], keypoints_json=tiny_coco["keypoints"],
                                per_class=10, single_person=True, balance=False)
    assert _names(samples)["sitting"] == {"s1"}  # s3's person has 3 keypoints < 8


def test_builder_writes_reloadable_manifest(tiny_coco, tmp_path):
    out = tmp_path / "out" / "coco.csv"
    samples = build_coco_subset(tiny_coco["images"], tiny_coco["captions"], per_class=2, out_manifest=out)
    back = load_manifest(out)
    assert back == list(samples)
    assert all(s.source == "coco" and s.license.startswith("Attribution") for s in back)
    ids = {Path(s.path).stem: s.group for s in back}
    assert all(ids[name] == str(list(TINY).index(name) + 1) for name in ids)  # group = COCO image id


def test_builder_errors(tiny_coco, tmp_path):
    img, cap = tiny_coco["images"], tiny_coco["captions"]
    with pytest.raises(DataError, match="nope.json.*not found"):
        build_coco_subset(img, tmp_path / "nope.json")
    with pytest.raises(DataError, match="images folder not found"):
        build_coco_subset(tmp_path / "no_dir", cap)
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="none of the 14 images"):
        build_coco_subset(tmp_path / "empty", cap)
    with pytest.raises(DataError, match="single_person needs"):
        build_coco_subset(img, cap, single_person=True)
    (img / "w1.jpg").unlink()
    doc = json.loads(Path(cap).read_text())
    doc["annotations"] = [a for a in doc["annotations"] if "walking" not in a["caption"]]
    Path(cap).write_text(json.dumps(doc))
    with pytest.raises(DataError, match="walking_running"):
        build_coco_subset(img, cap)
    bad = tmp_path / "bad.json"
    bad.write_text('{"images": 3}')
    with pytest.raises(DataError, match="not a COCO"):
        build_coco_subset(img, bad)


def test_person_mask_and_boxes(tiny_coco):
    inst = tiny_coco["instances"]
    m = person_mask(inst, "s3.jpg")
    assert m.shape == (H, W) and m.dtype == bool
    side = int(2000**0.5)
    big = person_mask(inst, "images/s3.jpg", prominent_only=True)  # a path: its file name is used
    assert abs(int(big.sum()) - (side // 2) * side * 2) <= 2 * (side * 2 + side // 2)  # rectangle, edge tolerance
    assert m.sum() > big.sum()  # the small bystander is in the full mask only
    assert not person_mask(inst, "cat.jpg").any()  # a cat is not a person
    assert person_mask(inst, "w5.jpg")[60, 80]  # the crowd RLE region
    boxes = person_boxes(inst, "s3.jpg")
    assert len(boxes) == 2 and boxes[0] == (2, 2, 2 + side / 2, 2 + side * 2)
    assert len(person_boxes(inst, "s3.jpg", prominent_only=True)) == 1
    assert load_coco(inst) is load_coco(str(inst))  # cached per path
    assert person_mask(load_coco(inst), "s1.jpg").any()  # a COCO object works too
    with pytest.raises(DataError, match="zzz.jpg.*not in the COCO"):
        person_mask(inst, "zzz.jpg")


# ----------------------------------------------------------------- real data (skips when absent)
def test_real_mini_set(shared_file):
    mini = shared_file("coco/mini")
    ann = mini / "annotations"
    samples = build_coco_subset(mini / "val2017", ann / "captions_val2017.json", ann / "instances_val2017.json",
                                per_class=95, balance=False)
    caps = {}
    for a in json.loads((ann / "captions_val2017.json").read_text())["annotations"]:
        caps.setdefault(str(a["image_id"]), []).append(a["caption"])
    assert len(samples) == sum(samples.info["candidates"].values()) > 0
    for s in samples:
        assert image_activity(caps[s.group]) == s.label
        with Image.open(s.path) as im:
            assert person_mask(ann / "instances_val2017.json", s.path).shape == (im.height, im.width)
    if min(samples.info["candidates"].values()) == 0:
        with pytest.raises(DataError, match="cannot balance"):
            build_coco_subset(mini / "val2017", ann / "captions_val2017.json")
    single = build_coco_subset(mini / "val2017", ann / "captions_val2017.json", ann / "instances_val2017.json",
                               single_person=True, min_agree=2, balance=False)
    assert single and sum(single.info["single_person"].values()) < sum(single.info["captioned"].values())
    for s in single:  # exactly one prominent person, anyone else much smaller
        boxes = person_boxes(ann / "instances_val2017.json", s.path, prominent_only=True)
        assert len(boxes) == 1


def test_real_mini_person_masks(shared_file):
    ann = shared_file("coco/mini/annotations/instances_train2017.json")
    coco = load_coco(ann)
    with_person = sorted({a["image_id"] for a in coco.dataset["annotations"] if a["category_id"] == 1})[:5]
    assert with_person
    for image_id in with_person:
        img = coco.imgs[image_id]
        m = person_mask(ann, img["file_name"])
        assert m.shape == (img["height"], img["width"]) and 0 < m.mean() < 1
        x0, y0, x1, y1 = person_boxes(ann, img["file_name"])[0]
        assert 0 <= x0 < x1 <= img["width"] + 1 and 0 <= y0 < y1 <= img["height"] + 1


# Real val2017 captions, labelled by hand (annotation id -> activity; None = no person activity).
HAND_LABELLED = {
    549245: None, 449679: "standing", 733533: "sitting", 721576: "walking_running", 330270: None, 558197: None,
    614258: "sitting", 60919: "sitting", 363005: "sitting", 121497: None, 278600: "sitting", 822185: None,
    309086: None, 763723: None, 610627: None, 107474: None, 191695: "standing", 719257: None, 180958: None,
    671341: None, 372266: "walking_running", 422774: None, 809949: "standing", 501779: None, 119172: None,
    609933: None, 814794: None, 600861: None, 694314: "standing", 539974: "standing", 123683: None,
    429264: "standing", 250704: None, 644395: None, 68400: None, 455227: None, 596386: None,
    249820: "standing", 113644: "standing", 518235: None, 116383: "sitting", 670744: None, 210179: None,
    486168: None, 748283: "standing", 504568: None, 575621: None, 566668: "walking_running", 474378: "standing",
    212071: None, 100955: None, 416372: "sitting", 625492: "walking_running", 655631: None, 727354: None,
    585773: "sitting", 290348: "standing", 701572: "walking_running",
}


def test_real_captions_against_hand_labels(shared_file):
    doc = json.loads(shared_file("coco/captions_val2017.json").read_text())
    by_id = {a["id"]: a["caption"] for a in doc["annotations"]}
    got = {i: caption_activity(by_id[i]) for i in HAND_LABELLED}
    wrong = {i: (by_id[i], got[i]) for i in HAND_LABELLED if got[i] != HAND_LABELLED[i]}
    assert len(wrong) <= 2, wrong
    # never an activity where the hand label says there is none (animals, objects)
    assert not [i for i in HAND_LABELLED if HAND_LABELLED[i] is None and got[i] is not None]


def test_real_captions_selection_counts(shared_file):
    doc = json.loads(shared_file("coco/captions_val2017.json").read_text())
    per_class = select_coco_images(doc)
    counts = {c: len(v) for c, v in per_class.items()}
    print(f"\nval2017 images selected by captions (min_agree=3): {counts}; balanced: {min(counts.values())} per class")
    assert all(n >= 30 for n in counts.values())
    assert sum(counts.values()) < 0.15 * len(doc["images"])
    captions = {}
    for a in doc["annotations"]:
        captions.setdefault(a["image_id"], []).append(a["caption"])
    for c, ids in per_class.items():  # every selected image really has >= 3 agreeing captions
        for i in ids[:20]:
            assert sum(caption_activity(t) == c for t in captions[i]) >= 3
