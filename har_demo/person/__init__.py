"""The person layer (between ``data`` and ``models``): where the person is and how the body is posed.

* ``finder``   - MediaPipe BlazePose: ``find_person(image) -> Person | None`` (landmarks, world
  landmarks, box, mask, score), cached by image content;
* ``multi``    - every person in the photo (``find_people``: BlazePose's detector on the photo and
  tiles, its landmark model per person), most prominent first;
* ``accuracy`` - recall / precision / PCK of the finders against COCO person labels;
* ``geometry`` - joint angles and body measures, ``pose_features`` (model input) and
  ``describe_pose`` (one sentence for the UI);
* ``crop``     - the person box as a model view (``person_view``), and placing maps back;
* ``draw``     - skeleton / mask overlays;
* ``store``    - an on-disk cache of finder results for whole data sets.

Imports only ``har_demo.data`` (and ``errors``).
"""

from .finder import BONES, LANDMARK_NAMES, Person, PersonFinderUnavailable, available, find_person, find_person_or_none
from .geometry import describe_pose, pose_features

__all__ = [
    "BONES",
    "LANDMARK_NAMES",
    "Person",
    "PersonFinderUnavailable",
    "available",
    "describe_pose",
    "find_person",
    "find_person_or_none",
    "pose_features",
]  # fmt: skip
