"""Image -> tensor transforms shared by every model and the training runner.

No transform crops: a model sees the whole of its view - the photo, or for a ``person_crop`` model
the person finder's box (``HarModel.views``, ``person/crop.py``) - so a person at the edge of a
tall pedestrian window is never cut off by a centre crop. Two ways to make the view square (a
model's ``resize`` option):

* ``squash`` (default): resize to S x S, changing the aspect ratio;
* ``pad``: letterbox - scale the longer side to S keeping the aspect ratio and centre the photo on
  a mid-grey S x S canvas, so a tall 96 x 160 pedestrian window keeps its proportions (a stride
  stays a stride).

``content_box`` says where the photo lies in the model input, so an explanation map maps back onto
the original photo by cropping that box and resizing.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from PIL import Image
from torchvision.transforms import v2 as T
from torchvision.transforms.v2 import functional as TF

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)

# The study's augmentations plus the extra ones its ablation lists; names are CLI values.
AUGMENTATIONS = ("hflip", "vflip", "perspective", "rrc", "color_jitter", "grayscale")
STUDY_AUGMENT = ("vflip", "perspective", "rrc")


RESIZE_MODES = ("squash", "pad")
PAD_FILL = 128  # letterbox canvas grey (uint8); ~0 after the (0.5, 0.5) normalisation


def check_resize_mode(mode: str) -> str:
    if mode not in RESIZE_MODES:
        raise ValueError(f"resize mode {mode!r}: expected one of {', '.join(RESIZE_MODES)}")
    return mode


def content_box(image_size: tuple[int, int], size: int, mode: str = "squash") -> tuple[int, int, int, int]:
    """``(x0, y0, x1, y1)``: where a photo of ``image_size=(W, H)`` lies in the S x S model input."""
    if check_resize_mode(mode) == "squash":
        return 0, 0, size, size
    w, h = int(image_size[0]), int(image_size[1])
    scale = size / max(w, h, 1)
    nw, nh = min(size, max(1, round(w * scale))), min(size, max(1, round(h * scale)))
    x0, y0 = (size - nw) // 2, (size - nh) // 2
    return x0, y0, x0 + nw, y0 + nh


class Letterbox(torch.nn.Module):
    """Resize keeping the aspect ratio so the longer side is ``size``; centre on a grey square."""

    def __init__(self, size: int, fill: int = PAD_FILL):
        super().__init__()
        self.size, self.fill = int(size), fill

    def forward(self, img):
        h, w = TF.get_size(img)
        x0, y0, x1, y1 = content_box((w, h), self.size, "pad")
        if (x1 - x0, y1 - y0) != (w, h):
            img = TF.resize(img, [y1 - y0, x1 - x0], antialias=True)
        if (x0, y0, x1, y1) == (0, 0, self.size, self.size):
            return img
        return TF.pad(img, [x0, y0, self.size - x1, self.size - y1], fill=self.fill)


class Stretch(torch.nn.Module):
    """Aspect-ratio jitter of a letterboxed square (``Letterbox``'s output): the content (all but
    the grey pad) widened by ``factor`` (< 1 narrows it), letterboxed again - the crop of the same
    person in the photo stretched horizontally by ``factor``. Why: ``flickr8k_squashed`` photos
    show people up to 1.5x too tall or too wide; training views stretched both ways teach a
    model to judge the pose whatever the squash (``TrainConfig.aspect_views``)."""

    def __init__(self, size: int, factor: float, fill: int = PAD_FILL):
        super().__init__()
        self.size, self.factor, self.fill = int(size), float(factor), fill
        self.letterbox = Letterbox(size, fill)

    def forward(self, img):
        data = img.as_subclass(torch.Tensor) if isinstance(img, torch.Tensor) else TF.pil_to_tensor(img)
        inside = (data != self.fill).any(0)
        rows, cols = inside.any(1).nonzero().flatten(), inside.any(0).nonzero().flatten()
        if not len(rows):  # nothing but pad
            return img
        content = data[:, int(rows[0]) : int(rows[-1]) + 1, int(cols[0]) : int(cols[-1]) + 1]
        h, w = content.shape[-2:]
        out = self.letterbox(TF.resize(content, [h, max(1, round(w * self.factor))], antialias=True))
        return type(img)(out) if isinstance(img, torch.Tensor) and type(img) is not torch.Tensor else out


def stretch_transform(size: int, factor: float, mean=IMAGENET_MEAN, std=IMAGENET_STD) -> T.Compose:
    """``eval_transform`` (letterbox) with the content stretched horizontally by ``factor``."""
    return T.Compose([T.ToImage(), Letterbox(size), Stretch(size, factor), T.ToDtype(torch.float32, scale=True), T.Normalize(mean, std)])


def resize_op(size: int, mode: str = "squash"):
    """The op that makes any photo an S x S image (the first step of every model's preprocessing)."""
    if check_resize_mode(mode) == "pad":
        return Letterbox(size)
    return T.Resize((size, size), antialias=True)


def eval_transform(size: int, mean=IMAGENET_MEAN, std=IMAGENET_STD, resize: str = "squash") -> T.Compose:
    return T.Compose(
        [
            T.ToImage(),
            resize_op(size, resize),
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


def train_transform(size: int, augment: Sequence[str] = (), mean=IMAGENET_MEAN, std=IMAGENET_STD, resize: str = "squash") -> T.Compose:
    """Make a square (``resize`` mode), apply the named augmentations, normalise. Output is always (3, size, size)."""
    return T.Compose(
        [
            T.ToImage(),
            resize_op(size, resize),
            *augmentation_ops(augment, size),
            T.ToDtype(torch.float32, scale=True),
            T.Normalize(mean, std),
        ]
    )


def to_batch(images: Sequence[Image.Image], transform) -> torch.Tensor:
    return torch.stack([transform(im) for im in images])
