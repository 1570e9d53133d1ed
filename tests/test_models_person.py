"""Person-centred models (tiny configs): the person crop + pose vector input, the fallback when no
person is found, and the training path (crop geometry in the image cache, pose vectors mirrored
with their image, statistics from the training split, cached features, exact reload)."""

from __future__ import annotations

import csv
import json
import shutil

import numpy as np
import pytest
import torch

from har_demo.data.datasets import load_dataset
from har_demo.data.io import load_image
from har_demo.errors import HarError
from har_demo.models.checkpoint import load_checkpoint
from har_demo.models.registry import build_model
from har_demo.person import finder
from har_demo.person.finder import find_person
from har_demo.person.geometry import N_FEATURES, feature_names, pose_features
from har_demo.testing import PERSON_PHOTOS, person_photo, sample_image
from har_demo.training.config import TrainConfig
from har_demo.training.data import CachedDataset, ImageCache, make_datasets
from har_demo.training.dataprep import make_run_data
from har_demo.training.features import FeatureStore
from har_demo.training.loop import make_accelerator
from har_demo.training.runner import Entry, train_one
from tests.test_training_end_to_end import make_manifest

pytestmark = pytest.mark.skipif(finder.available() is not None, reason="mediapipe not installed")
FOUND = feature_names().index("found")


def tiny(name="effnet_person"):
    torch.manual_seed(0)
    return build_model(name, pretrained=False, input_size=32).eval()


def test_input_is_the_person_crop_plus_the_pose_vector():
    model = tiny()
    photo = person_photo("standing")
    person = find_person(photo)
    view = model.views([photo])[0]
    assert view.box == person.box and view.image.size == (person.box[2] - person.box[0], person.box[3] - person.box[1])
    x = model.preprocess([photo])
    assert x.shape == (1, 4, 32, 32)
    _img, aux = model.split_input(x)
    np.testing.assert_allclose(aux[0].numpy(), pose_features(person), rtol=1e-6)
    features, head = model.head_split()
    with torch.no_grad():
        assert torch.allclose(head(features(x)), model(x), atol=1e-6)
        other = x.clone()
        other[:, 3] = 0  # the pose plane matters to the logits
        assert not torch.allclose(model(other), model(x))


def test_no_person_falls_back_to_the_whole_photo():
    model = tiny()
    photo = sample_image(40, 30)
    view = model.views([photo])[0]
    assert view.person is None and view.box == (0, 0, 40, 30)
    _, aux = model.split_input(model.preprocess([photo]))
    assert aux[0, FOUND] == 0 and not aux.any()
    probs = model.predict_proba([photo])
    assert probs.shape == (1, 3) and np.isfinite(probs).all()


def test_pose_mlp_reads_only_the_vector():
    model = tiny("pose_mlp")
    a, b = person_photo("standing"), person_photo("sitting")
    x = model.preprocess([a, b])
    y = x.clone()
    y[:, :3] = torch.randn_like(y[:, :3])  # other pixels, same pose vectors
    with torch.no_grad():
        assert torch.allclose(model(x), model(y))
        assert not torch.allclose(model(x)[0], model(x)[1])


