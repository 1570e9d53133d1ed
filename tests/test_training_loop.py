"""The training loop: early stopping restores the best epoch, LP-FT keeps the backbone frozen
while probing, the warm-up/cosine schedule, and same seed -> same run."""

from __future__ import annotations

import itertools
import math

import pytest
import torch

from har_demo.data.datasets import load_dataset
from har_demo.models.base import HarModel
from har_demo.models.registry import build_model
from har_demo.training import loop
from har_demo.training.config import TrainConfig
from har_demo.training.data import ImageCache, make_datasets
from har_demo.training.dataprep import make_run_data
from har_demo.training.runner import Entry, train_one
from har_demo.training.schedules import warmup_cosine_factor

TINY_CNN = {"input_size": 32, "widths": [4, 8], "hidden": 8, "pool": 2}


@pytest.fixture(scope="module")
def accelerator():
    return loop.make_accelerator("no")


@pytest.fixture
def run_data(make_image_folder, tmp_path):
    samples = load_dataset(make_image_folder(6, (32, 24)))
    return make_run_data(samples, tmp_path / "run", split_seed=0, write=False)


def _datasets(run_data, model, augment=()):
    cache = ImageCache(run_data.all_samples)
    parts = {k: run_data.splits[k] for k in ("train", "val", "test")}
    return make_datasets(cache, parts, model.input_size, model.mean, model.std, augment)


def test_early_stopping_restores_the_best_epoch(run_data, accelerator, monkeypatch):
    """Scripted val macro-F1 per validation (epoch 0 = before training): best at epoch 2, then two
    worse epochs stop the run (patience 2); the model must hold the weights it had after epoch 2."""
    torch.manual_seed(0)
    model = build_model("cnn_base", **TINY_CNN)
    ds = _datasets(run_data, model)
    script = iter([0.2, 0.5, 0.9, 0.4, 0.3, 0.95])
    seen = []

    def scripted(logits, labels):
        seen.append(loop.state_copy(model))
        return {"loss": 1.0, "accuracy": 0.5, "macro_f1": next(script)}

    monkeypatch.setattr(loop, "split_metrics", scripted)
    cfg = TrainConfig(epochs=6, patience=2, batch_size=4, lr=1e-2, warmup=0.0)
    res = loop.fit(model, ds["train"], ds["val"], cfg, accelerator, quiet=True)
    assert res.best_epoch == 2 and res.epochs_run == 4 and res.stopped_early
    assert [h["val_macro_f1"] for h in res.history] == [0.5, 0.9, 0.4, 0.3]
    final = model.state_dict()
    assert all(torch.equal(final[k].cpu(), seen[2][k]) for k in final)  # seen[2] = after epoch 2
    assert not all(torch.equal(final[k].cpu(), seen[4][k]) for k in final if final[k].is_floating_point())


class TwoPart(HarModel):
    """A tiny 'pretrained backbone + new head' model (conv + BN backbone, linear head)."""

    def __init__(self):
        super().__init__(32)
        self.backbone = torch.nn.Sequential(
            torch.nn.Conv2d(3, 4, 3, stride=4), torch.nn.ReLU(), torch.nn.Conv2d(4, 4, 1), torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten()
        )
        self.head = torch.nn.Linear(4, 3)

    def forward(self, x):
        return self.head(self.backbone(x))

    def param_groups(self):
        return {"head": list(self.head.parameters()), "backbone": list(self.backbone.parameters())}


def test_linear_probe_phase_keeps_backbone_frozen_then_fine_tunes_it(run_data, accelerator):
    torch.manual_seed(0)
    model = TwoPart()
    ds = _datasets(run_data, model)
    groups = model.param_groups()
    before = {id(p): p.detach().clone() for p in groups["backbone"] + groups["head"]}
    cfg = TrainConfig(epochs=0, lp_epochs=2, patience=0, batch_size=4, lr=5e-2, warmup=0.0, weight_decay=0.1)
    res = loop.fit(model, ds["train"], ds["val"], cfg, accelerator, quiet=True)
    assert res.epochs_run == 2 and [h["phase"] for h in res.history] == ["probe", "probe"]
    assert all(torch.equal(p.detach(), before[id(p)]) for p in groups["backbone"])
    assert res.best_epoch >= 1 and any(not torch.equal(p.detach(), before[id(p)]) for p in groups["head"])
    res = loop.fit(model, ds["train"], ds["val"], cfg.replace(epochs=2, lp_epochs=0, patience=0), accelerator, quiet=True)
    assert res.best_epoch >= 1 and any(not torch.equal(p.detach(), before[id(p)]) for p in groups["backbone"])


def test_partial_backbone_training_freezes_the_input_side(run_data, accelerator):
    torch.manual_seed(0)
    model = TwoPart()
    ds = _datasets(run_data, model)
    first, second = model.backbone[0], model.backbone[2]
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    cfg = TrainConfig(epochs=2, patience=0, batch_size=4, lr=5e-2, backbone_lr=5e-2, warmup=0.0, backbone_trainable=0.5)
    res = loop.fit(model, ds["train"], ds["val"], cfg, accelerator, quiet=True)
    assert res.best_epoch >= 1
    assert torch.equal(first.weight.detach(), before["backbone.0.weight"]) and torch.equal(first.bias.detach(), before["backbone.0.bias"])
    assert not torch.equal(second.weight.detach(), before["backbone.2.weight"])
    assert all(p.requires_grad for p in model.parameters())  # freezing is undone after the fit


def test_warmup_cosine_shape():
    total, warm = 100, 10
    f = [warmup_cosine_factor(s, total, warm, 0.1) for s in range(total)]
    assert f[0] == pytest.approx(0.1) and f[warm - 1] == pytest.approx(1.0)
    assert all(a < b for a, b in itertools.pairwise(f[:warm]))  # linear ramp up
    assert all(a >= b for a, b in itertools.pairwise(f[warm:]))  # cosine decay
    assert warmup_cosine_factor(total, total, warm, 0.1) == pytest.approx(0.1)
    assert f[warm + (total - warm) // 2] == pytest.approx(0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * 0.5)), abs=0.02)


def test_same_seed_same_metrics_other_seed_differs(run_data, accelerator, tmp_path):
    entry = Entry("cnn_gen", "cnn_gen", dict(TINY_CNN), TrainConfig(epochs=2, batch_size=4, augment=("hflip", "rrc")))
    cache = ImageCache(run_data.all_samples)
    a = train_one(entry, run_data, cache, 3, tmp_path / "a", accelerator, quiet=True)
    b = train_one(entry, run_data, cache, 3, tmp_path / "b", accelerator, quiet=True)
    c = train_one(entry, run_data, cache, 4, tmp_path / "c", accelerator, quiet=True)
    assert a["reports"] == b["reports"] and a["predictions"] == b["predictions"]
    assert [h["train_loss"] for h in a_hist(tmp_path / "a")] == [h["train_loss"] for h in a_hist(tmp_path / "b")]
    assert a["predictions"]["test"]["probs"] != c["predictions"]["test"]["probs"]
    assert cache.decodes == 1


def a_hist(run_dir):
    import json

    return json.loads((run_dir / "history.json").read_text())
