"""Body geometry from the landmarks: the numbers a person would look at to tell sitting from standing
from walking, as model inputs (``pose_features``) and as one sentence for the UI (``describe_pose``).

Two views of the same body:

* the 2-D landmarks in the photo, centred on the hips and scaled by the torso length (so a small
  far-away walker and a close-up sitter are comparable), with their visibilities;
* the 3-D world landmarks (metres, hip-centred): angles measured there do not shrink when the
  camera looks at a seated person from the front (the thighs point at the lens and look short in 2-D).

Angles are in degrees; a straight knee is ~180, a seated one ~90.
"""

from __future__ import annotations

import numpy as np

from .finder import LM, N_LANDMARKS, Person

# (a, b, c): the angle at b between b->a and b->c.
JOINTS = {
    "left_knee": ("left_hip", "left_knee", "left_ankle"),
    "right_knee": ("right_hip", "right_knee", "right_ankle"),
    "left_hip": ("left_shoulder", "left_hip", "left_knee"),
    "right_hip": ("right_shoulder", "right_hip", "right_knee"),
    "left_elbow": ("left_shoulder", "left_elbow", "left_wrist"),
    "right_elbow": ("right_shoulder", "right_elbow", "right_wrist"),
}


def _angle(a: np.ndarray, b: np.ndarray, c: np.ndarray) -> float:
    u, v = a - b, c - b
    nu, nv = np.linalg.norm(u), np.linalg.norm(v)
    if nu < 1e-6 or nv < 1e-6:
        return 180.0
    return float(np.degrees(np.arccos(np.clip(np.dot(u, v) / (nu * nv), -1.0, 1.0))))


def _mid(points: np.ndarray, a: str, b: str) -> np.ndarray:
    return (points[LM[a]] + points[LM[b]]) / 2.0


def joint_angles(points: np.ndarray) -> dict[str, float]:
    """Angles (degrees) at the joints of ``JOINTS`` for (33, 2) or (33, 3) points."""
    return {name: _angle(points[LM[a]], points[LM[b]], points[LM[c]]) for name, (a, b, c) in JOINTS.items()}


def body_measures(person: Person) -> dict[str, float]:
    """The handful of named measures behind ``describe_pose`` (and part of ``pose_features``).

    knee / hip angles: 3-D (world landmarks); ``hip_knee_drop``: how far the knees are below the
    hips in the photo, in torso lengths (~0 seated, ~1 standing); ``ankle_spread``: horizontal
    ankle distance in torso lengths (a stride); ``torso_tilt``: degrees from vertical;
    ``legs_visible``: mean visibility of knees and ankles."""
    kp, world = person.keypoints[:, :2].astype(np.float64), person.world.astype(np.float64)
    hips, shoulders = _mid(kp, "left_hip", "right_hip"), _mid(kp, "left_shoulder", "right_shoulder")
    torso = max(float(np.linalg.norm(shoulders - hips)), 1.0)
    knees, ankles = _mid(kp, "left_knee", "right_knee"), _mid(kp, "left_ankle", "right_ankle")
    angles3 = joint_angles(world)
    tilt = float(np.degrees(np.arctan2(abs(shoulders[0] - hips[0]), max(hips[1] - shoulders[1], 1e-6))))
    legs = [LM[n] for n in ("left_knee", "right_knee", "left_ankle", "right_ankle")]
    return {
        "knee_angle": (angles3["left_knee"] + angles3["right_knee"]) / 2.0,
        "hip_angle": (angles3["left_hip"] + angles3["right_hip"]) / 2.0,
        "hip_knee_drop": float((knees[1] - hips[1]) / torso),
        "knee_ankle_drop": float((ankles[1] - knees[1]) / torso),
        "ankle_spread": float(abs(kp[LM["left_ankle"], 0] - kp[LM["right_ankle"], 0]) / torso),
        "knee_spread_3d": float(abs(world[LM["left_knee"], 2] - world[LM["right_knee"], 2])),
        "torso_tilt": tilt,
        "legs_visible": float(person.keypoints[legs, 2].mean()),
    }


def feature_names() -> list[str]:
    names = [f"{n}_{axis}" for n in (f"lm{i}" for i in range(N_LANDMARKS)) for axis in ("x", "y")]
    names += [f"lm{i}_vis" for i in range(N_LANDMARKS)]
    names += [f"w{i}_{axis}" for i in range(N_LANDMARKS) for axis in ("x", "y", "z")]
    names += [f"angle2d_{j}" for j in JOINTS] + [f"angle3d_{j}" for j in JOINTS]
    names += list(_MEASURE_NAMES) + ["box_aspect", "found"]
    return names


# Each body measure of the pose vector and the landmarks it is measured on (the landmarks
# explainer shares a measure's attribution among them); the order is the vector's.
MEASURE_JOINTS = {
    "knee_angle": ("left_knee", "right_knee"),
    "hip_angle": ("left_hip", "right_hip"),
    "hip_knee_drop": ("left_hip", "right_hip", "left_knee", "right_knee"),
    "knee_ankle_drop": ("left_knee", "right_knee", "left_ankle", "right_ankle"),
    "ankle_spread": ("left_ankle", "right_ankle"),
    "knee_spread_3d": ("left_knee", "right_knee"),
    "torso_tilt": ("left_shoulder", "right_shoulder", "left_hip", "right_hip"),
    "legs_visible": ("left_knee", "right_knee", "left_ankle", "right_ankle"),
}
_MEASURE_NAMES = tuple(MEASURE_JOINTS)
N_FEATURES = N_LANDMARKS * 2 + N_LANDMARKS + N_LANDMARKS * 3 + 2 * len(JOINTS) + len(_MEASURE_NAMES) + 2


