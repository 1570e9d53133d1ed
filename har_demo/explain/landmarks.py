"""Landmark attribution: which body points made a pose model decide, drawn where they are.

For models that read the pose vector (``HarModel.aux_features``: ``pose_mlp``, ``effnet_person``).
Integrated Gradients over the vector only (the image, if any, is held fixed), from the model's
"no evidence" vector (``aux_baseline``: the training mean), ``steps`` points. Each feature's
attribution goes to the landmark(s) it describes (a landmark's coordinates, visibility and world
position; a joint angle to its middle joint; a body measure to the joints it is measured on);
the positive part (evidence *for* the class) is drawn as a Gaussian blob at each landmark, radius
``sigma`` x the person box diagonal. No person found: an all-zero map (nothing to point at).
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import torch

from ..data.transforms import content_box
from ..errors import HarError
from ..models.base import HarModel, pack_aux
from ..person.finder import LM, N_LANDMARKS
from ..person.geometry import JOINTS, MEASURE_JOINTS, feature_names
from .base import Explainer, plain_logits


def feature_landmarks() -> np.ndarray:
    """(N_FEATURES, 33) weights: how much of each feature's attribution each landmark gets."""
    names = feature_names()
    out = np.zeros((len(names), N_LANDMARKS), np.float32)
    for f, name in enumerate(names):
        if name.startswith(("lm", "w")) and name[1 if name[0] == "w" else 2].isdigit():
            idx = int(name.lstrip("lmw").split("_")[0])
            out[f, idx] = 1.0
        elif name.startswith("angle"):
            joint = name.split("_", 1)[1]
            out[f, LM[JOINTS[joint][1]]] = 1.0
        elif name in MEASURE_JOINTS:
            ids = [LM[j] for j in MEASURE_JOINTS[name]]
            out[f, ids] = 1.0 / len(ids)
    return out


class LandmarkAttribution(Explainer):
    name = "landmarks"
    summary = "pose models: which landmarks drove the decision (IG over the pose vector), drawn at the joints"
    defaults: ClassVar[dict[str, Any]] = {"steps": 16, "sigma": 0.05}
    positive_ints = ("steps",)

    @classmethod
    def applies_to(cls, model: HarModel) -> bool:
        return model.aux_features > 0

    @classmethod
    def requirement(cls) -> str:
        return "a pose vector input: model.aux_features > 0"

    def attribute(self, model: HarModel, x: torch.Tensor, target: int | None):
        steps, sigma = int(self.opts["steps"]), float(self.opts["sigma"])
        if steps < 1 or not 0 < sigma <= 1:
            raise HarError("landmarks needs steps >= 1 and 0 < sigma <= 1")
        logits = plain_logits(model, x)
        target = int(logits[0].argmax()) if target is None else int(target)
        size = int(x.shape[-1])
        grid = size * max(1, -(-128 // size))  # at least 128 px so blobs stay round on tiny inputs
        view = self.view
        person = getattr(view, "person", None)
        if person is None:
            return torch.zeros((grid, grid)), logits, target
        img, aux = model.split_input(x)
        base = model.aux_baseline().to(aux)[None]
        alphas = (torch.arange(steps, dtype=aux.dtype, device=aux.device) + 0.5) / steps
        path = (base + alphas[:, None] * (aux - base)).requires_grad_(True)
        out = model(pack_aux(img.detach().expand(steps, -1, -1, -1), path))[:, target].sum()
        (grad,) = torch.autograd.grad(out, path)
        per_feature = (grad.mean(0) * (aux - base)[0]).detach().cpu().numpy()
        per_landmark = np.clip(per_feature @ feature_landmarks(), 0.0, None)
        # Landmark positions: photo -> the model's view -> the S x S input (content box) -> grid.
        bx0, by0, bx1, by1 = view.box
        cx0, cy0, cx1, cy1 = content_box(view.image.size, size, model.resize)
        kx = (cx1 - cx0) / max(1, bx1 - bx0) * grid / size
        ky = (cy1 - cy0) / max(1, by1 - by0) * grid / size
        px = cx0 * grid / size + (person.keypoints[:, 0] - bx0) * kx
        py = cy0 * grid / size + (person.keypoints[:, 1] - by0) * ky
        x0, y0, x1, y1 = person.box
        radius = max(1.0, sigma * float(np.hypot((x1 - x0) * kx, (y1 - y0) * ky)))
        yy, xx = np.mgrid[0:grid, 0:grid].astype(np.float32)
        heat = np.zeros((grid, grid), np.float32)
        for i in np.nonzero(per_landmark > 0)[0]:
            heat += per_landmark[i] * np.exp(-((xx - px[i]) ** 2 + (yy - py[i]) ** 2) / (2 * radius**2))
        return torch.from_numpy(heat), logits, target
