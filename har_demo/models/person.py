"""Person-centred models: they look at the person the finder found, not at the scene.

Why: on photos from sources it never saw, a whole-photo model judges the room (a bench, a train
seat, a pitch) and calls seated people "standing". These models see the person box and the body
geometry from the BlazePose landmarks (``har_demo.person``):

* ``effnet_person`` - the letterboxed person crop through the ImageNet EfficientNet-Lite0 backbone
  (frozen: the head trains on cached features), concatenated with the standardised pose vector
  (``person.geometry.pose_features``: normalised 2-D landmarks, visibilities, 3-D world landmarks,
  joint angles, body measures), into one linear head;
* ``pose_mlp`` - the pose vector alone through a small MLP: fast, and explainable by its inputs
  (its card lists the features that drive it, by permutation importance on validation).

No person found: the crop is the whole photo and the pose vector is zeros with ``found = 0``.
The pose vector rides in an extra input plane (``HarModel.pack_aux``), so trainers, batchers and
explainers handle one tensor; image-attribution methods attribute over the image channels only.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from ..labels import CLASSES
from ..person.geometry import N_FEATURES, pose_features
from .base import HarModel, View
from .effnet import MEAN, EffNetBackboneParts, backbone_source, imagenet_backbone


class _PoseInput(nn.Module):
    """Standardises the pose vector with statistics fitted on the training photos
    (``fit_pose_stats``; buffers, so they travel in the checkpoint)."""

    def __init__(self, n: int = N_FEATURES):
        super().__init__()
        self.register_buffer("mean", torch.zeros(n))
        self.register_buffer("std", torch.ones(n))

    def forward(self, v: torch.Tensor) -> torch.Tensor:
        return (v - self.mean) / self.std


class _FusedHead(nn.Module):
    """(image features ++ raw pose vector) -> logits; the pose part is standardised here, in the
    head, so the cached backbone features do not depend on the training split's statistics."""

    def __init__(self, n_image: int, dropout: float, pose_weight: float):
        super().__init__()
        self.n_image = n_image
        self.pose = _PoseInput()
        self.pose_weight = float(pose_weight)
        self.dropout = nn.Dropout(dropout)
        self.linear = nn.Linear(n_image + N_FEATURES, len(CLASSES))

    def forward(self, f: torch.Tensor) -> torch.Tensor:
        img, pose = f[:, : self.n_image], f[:, self.n_image :]
        return self.linear(self.dropout(torch.cat([img, self.pose(pose) * self.pose_weight], dim=1)))


class _PersonModel(HarModel):
    aux_features = N_FEATURES

    def aux_vector(self, view: View) -> np.ndarray:
        return pose_features(view.person)

    def mirrored_aux_vector(self, view: View) -> np.ndarray:
        """The pose vector of the mirrored photo (flip augmentation and flip averaging)."""
        return pose_features(view.person, mirror=True)

    def _pose_input(self) -> _PoseInput:
        raise NotImplementedError

    def aux_baseline(self) -> torch.Tensor:
        return self._pose_input().mean.detach().clone()

    def fit_pose_stats(self, vectors: np.ndarray | torch.Tensor) -> None:
        """Set the pose standardisation from training vectors (N, N_FEATURES)."""
        v = torch.as_tensor(np.asarray(vectors), dtype=torch.float32).reshape(-1, N_FEATURES)
        with torch.no_grad():
            self._pose_input().mean.copy_(v.mean(0))
            self._pose_input().std.copy_(v.std(0, unbiased=False).clamp(min=1e-2))

    def fit_input_stats(self, dataset) -> None:
        if getattr(dataset, "aux", None) is not None and len(dataset):
            self.fit_pose_stats(dataset.aux[dataset.indices])  # photo and mirror vectors of the training split


class EffNetPerson(EffNetBackboneParts, _PersonModel):
    family = "person"
    channels_last = True

    def __init__(self, pretrained: bool = True, input_size: int = 224, dropout: float = 0.2, resize: str = "pad",
                 pose_weight: float = 1.0, variant: str = "lite0"):
        # the person crop is on by the registry line's config (``build_model`` applies it, as for every model)
        config = {"input_size": input_size, "dropout": dropout, "resize": resize, "pose_weight": pose_weight}
        if variant != "lite0":  # cards of Lite0 checkpoints stay as they were
            config["variant"] = variant
        super().__init__(input_size, MEAN, MEAN, config=config)
        self.backbone = imagenet_backbone(pretrained, variant)
        self.backbone.reset_classifier(0)
        self.head = _FusedHead(self.backbone.num_features, dropout, pose_weight)
        self.backbone_source = f"{backbone_source(variant)}; pose: MediaPipe BlazePose (mediapipe 0.10.14)"

    def _pose_input(self) -> _PoseInput:
        return self.head.pose

    def features(self, x: torch.Tensor) -> torch.Tensor:
        img, aux = self.split_input(x)
        return torch.cat([self.backbone(img), aux], dim=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))

    def head_split(self):
        return self.features, self.head


class PoseMLP(_PersonModel):
    """Landmarks and angles only. The image channels are a tiny 16 px stand-in the model ignores
    (the vector needs a plane of >= N_FEATURES values)."""

    family = "person"
    uses_image = False

    def __init__(self, pretrained: bool = True, input_size: int = 16, hidden: int = 64, dropout: float = 0.2):
        del pretrained  # nothing pretrained but the pose model itself
        super().__init__(input_size, config={"input_size": input_size, "hidden": hidden, "dropout": dropout})
        self.pose = _PoseInput()
        self.net = nn.Sequential(nn.Linear(N_FEATURES, hidden), nn.ReLU(), nn.Dropout(dropout), nn.Linear(hidden, len(CLASSES)))
        self.backbone_source = "none (pose vector from MediaPipe BlazePose, mediapipe 0.10.14)"

    def _pose_input(self) -> _PoseInput:
        return self.pose

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _, aux = self.split_input(x)
        return self.net(self.pose(aux))

    def describe(self) -> dict:
        return {**super().describe(), "backbone_source": self.backbone_source}


def build_effnet_person(pretrained: bool = True, **config) -> EffNetPerson:
    return EffNetPerson(pretrained=pretrained, **config).to(memory_format=torch.channels_last)


def build_pose_mlp(pretrained: bool = True, **config) -> PoseMLP:
    return PoseMLP(pretrained=pretrained, **config)


def check_person(**_config) -> str | None:
    from ..person.finder import available

    return available()


def check_effnet_person(**config) -> str | None:
    from .effnet import check_effnet

    return check_person(**config) or check_effnet(**config)
