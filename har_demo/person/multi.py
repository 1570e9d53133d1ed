"""Everyone in the photo: BlazePose's own detector for every person, its landmark model per person.

Why this route (the README's "The person finder" section has the measurements):

* the legacy ``mp.solutions.pose`` graph keeps only the first detection (``SplitDetectionVectorCalculator``
  0..1): one person per photo;
* MediaPipe Tasks' ``PoseLandmarker`` (``num_poses``) wants a ``.task`` bundle. Zipping the wheel's
  ``pose_detection.tflite`` + ``pose_landmark_full.tflite`` into one is refused at start-up ("Input
  tensor has type float32: it requires specifying NormalizationOptions metadata") - the wheel's
  files carry no TFLite metadata, and the released bundles are a download;
* a TFLite runtime from PyPI (``ai-edge-litert``) would mean a new dependency and re-implementing
  anchors, NMS, ROI alignment and mask projection in Python.

Instead two small graphs are built from the calculators the wheel already registers (the same ones
the legacy graph is made of, so the models and their pre/post-processing are identical):

* ``PoseDetectionCpu`` alone returns *every* detection (after its NMS), not only the first;
* ``PoseDetectionToRoi`` + ``PoseLandmarkByRoiCpu`` turn one detection into 33 landmarks, world
  landmarks and a segmentation mask; the graph is run once per detection.

The detector sees a 224 x 224 letterbox of what it is given, so people far smaller than the photo
are missed on the whole photo: it also runs on overlapping 3 x 3 tiles (``TILES``), whose detections are
mapped back to the photo. Two detections of one person give two near-identical landmark sets: the
weaker is dropped when the boxes overlap (``DUPLICATE_IOU``) or the keypoints coincide.

A detection whose landmark run gives no new body - the landmark score or the torso share rejects
it, or it is a body already found - gets a second run on a smaller region about the same hip centre
(``ROI_SCALES``); a run where the landmark model sees nobody in the region ends the tries (such
detections are most often no person: on COCO mini, second runs after them found 2 of the 91 people
and 9 false ones, for ~0.05 s more CPU per photo (median); ``thorough`` runs them anyway, with
more regions). A body found by a later region that lies inside another person's box is dropped
(``MAX_INSIDE``: most often a part of that person).

The single-person path (``finder.find_person``) stays the fast default; this one is used where every
person is wanted (``find_people``). No network: only files inside the wheel.
"""

from __future__ import annotations

import contextlib
import threading
from collections import OrderedDict

import cv2
import numpy as np
from PIL import Image

from .accuracy import intersection, iou
from .finder import (
    MIN_DETECTION,
    N_LANDMARKS,
    Person,
    PersonCache,
    PersonFinderUnavailable,
    _quiet_native_logs,
    _reduce,
    available,
    cached_person,
    local_box,
)

MIN_SCORE = MIN_DETECTION  # detector confidence
MAX_PEOPLE = 6  # people returned per photo (the most prominent first)
MAX_CANDIDATES = 16  # detections sent to the landmark model per photo (each costs one landmark run)
# Detector passes: (rows, cols) grids of overlapping tiles; (1, 1) is the whole photo. Each pass
# costs one detector run per tile (~12 ms CPU whatever the tile's size), the finder's main cost. No
# 2 x 2 pass: its tiles (0.62 of the photo side with the overlap) sit between the whole photo and the
# 3 x 3 tiles (0.42-0.5), within the detector's scale range of both; dropping it cut the finder's
# time by about a third for one COCO-mini person of 91 (README "The person finder").
TILES = ((1, 1), (3, 3))
TILE_OVERLAP = 0.25  # each tile reaches this fraction of its size into its neighbours
MIN_TILE_SIDE = 16  # smaller tiles are skipped (tiles find small people in large photos; a zero-width
# region makes MediaPipe's graph fail for good, so it must never be sent)
DUPLICATE_IOU = 0.5  # a second landmark set whose box overlaps a kept one this much is the same person
BOX_MARGIN = 0.05  # the landmark + mask box grown this much per side (the single-person finder: 0.12)
MIN_BODY_SCORE = 0.3  # mean visibility of the body landmarks below which a detection is dropped
# shoulder-to-hip length over box height above which the landmark set is not a body (a real person's
# is ~0.27, 90 % <= 0.39 on COCO mini; the landmark model's hallucinations run ~0.4-0.7): drops a
# tenth of the false people and none of the found ones there
MAX_TORSO_SHARE = 0.6
# The landmark model's region for a detection, as multiples of BlazePose's own (its body circle's
# radius; 1.0 first). A detection whose landmark run gives a body that is rejected (landmark score,
# torso share) or already found gets the next region, about the same hip centre, until one gives a
# new body; a run where the landmark model sees nobody at all ends the tries (``thorough``: it does
# not). COCO mini (README "The person finder"), 91 people: (1.0, 0.8) finds 2 more than (1.0,) at
# the same precision and ~ the same CPU time; ``thorough`` (THOROUGH, no stop) 7 more, with more
# false people, for ~0.13 s more CPU per photo (median).
ROI_SCALES = (1.0, 0.8)
THOROUGH = (1.0, 0.8, 0.65, 1.25)
# a body found only by a second region is dropped when this share of its box lies inside another
# person's box: there it is most often a part of that person (on COCO mini, every region tried after
# a first run: 8 of the 20 false people the second region added, none of the 4 right ones)
MAX_INSIDE = 0.8

