"""The person finder: MediaPipe BlazePose (33 landmarks, 3-D world landmarks, person mask), offline.

Why this model and this pin: ``mediapipe==0.10.14`` is the last release whose wheel ships the
BlazePose graphs and ``.tflite`` files (``mediapipe/modules/pose_detection``,
``mediapipe/modules/pose_landmark/pose_landmark_full.tflite``) for the legacy ``mp.solutions.pose``
API; later releases fetch ``.task`` files from a hub at run time, which these machines cannot reach.

Contract (``find_person``):

* input: an RGB PIL image (any size; it is reduced to ``MAX_SIDE`` for the graph, coordinates are
  mapped back to photo pixels, origin top-left);
* output: a ``Person`` (landmarks with visibility, world landmarks, box, soft mask at photo size,
  score) or ``None`` when no person is found - callers fall back to the whole photo;
* deterministic (``static_image_mode``: no tracking between calls), thread-safe (one graph
  behind a lock: MediaPipe graphs are not re-entrant), and cached by image content (``PersonCache``) so
  the UI, the maps and the scores never run it twice for one photo.

BlazePose follows one person: the most prominent. ``Person.others`` says whether the mask shows
more people outside that person's box (then the UI says which one it explains).
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import os
import sys
import threading
import warnings
from collections import OrderedDict
from dataclasses import dataclass, field

import cv2
import numpy as np
from PIL import Image

from ..errors import HarError

MAX_SIDE = 640  # photos are reduced to this long side before the graph (its own inputs are 224/256 px)
MIN_DETECTION = 0.3  # detector confidence: 0.3 finds 11 of the 50 Flickr8k people 0.5 missed
BOX_MARGIN = 0.12  # fraction of the landmark box added on each side (head top, hands, feet)
N_LANDMARKS = 33

# BlazePose landmark names, in the model's order.
LANDMARK_NAMES = (
    "nose", "left_eye_inner", "left_eye", "left_eye_outer", "right_eye_inner", "right_eye", "right_eye_outer",
    "left_ear", "right_ear", "mouth_left", "mouth_right", "left_shoulder", "right_shoulder", "left_elbow",
    "right_elbow", "left_wrist", "right_wrist", "left_pinky", "right_pinky", "left_index", "right_index",
    "left_thumb", "right_thumb", "left_hip", "right_hip", "left_knee", "right_knee", "left_ankle", "right_ankle",
    "left_heel", "right_heel", "left_foot_index", "right_foot_index",
)  # fmt: skip
LM = {name: i for i, name in enumerate(LANDMARK_NAMES)}

# Bones drawn by the skeleton overlay (BlazePose topology, face reduced to the eyes-ears-nose chain).
BONES = (
    (0, 2), (0, 5), (2, 7), (5, 8), (9, 10),
    (11, 12), (11, 13), (13, 15), (12, 14), (14, 16), (15, 17), (15, 19), (17, 19), (16, 18), (16, 20), (18, 20),
    (11, 23), (12, 24), (23, 24), (23, 25), (24, 26), (25, 27), (26, 28), (27, 29), (28, 30), (29, 31), (30, 32), (27, 31), (28, 32),
)  # fmt: skip


class PersonFinderUnavailable(HarError):
    """The pose model cannot run here (mediapipe missing)."""


@dataclass(frozen=True)
class Person:
    """One person in one photo (photo pixels, origin top-left).

    keypoints: (33, 3) float32 - x, y in pixels and visibility in [0, 1] (BlazePose order);
    world:     (33, 3) float32 - metres, origin between the hips (orientation-free body geometry);
    box:       (x0, y0, x1, y1) ints, from the visible landmarks and the mask, with a margin (the
               region a person-crop model sees, as it was trained); ``body_box`` is the tight one;
    mask:      (H, W) float32 in [0, 1] at photo size (soft person segmentation);
    score:     mean visibility of the body landmarks (how sure the landmarks are);
    others:    True when the mask shows more people outside this one's box.
    """

    keypoints: np.ndarray
    world: np.ndarray
    box: tuple[int, int, int, int]
    mask: np.ndarray = field(repr=False)
    score: float
    image_size: tuple[int, int]
    others: bool = False

    @property
    def body_box(self) -> tuple[int, int, int, int]:
        """The body alone, no margin: the visible landmarks and the mask near them (``local_box``).
        COCO's person boxes are drawn this tight, so detection is judged on it; ``box`` keeps the
        margin a crop model needs (context, and what the checkpoints were trained on)."""
        return local_box(self.keypoints, self.mask if self.has_mask else None, self.image_size, margin=0.0)

    @property
    def has_mask(self) -> bool:
        """False for a person read back from the disk store (``store``), whose mask is a 1x1
        stand-in that only keeps ``mask_area``."""
        return self.mask.shape[0] > 1

    @property
    def mask_area(self) -> float:
        """Share of the photo covered by the person mask (soft)."""
        return float(self.mask.mean()) if self.mask.size else 0.0

    def to_json(self) -> dict:
        """The ``person --json`` record (without the path / found fields the CLI adds)."""
        return {
            "score": round(float(self.score), 4),
            "box": [int(v) for v in self.box],
            "keypoints": [[round(float(x), 1), round(float(y), 1), round(float(v), 3)] for x, y, v in self.keypoints],
            "mask_area": round(self.mask_area, 4),
            "others": bool(self.others),
        }


def available() -> str | None:
    """None when the person finder can run here, else one line saying why not."""
    if importlib.util.find_spec("mediapipe") is None:
        return "person finder unavailable: `pip install mediapipe==0.10.14` (it ships the BlazePose models)"
    return None


# protobuf 4 deprecation notice raised by mediapipe's packet getters on every call.
warnings.filterwarnings("ignore", message=r"SymbolDatabase\.GetPrototype", category=UserWarning)

# One graph for the process, used under a lock: mediapipe graphs are not thread-safe, and one
# graph per thread would grow memory with every app worker thread; calls take turns (~0.07 s).
_GRAPH = None
_GRAPH_LOCK = threading.Lock()


@contextlib.contextmanager
def _quiet_native_logs():
    """MediaPipe's C++ (glog, TFLite) writes INFO/WARNING lines to fd 2 while a graph starts;
    they say nothing a user can act on, so fd 2 goes to /dev/null for that moment."""
    os.environ.setdefault("GLOG_minloglevel", "2")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as null, warnings.catch_warnings():
            warnings.simplefilter("ignore")
            os.dup2(null.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def _graph():
    """The BlazePose graph (created on first use); call with ``_GRAPH_LOCK`` held."""
    global _GRAPH
    graph = _GRAPH
    if graph is None:
        reason = available()
        if reason:
            raise PersonFinderUnavailable(reason)
        with _quiet_native_logs():
            import mediapipe as mp

            graph = mp.solutions.pose.Pose(
                static_image_mode=True, model_complexity=1, enable_segmentation=True,
                min_detection_confidence=MIN_DETECTION, smooth_landmarks=False,
            )  # fmt: skip
            graph.process(np.zeros((64, 64, 3), np.uint8))  # the TFLite delegates log on their first run
        _GRAPH = graph
    return graph


def _reduce(image: Image.Image) -> tuple[np.ndarray, float]:
    """RGB uint8 array with the long side <= MAX_SIDE, and the photo-pixels-per-array-pixel scale."""
    w, h = image.size
    scale = max(w, h) / MAX_SIDE
    if scale > 1:
        small = image.resize((max(1, round(w / scale)), max(1, round(h / scale))), Image.BILINEAR)
    else:
        small, scale = image, 1.0
    if small.mode != "RGB":  # find_person passes RGB already: no copy then
        small = small.convert("RGB")
    return np.ascontiguousarray(np.asarray(small, dtype=np.uint8)), scale


def person_box(keypoints: np.ndarray, mask: np.ndarray | None, image_size: tuple[int, int],
               margin: float = BOX_MARGIN, min_visibility: float = 0.5) -> tuple[int, int, int, int]:
    """Box around the visible landmarks and the confident mask pixels, plus ``margin`` per side."""
    w, h = image_size
    vis = keypoints[:, 2] >= min_visibility
    pts = keypoints[vis if vis.sum() >= 4 else slice(None), :2]
    x0, y0 = pts.min(axis=0)
    x1, y1 = pts.max(axis=0)
    if mask is not None and mask.size:
        ys, xs = np.nonzero(mask > 0.5)
        if xs.size:
            x0, x1 = min(x0, xs.min()), max(x1, xs.max())
            y0, y1 = min(y0, ys.min()), max(y1, ys.max())
    mx, my = (x1 - x0) * margin, (y1 - y0) * margin
    box = (int(np.floor(max(0, x0 - mx))), int(np.floor(max(0, y0 - my))),
           int(np.ceil(min(w, x1 + mx))), int(np.ceil(min(h, y1 + my))))  # fmt: skip
    if box[2] - box[0] < 2 or box[3] - box[1] < 2:  # degenerate: the whole photo
        return 0, 0, int(w), int(h)
    return box


def local_box(keypoints: np.ndarray, mask: np.ndarray | None, image_size: tuple[int, int],
              margin: float = BOX_MARGIN) -> tuple[int, int, int, int]:
    """``person_box`` counting only the mask near the visible landmarks (their box grown by a
    quarter per side): the landmark model's mask covers its whole region, neighbours included,
    and a neighbour's body must not widen this person's box."""
    if mask is None or not mask.size:
        return person_box(keypoints, None, image_size, margin=margin)
    near = person_box(keypoints, None, image_size, margin=0.25)
    local = np.zeros_like(mask)
    local[near[1] : near[3], near[0] : near[2]] = mask[near[1] : near[3], near[0] : near[2]]
    return person_box(keypoints, local, image_size, margin=margin)


def _others(mask: np.ndarray, box: tuple[int, int, int, int]) -> bool:
    """Whether a sizeable part of the mask lies outside the (grown) person box: more people."""
    x0, y0, x1, y1 = box
    bw, bh = x1 - x0, y1 - y0
    outside = (mask > 0.5).copy()
    outside[max(0, y0 - bh // 4): y1 + bh // 4, max(0, x0 - bw // 4): x1 + bw // 4] = False
    inside = float((mask[y0:y1, x0:x1] > 0.5).sum())
    return bool(inside > 0 and outside.sum() > 0.25 * inside)


def detect(image: Image.Image) -> Person | None:
    """Run BlazePose once on ``image`` (no cache; see ``find_person``)."""
    arr, scale = _reduce(image)
    with _GRAPH_LOCK:
        result = _graph().process(arr)
    if result.pose_landmarks is None:
        return None
    w, h = image.size
    sh, sw = arr.shape[:2]
    kp = np.array([[p.x * sw * scale, p.y * sh * scale, p.visibility] for p in result.pose_landmarks.landmark], np.float32)
    world = (np.array([[p.x, p.y, p.z] for p in result.pose_world_landmarks.landmark], np.float32)
             if result.pose_world_landmarks is not None else np.zeros((N_LANDMARKS, 3), np.float32))  # fmt: skip
    kp[:, 0] = np.clip(kp[:, 0], 0, w - 1)
    kp[:, 1] = np.clip(kp[:, 1], 0, h - 1)
    seg = result.segmentation_mask
    mask = np.zeros((h, w), np.float32) if seg is None else cv2.resize(np.asarray(seg, np.float32), (w, h), interpolation=cv2.INTER_LINEAR)
    mask = np.clip(mask, 0.0, 1.0)
    body = kp[11:, 2]  # shoulders down: the face points are visible in nearly any crop
    score = float(body.mean())
    if score < 0.2:  # the landmark model found no body in the detector's box
        return None
    box = person_box(kp, mask, (w, h))
    return Person(kp, world, box, mask, score, (int(w), int(h)), _others(mask, box))


class PersonCache:
    """LRU cache of ``detect`` results keyed by the photo's pixels (so a re-upload hits too)."""

    def __init__(self, size: int = 64) -> None:
        self.size = size
        self._items: OrderedDict[str, Person | None] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = self.misses = 0

    @staticmethod
    def key(image: Image.Image) -> str:
        digest = hashlib.blake2b(digest_size=16)
        digest.update(f"{image.size}{image.mode}".encode())
        digest.update(image.tobytes())
        return digest.hexdigest()

    def _detect(self, image: Image.Image):
        return detect(image)

    def get(self, image: Image.Image) -> Person | None:
        key = self.key(image)
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                self.hits += 1
                return self._items[key]
        person = self._detect(image)  # outside the lock: other threads' photos go on meanwhile
        with self._lock:
            self.misses += 1
            self._items[key] = person
            while len(self._items) > self.size:
                self._items.popitem(last=False)
        return person

    def peek(self, image: Image.Image) -> tuple[bool, Person | None]:
        """``(cached, result)`` for ``image`` without running the finder on a miss."""
        key = self.key(image)
        with self._lock:
            return (True, self._items[key]) if key in self._items else (False, None)

    def clear(self) -> None:
        with self._lock:
            self._items.clear()


_CACHE = PersonCache()


def clear_cache() -> None:
    """Forget every cached result (benchmarks: the next photo is new to the finder)."""
    _CACHE.clear()


def find_person(image: Image.Image) -> Person | None:
    """The most prominent person in ``image``, or ``None``; cached by image content.

    Raises ``PersonFinderUnavailable`` (one line) when mediapipe is not installed."""
    if not isinstance(image, Image.Image):
        raise TypeError("find_person expects a PIL image (use data.io.load_image first)")
    return _CACHE.get(image if image.mode == "RGB" else image.convert("RGB"))


def cached_person(image: Image.Image) -> tuple[bool, Person | None]:
    """``(cached, person)``: ``find_person``'s result when it already ran on these pixels, without
    running it (``person.multi`` reuses it for the same detection)."""
    return _CACHE.peek(image if image.mode == "RGB" else image.convert("RGB"))


def find_person_or_none(image: Image.Image) -> Person | None:
    """``find_person``, but ``None`` too when the finder cannot run here (callers fall back)."""
    if available():
        return None
    return find_person(image)
