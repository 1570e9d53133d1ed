"""Which inputs drive a pose model: permutation importance of named groups of the pose vector.

For models that read only the pose vector (``HarModel.uses_image`` False: ``pose_mlp``), each group
of features (the 2-D landmarks, their visibilities, the 3-D world landmarks, the joint angles, each
body measure) is shuffled across the validation photos, ``repeats`` times, and the drop in accuracy
is the group's importance (how much the model relies on it; ~0 = ignored). The trainer writes the
ranking into the model card (``input_importance``).
"""

from __future__ import annotations

import numpy as np
import torch

from ..person.geometry import feature_names


def feature_groups() -> dict[str, list[int]]:
    """Group name -> indices into the pose vector (``person.geometry.feature_names``)."""
    groups: dict[str, list[int]] = {}
    for i, name in enumerate(feature_names()):
        if name.startswith("lm") and name.endswith("_vis"):
            key = "landmark visibilities"
        elif name.startswith("lm"):
            key = "2-D landmark positions (hip-centred, torso-scaled)"
        elif name.startswith("w") and name[1].isdigit():
            key = "3-D world landmarks"
        elif name.startswith("angle2d"):
            key = "2-D joint angles"
        elif name.startswith("angle3d"):
            key = "3-D joint angles"
        else:
            key = name  # the body measures, box aspect and 'found' one by one
        groups.setdefault(key, []).append(i)
    return groups


@torch.no_grad()
def permutation_importance(model, x: torch.Tensor, y: torch.Tensor, repeats: int = 5, seed: int = 0) -> list[dict]:
    """``[{"group", "features", "accuracy_drop"}]`` sorted by drop, for packed inputs ``x`` (with the
    pose plane) and labels ``y``; the model is evaluated in eval mode, batched whole."""
    was_training = model.training
    model.eval()
    img, aux = model.split_input(x)
    from ..models.base import pack_aux

    def accuracy(a: torch.Tensor) -> float:
        return float((model(pack_aux(img, a)).argmax(1) == y).float().mean())

    base = accuracy(aux)
    rng = np.random.default_rng(seed)
    rows = []
    for name, idx in feature_groups().items():
        drops = []
        for _ in range(repeats):
            shuffled = aux.clone()
            perm = torch.from_numpy(rng.permutation(aux.shape[0]))
            shuffled[:, idx] = aux[perm][:, idx]
            drops.append(base - accuracy(shuffled))
        rows.append({"group": name, "features": len(idx), "accuracy_drop": round(float(np.mean(drops)), 4)})
    model.train(was_training)
    return sorted(rows, key=lambda r: -r["accuracy_drop"])