def pose_features(person: Person | None, mirror: bool = False) -> np.ndarray:
    """A fixed-length float32 vector (``N_FEATURES``, names in ``feature_names()``) for a model.

    ``None`` (no person) gives zeros with ``found = 0``, so a model can tell "no body evidence".
    ``mirror=True`` describes the horizontally flipped photo (for flip augmentation / averaging):
    x negated and left/right landmarks swapped."""
    out = np.zeros(N_FEATURES, np.float32)
    if person is None:
        return out
    kp = person.keypoints.astype(np.float64).copy()
    world = person.world.astype(np.float64).copy()
    if mirror:
        w = person.image_size[0]
        kp[:, 0] = (w - 1) - kp[:, 0]
        world[:, 0] = -world[:, 0]
        kp, world = kp[_MIRROR], world[_MIRROR]
        person = Person(kp.astype(np.float32), world.astype(np.float32), person.box, person.mask, person.score, person.image_size, person.others)
    hips, shoulders = _mid(kp[:, :2], "left_hip", "right_hip"), _mid(kp[:, :2], "left_shoulder", "right_shoulder")
    torso = max(float(np.linalg.norm(shoulders - hips)), 1.0)
    norm = np.clip((kp[:, :2] - hips) / torso, -6.0, 6.0)
    a2, a3 = joint_angles(kp[:, :2]), joint_angles(world)
    measures = body_measures(person)
    x0, y0, x1, y1 = person.box
    parts = [
        norm.reshape(-1),
        kp[:, 2],
        np.clip(world, -2.0, 2.0).reshape(-1),
        np.array([a2[j] for j in JOINTS]) / 180.0,
        np.array([a3[j] for j in JOINTS]) / 180.0,
        np.array([measures[m] for m in _MEASURE_NAMES]) / np.array([180, 180, 1, 1, 1, 1, 90, 1]),
        np.array([np.log((y1 - y0 + 1) / (x1 - x0 + 1)), 1.0]),
    ]
    out[:] = np.concatenate(parts).astype(np.float32)
    return out


def stretch_person(person: Person, factor: float) -> Person:
    """The same person in the photo stretched horizontally by ``factor`` (aspect-ratio jitter,
    ``TrainConfig.aspect_views``): x of the landmarks, of the world landmarks and of the box scaled.
    The world landmarks are scaled too because BlazePose reads them off the (stretched) pixels;
    the mask is dropped (the pose vector does not read it)."""
    f = float(factor)
    kp, world = person.keypoints.copy(), person.world.copy()
    kp[:, 0] *= f
    world[:, 0] *= f
    x0, y0, x1, y1 = person.box
    w, h = person.image_size
    return Person(kp, world, (round(x0 * f), y0, round(x1 * f), y1), np.zeros((1, 1), np.float32), person.score,
                  (max(1, round(w * f)), h), person.others)


def _mirror_name(name: str) -> str:
    """The landmark's name on the other side of the body: every ``left``/``right`` token swapped,
    wherever it stands (BlazePose writes ``left_knee`` but ``mouth_left``); a name without a side
    (``nose``) is its own mirror."""
    swap = {"left": "right", "right": "left"}
    return "_".join(swap.get(tok, tok) for tok in name.split("_"))


def _mirror_order() -> np.ndarray:
    """Index ``i`` of the mirrored landmark array holds landmark ``order[i]`` of the original."""
    order = np.array([LM[_mirror_name(name)] for name in LM])
    assert sorted(order) == list(range(N_LANDMARKS)), "every sided landmark needs its partner"
    return order


_MIRROR = _mirror_order()


def describe_pose(person: Person | None) -> str:
    """One sentence of body evidence for the UI card, e.g. "knees bent ~95°, hips at knee height:
    looks seated". Says so when the legs are not visible enough to judge."""
    if person is None:
        return "No person found: no body evidence, the models judged the whole photo."
    m = body_measures(person)
    if m["legs_visible"] < 0.35:
        return "Legs not visible enough to judge the pose from the body."
    knee, drop, spread = m["knee_angle"], m["hip_knee_drop"], m["ankle_spread"]
    if drop < 0.35:
        hips = "hips at knee height"
    elif drop < 0.6:
        hips = "hips a little above the knees"
    else:
        hips = "hips well above the knees"
    bits = [f"knees {'bent' if knee < 150 else 'straight'} ~{knee:.0f}°", hips]
    if spread > 0.45:
        bits.append(f"feet apart ({spread:.1f} torso lengths)")
    if knee < 130 and drop < 0.6:
        verdict = "looks seated"
    elif knee >= 150 and drop >= 0.6 and spread > 0.45:
        verdict = "looks mid-stride"
    elif knee >= 150 and drop >= 0.6:
        verdict = "looks upright"
    else:
        verdict = "the body does not settle it"
    return f"{', '.join(bits)}: {verdict}"