_DETECTOR_GRAPH = """
input_stream: "image"
output_stream: "detections"
node { calculator: "PoseDetectionCpu" input_stream: "IMAGE:image" output_stream: "DETECTIONS:detections" }
"""

_LANDMARK_GRAPH = """
input_stream: "image"
input_stream: "detection"
output_stream: "landmarks"
output_stream: "world_landmarks"
output_stream: "segmentation_mask"
input_side_packet: "model_complexity"
input_side_packet: "enable_segmentation"
node { calculator: "ImagePropertiesCalculator" input_stream: "IMAGE_CPU:image" output_stream: "SIZE:image_size" }
node { calculator: "PoseDetectionToRoi" input_stream: "DETECTION:detection" input_stream: "IMAGE_SIZE:image_size"
       output_stream: "ROI:roi" }
node { calculator: "PoseLandmarkByRoiCpu" input_stream: "IMAGE:image" input_stream: "ROI:roi"
       output_stream: "LANDMARKS:landmarks" output_stream: "AUXILIARY_LANDMARKS:aux"
       output_stream: "WORLD_LANDMARKS:world_landmarks" output_stream: "SEGMENTATION_MASK:mask_image"
       input_side_packet: "MODEL_COMPLEXITY:model_complexity"
       input_side_packet: "ENABLE_SEGMENTATION:enable_segmentation" }
node { calculator: "FromImageCalculator" input_stream: "IMAGE:mask_image" output_stream: "IMAGE_CPU:segmentation_mask" }
"""

_GRAPHS = None
_LOCK = threading.Lock()  # mediapipe graphs are not re-entrant; this pair is separate from the single-person graph


def _drop_graphs() -> None:
    """Forget the graphs (call with ``_LOCK`` held): the next ``_graphs()`` builds fresh ones."""
    global _GRAPHS
    graphs, _GRAPHS = _GRAPHS, None
    for graph in graphs or ():
        with contextlib.suppress(RuntimeError, ValueError):  # a broken graph may fail to close too; dropped either way
            graph.close()


def _graphs():
    """(detector, landmarker) solution graphs, built on first use; call with ``_LOCK`` held."""
    global _GRAPHS
    if _GRAPHS is None:
        reason = available()
        if reason:
            raise PersonFinderUnavailable(reason)
        with _quiet_native_logs():
            from google.protobuf import text_format
            from mediapipe.framework import calculator_pb2
            from mediapipe.python.solution_base import SolutionBase

            def config(text):
                return text_format.Parse(text, calculator_pb2.CalculatorGraphConfig())

            detector = SolutionBase(graph_config=config(_DETECTOR_GRAPH),
                                    calculator_params={"posedetectioncpu__TensorsToDetectionsCalculator.min_score_thresh": MIN_SCORE})  # fmt: skip
            landmarker = SolutionBase(graph_config=config(_LANDMARK_GRAPH), side_inputs={"model_complexity": 1, "enable_segmentation": True})
            blank = np.zeros((64, 64, 3), np.uint8)
            detector.process(blank)  # the TFLite delegates log on their first run
        _GRAPHS = (detector, landmarker)
    return _GRAPHS


