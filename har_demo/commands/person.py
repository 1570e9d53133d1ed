"""``python -m har_demo person IMAGE... [--json] [--out DIR]``: where the person is, for tools.

``--json`` prints a list with one record per image: ``{"path", "found", "score", "box": [x0, y0,
x1, y1], "keypoints": [[x, y, visibility] x 33 in BlazePose order], "mask_area", "others",
"pose"}`` in photo pixels (origin top-left); with no person ``found`` is false and the other
fields are null. ``--all`` finds every person (``person.multi``, up to 6, most prominent first):
each record then has ``"people": [{"index", "score", "box", "keypoints", "mask_area", "pose"}, ...]``
(empty when nobody is found) and ``"count"``; the single-person fields are left out. ``--out DIR`` writes ``<stem>_person.png`` per image: the skeleton, the mask
outline and the box drawn on the photo. A photo that cannot be read stops the command with one
line (exit 2), like every other command.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def add_person_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("images", nargs="+", help="image files")
    p.add_argument("--json", action="store_true", help="print JSON (see the command's doc)")
    p.add_argument("--out", help="folder for skeleton + mask overlay PNGs (created if missing)")
    p.add_argument("--all", action="store_true", help="every person in the photo (up to 6), not only the most prominent")


def people_record(path: str, people: list) -> dict:
    """The ``--all --json`` record of one photo: every person found, numbered from 1."""
    from ..person.geometry import describe_pose

    rows = []
    for i, p in enumerate(people, 1):
        rec = p.to_json()
        rec.pop("others", None)
        rows.append({"index": i, **rec, "pose": describe_pose(p)})
    return {"path": path, "count": len(rows), "people": rows}


def person_record(path: str, person) -> dict:
    """The ``--json`` record of one photo."""
    from ..person.geometry import describe_pose

    if person is None:
        return {"path": path, "found": False, "score": None, "box": None, "keypoints": None, "mask_area": None, "others": None,
                "pose": describe_pose(None)}  # fmt: skip
    return {"path": path, "found": True, **person.to_json(), "pose": describe_pose(person)}


def cmd_person(args) -> int:
    from ..data.io import load_image
    from ..person.draw import draw_person
    from ..person.finder import find_person

    images = [load_image(path) for path in args.images]  # every file checked before the first detection
    out = Path(args.out) if args.out else None
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
    if args.all:
        return _cmd_people(args, images, out)
    records = []
    for path, image in zip(args.images, images):
        person = find_person(image)
        records.append(person_record(path, person))
        if out is not None:
            draw_person(image, person, skeleton=True, mask_outline=True, box=True).save(out / f"{Path(path).stem}_person.png")
    if args.json:
        print(json.dumps(records, indent=1))
        return 0
    for r in records:
        if not r["found"]:
            print(f"{r['path']}: no person found (models fall back to the whole photo)")
            continue
        more = "; more people in the photo, this is the most prominent one" if r["others"] else ""
        print(f"{r['path']}: person at {r['box']} (score {r['score']:.2f}, mask {r['mask_area']:.1%} of the photo){more}; {r['pose']}")
    return 0


def _cmd_people(args, images, out: Path | None) -> int:
    """``person --all``: every person per photo."""
    from ..person.draw import draw_people
    from ..person.multi import find_people

    records = []
    for path, image in zip(args.images, images):
        people = find_people(image)
        records.append(people_record(path, people))
        if out is not None:
            draw_people(image, people).save(out / f"{Path(path).stem}_people.png")
    if args.json:
        print(json.dumps(records, indent=1))
        return 0
    for r in records:
        print(f"{r['path']}: {r['count']} {'person' if r['count'] == 1 else 'people'} found")
        for p in r["people"]:
            print(f"  {p['index']}: at {p['box']} (score {p['score']:.2f}); {p['pose']}")
    return 0


def add_person_eval_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--coco", default="../shared/data/coco/mini",
                   help="COCO folder with annotations/person_keypoints_{val,train}2017.json and the images")  # fmt: skip
    p.add_argument("--json", action="store_true", help="print the numbers as JSON")


def cmd_person_eval(args) -> int:
    """Both finders against COCO person boxes and keypoints (``person.accuracy``); CPU time of
    each per photo (median), every photo new to every finder."""
    import time

    import numpy as np

    from ..data.io import load_image
    from ..errors import DataError
    from ..person.accuracy import MIN_KEYPOINTS, coco_people, score_photo, summarise
    from ..person.finder import detect
    from ..person.multi import ROI_SCALES, detect_people

    recs = [r for r in coco_people(args.coco) if r["evaluated"]]
    if not recs:
        raise DataError(f"{args.coco}: no COCO person keypoint annotations with >= {MIN_KEYPOINTS} labelled keypoints")
    finders = {
        "single": lambda im: [p] if (p := detect(im)) else [],
        "multi": lambda im: detect_people(im, reuse=False),  # a photo new to both finders
        "thorough": lambda im: detect_people(im, reuse=False, thorough=True),
        "one_region": lambda im: detect_people(im, reuse=False, roi_scales=ROI_SCALES[:1]),  # before ROI_SCALES
    }
    counts: dict[str, list] = {name: [] for name in finders}
    cpu: dict[str, list] = {name: [] for name in finders}
    for r in recs:
        image = load_image(r["path"])
        for name, run in finders.items():
            t = time.process_time()
            people = run(image)
            cpu[name].append(time.process_time() - t)
            counts[name].append(score_photo(people, r))
    result = {name: {**summarise(c), "cpu_s_median": float(np.median(cpu[name]))} for name, c in counts.items()}
    if args.json:
        print(json.dumps(result, indent=1))
        return 0
    print(f"{len(recs)} COCO photos, {result['multi']['people']} people with >= {MIN_KEYPOINTS} labelled keypoints (IoU 0.5; PCK@0.2 of torso)")
    print(f"{'finder':10} {'found':>6} {'recall':>7} {'precision':>9} {'PCK all':>8} {'PCK found':>9} {'CPU s/photo (median)':>20}")
    for name, m in result.items():
        print(f"{name:10} {m['found']:6d} {m['recall']:7.3f} {m['precision']:9.3f} {m['pck_all']:8.3f} {m['pck_found']:9.3f} {m['cpu_s_median']:20.3f}")
    return 0
