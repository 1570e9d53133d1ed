"""Why the multi-person finder misses COCO-mini people, and how many any selection could find.

    .venv/bin/python benchmarks/people_misses.py [--coco ../shared/data/coco/mini]

1. ``find_people`` as shipped: each labelled person (>= 10 keypoints) it misses at IoU 0.5 (tight
   ``body_box``) is put in one bin: ``none_near`` (no found box reaches IoU 0.1), ``spans_several``
   (the nearest found box overlaps two or more labelled people at IoU > 0.1: one landmark set drawn
   across neighbours), ``box_too_big`` / ``box_too_small`` (its one person, badly boxed).
2. An upper bound: every detector candidate (threshold 0.1; whole photo, 2 x 2, 3 x 3 and 4 x 4
   tiles; with and without a mirrored whole-photo pass) gets its landmark run, and a labelled person
   counts when *any* of those landmark sets' body boxes reaches IoU 0.5 - what a perfect choice
   among the candidates would find. Takes a few minutes (several hundred landmark runs).
4. With ``--seeds``: would other seeds for the landmark model help? For every labelled person:
   whether any detector candidate (as in 2, no mirror) boxes it, whether a region seeded from
   OpenCV's HOG people detector (``cv2.HOGDescriptor_getDefaultPeopleDetector``, on the photo and
   on it upscaled 2 x) does, and whether an upright region seeded from its own labelled box does
   (an oracle: the best any person detector could do for this landmark model; region side 1.0,
   1.2 and 1.5 x the box's long side).
3. With ``--threshold-check``: the shipped finder vs the same at detector threshold 0.2 - PCK@0.2
   of the people both match, and of the people only the lower threshold matches (are they really
   found, or only boxed?).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from har_demo.data.io import load_image
from har_demo.person import multi
from har_demo.person.accuracy import coco_people, iou, match, pck
from har_demo.person.finder import _reduce

GRIDS = ((1, 1), (2, 2), (3, 3), (4, 4))


def bins(recs) -> dict:
    out = dict.fromkeys(("matched", "none_near", "spans_several", "box_too_big", "box_too_small"), 0)
    for r in recs:
        people = multi.detect_people(load_image(r["path"]))
        boxes = [p.body_box for p in people]
        gt = [b for b, _ in r["evaluated"]]
        hit = {j for _, j in match(boxes, gt)}
        for j, g in enumerate(gt):
            if j in hit:
                out["matched"] += 1
                continue
            v, b = max(((iou(b, g), b) for b in boxes), default=(0.0, None), key=lambda t: t[0])
            if v < 0.1:
                out["none_near"] += 1
            elif sum(iou(b, h) > 0.1 for h in gt + r["ignored"]) >= 2:
                out["spans_several"] += 1
            else:
                out["box_too_big" if (b[2] - b[0]) * (b[3] - b[1]) > (g[2] - g[0]) * (g[3] - g[1]) else "box_too_small"] += 1
    return out


@contextlib.contextmanager
def _loose_graphs(min_score: float = 0.1):
    """The detector / landmark graphs with a low detector threshold (every candidate), restored after."""
    saved = multi.MIN_SCORE, multi._GRAPHS
    multi.MIN_SCORE, multi._GRAPHS = min_score, None
    try:
        with multi._LOCK:
            yield multi._graphs()
    finally:
        multi.MIN_SCORE, multi._GRAPHS = saved


def _photos(recs):
    """(record, image, reduced array, scale, width, height) per photo, as the finder sees it."""
    for r in recs:
        image = load_image(r["path"])
        arr, scale = _reduce(image)
        h, w = arr.shape[:2]
        yield r, image, arr, scale, w, h


def upper_bound(recs) -> dict:
    found = {"no_mirror": 0, "with_mirror": 0}
    with _loose_graphs() as (detector, landmarker):
        for r, image, arr, scale, w, h in _photos(recs):
            sets = {"no_mirror": [], "with_mirror": []}
            runs = [(det, False) for det in _all(detector, arr, GRIDS)]
            mirrored = np.ascontiguousarray(arr[:, ::-1])
            for det in detector.process(mirrored).detections or []:
                box = det.location_data.relative_bounding_box
                box.xmin = 1 - box.xmin - box.width
                for kp in det.location_data.relative_keypoints:
                    kp.x = 1 - kp.x
                runs.append((det, True))
            for det, is_mirror in runs:
                person = multi._person(landmarker.process({"image": arr, "detection": det}), (w, h), scale, image.size)
                if person is not None:
                    for key in ("with_mirror",) if is_mirror else ("no_mirror", "with_mirror"):
                        sets[key].append(person.body_box)
            for key, boxes in sets.items():
                found[key] += sum(max((iou(b, g) for b in boxes), default=0.0) >= 0.5 for g, _ in r["evaluated"])
    return found


def threshold_check(recs, threshold: float = 0.2) -> dict:
    saved = multi.MIN_SCORE, multi._GRAPHS
    per = {}
    try:
        for label, thr in (("shipped", saved[0]), (f"threshold_{threshold}", threshold)):
            multi.MIN_SCORE, multi._GRAPHS = thr, None
            per[label] = {}
            for k, r in enumerate(recs):
                people = multi.detect_people(load_image(r["path"]))
                for i, j in match([p.body_box for p in people], [b for b, _ in r["evaluated"]]):
                    per[label][(k, j)] = pck(people[i].keypoints, r["evaluated"][j][1])
    finally:
        multi.MIN_SCORE, multi._GRAPHS = saved
    both = set.intersection(*(set(v) for v in per.values()))

    def rate(d, keys):
        n = sum(d[k][1] for k in keys)
        return {"people": len(keys), "keypoints": n, "pck": round(sum(d[k][0] for k in keys) / n, 3) if n else None}

    return {label: {"matched_by_both": rate(d, both), "matched_only_here": rate(d, set(d) - both)} for label, d in per.items()}


def _upright(cx: float, cy: float, radius: float, w: int, h: int):
    """A detection (array-relative) whose hip centre is (cx, cy) px and whose body circle has
    ``radius`` px, pointing straight up: the landmark model's region is then a square of side
    2.5 x radius (PoseDetectionToRoi's 1.25 x the circle) about (cx, cy)."""
    from mediapipe.framework.formats import detection_pb2

    det = detection_pb2.Detection()
    det.score.append(1.0)
    loc = det.location_data
    loc.format = loc.RELATIVE_BOUNDING_BOX
    loc.relative_bounding_box.xmin, loc.relative_bounding_box.ymin = (cx - radius) / w, (cy - radius) / h
    loc.relative_bounding_box.width, loc.relative_bounding_box.height = 2 * radius / w, 2 * radius / h
    for x, y in ((cx, cy), (cx, cy - radius), (cx, cy - radius / 2), (cx, cy - radius)):
        kp = loc.relative_keypoints.add()
        kp.x, kp.y = x / w, y / h
    return det


def seeds(recs) -> dict:
    import cv2

    hog = cv2.HOGDescriptor()
    hog.setSVMDetector(cv2.HOGDescriptor_getDefaultPeopleDetector())
    hog_cpu = {1.0: [], 2.0: []}
    out = dict.fromkeys(("people", "candidates", "hog", "candidates_or_hog", "labelled_box_1.0", "labelled_box_any", "candidates_or_labelled_box"), 0)
    with _loose_graphs() as (detector, landmarker):
        for r, image, arr, scale, w, h in _photos(recs):

            def body(det, arr=arr, w=w, h=h, scale=scale, size=image.size):
                p = multi._person(landmarker.process({"image": arr, "detection": det}), (w, h), scale, size)
                return None if p is None else p.body_box

            cand = [body(d) for d in _all(detector, arr, GRIDS)]
            hogs = []
            for up in (1.0, 2.0):
                big = arr if up == 1 else cv2.resize(arr, None, fx=up, fy=up)
                t = time.process_time()
                rects, _ = hog.detectMultiScale(big, winStride=(8, 8), padding=(8, 8), scale=1.05)
                hog_cpu[up].append(time.process_time() - t)
                for x, y, bw, bh in (np.asarray(rects) / up if len(rects) else []):
                    # the window holds a person ~0.75 of its height, hips a little below its middle
                    hogs.append(body(_upright(x + bw / 2, y + 0.55 * bh, 0.41 * bh, w, h)))
            for g, _ in r["evaluated"]:
                def hit(boxes, g=g):
                    return max((iou(b, g) for b in boxes if b is not None), default=0.0) >= 0.5

                side = max(g[2] - g[0], g[3] - g[1]) / scale
                cx, cy = (g[0] + g[2]) / 2 / scale, (g[1] + g[3]) / 2 / scale
                oracle = [hit([body(_upright(cx, cy, f * side / 2.5, w, h))]) for f in (1.0, 1.2, 1.5)]
                c, hg = hit(cand), hit(hogs)
                for key, ok in (("people", True), ("candidates", c), ("hog", hg), ("candidates_or_hog", c or hg),
                                ("labelled_box_1.0", oracle[0]), ("labelled_box_any", any(oracle)),
                                ("candidates_or_labelled_box", c or any(oracle))):  # fmt: skip
                    out[key] += ok
    out["hog_cpu_s_median"] = {f"{up:g}x": round(float(np.median(v)), 3) for up, v in hog_cpu.items()}
    return out


def _all(detector, arr, grids) -> list:
    h, w = arr.shape[:2]
    out = []
    for tile in multi.tiles(w, h, grids):
        x0, y0, x1, y1 = tile
        part = arr if tile == (0, 0, w, h) else np.ascontiguousarray(arr[y0:y1, x0:x1])
        out += [multi._to_photo(d, tile, w, h) for d in detector.process(part).detections or []]
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--coco", default=str(ROOT.parent / "shared" / "data" / "coco" / "mini"))
    ap.add_argument("--threshold-check", action="store_true", help="only part 3 (about a minute)")
    ap.add_argument("--seeds", action="store_true", help="only part 4 (a few minutes)")
    args = ap.parse_args()
    recs = [r for r in coco_people(args.coco) if r["evaluated"]]
    if args.seeds:
        result = seeds(recs)
    elif args.threshold_check:
        result = threshold_check(recs)
    else:
        result = {"people": sum(len(r["evaluated"]) for r in recs), "shipped": bins(recs), "any_candidate": upper_bound(recs)}
    print(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