def tiles(width: int, height: int, grids=TILES, overlap: float = TILE_OVERLAP) -> list[tuple[int, int, int, int]]:
    """The detector's regions (x0, y0, x1, y1) of a ``width`` x ``height`` array: for each
    (rows, cols) grid, cells grown by ``overlap`` of their size into their neighbours."""
    out = []
    for rows, cols in grids:
        tw, th = width / cols, height / rows
        for r in range(rows):
            for c in range(cols):
                if rows == cols == 1:
                    out.append((0, 0, width, height))
                    continue
                x0, x1 = max(0.0, (c - overlap) * tw), min(float(width), (c + 1 + overlap) * tw)
                y0, y1 = max(0.0, (r - overlap) * th), min(float(height), (r + 1 + overlap) * th)
                tile = (int(x0), int(y0), round(x1), round(y1))
                if min(tile[2] - tile[0], tile[3] - tile[1]) >= MIN_TILE_SIDE:
                    out.append(tile)
    return out


def _to_photo(detection, tile: tuple[int, int, int, int], width: int, height: int):
    """A detection made on ``tile`` re-expressed relative to the whole (width x height) array."""
    x0, y0, x1, y1 = tile
    sx, sy = (x1 - x0) / width, (y1 - y0) / height
    ox, oy = x0 / width, y0 / height
    box = detection.location_data.relative_bounding_box
    box.xmin, box.ymin = ox + box.xmin * sx, oy + box.ymin * sy
    box.width, box.height = box.width * sx, box.height * sy
    for kp in detection.location_data.relative_keypoints:
        kp.x, kp.y = ox + kp.x * sx, oy + kp.y * sy
    return detection


def _body_circle(detection) -> tuple[float, float, float]:
    """(cx, cy, r) relative to the array: hip centre and the full-body circle point (keypoints 0, 1)."""
    k = detection.location_data.relative_keypoints
    return k[0].x, k[0].y, float(np.hypot(k[1].x - k[0].x, k[1].y - k[0].y))


def _candidates(detector, arr: np.ndarray, grids) -> tuple[list, object]:
    """Every detection over the whole array and its tiles, strongest first, with near-duplicates
    (same body circle) merged, capped at ``MAX_CANDIDATES``; and the whole array's first detection
    (the one the single-person graph follows) or None."""
    h, w = arr.shape[:2]
    found, primary = [], None
    for tile in tiles(w, h, grids):
        x0, y0, x1, y1 = tile
        whole = tile == (0, 0, w, h)
        part = arr if whole else np.ascontiguousarray(arr[y0:y1, x0:x1])
        result = detector.process(part)
        for det in result.detections or []:
            found.append(_to_photo(det, tile, w, h))
            if whole and primary is None:
                primary = found[-1]
    found.sort(key=lambda d: -d.score[0])
    kept, circles = [], []
    for det in found:
        cx, cy, r = _body_circle(det)
        # the same body seen on the photo and on a tile: centres within a fifth of the body radius
        if any(np.hypot((cx - c[0]) * w, (cy - c[1]) * h) < 0.2 * max(r, c[2]) * max(w, h) for c in circles):
            continue
        kept.append(det)
        circles.append((cx, cy, r))
        if len(kept) >= MAX_CANDIDATES:
            break
    return kept, primary


def _scaled(detection, factor: float):
    """``detection`` with its body circle's radius times ``factor`` (the landmark model's region
    grows or shrinks with it, about the same hip centre)."""
    if factor == 1.0:
        return detection
    from mediapipe.framework.formats import detection_pb2

    out = detection_pb2.Detection()
    out.CopyFrom(detection)
    k = out.location_data.relative_keypoints
    k[1].x = k[0].x + (k[1].x - k[0].x) * factor
    k[1].y = k[0].y + (k[1].y - k[0].y) * factor
    return out


