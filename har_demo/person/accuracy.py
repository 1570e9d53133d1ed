"""How well the person finder does against COCO's person boxes and keypoints.

Detection: a ground-truth person counts (is *evaluated*) when it is not a crowd region and has
``>= MIN_KEYPOINTS`` labelled keypoints; found people (their tight ``body_box``: COCO's boxes
outline the visible body, no margin) are matched one-to-one to ground-truth boxes,
greedily by IoU (highest first), at ``IOU >= 0.5``. Recall = evaluated people matched / evaluated
people. Precision = found people matched to an evaluated person / found people that are not matched
to an ignored person (a crowd region or a person with few labelled keypoints: finding them is
neither right nor wrong, as in COCO's own evaluation).

Landmarks: PCK@0.2 - a labelled COCO keypoint is correct when the matched person's BlazePose
landmark for the same joint lies within 0.2 x the torso size (the larger of the two diagonals
left shoulder - right hip and right shoulder - left hip, from the labels). People whose torso is not
labelled have no torso size and are left out of PCK. ``pck_all`` counts the keypoints of people the
finder missed as wrong, so a path that finds fewer people cannot look better for it.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

MIN_KEYPOINTS = 10
IOU = 0.5
PCK_ALPHA = 0.2
# COCO's 17 keypoints (its order) -> the BlazePose landmark of the same joint.
COCO_TO_BLAZEPOSE = (0, 2, 5, 7, 8, 11, 12, 13, 14, 15, 16, 23, 24, 25, 26, 27, 28)
_LS, _RS, _LH, _RH = 5, 6, 11, 12  # COCO indices of the torso corners


def intersection(a, b) -> float:
    """Area shared by two (x0, y0, x1, y1) boxes."""
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    return ix * iy


def iou(a, b) -> float:
    """Intersection over union of two (x0, y0, x1, y1) boxes (0 when the union is empty)."""
    inter = intersection(a, b)
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return float(inter / union) if union > 0 else 0.0


def match(pred_boxes, gt_boxes, threshold: float = IOU) -> list[tuple[int, int]]:
    """One-to-one (pred index, gt index) pairs, greedily by IoU from the highest, IoU >= threshold."""
    pairs = sorted(((iou(p, g), i, j) for i, p in enumerate(pred_boxes) for j, g in enumerate(gt_boxes)), reverse=True)
    used_p, used_g, out = set(), set(), []
    for v, i, j in pairs:
        if v < threshold:
            break
        if i not in used_p and j not in used_g:
            used_p.add(i)
            used_g.add(j)
            out.append((i, j))
    return out


def torso_size(gt_kp: np.ndarray) -> float | None:
    """The larger labelled torso diagonal of a COCO (17, 3) keypoint array, or None."""
    sizes = [float(np.hypot(*(gt_kp[a, :2] - gt_kp[b, :2]))) for a, b in ((_LS, _RH), (_RS, _LH)) if gt_kp[a, 2] > 0 and gt_kp[b, 2] > 0]
    return max(sizes) if sizes and max(sizes) > 0 else None


def pck(pred_kp: np.ndarray | None, gt_kp: np.ndarray, alpha: float = PCK_ALPHA) -> tuple[int, int]:
    """(correct, labelled) keypoints of one person: ``pred_kp`` is BlazePose (33, >=2) in pixels or
    None (missed: every labelled keypoint wrong); ``gt_kp`` COCO (17, 3)."""
    labelled = gt_kp[:, 2] > 0
    n = int(labelled.sum())
    size = torso_size(gt_kp)
    if pred_kp is None or size is None:
        return 0, n
    d = np.hypot(*(pred_kp[list(COCO_TO_BLAZEPOSE), :2] - gt_kp[:, :2]).T)
    return int(((d <= alpha * size) & labelled).sum()), n


def coco_people(annotations_dir: str | Path, splits=("val2017", "train2017")) -> list[dict]:
    """One record per image that has a person annotation: {path, evaluated: [(box, kp17)], ignored: [box]}."""
    out = []
    root = Path(annotations_dir)
    for split in splits:
        f = root / "annotations" / f"person_keypoints_{split}.json"
        if not f.is_file():
            continue
        doc = json.loads(f.read_text(encoding="utf-8"))
        by_image: dict[int, list[dict]] = {}
        for a in doc["annotations"]:
            by_image.setdefault(a["image_id"], []).append(a)
        for img in doc["images"]:
            anns = by_image.get(img["id"], [])
            if not anns:
                continue
            rec = {"path": str(root / split / img["file_name"]), "evaluated": [], "ignored": []}
            for a in anns:
                x, y, w, h = a["bbox"]
                box = (x, y, x + w, y + h)
                if not a.get("iscrowd") and a.get("num_keypoints", 0) >= MIN_KEYPOINTS:
                    rec["evaluated"].append((box, np.asarray(a["keypoints"], np.float64).reshape(17, 3)))
                else:
                    rec["ignored"].append(box)
            out.append(rec)
    return out


def score_photo(people: list, rec: dict) -> dict:
    """Counts for one photo: ``people`` found (objects with .box and .keypoints), ``rec`` from ``coco_people``."""
    gt_boxes = [b for b, _ in rec["evaluated"]]
    pred_boxes = [getattr(p, "body_box", p.box) for p in people]  # tight, as COCO draws its boxes
    pairs = match(pred_boxes, gt_boxes)
    matched_pred = {i for i, _ in pairs}
    # unmatched found people that cover an ignored person are neither right nor wrong
    rest = [i for i in range(len(people)) if i not in matched_pred]
    ignored_hits = {rest[i] for i, _ in match([pred_boxes[i] for i in rest], rec["ignored"])}
    by_gt = {j: i for i, j in pairs}
    correct = labelled = correct_found = labelled_found = 0
    for j, (_, kp) in enumerate(rec["evaluated"]):
        i = by_gt.get(j)
        c, n = pck(people[i].keypoints if i is not None else None, kp)
        if torso_size(kp) is None:
            continue
        correct, labelled = correct + c, labelled + n
        if i is not None:
            correct_found, labelled_found = correct_found + c, labelled_found + n
    return {"gt": len(gt_boxes), "found": len(people), "tp": len(pairs), "fp": len(people) - len(pairs) - len(ignored_hits),
            "pck_correct": correct, "pck_labelled": labelled, "pck_found_correct": correct_found, "pck_found_labelled": labelled_found}  # fmt: skip


def summarise(counts: list[dict]) -> dict:
    """Recall, precision and PCK over photos' ``score_photo`` counts."""
    total = {k: sum(c[k] for c in counts) for k in counts[0]} if counts else {}
    if not total:
        return {}
    tp, gt, fp = total["tp"], total["gt"], total["fp"]
    return {
        "photos": len(counts), "people": gt, "found": total["found"], "matched": tp,
        "recall": tp / gt if gt else float("nan"),
        "precision": tp / (tp + fp) if tp + fp else float("nan"),
        "pck_all": total["pck_correct"] / total["pck_labelled"] if total["pck_labelled"] else float("nan"),
        "pck_found": total["pck_found_correct"] / total["pck_found_labelled"] if total["pck_found_labelled"] else float("nan"),
    }  # fmt: skip
