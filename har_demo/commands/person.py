"""``python -m har_demo person IMAGE... [--json] [--out DIR]``: where the person is, for tools.

``--json`` prints a list with one record per image: ``{"path", "found", "score", "box": [x0, y0,
x1, y1], "keypoints": [[x, y, visibility] x 33 in BlazePose order], "mask_area", "others",
"pose"}`` in photo pixels (origin top-left); with no person ``found`` is false and the other
fields are null. ``--out DIR`` writes ``<stem>_person.png`` per image: the skeleton, the mask
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