def _person(result, arr_size, scale, image_size) -> Person | None:
    """The ``Person`` for one landmark-graph result (photo pixels), or None when no body."""
    if result.landmarks is None:
        return None
    sw, sh = arr_size
    w, h = image_size
    kp = np.array([[p.x * sw * scale, p.y * sh * scale, p.visibility] for p in result.landmarks.landmark], np.float32)
    if kp.shape[0] != N_LANDMARKS:
        return None
    world = (np.array([[p.x, p.y, p.z] for p in result.world_landmarks.landmark], np.float32)
             if result.world_landmarks is not None else np.zeros((N_LANDMARKS, 3), np.float32))  # fmt: skip
    kp[:, 0] = np.clip(kp[:, 0], 0, w - 1)
    kp[:, 1] = np.clip(kp[:, 1], 0, h - 1)
    if float(kp[11:, 2].mean()) < MIN_BODY_SCORE:
        return None  # before the mask resize: most dropped candidates stop here
    seg = result.segmentation_mask
    if seg is None:
        mask = np.zeros((h, w), np.float32)
    else:
        mask = np.clip(cv2.resize(np.asarray(seg, np.float32), (w, h), interpolation=cv2.INTER_LINEAR), 0.0, 1.0)
    return _checked(kp, world, mask, (w, h))


def _checked(kp: np.ndarray, world: np.ndarray, mask: np.ndarray, image_size: tuple[int, int]) -> Person | None:
    """The ``Person`` for landmarks (photo pixels, clipped) and a photo-size mask, with this
    finder's box, or None when the landmark set is not a body (score, torso share)."""
    w, h = image_size
    score = float(kp[11:, 2].mean())
    if score < MIN_BODY_SCORE:
        return None
    box = _box(kp, mask, (w, h))
    shoulders, hips = kp[[11, 12], :2].mean(0), kp[[23, 24], :2].mean(0)
    if float(np.hypot(*(shoulders - hips))) > MAX_TORSO_SHARE * max(1, box[3] - box[1]):
        return None
    return Person(kp, world, box, mask, score, (int(w), int(h)))


def _box(kp: np.ndarray, mask: np.ndarray, size: tuple[int, int]) -> tuple[int, int, int, int]:
    """The person box: only the mask near this person's landmarks counts (``local_box``)."""
    return local_box(kp, mask, size, margin=BOX_MARGIN)


def _same_person(a: Person, b: Person) -> bool:
    """Two landmark sets of one body: boxes overlapping ``DUPLICATE_IOU`` or most visible keypoints
    within a tenth of the box size of each other."""
    if iou(a.box, b.box) >= DUPLICATE_IOU:
        return True
    vis = (a.keypoints[:, 2] > 0.5) & (b.keypoints[:, 2] > 0.5)
    if vis.sum() < 4:
        return False
    size = max(a.box[2] - a.box[0], a.box[3] - a.box[1], 1)
    close = np.hypot(*(a.keypoints[vis, :2] - b.keypoints[vis, :2]).T) < 0.1 * size
    return bool(close.mean() > 0.6)


def _already_found(detection, people: list[Person], width: float, height: float) -> bool:
    """Whether a detection's hip centre lies on the hips of a person already found (within 0.2 of
    that person's box height): then it is that body seen again (often a tile's view of part of it),
    and its landmark run would only be dropped as a duplicate. Two people whose hips are that close
    (one right behind the other) are counted once."""
    cx, cy, _ = _body_circle(detection)
    cx, cy = cx * width, cy * height
    for p in people:
        hx, hy = p.keypoints[[23, 24], :2].mean(0)
        if np.hypot(cx - hx, cy - hy) < 0.2 * max(1.0, float(p.box[3] - p.box[1])):
            return True
    return False


def _inside(a, b) -> float:
    """The share of box ``a`` that lies inside box ``b``."""
    return float(intersection(a, b) / max(1.0, float((a[2] - a[0]) * (a[3] - a[1]))))


def prominence(person: Person) -> float:
    """How prominent a person is: box area (share of the photo) times the landmark score."""
    x0, y0, x1, y1 = person.box
    w, h = person.image_size
    return (x1 - x0) * (y1 - y0) / max(1, w * h) * person.score


