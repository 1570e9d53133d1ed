"""data/splits: group-aware stratified splits, leave-source-out, JSON round trip."""

from __future__ import annotations

import json
from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from har_demo.data.datasets import Sample, class_counts, load_dataset
from har_demo.data.splits import holdout_source_split, load_splits, save_splits, split_samples
from har_demo.errors import DataError
from har_demo.labels import CLASSES


def synthetic(n_groups=(60, 40, 30), sizes=(1, 1, 2, 3), sources=("a", "b", "c")) -> list[Sample]:
    """Groups of uneven sizes per class; sample paths need not exist for splitting."""
    out = []
    for cls, n in zip(CLASSES, n_groups):
        for g in range(n):
            for k in range(sizes[g % len(sizes)]):
                out.append(Sample(f"/x/{cls}/{g}_{k}.jpg", cls, f"{cls}-{g}", sources[g % len(sources)]))
    return out


def groups_of(part):
    return {s.group for s in part}


def assert_group_safe(splits, samples):
    assert sorted(s.path for p in splits.values() for s in p) == sorted(s.path for s in samples)
    g = {k: groups_of(v) for k, v in splits.items()}
    assert not (g["train"] & g["val"]) and not (g["train"] & g["test"]) and not (g["val"] & g["test"])


def test_split_group_aware_and_stratified():
    samples = synthetic()
    sp = split_samples(samples, (0.7, 0.15, 0.15), seed=3)
    assert set(sp) == {"train", "val", "test"}
    assert_group_safe(sp, samples)
    total = class_counts(samples)
    for name, frac in zip(("train", "val", "test"), (0.7, 0.15, 0.15)):
        counts = class_counts(sp[name])
        for c in CLASSES:
            assert counts[c] > 0
            assert abs(counts[c] - frac * total[c]) <= 3  # groups are at most 3 images
    assert sp.meta == {"method": "group_stratified", "seed": 3, "fractions": [0.7, 0.15, 0.15]}


def test_split_deterministic_and_seed_dependent():
    samples = synthetic()
    a, b = split_samples(samples, seed=0), split_samples(list(reversed(samples)), seed=0)
    assert {k: sorted(s.path for s in v) for k, v in a.items()} == {k: sorted(s.path for s in v) for k, v in b.items()}
    c = split_samples(samples, seed=1)
    assert groups_of(a["test"]) != groups_of(c["test"])


def test_multi_label_group_and_rare_class():
    samples = synthetic((30, 30, 2))  # walking_running: only 2 groups -> cannot reach all 3 splits
    samples.append(Sample("/x/mixed_1.jpg", "sitting", "mixed"))
    samples.append(Sample("/x/mixed_2.jpg", "standing", "mixed"))
    sp = split_samples(samples, seed=0)
    assert_group_safe(sp, samples)
    present = [k for k, v in sp.items() if any(s.label == "walking_running" for s in v)]
    assert len(present) == 2 and "train" in present


@pytest.mark.parametrize("bad", [(0.5, 0.5), (0.8, 0.3, 0.1), (0.0, 0.5, 0.5), (-0.1, 0.6, 0.5), ("a", 1, 0)])
def test_bad_fractions(bad):
    with pytest.raises(DataError, match="fractions"):
        split_samples(synthetic(), bad)


def test_zero_test_fraction():
    sp = split_samples(synthetic(), (0.9, 0.1, 0.0))
    assert sp["test"] == [] and sp["val"]


@settings(max_examples=30, deadline=None, database=None)
@given(st.lists(st.tuples(st.integers(0, 2), st.integers(0, 15)), min_size=1, max_size=60), st.integers(0, 5))
def test_split_property_no_group_straddles(pairs, seed):
    samples = [Sample(f"/p/{i}.jpg", CLASSES[c], f"g{g}") for i, (c, g) in enumerate(pairs)]
    assert_group_safe(split_samples(samples, seed=seed), samples)


def test_holdout_source_split():
    samples = synthetic()
    sp = holdout_source_split(samples, ["c"], val_fraction=0.2, seed=0)
    assert {s.source for s in sp["test"]} == {"c"}
    assert len(sp["test"]) == sum(s.source == "c" for s in samples)
    assert "c" not in {s.source for s in sp["train"] + sp["val"]}
    assert_group_safe(sp, samples)
    assert 0.1 < len(sp["val"]) / (len(sp["train"]) + len(sp["val"])) < 0.3
    with pytest.raises(DataError, match="'nope'.*'a', 'b', 'c'"):
        holdout_source_split(samples, "nope")
    with pytest.raises(DataError, match="no samples to train"):
        holdout_source_split(samples, ["a", "b", "c"])


