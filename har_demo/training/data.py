"""Training data: every image decoded once per run, kept as resized uint8 tensors per input size.

``eval_transform`` / ``train_transform`` start with ``ToImage`` + ``resize_op(S, mode)`` (squash or
letterbox); the cache stores exactly that output per (size, mode), so applying the *same*
transforms to the cached tensor (the resize is then a no-op) gives the same tensors as
preprocessing the photo directly - training, validation and ``HarModel.preprocess`` at inference
see identical pixels.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence

import numpy as np
import torch
from torchvision import tv_tensors
from torchvision.transforms import v2 as T

from ..data.datasets import Sample
from ..data.io import load_image
from ..data.transforms import eval_transform, resize_op, train_transform
from ..labels import CLASSES
from ..models.base import View, pack_aux

log = logging.getLogger(__name__)


Geometry = tuple[int, str, str]  # (input size S, resize mode, crop: "" = whole photo, "person" = person box)


def _geometry(g) -> Geometry:
    """``S``, ``(S, mode)`` or ``(S, mode, crop)`` -> ``(S, mode, crop)``."""
    if isinstance(g, (tuple, list)):
        return int(g[0]), str(g[1]), str(g[2]) if len(g) > 2 else ""
    return int(g), "squash", ""


class ImageCache:
    """Decoded, square uint8 images (3, S, S) for a fixed list of samples, per geometry (S, mode, crop).

    ``prepare(geometries)`` decodes every image once and fills all geometries at once (an int is
    ``(S, "squash")``); one asked for later decodes again (logged) - pass every geometry up front.
    A ``"person"`` crop geometry holds the person box of each photo (the whole photo where no
    person is found); the people come from ``person.store`` (found once per photo, kept on disk
    in ``person_dir``) and ``persons()`` hands them to models that take pose vectors."""

    def __init__(self, samples: Sequence[Sample], person_dir: str | None | object = "default"):
        self.samples: list[Sample] = list(samples)
        self.index: dict[str, int] = {s.path: i for i, s in enumerate(self.samples)}
        self._tensors: dict[Geometry, torch.Tensor] = {}
        self._persons: list | None = None
        self._person_dir = person_dir
        self.decodes = 0  # how many times the image files were read (tests check it stays 1)

    def persons(self) -> list:
        """The ``Person`` (or ``None``) of every sample, in cache order (found once, then kept)."""
        if self._persons is None:
            from ..person.store import DEFAULT_DIR, person_for_file

            where = DEFAULT_DIR if self._person_dir == "default" else self._person_dir
            self._persons = [person_for_file(s.path, where) for s in self.samples]
            found = sum(p is not None for p in self._persons)
            log.info("person finder: a person in %d of %d photos (the rest use the whole photo)", found, len(self.samples))
        return self._persons

    def prepare(self, geometries: Iterable[int | Geometry]) -> None:
        todo = sorted({_geometry(g) for g in geometries} - set(self._tensors))
        if not todo:
            return
        if self.decodes:
            log.info("decoding %d images again for input geometries %s", len(self.samples), todo)
        persons = self.persons() if any(g[2] == "person" for g in todo) else None
        resizers = {g: T.Compose([T.ToImage(), resize_op(g[0], g[1])]) for g in todo}
        out = {g: torch.empty((len(self.samples), 3, g[0], g[0]), dtype=torch.uint8) for g in todo}
        for i, sample in enumerate(self.samples):
            im = load_image(sample.path, sandbox=False)  # your own training data, decoded in bulk
            for g in todo:
                view = im
                if g[2] == "person":
                    from ..person.crop import person_view

                    view = person_view(im, persons[i], find=False)[0]
                out[g][i] = resizers[g](view).as_subclass(torch.Tensor)
        self.decodes += 1
        self._tensors.update(out)

    def full(self, size: int, resize: str = "squash", crop: str = "") -> torch.Tensor:
        """(N, 3, S, S) uint8 for every sample of the cache (decoded now if the geometry is new)."""
        g = (int(size), str(resize), str(crop))
        if g not in self._tensors:
            self.prepare([g])
        return self._tensors[g]

    def indices(self, samples: Sequence[Sample]) -> torch.Tensor:
        try:
            return torch.tensor([self.index[s.path] for s in samples], dtype=torch.long)
        except KeyError as err:
            raise KeyError(f"sample {err} is not in this image cache") from None

    def tensors(self, size: int, samples: Sequence[Sample] | None = None, resize: str = "squash", crop: str = "") -> torch.Tensor:
        """(N, 3, S, S) uint8 for ``samples`` (default: all), in that order (a copy for a subset)."""
        full = self.full(size, resize, crop)
        return full if samples is None else full[self.indices(samples)]


class CachedDataset(torch.utils.data.Dataset):
    """``(transform(uint8 image), class index)`` over cached tensors.

    ``aux`` (``(N_images, 2, A)``: each image's vector for the photo and for its mirror) is packed
    into an extra input plane (``HarModel.pack_aux``) for models that take pose vectors. Mirroring
    is then done here (``flip``: probability, 1 = always), not by the transform, so the image and
    its vector are mirrored together."""

    def __init__(self, images: torch.Tensor, samples: Sequence[Sample], transform: Callable[[torch.Tensor], torch.Tensor],
                 indices: torch.Tensor | None = None, aux: torch.Tensor | None = None, flip: float = 0.0):
        """``images[indices[i]]`` is sample i's image (``indices`` default: 0..N-1); no copy is made."""
        self.indices = torch.arange(len(samples)) if indices is None else torch.as_tensor(indices, dtype=torch.long)
        if len(self.indices) != len(samples) or (len(samples) and int(self.indices.max()) >= len(images)):
            raise ValueError(f"{len(images)} images / {len(self.indices)} indices for {len(samples)} samples")
        self.images = images
        self.samples = list(samples)
        self.targets = torch.tensor([CLASSES.index(s.label) for s in self.samples], dtype=torch.long)
        self.transform = transform
        self.aux = aux
        self.flip = float(flip)
        self.persons: list | None = None  # the person of every cached image (models with pose vectors: make_datasets)

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, i: int):
        k = self.indices[i]
        x = self.transform(tv_tensors.Image(self.images[k])).as_subclass(torch.Tensor)
        flipped = self.flip >= 1.0 or (self.flip > 0.0 and float(torch.rand(())) < self.flip)
        if flipped:
            x = x.flip(-1)
        if self.aux is not None:
            x = pack_aux(x[None], self.aux[k, int(flipped)][None])[0]
        return x, self.targets[i]


