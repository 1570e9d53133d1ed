"""``person_ensemble``: the two person-centred models averaged - ``effnet_person`` (person crop +
pose vector) and ``pose_mlp`` (pose vector only) - with flip test-time averaging.

Why: on photos from sources neither model saw, their mistakes differ (the crop model reads the
scene around the body, the pose model only the skeleton), and the equal-weight mean of their
probabilities, each also averaged with the mirrored photo's, was right more often than
``effnet_person`` alone: leave-one-source-out over 8 sources, 2,485 held-out photos, 0.690 vs 0.672,
+0.017 [+0.003, +0.031] paired (README "Results", ``tools/loso_tta.py``). Neither the mean alone
(+0.008) nor flip averaging alone (+0.002) was a measurable gain.

Nothing trains here: ``tools/make_ensemble.py`` puts the two trained checkpoints into one
(``image.*`` = effnet_person, ``pose.*`` = pose_mlp). The output is the log of the mean
probability, so ``softmax(forward(x))`` is the mean and every explainer (Grad-CAM on the crop
backbone, the landmarks method on the pose vector) differentiates the ensemble's own answer.
"""

from __future__ import annotations

import torch

from .effnet import MEAN
from .person import EffNetPerson, PoseMLP, _PersonModel, _PoseInput


class PersonEnsemble(_PersonModel):
    family = "person"
    channels_last = True

    def __init__(self, pretrained: bool = True, input_size: int = 224, hidden: int = 64, resize: str = "pad",
                 dropout: float = 0.2, pose_weight: float = 1.0):
        super().__init__(input_size, MEAN, MEAN, config={"input_size": input_size, "hidden": hidden, "resize": resize,
                                                             "dropout": dropout, "pose_weight": pose_weight})  # fmt: skip
        self.image = EffNetPerson(pretrained=pretrained, input_size=input_size, dropout=dropout, resize=resize, pose_weight=pose_weight)
        self.pose = PoseMLP(pretrained=False, hidden=hidden, dropout=dropout)
        self.backbone_source = f"mean of effnet_person ({self.image.backbone_source}) and pose_mlp"

    def _pose_input(self) -> _PoseInput:
        return self.image.head.pose

    def cam_layer(self):
        return self.image.cam_layer()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # PoseMLP reads only the pose plane of the packed input (``split_input``), whatever its size
        probs = (torch.softmax(self.image(x).float(), -1) + torch.softmax(self.pose(x).float(), -1)) / 2
        return torch.log(probs.clamp_min(1e-12))

    def describe(self) -> dict:
        return {**super().describe(), "backbone_source": self.backbone_source}


def build_person_ensemble(pretrained: bool = True, **config) -> PersonEnsemble:
    return PersonEnsemble(pretrained=pretrained, **config).to(memory_format=torch.channels_last)