def _real_samples(tmp_path, n=30):
    out = []
    for i in range(n):
        p = tmp_path / "img" / f"{i}.jpg"
        p.parent.mkdir(exist_ok=True)
        p.write_bytes(b"x")
        out.append(Sample(str(p), CLASSES[i % 3], f"g{i // 2}", "src", "CC0"))
    return out


def test_save_load_roundtrip(tmp_path):
    samples = _real_samples(tmp_path)
    sp = split_samples(samples, seed=7)
    path = save_splits(sp, tmp_path / "runs" / "splits.json")
    doc = json.loads(path.read_text())
    assert doc["meta"]["seed"] == 7 and doc["meta"]["fractions"] == [0.8, 0.1, 0.1]
    assert doc["splits"]["train"][0]["path"].startswith("../img/")
    back = load_splits(path)
    assert {k: list(v) for k, v in back.items()} == {k: list(v) for k, v in sp.items()}
    assert back.meta["seed"] == 7


def test_load_splits_validates(tmp_path):
    samples = _real_samples(tmp_path)
    path = save_splits(split_samples(samples, seed=0), tmp_path / "s.json")
    doc = json.loads(path.read_text())
    bad = json.loads(path.read_text())
    bad["splits"]["train"].append(dict(doc["splits"]["test"][0]))
    path.write_text(json.dumps(bad))
    with pytest.raises(DataError, match="in both train and test"):
        load_splits(path)
    bad = json.loads(json.dumps(doc))
    bad["splits"]["val"][0]["group"] = doc["splits"]["train"][0]["group"]
    path.write_text(json.dumps(bad))
    with pytest.raises(DataError, match="group .* in both"):
        load_splits(path)
    bad = json.loads(json.dumps(doc))
    bad["splits"]["test"][0]["path"] = "img/missing.jpg"
    path.write_text(json.dumps(bad))
    with pytest.raises(DataError, match="missing.jpg"):
        load_splits(path)
    path.write_text("{not json")
    with pytest.raises(DataError, match="s.json.*JSON"):
        load_splits(path)


def test_har3_split(shared_file):
    samples = load_dataset(shared_file("har3"))
    sp = split_samples(samples, seed=0)
    assert_group_safe(sp, samples)
    n = len(samples)
    total = class_counts(samples)
    for name, frac in zip(("train", "val", "test"), (0.8, 0.1, 0.1)):
        assert abs(len(sp[name]) - frac * n) <= 0.02 * n
        counts = class_counts(sp[name])
        for c in CLASSES:
            assert counts[c] > 0 and abs(counts[c] - frac * total[c]) <= max(3, 0.05 * total[c])
    # har3 has groups of up to 18 images: the largest must not be in the small splits
    biggest = Counter(s.group for s in samples).most_common(1)[0][0]
    assert biggest in groups_of(sp["train"])


def test_train_with_no_models_writes_the_runs_split_only(tmp_path):
    """``train.py --models ""`` (the README's way to remake a git-ignored run split without
    training): the same split as ``split_samples`` with the split seed, and nothing trained."""
    from har_demo.data.datasets import load_dataset
    from har_demo.data.splits import load_splits, split_samples
    from har_demo.training.cli import main
    from tests.test_training_end_to_end import make_manifest

    tiny_manifest = make_manifest(tmp_path / "data", per_class=10)
    out = tmp_path / "run"
    argv = ["--data", str(tiny_manifest), "--models", "", "--out", str(out), "--split", "0.6,0.2,0.2", "--split-seed", "3", "--quiet"]
    assert main(argv) == 0
    assert sorted(p.name for p in out.iterdir()) == ["splits.json"]
    got = load_splits(out / "splits.json")
    want = split_samples(load_dataset(tiny_manifest), (0.6, 0.2, 0.2), seed=3)
    for part in ("train", "val", "test"):
        assert sorted(s.path for s in got[part]) == sorted(s.path for s in want[part])
