"""Heat-map overlays: OpenCV colormap blended into the photo at an opacity (RGB uint8 out).

The raw map (``HxW`` float in [0, 1]) stays separate, so a UI can change the opacity or the
colormap without recomputing the explanation."""

from __future__ import annotations

import cv2
import numpy as np

from ..data.io import ImageSource, load_image
from ..errors import HarError, UnknownName

COLORMAPS: dict[str, int] = {
    name[len("COLORMAP_"):].lower(): getattr(cv2, name) for name in dir(cv2) if name.startswith("COLORMAP_")
}
DEFAULT_COLORMAP = "jet"


def _rgb_array(image: ImageSource) -> np.ndarray:
    if isinstance(image, np.ndarray) and image.ndim == 3 and image.shape[2] == 3 and image.dtype == np.uint8:
        return image
    return np.asarray(load_image(image), dtype=np.uint8)


def colorize(saliency: np.ndarray, colormap: str = DEFAULT_COLORMAP) -> np.ndarray:
    """``HxW`` map in [0, 1] -> ``HxWx3`` RGB uint8 through an OpenCV colormap."""
    if colormap not in COLORMAPS:
        raise UnknownName(f"unknown colormap {colormap!r}; available: {', '.join(sorted(COLORMAPS))}")
    sal = np.asarray(saliency, dtype=np.float32)
    if sal.ndim != 2:
        raise HarError(f"saliency map must be 2-D, got shape {sal.shape}")
    u8 = np.round(np.clip(np.nan_to_num(sal), 0.0, 1.0) * 255.0).astype(np.uint8)
    return cv2.cvtColor(cv2.applyColorMap(u8, COLORMAPS[colormap]), cv2.COLOR_BGR2RGB)


def overlay(image: ImageSource, saliency: np.ndarray, opacity: float = 0.5, colormap: str = DEFAULT_COLORMAP) -> np.ndarray:
    """``(1 - opacity) * image + opacity * colormap(saliency)`` at the image's size, RGB uint8.

    opacity 0 returns the image unchanged, 1 the colour-mapped saliency; a map of another size
    is resized (bilinear) to the image first."""
    opacity = float(opacity)
    if not 0.0 <= opacity <= 1.0:
        raise HarError(f"opacity must be between 0 and 1, got {opacity}")
    rgb = _rgb_array(image)
    h, w = rgb.shape[:2]
    sal = np.asarray(saliency, dtype=np.float32)
    if sal.ndim == 2 and sal.shape != (h, w):
        sal = cv2.resize(sal, (w, h), interpolation=cv2.INTER_LINEAR)
    heat = colorize(sal, colormap)
    return cv2.addWeighted(rgb, 1.0 - opacity, heat, opacity, 0.0)