def detect_people(image: Image.Image, max_people: int = MAX_PEOPLE, grids=None, reuse: bool = True,
                  roi_scales=None, thorough: bool = False) -> list[Person]:  # fmt: skip
    """Every person in ``image`` (up to ``max_people``), most prominent first (no cache; see
    ``find_people``). Each ``Person`` has its own mask (the landmark model's segmentation of its
    region) and ``others`` True when more than one person is returned. ``grids``: the detector's
    passes (default ``TILES``); ``roi_scales``: the landmark regions tried per detection (default
    ``ROI_SCALES``, or ``THOROUGH`` with ``thorough``). A further region is tried only after a run
    whose landmarks were rejected or duplicated, or with ``thorough`` also after one where the
    landmark model saw nobody (more people, more false ones, more runs: README "The person finder").

    With ``reuse``, when the single-person finder already ran on these pixels (its cache: the app
    runs it first) and found someone, its landmarks and mask stand in for the landmark run on the whole photo's first
    detection: its graph ran the same detector on the same array and the same landmark model on
    that detection, so the result is the same (tested), one landmark run (~19 ms CPU) cheaper."""
    grids = TILES if grids is None else grids
    roi_scales = (THOROUGH if thorough else ROI_SCALES) if roi_scales is None else tuple(roi_scales)
    arr, scale = _reduce(image)
    sh, sw = arr.shape[:2]
    people: list[Person] = []
    extra: set[int] = set()  # people found by a second region (ids)
    known, single = cached_person(image) if reuse else (False, None)
    with _LOCK:
        detector, landmarker = _graphs()
        try:
            candidates, primary = _candidates(detector, arr, grids)
            for det in candidates:
                if _already_found(det, people, sw * scale, sh * scale):
                    continue  # the same body again (another tile's view of it): no landmark run
                for f in roi_scales:  # the next region only while this detection finds nobody new
                    if f == 1.0 and known and det is primary and single is not None and single.has_mask:
                        # the single finder's person (when it found none, its landmark run is redone here:
                        # whether the landmark model saw anybody decides about the next region)
                        person = _checked(single.keypoints, single.world, single.mask, image.size)
                    else:
                        result = landmarker.process({"image": arr, "detection": _scaled(det, f)})
                        if result.landmarks is None and not thorough:
                            break  # the landmark model sees nobody in the region: most often no person at all
                        person = _person(result, (sw, sh), scale, image.size)
                    if person is not None and not any(_same_person(person, p) for p in people):
                        people.append(person)
                        if f != roi_scales[0]:
                            extra.add(id(person))
                        break
        except RuntimeError:
            _drop_graphs()  # a MediaPipe graph that failed keeps failing ("Graph has errors"): rebuild on next use
            raise
    # a second region's body inside another person's box is most often a part of that person
    people = [p for p in people if id(p) not in extra or not any(_inside(p.body_box, q.body_box) >= MAX_INSIDE for q in people if q is not p)]
    people.sort(key=lambda p: -prominence(p))
    people = people[:max_people]
    if len(people) > 1:
        people = [Person(p.keypoints, p.world, p.box, p.mask, p.score, p.image_size, True) for p in people]
    return people


class PeopleCache(PersonCache):
    """``PersonCache`` for ``detect_people`` results (lists), keyed by the photo's pixels."""

    def __init__(self, size: int = 32) -> None:
        super().__init__(size)
        self._items: OrderedDict[str, list[Person]] = OrderedDict()

    def _detect(self, image: Image.Image):
        return detect_people(image)


_CACHE = PeopleCache()


def clear_cache() -> None:
    """Forget every cached result (benchmarks: the next photo is new to the finder)."""
    _CACHE.clear()


def find_people(image: Image.Image) -> list[Person]:
    """Every person in ``image`` (up to ``MAX_PEOPLE``), most prominent first; ``[]`` when none;
    cached by image content. Raises ``PersonFinderUnavailable`` (one line) without mediapipe."""
    if not isinstance(image, Image.Image):
        raise TypeError("find_people expects a PIL image (use data.io.load_image first)")
    return list(_CACHE.get(image if image.mode == "RGB" else image.convert("RGB")))


def find_people_or_empty(image: Image.Image) -> list[Person]:
    """``find_people``, but ``[]`` too when the finder cannot run here (callers fall back)."""
    if available():
        return []
    return find_people(image)