def person_inputs(cache: ImageCache, model) -> tuple[str, torch.Tensor | None]:
    """What ``model`` needs from the person finder: the crop geometry ("person" or "") and the
    (N, 2, A) pose vectors (photo, mirror) of every cached image (None when it takes none)."""
    if not model.needs_person:
        return "", None
    crop = "person" if model.person_crop else ""
    aux = None
    if model.aux_features:
        views = [View(None, (0, 0, 0, 0), p) for p in cache.persons()]
        aux = torch.from_numpy(np.stack([np.stack([model.aux_vector(v), model.mirrored_aux_vector(v)]) for v in views]).astype(np.float32))
    return crop, aux


def make_datasets(cache: ImageCache, splits: dict[str, Sequence[Sample]], size: int, mean, std, augment: Sequence[str] = (),
                  resize: str = "squash", model=None) -> dict[str, CachedDataset]:
    """One dataset per split: ``train`` augmented with ``augment``, the others with the eval transform.
    With ``model``: its person crop and pose vectors (``person_inputs``); mirroring then happens in
    the dataset (``CachedDataset.flip``) so a pose vector is mirrored with its image."""
    crop, aux = person_inputs(cache, model) if model is not None else ("", None)
    flip = 0.0
    if aux is not None and "hflip" in augment:
        augment, flip = tuple(a for a in augment if a != "hflip"), 0.5
    out = {}
    for name, samples in splits.items():
        tf = train_transform(size, augment, mean, std, resize) if name == "train" else eval_transform(size, mean, std, resize)
        out[name] = CachedDataset(cache.full(size, resize, crop), samples, tf, cache.indices(samples), aux, flip if name == "train" else 0.0)
        if aux is not None:
            out[name].persons = cache.persons()
    return out
