"""Training data: every augmentation keeps the label and the (3, S, S) shape; images are decoded
once per run; cached preprocessing equals the models' own preprocessing."""

from __future__ import annotations

import pytest
import torch

from har_demo.data.datasets import load_dataset
from har_demo.data.io import load_image
from har_demo.data.transforms import AUGMENTATIONS, STUDY_AUGMENT, eval_transform
from har_demo.labels import CLASSES
from har_demo.training.config import ConfigError, parse_augment
from har_demo.training.data import ImageCache, make_datasets


@pytest.fixture
def samples(make_image_folder):
    return load_dataset(make_image_folder(2, (40, 28)))


@pytest.mark.parametrize("augment", [(a,) for a in AUGMENTATIONS] + [tuple(STUDY_AUGMENT), tuple(AUGMENTATIONS)], ids=lambda a: "+".join(a))
def test_augmentation_preserves_label_and_shape(samples, augment):
    torch.manual_seed(0)
    cache = ImageCache(samples)
    ds = make_datasets(cache, {"train": samples}, 24, (0.5,) * 3, (0.5,) * 3, augment)["train"]
    for i, s in enumerate(samples):
        for _ in range(3):  # random ops: several draws
            x, y = ds[i]
            assert type(x) is torch.Tensor and x.shape == (3, 24, 24) and x.dtype == torch.float32
            assert torch.isfinite(x).all()
            assert int(y) == CLASSES.index(s.label)


def test_augmentation_changes_pixels_but_eval_split_does_not(samples):
    torch.manual_seed(0)
    cache = ImageCache(samples)
    parts = make_datasets(cache, {"train": samples, "val": samples}, 24, (0.5,) * 3, (0.5,) * 3, tuple(AUGMENTATIONS))
    draws = [parts["train"][0][0] for _ in range(4)]
    assert any(not torch.equal(draws[0], d) for d in draws[1:])
    assert torch.equal(parts["val"][0][0], parts["val"][0][0])


def test_images_decoded_once_for_all_sizes_and_match_model_preprocessing(samples):
    cache = ImageCache(samples)
    cache.prepare([16, 32])
    assert cache.decodes == 1
    ds = make_datasets(cache, {"val": samples}, 32, (0.48, 0.45, 0.40), (0.27, 0.26, 0.28))["val"]
    assert cache.decodes == 1  # a prepared size never decodes again
    direct = eval_transform(32, (0.48, 0.45, 0.40), (0.27, 0.26, 0.28))(load_image(samples[1].path))
    assert torch.equal(ds[1][0], direct.as_subclass(torch.Tensor))
    cache.tensors(24)
    assert cache.decodes == 2  # an unprepared size costs one more pass


def test_augment_names_and_shortcuts():
    assert parse_augment("study") == list(STUDY_AUGMENT)
    assert parse_augment("all") == list(AUGMENTATIONS)
    assert parse_augment("none") == [] and parse_augment("hflip,hflip,rrc") == ["hflip", "rrc"]
    with pytest.raises(ConfigError, match="blur"):
        parse_augment("hflip,blur")
