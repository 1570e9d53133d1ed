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
    assert "### fnn" in md and "not available here" in md.split("### fnn")[1]  # no checkpoint: why


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
