"""Image -> tensor transforms shared by every model and the training runner.

Every model resizes the *whole* photo to a square (no centre crop), so a person at the edge of a
tall pedestrian window is never cut off, and an explanation map maps back onto the original photo
by a plain resize.
"""

from __future__ import annotations

from typing import Sequence

import torch
from PIL import Image
from torchvision.transforms import v2 as T

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)

# The study's augmentations plus the extra ones its ablation lists; names are CLI values.
AUGMENTATIONS = ("hflip", "vflip", "perspective", "rrc", "color_jitter", "grayscale")
STUDY_AUGMENT = ("vflip", "perspective", "rrc")


def eval_transform(size: int, mean=IMAGENET_MEAN, std=IMAGENET_STD) -> T.Compose:
    return T.Compose(
        [
            T.ToImage(),
            T.Resize((size, size), antialias=True),
            T.ToDtype(torch.float32, scale=True),
            T.Normalize(mean, std),
        ]
    )


def augmentation_ops(names: Sequence[str], size: int) -> list:
    """The geometric/photometric ops for the given augmentation names (validated)."""
    ops = []
    for name in names:
        if name == "hflip":
            ops.append(T.RandomHorizontalFlip(0.5))
        elif name == "vflip":
            ops.append(T.RandomVerticalFlip(0.5))
        elif name == "perspective":
            ops.append(T.RandomPerspective(distortion_scale=0.3, p=0.5))
        elif name == "rrc":
            ops.append(T.RandomResizedCrop((size, size), scale=(0.6, 1.0), ratio=(0.6, 1.6), antialias=True))
        elif name == "color_jitter":
            ops.append(T.ColorJitter(0.3, 0.3, 0.3, 0.05))
        elif name == "grayscale":
            ops.append(T.RandomGrayscale(0.2))
        else:
            raise ValueError(f"unknown augmentation {name!r}; expected one of: {', '.join(AUGMENTATIONS)}")
    return ops


def train_transform(size: int, augment: Sequence[str] = (), mean=IMAGENET_MEAN, std=IMAGENET_STD) -> T.Compose:
    """Resize to a square, apply the named augmentations, normalise. Output is always (3, size, size)."""
    return T.Compose(
        [
            T.ToImage(),
            T.Resize((size, size), antialias=True),
            *augmentation_ops(augment, size),
            T.ToDtype(torch.float32, scale=True),
            T.Normalize(mean, std),
        ]
    )


def to_batch(images: Sequence[Image.Image], transform) -> torch.Tensor:
    return torch.stack([transform(im) for im in images])