def test_pixel_deletion_is_not_scored_for_a_pose_only_model():
    """Deleting pixels cannot change pose_mlp's input: its curves would equal the random map's by
    construction, so faithfulness is n/a (None) rather than a meaningless number."""
    from har_demo.explain.base import explain_full
    from har_demo.explain.metrics import faithfulness

    photo = person_photo("sitting")
    pose, image_model = tiny("pose_mlp"), tiny("effnet_person")
    exp = explain_full(pose, photo)
    assert faithfulness(pose, photo, exp.saliency, exp.target, steps=2) == dict.fromkeys(
        ("deletion_auc", "insertion_auc", "deletion_auc_random", "insertion_auc_random"))
    exp = explain_full(image_model, photo)
    scores = faithfulness(image_model, photo, exp.saliency, exp.target, steps=2)
    from har_demo.explain.metrics import perturbation_curves, random_map

    curves = perturbation_curves(image_model, photo, [exp.saliency, random_map(exp.saliency.shape, 0)], exp.target, steps=2)
    clean = exp.probs[exp.target]  # a letterboxed person crop + pose plane: both ends are the clean input
    np.testing.assert_allclose(curves["deletion"][:, 0], clean, atol=1e-5)
    np.testing.assert_allclose(curves["insertion"][:, -1], clean, atol=1e-5)
    for i, kind in enumerate(("", "_random")):  # the AUC of 3 points (trapezoid, dx = 1/2)
        for curve in ("deletion", "insertion"):
            y = curves[curve][i]
            assert scores[f"{curve}_auc{kind}"] == pytest.approx((y[0] + 2 * y[1] + y[2]) / 4, abs=1e-6)
    from har_demo.data.datasets import Sample
    from har_demo.evaluate import evaluate_maps, format_eval

    with pytest.raises(HarError, match="steps >= 1"):  # same rule as for pixel models
        faithfulness(pose, photo, exp.saliency, exp.target, steps=0)
    samples = [Sample(str(PERSON_PHOTOS[k]), k, k) for k in ("sitting", "standing")]
    report = evaluate_maps(pose, samples, "landmarks", {}, steps=2)
    assert report["deletion_auc"] is None and report["deletion_beats_random"] is None and not report["reads_pixels"]
    assert "deletion / insertion AUC: n/a" in format_eval(report)
    pixels = evaluate_maps(image_model, samples, "gradcam", {}, steps=2)
    assert pixels["reads_pixels"]
    rows = pixels["rows"]  # the hit rates are the share of photos where the map beats the random one
    assert pixels["deletion_beats_random"] == np.mean([r["deletion_auc"] < r["deletion_auc_random"] for r in rows])
    assert pixels["insertion_beats_random"] == np.mean([r["insertion_auc"] > r["insertion_auc_random"] for r in rows])
    assert "n/a (the model reads the pose vector" not in format_eval(pixels)


def test_maps_of_several_models_decode_and_find_each_photo_once(monkeypatch):
    """``explain-eval --model a,b``: photo by photo, every model on it; the same reports as model by model."""
    from har_demo import evaluate
    from har_demo.data.datasets import Sample

    samples = [Sample(str(PERSON_PHOTOS[k]), k, k) for k in ("sitting", "standing")]
    pose, image_model = tiny("pose_mlp"), tiny("effnet_person")
    one_by_one = [evaluate.evaluate_maps(m, samples, meth, {}, steps=2) for m, meth in ((pose, "landmarks"), (image_model, "gradcam"))]
    loads, found = [], []
    real_load, real_detect = evaluate.load_image, finder.detect
    monkeypatch.setattr(evaluate, "load_image", lambda p: loads.append(p) or real_load(p))
    monkeypatch.setattr(finder, "detect", lambda im: found.append(im.size) or real_detect(im))
    finder.clear_cache()
    together = evaluate.evaluate_maps_many([(pose, "landmarks"), (image_model, "gradcam")], samples, {}, steps=2)
    assert len(loads) == len(samples) and len(found) == len(samples)  # once per photo, not per model
    assert json.dumps(together) == json.dumps(one_by_one)  # (as JSON: an empty tiny map's share is NaN, NaN != NaN)


@pytest.fixture(scope="module")
def person_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("person")
    manifest = make_manifest(root, per_class=4)  # synthetic: no person (fallback path)
    with open(manifest, newline="") as fh:
        rows = list(csv.reader(fh))
    for i, (kind, label) in enumerate((("standing", "standing"), ("sitting", "sitting"))):
        dest = root / "images" / f"person_{kind}.jpg"
        shutil.copy(PERSON_PHOTOS[kind], dest)
        rows.append([dest.relative_to(root).as_posix(), label, f"person{i}", "src_a", "CC BY"])
    with open(manifest, "w", newline="") as fh:
        csv.writer(fh).writerows(rows)
    samples = load_dataset(manifest)
    data = make_run_data(samples, root / "run", 0, (0.6, 0.2, 0.2))
    return root, data, ImageCache(data.all_samples, person_dir=root / "persons")


