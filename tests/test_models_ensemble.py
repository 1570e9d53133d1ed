"""``person_ensemble``: the mean of effnet_person's and pose_mlp's probabilities, each averaged with the
mirrored photo. Expected numbers are computed here by hand from the two members (inputs built with
PIL and hand-mirrored landmarks, as in test_models_tta), not through the ensemble's code."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file

from har_demo.errors import ConfigError
from har_demo.models.base import View
from har_demo.models.checkpoint import load_checkpoint, save_checkpoint
from har_demo.models.registry import MODELS, build_model
from har_demo.testing import random_model
from tests.test_models_tta import _mirror_by_hand, _person, _photo, _softmax

ROOT = Path(__file__).resolve().parents[1]


def _by_hand(member, photos, person) -> np.ndarray:
    from har_demo.data.transforms import to_batch
    from har_demo.models.base import pack_aux
    from har_demo.person.geometry import pose_features

    def probs(images, p):
        x = pack_aux(to_batch(images, member.transform), torch.from_numpy(np.stack([pose_features(p)] * len(images))))
        with torch.no_grad():
            return _softmax(member(x))

    mirrored = [im.transpose(Image.FLIP_LEFT_RIGHT) for im in photos]
    return (probs(photos, person) + probs(mirrored, _mirror_by_hand(person))) / 2


def _members():
    image = random_model("effnet_person", tiny=True)
    pose = random_model("pose_mlp", tiny=True)
    ens = build_model("person_ensemble", pretrained=False, input_size=32, hidden=pose.config["hidden"]).eval()
    ens.image.load_state_dict(image.state_dict())
    ens.pose.load_state_dict(pose.state_dict())
    return image, pose, ens


def test_the_ensemble_is_the_mean_of_its_members_each_with_its_mirror():
    image, pose, ens = _members()
    assert ens.flip_tta and ens.person_crop  # the registry line's defaults
    photos, person = [_photo(5), _photo(6)], _person()
    got = ens.predict_views([View(im, (0, 0, im.width, im.height), person) for im in photos])
    expected = (_by_hand(image, photos, person) + _by_hand(pose, photos, person)) / 2
    np.testing.assert_allclose(got, expected, atol=1e-5)
    assert np.abs(got - _by_hand(image, photos, person)).max() > 1e-3  # not just one member


def test_train_py_refuses_the_ensemble(tmp_path, capsys):
    assert not MODELS["person_ensemble"].trainable and MODELS["effnet_person"].trainable
    from har_demo.training.cli import main as train_main

    code = train_main(["--data", str(tmp_path), "--models", "person_ensemble", "--out", str(tmp_path / "o")])
    assert code == 2 and "tools/make_ensemble.py" in capsys.readouterr().err


def test_make_ensemble_puts_the_members_together(tmp_path):
    sys.path.insert(0, str(ROOT / "tools"))
    import make_ensemble

    image, pose, ens = _members()
    data = {"splits": {"val": {"n": 2}, "test": {"n": 2}}}
    save_checkpoint(image, tmp_path / "image", card={"data": data, "seed": 0, "metrics": {}})
    save_checkpoint(pose, tmp_path / "pose", card={"data": data, "seed": 1, "metrics": {}})
    assert make_ensemble.main(["--image", str(tmp_path / "image"), "--pose", str(tmp_path / "pose"), "--out", str(tmp_path / "ens")]) == 0
    loaded = load_checkpoint(tmp_path / "ens", "person_ensemble")
    assert loaded.flip_tta and loaded.card["seed"] == {"effnet_person": 0, "pose_mlp": 1}
    views = [View(im, (0, 0, im.width, im.height), _person()) for im in (_photo(7), _photo(8))]
    np.testing.assert_allclose(loaded.predict_views(views), ens.predict_views(views), atol=2e-3)  # stored in fp16
    save_checkpoint(pose, tmp_path / "pose2", card={"data": {"splits": {"val": {"n": 3}}}, "seed": 1, "metrics": {}})
    with pytest.raises(SystemExit, match="same split"):
        make_ensemble.main(["--image", str(tmp_path / "image"), "--pose", str(tmp_path / "pose2"), "--out", str(tmp_path / "e2")])


def test_the_committed_ensemble_holds_the_committed_members():
    ckpt = ROOT / "checkpoints"
    if not (ckpt / "person_ensemble").is_dir():
        pytest.skip("no committed person_ensemble")
    ens = load_file(str(ckpt / "person_ensemble" / "model.safetensors"))
    for prefix, member in (("image.", "effnet_person"), ("pose.", "pose_mlp")):
        own = load_file(str(ckpt / member / "model.safetensors"))
        for k, v in own.items():
            if k == "temperature":
                continue
            np.testing.assert_allclose(ens[prefix + k].float().numpy(), v.float().numpy(), rtol=1e-3, atol=1e-3, err_msg=k)


def test_a_bad_variant_or_tta_is_one_line():
    with pytest.raises(ConfigError, match="unknown EfficientNet-Lite variant"):
        build_model("effnet_person", pretrained=False, variant="lite9")
    with pytest.raises(ConfigError, match="tta must be one of"):
        build_model("person_ensemble", pretrained=False, tta="both")
    lite1 = build_model("effnet_person", pretrained=False, variant="lite1", input_size=32)
    assert lite1.config["variant"] == "lite1" and "tf_efficientnet_lite1" in lite1.backbone_source
