"""``--augment-ablation``: cnn_gen once per augmentation variant, its own table."""

from __future__ import annotations

import json

from har_demo.data.transforms import AUGMENTATIONS, STUDY_AUGMENT
from har_demo.training.ablation import ablation_variants
from har_demo.training.cli import main as train_main


def test_variants_are_none_each_single_the_study_set_and_all():
    v = dict(ablation_variants())
    assert v["none"] == () and v["study"] == tuple(STUDY_AUGMENT) and v["all"] == tuple(AUGMENTATIONS)
    assert all(v[a] == (a,) for a in AUGMENTATIONS) and len(v) == len(AUGMENTATIONS) + 3


def test_ablation_run_writes_its_table(make_image_folder, tmp_path):
    data = make_image_folder(4, (32, 24))
    out = tmp_path / "abl"
    argv = ["--data", str(data), "--augment-ablation", "--seeds", "1", "--out", str(out), "--quiet",
            "--config", "cnn_gen.input_size=24", "cnn_gen.widths=[4]", "cnn_gen.hidden=8", "cnn_gen.pool=2", "train.epochs=1"]
    assert train_main(argv) == 0
    doc = json.loads((out / "ablation.json").read_text())
    rows = {r["label"]: r for r in doc["rows"]}
    assert list(rows) == [f"cnn_gen+{name}" for name, _ in ablation_variants()]
    assert all(r["status"] == "ok" and r["model"] == "cnn_gen" for r in rows.values())
    assert rows["cnn_gen+vflip"]["augment"] == ["vflip"] and rows["cnn_gen+none"]["augment"] == []
    md = (out / "ablation.md").read_text()
    assert md.count("| cnn_gen+") == len(rows) and "Δ accuracy vs none" in md and "+0.000" in md  # none vs itself
    assert not (out / "results.md").exists()  # no --models given: only the ablation ran
    card = json.loads((out / "ablation" / "cnn_gen+rrc" / "seed0" / "card.json").read_text())
    assert card["training"]["augment"] == ["rrc"]
