"""The frozen-backbone fast path (``training.features``): the head trains on cached features, the
backbone (weights and BatchNorm statistics) is untouched, and features are computed once per
image view for a whole run (shared across seeds)."""

from __future__ import annotations

import pytest
import torch

from har_demo.data.datasets import load_dataset
from har_demo.models.checkpoint import load_checkpoint
from har_demo.models.registry import build_model
from har_demo.training.config import TrainConfig
from har_demo.training.data import ImageCache
from har_demo.training.dataprep import make_run_data
from har_demo.training.features import FeatureStore, backbone_fingerprint, uses_frozen_features, view_transforms
from har_demo.training.loop import make_accelerator
from har_demo.training.runner import Entry, train_one
from tests.test_training_end_to_end import make_manifest

CFG = TrainConfig(epochs=3, batch_size=8, backbone_trainable=0.0, augment=("hflip", "color_jitter"), feature_views=3, lr=3e-3)


def test_head_split_composes_to_forward():
    m = build_model("effnet_lite0", pretrained=False, input_size=32).eval()
    x = torch.randn(2, 3, 32, 32).contiguous(memory_format=torch.channels_last)
    features, head = m.head_split()
    with torch.no_grad():
        assert torch.allclose(head.eval()(features(x)), m(x), atol=1e-6)


def test_fast_path_conditions():
    m = build_model("effnet_lite0", pretrained=False, input_size=32)
    assert uses_frozen_features(m, CFG)
    assert not uses_frozen_features(m, CFG.replace(backbone_trainable=0.5))
    assert not uses_frozen_features(m, CFG.replace(lp_epochs=1))
    assert not uses_frozen_features(build_model("fnn", input_size=32, hidden=[8]), CFG)  # no head_split


def test_fingerprint_tells_backbones_apart_but_not_heads():
    torch.manual_seed(0)
    a = build_model("effnet_lite0", pretrained=False, input_size=32)
    torch.manual_seed(1)
    b = build_model("effnet_lite0", pretrained=False, input_size=32)
    assert backbone_fingerprint(a) != backbone_fingerprint(b)
    b.load_state_dict(a.state_dict())
    with torch.no_grad():
        b.head.weight.add_(1.0)
    assert backbone_fingerprint(a) == backbone_fingerprint(b)


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("frozen")
    samples = load_dataset(make_manifest(root, per_class=6))
    data = make_run_data(samples, root / "run", 0, (0.6, 0.2, 0.2))
    return root, data, ImageCache(data.all_samples)


def test_views(tiny_run):
    _, data, cache = tiny_run
    from har_demo.training.data import make_datasets

    ds = make_datasets(cache, {"train": data.splits["train"], "val": data.splits["val"]}, 32, (0.5,) * 3, (0.5,) * 3, CFG.augment, "pad")
    views = view_transforms(ds["train"], ds["val"], CFG)
    assert len(views) == 3
    from har_demo.training.data import CachedDataset

    train = ds["train"]
    (clean_tf, clean_flip), (mirror_tf, mirror_flip) = views[0], views[1]
    clean = CachedDataset(train.images, train.samples[:1], clean_tf, train.indices[:1], flip=clean_flip)[0][0]
    flipped = CachedDataset(train.images, train.samples[:1], mirror_tf, train.indices[:1], flip=mirror_flip)[0][0]
    assert torch.allclose(flipped, clean.flip(-1))  # view 1 is the exact mirror
    assert len(view_transforms(ds["train"], ds["val"], CFG.replace(augment=()))) == 1  # nothing to vary
    assert len(view_transforms(ds["train"], ds["val"], CFG.replace(augment=("hflip",)))) == 2  # clean + mirror only


def test_head_trains_on_cached_features_backbone_untouched_and_shared_across_seeds(tiny_run):
    root, data, cache = tiny_run
    entry = Entry("effnet_lite0", "effnet_lite0", {"input_size": 32}, CFG, True, None)
    store = FeatureStore()
    acc = make_accelerator("no", cpu=True)
    n_train, n_val, n_test = len(data.splits["train"]), len(data.splits["val"]), len(data.splits["test"])
    m0 = train_one(entry, data, cache, 0, root / "out" / "seed0", acc, quiet=True, features=store)
    # training: 3 views of each training photo, 1 of each val photo; evaluation: the clean view of val and
    # test photos through the fp16-rounded backbone that ships (another fingerprint)
    assert store.computed == 3 * n_train + n_val + n_val + n_test
    m1 = train_one(entry, data, cache, 1, root / "out" / "seed1", acc, quiet=True, features=store)
    assert store.computed == 3 * n_train + 2 * n_val + n_test  # seed 1 reused every feature, evaluation included
    for m in (m0, m1):
        assert m["fit"]["frozen_features"] == {"views": 3}
        assert m["fit"]["epochs_run"] >= 1
    base = build_model("effnet_lite0", pretrained=True, input_size=32).state_dict()
    trained = load_checkpoint(root / "out" / "seed0")
    state = trained.state_dict()
    changed = [k for k in base if not k.startswith("head.") and k != "temperature" and not torch.allclose(state[k].float(), base[k].float(), atol=2e-3, rtol=2e-3)]
    assert changed == []  # backbone weights and BN running statistics as pretrained (fp16 storage tolerance)
    assert not torch.allclose(state["head.weight"].float(), base["head.weight"].float(), atol=1e-3)
    assert trained.config["resize"] == "pad" and trained.resize == "pad"


