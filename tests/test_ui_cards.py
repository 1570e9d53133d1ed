"""Model-cards tab: each checkpoint's card.json (data, metrics, calibration) and the newest results table."""

from __future__ import annotations

import json
import os
import time

from har_demo.ui import cards
from har_demo.ui.bank import ModelBank
from tests.test_ui_support import tiny_env, write_tiny_checkpoints


def _bank_with_card(root, extra: dict) -> ModelBank:
    write_tiny_checkpoints(root, ["cnn_base"])
    card_path = root / "cnn_base" / "card.json"
    card = json.loads(card_path.read_text())
    card.update(extra)
    card_path.write_text(json.dumps(card))
    return ModelBank.load(["cnn_base", "fnn", "vit"])


def test_card_sections_are_rendered(tmp_path):
    extra = {
        "metrics": {"test": {"accuracy": 0.8123456, "macro_f1": 0.79}},
        "calibration": {"temperature": 1.7, "ece_before": 0.12, "ece_after": 0.03},
        "data": {"train": 500, "sources": ["har3", "coco"]},
    }
    with tiny_env(tmp_path):
        md = cards.model_cards_markdown(_bank_with_card(tmp_path, extra))
    section = md.split("### cnn_base")[1].split("---")[0]
    assert section.index("**metrics**") < section.index("**calibration**") < section.index("**data**")
    assert "**accuracy**: 0.8123" in section and "**ece_after**: 0.03" in section
    assert '["har3", "coco"]' in section
    folded = md.split("<details id=\"unavailable-details\">")[1]  # unavailable models: one folded line at the end
    assert "### fnn" not in md and "<b>fnn</b>" in folded and "<b>vit</b>" in folded and "2 more model(s)" in folded


def test_long_lists_are_shortened_pipes_escaped_and_extra_sections_collapsed():
    md = cards.card_markdown("m", {"history": list(range(50)), "note": "a|b", "training": {"lr": 0.001}, "metrics": {"acc": 1.0}})
    assert "(50 items)" in md and "a\\|b" in md
    assert "<details><summary>training</summary>" in md and "<summary>metrics" not in md


def test_a_broken_card_is_a_line_not_a_crash(tmp_path):
    with tiny_env(tmp_path):
        bank = _bank_with_card(tmp_path, {})
        (tmp_path / "cnn_base" / "card.json").write_text("{not json")
        bank.get("cnn_base").model.card = None
        md = cards.model_cards_markdown(bank)
    assert "not valid JSON" in md.split("### cnn_base")[1]


def test_newest_results_table_wins(tmp_path):
    (tmp_path / "runs" / "a").mkdir(parents=True)
    old = tmp_path / "RESULTS.md"
    old.write_text("| model | acc |\n|---|---|\n| old | 0.1 |\n")
    new = tmp_path / "runs" / "a" / "results.md"
    new.write_text("| model | acc |\n|---|---|\n| new | 0.9 |\n")
    past = time.time() - 100
    os.utime(old, (past, past))
    with tiny_env(tmp_path):
        assert cards.newest_results_file() == new
        md = cards.results_markdown()
    assert "| new | 0.9 |" in md and "old" not in md


def test_no_results_says_how_to_get_them(tmp_path):
    with tiny_env(tmp_path):
        assert cards.newest_results_file() is None
        assert "train.py" in cards.results_markdown()


def test_cards_callback(tmp_path):
    from har_demo.ui.layout import build_demo

    with tiny_env(tmp_path):
        _, ui, cb = build_demo(_bank_with_card(tmp_path, {"metrics": {"acc": 0.5}}))
        out = cb.cards()
    assert "### cnn_base" in out[ui.cards_md] and "**acc**: 0.5" in out[ui.cards_md]
    assert "Results table" in out[ui.results_md]


def _entry(name, model=None):
    from har_demo.models.registry import MODELS
    from har_demo.ui.bank import ModelEntry

    spec = MODELS[name]
    return ModelEntry(name, spec.family, spec.summary, model)


MIXED = {  # a card of a model trained on har3 + Flickr8k: the joined path and per-source counts per split
    "data": {"kind": "mixed", "path": "../shared/data/har3/manifest.csv + ../shared/data/flickr8k/captions.txt", "n_total": 30,
             "splits": {"train": {"n": 24, "per_source": {"inria_person": 10, "flickr8k": 8, "sports100": 6}},
                        "val": {"n": 3, "per_source": {"inria_person": 2, "flickr8k": 1}},
                        "test": {"n": 3, "per_source": {"sports100": 1, "flickr8k": 2}}}},
    "split_sizes": {"train": 24, "val": 3, "test": 3},
    "config": {"input_size": 16},
}


def test_trained_on_names_every_data_set_and_counts_photos_per_source():
    line = cards.trained_on(MIXED)
    assert line.startswith("har3 + flickr8k, 30 photos (24 train / 3 val / 3 test)")  # not "flickr8k" alone
    # per source over all splits, summed here by hand: inria 10+2, flickr8k 8+1+2, sports100 6+1
    assert line.endswith("photos per source: inria_person 12, flickr8k 11, sports100 7")
    assert cards.data_sets({"path": "data/har3/manifest.csv"}) == ["har3"]


def test_input_words_per_model_family():
    from har_demo.models.person import PoseMLP

    pose = cards.input_words(_entry("pose_mlp", PoseMLP(hidden=8)), MIXED)
    assert "no pixels" in pose and "px" not in pose  # pose_mlp reads the pose vector, not a 16 px image
    person = cards.input_words(_entry("effnet_person"), {"config": {"input_size": 224, "resize": "pad", "person_crop": True}})
    assert person.startswith("224 px input, letterboxed") and "person crop" in person and "pose vector" in person
    assert cards.input_words(_entry("cnn_base"), {"config": {"input_size": 64}}) == "64 px input"
    readable = cards.readable_card(_entry("pose_mlp", PoseMLP(hidden=8)), MIXED)
    assert "**Trained on**: har3 + flickr8k" in readable and "16 px" not in readable


def test_how_to_enable_hints_are_short_and_name_the_right_variables():
    from har_demo.models.registry import MODELS

    assert "HAR_SIGLIP_PRETRAINED" in MODELS["siglip_ft"].enable_hint() and "HAR_CLIP" not in MODELS["siglip_ft"].enable_hint()
    assert "HAR_CLIP_PRETRAINED" in MODELS["clip_cs"].enable_hint() and "HAR_VIT_WEIGHTS" in MODELS["vit"].enable_hint()
    for spec in MODELS.values():
        assert len(spec.enable_hint()) <= 210, spec.name


def test_calibration_state():
    assert cards.calibration_state({"calibration": {"temperature": 0.8463244, "test": {"ece_before": 0.155354, "ece_after": 0.119948}}}) == {
        "temperature": 0.846, "test_ece_before": 0.1554, "test_ece_after": 0.1199, "helped": True}
    assert cards.calibration_state({"temperature": 1.5})["helped"] is None
    assert cards.calibration_state({}) is None
