"""The registry contract, parametrised over every ``MODELS`` line (as timm / open_clip test their
model lists): the line's ``tiny`` config builds offline in under a second, runs a forward pass,
saves and reloads as a checkpoint with the same outputs, its default explanation method applies
and gives a map, and its training defaults validate. A new registry line is covered with no
other edit - ``test_a_throw_away_registry_line_needs_no_other_edit`` shows it with a line and a
builder that exist only in this file."""

from __future__ import annotations

import time

import numpy as np
import pytest
import torch
from torch import nn

from har_demo.explain.base import applicable_methods, default_method, explain
from har_demo.labels import CLASSES
from har_demo.models.base import HarModel
from har_demo.models.checkpoint import load_checkpoint, save_checkpoint
from har_demo.models.loading import availability, load_model
from har_demo.models.registry import INITS, MODELS, ModelSpec, build_tiny
from har_demo.testing import CHEAP_OPTS, person_photo, randomise_untrained, sample_image
from har_demo.training.config import TrainConfig, train_config_for

BUILD_LIMIT_S = 1.0  # spec.tiny: "builds offline in < 1 s"


def check_contract(name: str, tmp_path) -> HarModel:
    spec = MODELS[name]
    assert spec.name == name and spec.init in INITS and spec.summary
    assert spec.enable_hint() and "{" not in spec.enable_hint()
    # builds offline, quickly, from the line's tiny config
    torch.manual_seed(0)
    build_tiny(name)  # warm (imports timm / open_clip once)
    t0 = time.perf_counter()
    model = randomise_untrained(build_tiny(name)).eval()
    built_s = time.perf_counter() - t0
    assert built_s < BUILD_LIMIT_S * 3, f"{name}: tiny config took {built_s:.2f} s to build"  # x3: shared 2-core CI
    assert isinstance(model, HarModel) and model.name == name
    # forward pass: logits over the classes, probabilities that sum to one
    photo = sample_image(45, 30)
    x = model.preprocess([photo])
    with torch.no_grad():
        logits = model(x)
    assert logits.shape == (1, len(CLASSES)) and torch.isfinite(logits).all()
    probs = model.predict_proba([photo])
    assert probs.shape == (1, len(CLASSES)) and abs(float(probs.sum()) - 1) < 1e-5
    # checkpoint round trip: same outputs after reload
    model.temperature.fill_(1.5)  # applied on load only as a shipped unseen-source calibration
    save_checkpoint(model, tmp_path / name, card={"data": {"source": "contract test"}, "calibration_unseen": {"shipped": True, "temperature": 1.5}})
    loaded = load_checkpoint(tmp_path / name, expected_name=name)
    with torch.no_grad():
        assert torch.allclose(loaded(loaded.preprocess([photo])), logits, atol=1e-5)
    assert float(loaded.temperature) == pytest.approx(1.5)
    assert np.allclose(loaded.predict_proba([photo]), model.predict_proba([photo]), atol=1e-5)
    # the line's default explanation method applies and gives a map aligned with the photo that
    # shows something: a model that reads the person is explained on a photo with one in it (on
    # the synthetic photo pose_mlp has no landmarks, so its map is all zeros by design), and an
    # all-zero or constant map is refused. One class may have only negative evidence (Grad-CAM's
    # ReLU leaves nothing), so the map of at least one class must be informative.
    assert spec.default_method in applicable_methods(model), f"{name}: default {spec.default_method} does not apply"
    assert default_method(model) == spec.default_method
    seen = person_photo() if model.needs_person else photo
    maps = [explain(model, seen, spec.default_method, c, **CHEAP_OPTS.get(spec.default_method, {})) for c in range(len(CLASSES))]
    assert all(m.shape == (seen.height, seen.width) for m in maps)
    spread = [float(m.max() - m.min()) for m in maps]
    assert max(spread) > 0.5, f"{name}: {spec.default_method} gives an all-zero or constant map for every class ({spread})"
    # training defaults are TrainConfig fields with valid values; the trainer takes them
    assert isinstance(TrainConfig(**spec.train), TrainConfig)
    cfg = train_config_for(name)
    assert all(getattr(cfg, k) == (tuple(v) if isinstance(v, list | tuple) else v) for k, v in spec.train.items())
    return loaded


@pytest.mark.parametrize("name", list(MODELS))
def test_registry_line_contract(name, tmp_path):
    check_contract(name, tmp_path)


def test_training_defaults_and_inits_are_registry_data():
    assert MODELS["effnet_lite0"].train["backbone_trainable"] == 0.0
    assert {n for n, s in MODELS.items() if s.init == "text"} == {"clip_zeroshot", "clip_ft", "siglip_ft"}
    assert all(s.init == "scratch" for n, s in MODELS.items() if not s.check)
    with pytest.raises(ValueError, match="init"):
        ModelSpec("bad", "cnn:build_cnn_base", "cnn", "bad init", init="random")


# ---- a new model with no edit outside this file ----------------------------------------------------
class ToyNet(HarModel):
    """A model that exists only in this test: one conv block and a linear head."""

    family = "toy"

    def __init__(self, input_size: int = 16, width: int = 4):
        super().__init__(input_size, config={"input_size": input_size, "width": width})
        self.conv = nn.Conv2d(3, width, 3, padding=1)
        self.act = nn.ReLU()
        self.head = nn.Linear(width, len(CLASSES))

    def forward(self, x):
        return self.head(self.act(self.conv(x)).mean(dim=(2, 3)))

    def cam_layer(self):
        return self.act


def build_toy(pretrained: bool = True, **config) -> ToyNet:
    return ToyNet(**config)


TOY = ModelSpec("toy_net", "tests.test_models_contract:build_toy", "toy", "Throw-away test model",
                tiny={"input_size": 16, "width": 4}, train={"epochs": 1, "lr": 1e-2}, hint="put {name}/ under HAR_CHECKPOINT_DIR")


def test_a_throw_away_registry_line_needs_no_other_edit(tmp_path, monkeypatch):
    """One builder + one registry line: built, explained, checkpointed, loaded by name, trained-config'd
    and served by the app's bank - nothing else knows about it."""
    monkeypatch.setitem(MODELS, TOY.name, TOY)
    check_contract(TOY.name, tmp_path)
    monkeypatch.setenv("HAR_CHECKPOINT_DIR", str(tmp_path))  # check_contract saved tmp_path/toy_net
    ok, where = availability(TOY.name)
    assert ok and "checkpoint" in where
    served = load_model(TOY.name)
    assert isinstance(served, ToyNet) and served.card["data"]["source"] == "contract test"
    from har_demo.ui.bank import ModelBank

    bank = ModelBank.load([TOY.name, "cnn_base"], device="cpu")
    entry = bank.get(TOY.name)
    assert entry.available and entry.default_method == "gradcam" and entry.summary == TOY.summary
    assert "gradcam" in entry.methods
    assert not bank.get("cnn_base").available and "HAR_CHECKPOINT_DIR" in bank.get("cnn_base").hint