def test_image_cache_holds_person_crops_and_datasets_mirror_pose_with_image(person_run):
    root, _data, cache = person_run
    model = tiny()
    idx = next(i for i, s in enumerate(cache.samples) if "person_standing" in s.path)
    person = cache.persons()[idx]
    assert person is not None and list((root / "persons").glob("*.npz"))  # found once, kept on disk
    crop = cache.full(32, "pad", "person")[idx]
    expected = model.preprocess([load_image(cache.samples[idx].path)])[0, :3]
    got = model.transform(crop)  # same pixels as inference: crop -> letterbox -> normalise
    assert torch.allclose(got, expected, atol=1e-5)
    ds = make_datasets(cache, {"train": [cache.samples[idx]]}, 32, model.mean, model.std, ("hflip",), "pad", model=model)
    train = ds["train"]
    assert train.flip == 0.5  # mirroring moved from the transform to the dataset
    plain = CachedDataset(train.images, train.samples, train.transform, train.indices, train.aux, 0.0)[0][0]
    mirror = CachedDataset(train.images, train.samples, train.transform, train.indices, train.aux, 1.0)[0][0]
    assert torch.allclose(mirror[:3], plain[:3].flip(-1))
    _, aux_m = model.split_input(mirror[None])
    np.testing.assert_allclose(aux_m[0].numpy(), pose_features(person, mirror=True), rtol=1e-5, atol=1e-6)
    model.fit_input_stats(train)
    assert model.head.pose.mean.abs().sum() > 0


def test_trains_on_cached_features_and_reloads_to_the_same_predictions(person_run):
    root, data, cache = person_run
    cfg = TrainConfig(epochs=3, batch_size=8, backbone_trainable=0.0, augment=("hflip", "color_jitter"), feature_views=3, lr=3e-3)
    entry = Entry("effnet_person", "effnet_person", {"input_size": 32}, cfg, False, None)
    store = FeatureStore()
    metrics = train_one(entry, data, cache, 0, root / "out", make_accelerator("no", cpu=True), quiet=True, features=store)
    assert metrics["fit"]["frozen_features"] == {"views": 3}
    # training views + evaluation (clean val/test views through the fp16-rounded backbone that ships)
    assert store.computed == 3 * len(data.splits["train"]) + 2 * len(data.splits["val"]) + len(data.splits["test"])
    model = load_checkpoint(root / "out")
    assert model.person_crop and model.preprocessing_card()["person_crop"] is True
    assert model.head.pose.std.ne(1).any()  # the fitted standardisation travelled in the checkpoint
    test = metrics["predictions"]["test"]
    probs = model.predict_proba([load_image(p) for p in test["paths"]])
    np.testing.assert_allclose(probs, np.array(test["probs"]), atol=2e-3)
    assert N_FEATURES <= 32 * 32


def test_pose_mlp_card_ranks_its_inputs(person_run):
    root, data, cache = person_run
    cfg = TrainConfig(epochs=2, batch_size=8, augment=("hflip",), lr=3e-3)
    entry = Entry("pose_mlp", "pose_mlp", {"input_size": 32, "hidden": 8}, cfg, False, None)
    train_one(entry, data, cache, 0, root / "pose", make_accelerator("no", cpu=True), quiet=True)
    card = json.loads((root / "pose" / "card.json").read_text())
    groups = card["input_importance"]["groups"]
    assert {g["group"] for g in groups} >= {"3-D world landmarks", "knee_angle", "found"}
    drops = [g["accuracy_drop"] for g in groups]
    assert drops == sorted(drops, reverse=True)
    assert card["person_finder"]["train"]["n"] == len(data.splits["train"])


