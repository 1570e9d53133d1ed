"""A disk cache of person-finder results for whole data sets (training, evaluation, explain-eval).

BlazePose costs ~50-100 ms a photo on a CPU; training runs many seeds and folds over the same
photos, so each photo is looked at once and its ``Person`` (without the mask, which is large and
which training does not need) is kept in ``<dir>/<content hash>.npz``. The key is the file's bytes,
so a moved or renamed photo hits too and an edited one does not.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np
from PIL import Image

from .. import settings
from ..data.io import load_image
from .finder import Person, find_person

DEFAULT_DIR = Path(settings.get("HAR_PERSON_CACHE"))
_VERSION = "v2"  # bump when detect() changes what it returns


def file_key(path: str | Path) -> str:
    digest = hashlib.blake2b(digest_size=16)
    digest.update(_VERSION.encode())
    digest.update(Path(path).read_bytes())
    return digest.hexdigest()


def _save(path: Path, person: Person | None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.npz")
    if person is None:
        np.savez(tmp, found=np.array(False))
    else:
        np.savez(tmp, found=np.array(True), keypoints=person.keypoints, world=person.world, box=np.array(person.box),
                 score=np.array(person.score), size=np.array(person.image_size), mask_area=np.array(person.mask_area),
                 others=np.array(person.others))  # fmt: skip
    os.replace(tmp, path)


def _load(path: Path) -> Person | None:
    with np.load(path, allow_pickle=False) as z:
        if not bool(z["found"]):
            return None
        size = tuple(int(v) for v in z["size"])
        # The mask is not stored: a 1x1 stand-in carrying the stored area keeps mask_area right.
        mask = np.full((1, 1), float(z["mask_area"]), np.float32)
        return Person(z["keypoints"], z["world"], tuple(int(v) for v in z["box"]), mask, float(z["score"]), size, bool(z["others"]))


def person_for_file(path: str | Path, cache_dir: str | Path | None = DEFAULT_DIR, image: Image.Image | None = None) -> Person | None:
    """The person in the photo at ``path`` (masks are not cached: ``mask`` is a 1x1 stand-in)."""
    if cache_dir is None:
        return find_person(image if image is not None else load_image(path))
    entry = Path(cache_dir) / f"{file_key(path)}.npz"
    if entry.is_file():
        try:
            return _load(entry)
        except (OSError, ValueError, KeyError):
            entry.unlink(missing_ok=True)  # a torn write: look again
    person = find_person(image if image is not None else load_image(path))
    _save(entry, person)
    return person
