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

import torch
from torchvision import tv_tensors
from torchvision.transforms import v2 as T

from ..data.datasets import Sample
from ..data.io import load_image
from ..data.transforms import eval_transform, resize_op, train_transform
from ..labels import CLASSES

log = logging.getLogger(__name__)


Geometry = tuple[int, str]  # (input size S, resize mode)


def _geometry(g) -> Geometry:
    """``S`` or ``(S, mode)`` -> ``(S, mode)``."""
    if isinstance(g, (tuple, list)):
        return int(g[0]), str(g[1])
    return int(g), "squash"


class ImageCache:
    """Decoded, square uint8 images (3, S, S) for a fixed list of samples, per geometry (S, mode).

    ``prepare(geometries)`` decodes every image once and fills all geometries at once (an int is
    ``(S, "squash")``); one asked for later decodes again (logged) - pass every geometry up front."""

    def __init__(self, samples: Sequence[Sample]):
        self.samples: list[Sample] = list(samples)
        self.index: dict[str, int] = {s.path: i for i, s in enumerate(self.samples)}
        self._tensors: dict[Geometry, torch.Tensor] = {}
        self.decodes = 0  # how many times the image files were read (tests check it stays 1)

    def prepare(self, geometries: Iterable[int | Geometry]) -> None:
        todo = sorted({_geometry(g) for g in geometries} - set(self._tensors))
        if not todo:
            return
        if self.decodes:
            log.info("decoding %d images again for input geometries %s", len(self.samples), todo)
        resizers = {g: T.Compose([T.ToImage(), resize_op(*g)]) for g in todo}
        out = {g: torch.empty((len(self.samples), 3, g[0], g[0]), dtype=torch.uint8) for g in todo}
        for i, sample in enumerate(self.samples):
            im = load_image(sample.path)
            for s in todo:
                out[s][i] = resizers[s](im).as_subclass(torch.Tensor)
        self.decodes += 1
        self._tensors.update(out)

    def full(self, size: int, resize: str = "squash") -> torch.Tensor:
        """(N, 3, S, S) uint8 for every sample of the cache (decoded now if the geometry is new)."""
        g = (int(size), str(resize))
        if g not in self._tensors:
            self.prepare([g])
        return self._tensors[g]

    def indices(self, samples: Sequence[Sample]) -> torch.Tensor:
        try:
            return torch.tensor([self.index[s.path] for s in samples], dtype=torch.long)
        except KeyError as err:
            raise KeyError(f"sample {err} is not in this image cache") from None

    def tensors(self, size: int, samples: Sequence[Sample] | None = None, resize: str = "squash") -> torch.Tensor:
        """(N, 3, S, S) uint8 for ``samples`` (default: all), in that order (a copy for a subset)."""
        full = self.full(size, resize)
        return full if samples is None else full[self.indices(samples)]


class CachedDataset(torch.utils.data.Dataset):
    """``(transform(uint8 image), class index)`` over cached tensors."""

    def __init__(self, images: torch.Tensor, samples: Sequence[Sample], transform: Callable[[torch.Tensor], torch.Tensor],
                 indices: torch.Tensor | None = None):
        """``images[indices[i]]`` is sample i's image (``indices`` default: 0..N-1); no copy is made."""
        self.indices = torch.arange(len(samples)) if indices is None else torch.as_tensor(indices, dtype=torch.long)
        if len(self.indices) != len(samples) or (len(samples) and int(self.indices.max()) >= len(images)):
            raise ValueError(f"{len(images)} images / {len(self.indices)} indices for {len(samples)} samples")
        self.images = images
        self.samples = list(samples)
        self.targets = torch.tensor([CLASSES.index(s.label) for s in self.samples], dtype=torch.long)
        self.transform = transform

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, i: int):
        x = self.transform(tv_tensors.Image(self.images[self.indices[i]]))
        return x.as_subclass(torch.Tensor), self.targets[i]


def make_datasets(cache: ImageCache, splits: dict[str, Sequence[Sample]], size: int, mean, std, augment: Sequence[str] = (),
                  resize: str = "squash") -> dict[str, CachedDataset]:
    """One dataset per split: ``train`` augmented with ``augment``, the others with the eval transform."""
    out = {}
    for name, samples in splits.items():
        tf = train_transform(size, augment, mean, std, resize) if name == "train" else eval_transform(size, mean, std, resize)
        out[name] = CachedDataset(cache.full(size, resize), samples, tf, cache.indices(samples))
    return out