def test_person_crop_is_an_option_of_every_model_and_its_map_is_placed_back(tmp_path):
    from har_demo.explain.base import explain_full
    from har_demo.models.checkpoint import save_checkpoint
    from har_demo.models.registry import MODELS, get_spec

    torch.manual_seed(0)
    model = build_model("cnn_base", pretrained=False, person_crop=True, **get_spec("cnn_base").tiny_config()).eval()
    assert model.person_crop and model.config["person_crop"] is True
    photo = person_photo("standing")
    x0, y0, x1, y1 = find_person(photo).box
    exp = explain_full(model, photo, "gradcam")
    assert exp.view_box == (x0, y0, x1, y1) and exp.saliency.shape == (photo.height, photo.width)
    outside = exp.saliency.copy()
    outside[y0:y1, x0:x1] = 0
    assert outside.max() == 0 and exp.saliency[y0:y1, x0:x1].max() > 0  # the map covers the box only
    # a card without the key was trained on whole photos, whatever the registry default says
    assert MODELS["clip_ft"].config["person_crop"] is True
    plain = build_model("cnn_base", pretrained=False, **get_spec("cnn_base").tiny_config())
    save_checkpoint(plain, tmp_path / "old", {})
    card = json.loads((tmp_path / "old" / "card.json").read_text())
    card["config"].pop("person_crop", None)
    (tmp_path / "old" / "card.json").write_text(json.dumps(card))
    assert load_checkpoint(tmp_path / "old").person_crop is False


def test_aspect_views_train_on_stretched_crops_with_the_stretched_pose(person_run):
    """``aspect_views``: one extra cached view per factor; its pixels are the stretched crop and its
    pose vector the stretched person's (issue 20), checked against a crop stretched with PIL here."""
    from PIL import Image

    from har_demo.data.transforms import Letterbox
    from har_demo.person.geometry import stretch_person
    from har_demo.training.features import view_transforms

    root, data, cache = person_run
    model = tiny()
    ds = make_datasets(cache, {"train": data.splits["train"], "val": data.splits["val"]}, 32, model.mean, model.std, ("hflip",), "pad", model=model)
    cfg = TrainConfig(backbone_trainable=0.0, augment=("hflip",), feature_views=2, aspect_views=(1.5,))
    views = view_transforms(ds["train"], ds["val"], cfg, model)
    assert len(views) == 3
    tf, flip, aux = views[2]
    assert flip == 0.0
    idx = next(i for i, s in enumerate(cache.samples) if "person_standing" in s.path)
    person = cache.persons()[idx]
    np.testing.assert_allclose(aux[idx, 0].numpy(), pose_features(stretch_person(person, 1.5)), rtol=1e-5, atol=1e-6)
    # pixels: the person crop, widened 1.5x with PIL, letterboxed, normalised
    crop = model.person_view(load_image(cache.samples[idx].path), person).image
    wide = crop.resize((round(crop.width * 1.5), crop.height), Image.BICUBIC)
    boxed = Letterbox(32)(torch.from_numpy(np.array(wide)).permute(2, 0, 1)).float() / 255
    expected = (boxed - torch.tensor(model.mean)[:, None, None]) / torch.tensor(model.std)[:, None, None]
    got = tf(cache.full(32, "pad", "person")[idx])
    assert (got - expected).abs().mean() < 0.1  # same picture up to resampling twice
    assert (tf(cache.full(32, "pad", "person")[idx]) - model.transform(cache.full(32, "pad", "person")[idx])).abs().mean() > 0.1
    store = FeatureStore()
    entry = Entry("effnet_person", "effnet_person", {"input_size": 32}, cfg.replace(epochs=1), False, None)
    metrics = train_one(entry, data, cache, 0, root / "out_aspect", make_accelerator("no", cpu=True), quiet=True, features=store)
    assert metrics["fit"]["frozen_features"] == {"views": 3}