def test_clip_heads_on_frozen_towers_take_the_fast_path(tiny_run):
    """clip_em / clip_cs freeze their image tower themselves: cached features, tower untouched;
    clip_ft trains its tower and does not qualify."""
    from har_demo.models.tiny import tiny_clip_cfg

    root, data, cache = tiny_run
    cfg = {"model_cfg": tiny_clip_cfg(text_layers=1)}
    train = TrainConfig(epochs=2, batch_size=8, augment=("hflip",), lr=3e-3)
    for name in ("clip_em", "clip_cs"):
        model = build_model(name, **cfg)
        assert uses_frozen_features(model, train)
        entry = Entry(name, name, cfg, train, True, None)
        store = FeatureStore()
        acc = make_accelerator("no", cpu=True)
        m0 = train_one(entry, data, cache, 0, root / name / "seed0", acc, quiet=True, features=store)
        n = store.computed
        assert n == 2 * len(data.splits["train"]) + len(data.splits["val"]) + len(data.splits["test"])  # + evaluation
        train_one(entry, data, cache, 1, root / name / "seed1", acc, quiet=True, features=store)
        assert store.computed == n and m0["fit"]["frozen_features"] == {"views": 2}
        trained = load_checkpoint(root / name / "seed0").state_dict()
        base = model.state_dict()
        assert all(torch.allclose(trained[k].float(), base[k].float(), atol=2e-3) for k in base if k.startswith("visual."))
        assert any(not torch.allclose(trained[k].float(), base[k].float(), atol=1e-4) for k in base if k.startswith("head."))
    assert not uses_frozen_features(build_model("clip_ft", **cfg), train)


def test_fingerprint_covers_buffers_like_class_embeddings():
    from har_demo.models.tiny import tiny_clip_cfg

    a = build_model("clip_cs", model_cfg=tiny_clip_cfg(text_layers=1))
    fp = backbone_fingerprint(a)
    with torch.no_grad():
        a.class_emb.mul_(-1.0)  # other prompts -> other cosine features from the same tower
    assert backbone_fingerprint(a) != fp


def test_lbfgs_head_solves_the_l2_logistic_regression():
    """head_solver=lbfgs: the solution is the regularised optimum (gradient ~0) and more L2 shrinks it."""
    from har_demo.training.features import fit_head_lbfgs

    torch.manual_seed(0)
    feats = torch.randn(2, 60, 5)  # 2 views x 60 photos x 5 features
    targets = torch.arange(60) % 3
    feats[:, :, 0] += targets.float() * 2  # feature 0 separates the classes
    norms = []
    for c in (1.0, 0.01):
        head = torch.nn.Linear(5, 3)
        result = fit_head_lbfgs(head, feats, targets, feats[0], targets, CFG.replace(head_solver="lbfgs", head_c=c), "cpu")
        assert result.best_val["accuracy"] > 0.75  # feature 0 carries the class
        x, y = feats.reshape(-1, 5), targets.repeat(2)
        head.zero_grad()
        loss = torch.nn.functional.cross_entropy(head(x), y, reduction="sum") / len(y) + (head.weight**2).sum() / (2 * c * len(y))
        loss.backward()
        assert head.weight.grad.abs().max() < 1e-4  # balanced classes: the weighted objective is this one
        norms.append(float(head.weight.norm()))
    assert norms[1] < norms[0]


def test_disk_cache_reuses_every_view_across_runs_and_subsets(tiny_run, tmp_path):
    """``FeatureStore(cache_dir)``: a second run (a new store on the same folder) computes nothing and
    gets the same vectors; an augmented view of a photo is the same whichever other photos are in
    the set (a fold, a learning-curve subset), so it hits too; a changed input is a miss."""
    from har_demo.training.data import CachedDataset, make_datasets

    _, data, cache = tiny_run
    ds = make_datasets(cache, {"train": data.splits["train"], "val": data.splits["val"]}, 32, (0.5,) * 3, (0.5,) * 3, CFG.augment, "pad")
    train = ds["train"]
    views = view_transforms(train, ds["val"], CFG)
    torch.manual_seed(0)
    model = build_model("effnet_lite0", pretrained=False, input_size=32)
    key = backbone_fingerprint(model)
    first = FeatureStore(tmp_path)
    a = first.views(key, model, train, views, "cpu")
    n = len(train)
    assert first.computed == 3 * n and first.loaded == 0
    second = FeatureStore(tmp_path)
    b = second.views(key, model, train, views, "cpu")
    assert second.computed == 0 and second.loaded == 3 * n
    assert torch.equal(a, b)
    # the last two photos alone (another set): their augmented view 2 is the one drawn in the full set
    sub = CachedDataset(train.images, train.samples[-2:], train.transform, train.indices[-2:], train.aux, train.flip)
    third = FeatureStore(tmp_path)
    c = third.views(key, model, sub, views, "cpu")
    assert third.computed == 0 and torch.equal(c, a[:, -2:])
    changed = FeatureStore(tmp_path)
    other_tf = make_datasets(cache, {"train": data.splits["train"], "val": data.splits["val"]}, 32, (0.4,) * 3, (0.5,) * 3, CFG.augment, "pad")
    changed.views(key, model, CachedDataset(train.images, train.samples[-2:], other_tf["val"].transform, train.indices[-2:]), [(other_tf["val"].transform, 0.0)], "cpu")
    assert changed.computed == 2  # other normalisation = other input tensors: computed, not a stale hit
