"""CLIP recipes on tiny random open_clip configs: WiSE-FT (alpha 0 = zero-shot model exactly),
LP-FT + layer-wise LR decay through the runner, and partial checkpoints for frozen backbones."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

pytest.importorskip("open_clip")

from har_demo.data.datasets import load_dataset
from har_demo.data.splits import load_splits
from har_demo.evaluate import evaluate_model
from har_demo.models.checkpoint import load_checkpoint
from har_demo.models.clip import wise_ft
from har_demo.models.registry import build_model
from har_demo.models.tiny import tiny_clip_cfg
from har_demo.training.config import TrainConfig
from har_demo.training.data import ImageCache
from har_demo.training.dataprep import make_run_data
from har_demo.training.loop import make_accelerator, state_copy
from har_demo.training.runner import Entry, train_one
from har_demo.training.schedules import param_groups
from har_demo.training.wise import choose_alpha

TINY = tiny_clip_cfg(text_layers=1)


def test_wise_ft_alpha_zero_is_the_zero_shot_model_and_alpha_is_chosen_by_score():
    torch.manual_seed(0)
    model = build_model("clip_ft", model_cfg=TINY).eval()
    zeroshot = build_model("clip_zeroshot", model_cfg=TINY).eval()
    x = torch.randn(4, 3, 32, 32)
    zs_state = state_copy(model)
    with torch.no_grad():  # stand-in for fine-tuning: move every weight
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    ft_state = state_copy(model)
    with torch.no_grad():
        ft_out = model(x)
        assert not torch.allclose(ft_out, zeroshot(x), atol=1e-3)
        choose_alpha(model, zs_state, ft_state, [0.0], lambda m: {"macro_f1": 0.0, "loss": 0.0})
        assert torch.allclose(model(x), zeroshot(x), atol=1e-5)
        choose_alpha(model, zs_state, ft_state, [1.0], lambda m: {"macro_f1": 0.0, "loss": 0.0})
        assert torch.allclose(model(x), ft_out, atol=1e-6)
    target = wise_ft(zs_state, ft_state, 0.3)["head.weight"]

    def score(m):  # best when the head is the alpha=0.3 interpolation
        return {"macro_f1": -float((m.head.weight.detach() - target).abs().sum()), "loss": 0.0}

    res = choose_alpha(model, zs_state, ft_state, [0.0, 0.1, 0.3, 0.7, 1.0], score)
    assert res["alpha"] == 0.3 and [g["alpha"] for g in res["grid"]] == [0.0, 0.1, 0.3, 0.7, 1.0]
    assert torch.equal(model.head.weight.detach(), target)


def test_layerwise_decay_groups_cover_the_backbone_with_smaller_lrs():
    model = build_model("clip_ft", model_cfg=TINY)
    cfg = TrainConfig(lr=1e-3, backbone_lr=1e-4, lr_decay=0.5)
    groups = param_groups(model, cfg)
    covered = [id(p) for g in groups for p in g["params"]]
    assert sorted(covered) == sorted(id(p) for p in model.parameters() if p.requires_grad)  # each once
    head_ids = {id(p) for p in model.head.parameters()}
    assert all(g["lr"] == 1e-3 for g in groups if {id(p) for p in g["params"]} <= head_ids)
    back = sorted({g["lr"] for g in groups if g["tag"] == "backbone"})
    assert len(back) >= 3 and max(back) <= 1e-4 and min(back) < 1e-4 * 0.5**2


@pytest.fixture(scope="module")
def recipe_runs(tmp_path_factory):
    from har_demo.labels import CLASSES
    from tests.conftest import write_class_image

    root = tmp_path_factory.mktemp("clip")
    for cls in CLASSES:
        for i in range(6):
            write_class_image(root / "images" / cls / f"{i}.jpg", cls, i, (32, 24))
    data = make_run_data(load_dataset(root / "images"), root / "run", split_seed=0)
    acc = make_accelerator("no")
    cache = ImageCache(data.all_samples)
    ft = Entry("clip_ft", "clip_ft", {"model_cfg": TINY}, TrainConfig(epochs=1, lp_epochs=1, lr_decay=0.7, wise_ft=True, wise_alphas=(0.0, 0.5, 1.0), batch_size=8))
    cs = Entry("clip_cs", "clip_cs", {"model_cfg": TINY}, TrainConfig(epochs=1, batch_size=8, lr=1e-2))
    out = {e.label: (train_one(e, data, cache, 0, root / "run" / e.label, acc, command="python train.py ...", quiet=True), root / "run" / e.label) for e in (ft, cs)}
    return data, out, root


def test_runner_stores_wise_ft_choice_and_lp_ft_phases(recipe_runs):
    _, out, _ = recipe_runs
    _, run_dir = out["clip_ft"]
    card = json.loads((run_dir / "card.json").read_text())
    assert card["wise_ft"]["alpha"] in (0.0, 0.5, 1.0) and len(card["wise_ft"]["grid"]) == 3
    assert [h["phase"] for h in json.loads((run_dir / "history.json").read_text())] == ["probe", "train"]
    assert card["training"]["lr_decay"] == 0.7 and card["training"]["lp_epochs"] == 1


def test_frozen_backbone_saves_a_partial_checkpoint_that_reloads_exactly(recipe_runs):
    _, out, root = recipe_runs
    metrics, run_dir = out["clip_cs"]
    card = json.loads((run_dir / "card.json").read_text())
    assert card["partial"] is True and card["weights"]["storage"].startswith("partial")
    model = load_checkpoint(run_dir)
    assert model.temperature.item() == pytest.approx(card["temperature"])
    probs = evaluate_model(model, load_splits(root / "run" / "splits.json")["test"])["probs"]
    assert np.allclose(probs, np.asarray(metrics["predictions"]["test"]["probs"]), atol=1e-5)
    assert json.loads((out["clip_ft"][1] / "card.json").read_text())["partial"] is False  # fine-tuned tower: full
