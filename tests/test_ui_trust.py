"""What a visitor is told to trust (issue 15) and where the maps look (issue 12), without a browser:
unseen-source accuracy from cards (with the fallback), ranking and the headline, near-chance
marking, person share in plain words (a user box overriding the finder), close calls with the
pose sentence, folded unavailable models, no server paths, the start-up log, batch labels from a
CSV / class folders, and the "Use via API" examples that run as shown."""

from __future__ import annotations

import json
import math
import shutil

import numpy as np
import pytest

from har_demo.explain.metrics import DRIFT_FIELDS
from har_demo.labels import CLASSES
from har_demo.ui import analysis as an
from har_demo.ui import batch as bt
from har_demo.ui import render, trust
from har_demo.ui.bank import ModelBank
from har_demo.ui.redact import redact_paths
from har_demo.ui.text import PROJECT_ROOT
from tests.test_ui_support import REPO, example_photo, tiny_env, write_tiny_checkpoints

ACC = {"accuracy": 0.58, "ci95": [0.55, 0.61], "n": 803, "how": "leave-one-source-out", "per_source": {"a": {"n": 3, "accuracy": 0.5}}}


def _bank(root, accuracy: dict) -> ModelBank:
    write_tiny_checkpoints(root)
    for name, acc in accuracy.items():
        path = root / name / "card.json"
        card = json.loads(path.read_text())
        card["unseen_source_accuracy"] = acc
        path.write_text(json.dumps(card))
    with tiny_env(root):
        return ModelBank.load(["cnn_base", "fnn", "vit"])


@pytest.mark.parametrize("card, expected", [
    ({"unseen_source_accuracy": ACC}, 0.58),
    ({"unseen_source_accuracy": 0.41}, 0.41),
    ({}, None), (None, None),
    ({"unseen_source_accuracy": {"accuracy": "high"}}, None),
    ({"unseen_source_accuracy": {"accuracy": 1.7}}, None),
])
def test_unseen_accuracy_reads_cards_with_a_fallback(card, expected):
    acc = trust.unseen_accuracy(card)
    assert (acc.accuracy if acc else None) == expected
    line = trust.accuracy_line(acc)
    assert ("never saw" in line) if acc else ("not measured on unseen sources" in line.lower())


def test_ranking_headline_and_near_chance():
    acc = {"a": trust.unseen_accuracy({"unseen_source_accuracy": 0.40}), "b": None,
           "c": trust.unseen_accuracy({"unseen_source_accuracy": ACC})}
    assert trust.ranked(["a", "b", "c"], acc) == ["c", "a", "b"]  # measured first, best first
    assert trust.headline(["a", "b", "c"], acc) == "c" and trust.headline(["b"], acc) == "b"
    assert acc["a"].near_chance and not acc["c"].near_chance
    assert "near chance" in trust.accuracy_line(acc["a"]) and "58 %" in trust.accuracy_line(acc["c"])
    assert "55-61 %" in trust.accuracy_line(acc["c"]) and "803 photos" in trust.accuracy_line(acc["c"])


def test_built_app_orders_cards_by_unseen_accuracy_and_says_it(tmp_path):
    from har_demo.ui.layout import build_demo

    bank = _bank(tmp_path, {"fnn": ACC, "cnn_base": {"accuracy": 0.39}})
    with tiny_env(tmp_path):
        _demo, ui, _cb = build_demo(bank)
    assert list(ui.cards) == ["fnn", "cnn_base"]
    fnn = ui.cards["fnn"]
    assert "58 %" in fnn.header.value and "headline" in fnn.header.value
    assert "near chance" in ui.cards["cnn_base"].header.value and "har-chance" in ui.cards["cnn_base"].column.elem_classes
    folded = ui.unavailable.value
    assert folded.startswith("<details") and "<summary>" in folded and "vit" in folded
    assert str(tmp_path) not in folded


def _analysis(person=None, probs=(0.5, 0.45, 0.05)) -> an.Analysis:
    sal = np.zeros((40, 60), np.float16)
    sal[10:30, 20:40] = 1.0  # the map lives in the middle
    card = an.CardResult("m", dict(zip(CLASSES, probs)), "gradcam", "sitting", sal)
    return an.Analysis(np.zeros((40, 60, 3), np.uint8), (120, 80), {"m": card}, person, "" if person else "No person found in the photo.")


def _person(inside: bool):
    from har_demo.person import Person

    mask = np.zeros((40, 60), np.float32)
    if inside:
        mask[5:35, 15:45] = 1.0
    else:
        mask[:, :10] = 1.0
    kp = np.zeros((33, 3), np.float32)
    kp[:, 0], kp[:, 1], kp[:, 2] = 30, 20, 1.0
    box = (15, 5, 45, 35) if inside else (0, 0, 10, 40)
    return Person(kp, np.zeros((33, 3), np.float32), box, mask, 0.9, (60, 40), others=True)


def test_person_share_in_plain_words_and_a_user_box_overrides():
    inside, outside = _analysis(_person(True)), _analysis(_person(False))
    assert an.shares(inside, "m")["person_share"] == pytest.approx(1.0)
    assert an.shares(outside, "m")["person_share"] == pytest.approx(0.0)
    line = render.card_info(inside, inside.cards["m"], None)
    # the mask covers 30x30 of the 60x40 photo (37.5 %): all of the map on it is 1 / 0.375 = 2.7x chance
    assert "Looked at the person: **100 %** of the map is on the body, which covers 38 % of what this model sees: **2.7x chance**" in line
    assert "prefers the body" in line
    assert "background decided" in render.card_info(outside, outside.cards["m"], None)
    boxed = an.shares(outside, "m", (40, 20, 80, 60))  # photo pixels (the photo is 120x80, 2x the working image)
    assert boxed["from"] == "your box" and boxed["box_share"] == pytest.approx(1.0)
    assert boxed["box_chance"] == pytest.approx(400 / 2400) and boxed["box_lift"] == pytest.approx(6.0)
    assert "inside your box" in render.card_info(outside, outside.cards["m"], (40, 20, 80, 60))
    assert an.shares(_analysis(None), "m") == {**dict.fromkeys(DRIFT_FIELDS), "from": None}
    assert "several people" in render.photo_note(inside).lower()
    assert "120 x 80 px" in render.photo_note(inside)


def test_a_crop_models_high_share_at_chance_is_not_called_good():
    """A person-crop model sees only the box: a map spread evenly over it puts most of itself on
    the body (67 % here) yet is exactly at chance - the sentence must say so, from the lift."""
    from har_demo.person import Person

    mask = np.zeros((40, 60), np.float32)
    mask[5:35, 20:40] = 1.0  # 600 px of the 900 px box
    kp = np.zeros((33, 3), np.float32)
    person = Person(kp, kp.copy(), (15, 5, 45, 35), mask, 0.9, (60, 40), others=False)
    sal = np.zeros((40, 60), np.float16)
    sal[5:35, 15:45] = 1.0  # uniform over the crop model's view, zero outside (as place_map makes it)
    card = an.CardResult("crop", dict(zip(CLASSES, (0.6, 0.3, 0.1))), "gradcam", "sitting", sal, view_box=(15, 5, 45, 35))
    analysis = an.Analysis(np.zeros((40, 60, 3), np.uint8), (60, 40), {"crop": card}, person)
    sh = an.shares(analysis, "crop")
    assert sh["person_share"] == pytest.approx(2 / 3) and sh["person_chance"] == pytest.approx(2 / 3)
    assert sh["person_lift"] == pytest.approx(1.0) and sh["box_lift"] == pytest.approx(1.0)
    line = render.card_info(analysis, card, None)
    assert "**1.0x chance** (no better than a map spread evenly" in line and "prefers the body" not in line


def test_close_call_for_any_pair_carries_the_pose_sentence():
    from har_demo.person import describe_pose

    a = _analysis(_person(True), probs=(0.05, 0.5, 0.45))  # standing vs walking: flagged too
    info = render.card_info(a, a.cards["m"], None)
    assert "**Close call**: standing vs walking_running" in info  # the compact card stays short:
    assert describe_pose(a.person) not in info
    assert describe_pose(a.person) in render.verdict_markdown(a, "m", {"m": None})  # the headline carries the body evidence
    clear = _analysis(None, probs=(0.9, 0.05, 0.05))
    assert "Clear lead" not in render.card_info(clear, clear.cards["m"], None)  # compact cards flag close calls only
    assert "Clear lead" in render.verdict_markdown(clear, "m", {"m": None})


def test_verdict_names_the_leading_model_and_why():
    a = _analysis(_person(True))
    acc = {"m": trust.unseen_accuracy({"unseen_source_accuracy": ACC})}
    text = render.verdict_markdown(a, "m", acc)
    assert text.startswith("## sitting\u00a0(50\u00a0%)") and "**m**" in text and "58 %" in text and "never saw" in text
    assert "no model here has an unseen-source accuracy" in render.verdict_markdown(a, "m", {"m": None})
    assert "Analyse" in render.verdict_markdown(None, None, {})


def test_agreement_leaves_out_near_chance_models_and_nothing_breaks_the_percent():
    def card(name, label):
        probs = {c: (0.8 if c == label else 0.1) for c in CLASSES}
        return an.CardResult(name, probs, "gradcam", label, None)

    lead = card("lead", "sitting")
    others = {"a": card("a", "sitting"), "b": card("b", "standing"), "weak1": card("weak1", "sitting"), "weak2": card("weak2", "sitting"),
              "new": card("new", "sitting")}
    analysis = an.Analysis(np.zeros((40, 60, 3), np.uint8), (60, 40), {"lead": lead, **others}, None, "none")
    acc = {n: trust.UnseenAccuracy(a) for n, a in (("lead", 0.7), ("a", 0.6), ("b", 0.5), ("weak1", 0.40), ("weak2", 0.34))}
    acc["new"] = None  # not measured: counted (nothing says it is near chance)
    text = render.verdict_markdown(analysis, "lead", acc)
    # an independent count: others not below the near-chance line (0.45) -> a, b, new; agreeing: a, new
    counted = [n for n in others if acc[n] is None or acc[n].accuracy >= 0.45]
    agree = sum(others[n].label == "sitting" for n in counted)
    assert f"{agree} of the {len(counted)} other model(s) agree (2 near-chance model(s) not counted)" in text
    assert agree == 2 and len(counted) == 3
    only_weak = {k: v for k, v in analysis.cards.items() if k in ("lead", "weak1")}
    assert "No other model here is measured above chance" in render.verdict_markdown(an.Analysis(analysis.image, (60, 40), only_weak, None, ""), "lead", acc)
    first = text.splitlines()[0]
    assert "\u00a0(" in first and "\u00a0%)" in first and " (" not in first and " %" not in first  # "%)" never wraps alone


def test_several_people_are_named_in_the_verdict_and_the_judged_one_tagged():
    import dataclasses

    several = _analysis(_person(True))
    one = _analysis(dataclasses.replace(several.person, others=False))
    assert "Several people in this photo" in render.verdict_markdown(several, "m", {"m": None})
    assert "Several people" not in render.verdict_markdown(one, "m", {"m": None})
    tagged, plain = an.photo_view(several, skeleton=False), an.photo_view(one, skeleton=False)
    x0, y0 = several.person.box[:2]  # the tag sits on the judged person's box (top edge, inside the photo)
    diff = np.abs(tagged.astype(int) - plain.astype(int)).sum(axis=2) > 0
    ys, xs = np.nonzero(diff)
    assert ys.size and xs.min() >= x0 - 1 and ys.max() <= y0 + 20
    boxed = an.photo_view(several, (40, 20, 80, 60), skeleton=False)  # a user box replaces the finder's: no tag
    assert np.array_equal(boxed, an.photo_view(one, (40, 20, 80, 60), skeleton=False))


def test_several_people_found_by_the_multi_finder_count_even_when_the_mask_shows_one():
    """BlazePose's mask often shows one person in a crowd (``others`` False on every bundled
    example): the multi-person finder's count decides too."""
    import dataclasses

    one = _analysis(dataclasses.replace(_person(True), others=False))
    assert "Several people" not in render.verdict_markdown(one, "m", {"m": None})
    crowd = dataclasses.replace(one, everyone=[one.person, dataclasses.replace(one.person, box=(1, 1, 20, 30))])
    assert crowd.several_people and not one.several_people
    assert "Several people in this photo" in render.verdict_markdown(crowd, "m", {"m": None})
    assert "several people" in render.person_summary(crowd).lower()


def test_photo_view_draws_the_box_and_the_first_corner():
    a = _analysis(_person(True))
    plain = an.photo_view(a, None, None, skeleton=False)
    boxed = an.photo_view(a, (40, 20, 80, 60), None, skeleton=False)
    cornered = an.photo_view(a, None, (60, 40), skeleton=False)
    assert not np.array_equal(plain, boxed) and not np.array_equal(plain, cornered)
    assert tuple(boxed[10, 25]) == an.BOX_COLOUR  # the white box edge at working (20, 10)
    assert an.photo_point(a, 30, 20) == (60, 40)
    with_skeleton = an.blend(a, "m", 0.5, None, skeleton=True)
    assert not np.array_equal(with_skeleton, an.blend(a, "m", 0.5, None, skeleton=False))


def test_no_server_paths_in_text(monkeypatch, tmp_path):
    monkeypatch.setenv("HAR_CHECKPOINT_DIR", str(tmp_path / "ck"))
    assert redact_paths(f"checkpoint {PROJECT_ROOT}/checkpoints/cnn_base") == "checkpoint checkpoints/cnn_base"
    assert redact_paths(f"no trained checkpoint at {tmp_path}/ck/vit; train") == "no trained checkpoint at checkpoints/vit; train"
    assert "/root" not in redact_paths("cache /root/.cache/hub/x.bin missing") and "https://huggingface.co/x" in redact_paths("see https://huggingface.co/x")


def test_startup_log_lists_every_model_with_its_reason(tmp_path, caplog):
    import logging

    with caplog.at_level(logging.INFO, logger="har_demo.ui.bank"):
        bank = _bank(tmp_path, {})
    lines = bank.startup_lines()
    assert any(line.startswith("model cnn_base: loaded (checkpoint checkpoints/cnn_base)") for line in lines)
    assert any(line.startswith("model vit: not loaded - ") for line in lines)
    assert lines[-1].startswith("2 of 3 models loaded")
    assert "model vit: not loaded" in caplog.text and str(tmp_path) not in caplog.text


def test_batch_labels_from_csv_then_folder_then_name(tmp_path):
    photo = example_photo()
    (tmp_path / "sitting").mkdir()
    files = {"a": tmp_path / "holiday.jpg", "b": tmp_path / "sitting" / "x.jpg", "c": tmp_path / "standing_1.jpg", "d": tmp_path / "walk_csv.jpg"}
    for f in files.values():
        shutil.copy(photo, f)
    labels = tmp_path / "labels.csv"
    labels.write_text("path,label\nsub/walk_csv.jpg,Walking-Running\n")
    samples, unlabelled = bt.collect_samples([str(f) for f in files.values()] + [str(labels)], tmp_path / "w")
    got = {s.group: s.label for s in samples}
    assert got == {"holiday.jpg": "", "x.jpg": "sitting", "standing_1.jpg": "standing", "walk_csv.jpg": "walking_running"}
    assert unlabelled == 1
    bad = tmp_path / "bad.csv"
    bad.write_text("x.jpg,dancing\n")
    with pytest.raises(Exception, match="bad.csv row 1: unknown class 'dancing'"):
        bt.read_label_csv(bad)


def test_unlabelled_batch_still_gives_a_prediction_table(bank, tmp_path):
    paths = []
    for i in range(2):
        paths.append(tmp_path / f"holiday_{i}.jpg")
        shutil.copy(example_photo(), paths[-1])
    res = bt.evaluate_batch(bank, [str(p) for p in paths])
    assert res.reports == {} and res.unlabelled == 2
    table = bt.prediction_table(res)
    assert len(table) == 2 * len(bank.available_names()) and len(table[0]) == len(bt.prediction_columns())
    assert {row[0] for row in table} == {"holiday_0.jpg", "holiday_1.jpg"} and all(row[1] == "-" for row in table)


def test_api_docs_examples_run_as_shown(bank, app, monkeypatch):
    """Each named endpoint called with exactly the example values the "Use via API" page shows
    (paths relative to the repository root, as in the README)."""
    from har_demo.ui.api import Api

    demo, _ui, _cb = app
    monkeypatch.chdir(REPO)
    api = Api(bank)
    info = demo.get_api_info()["named_endpoints"]
    for endpoint in ("/predict", "/explain", "/batch", "/models"):
        spec = info[endpoint]
        assert spec["description"], endpoint
        args = []
        for p in spec["parameters"]:
            ex = p["example_input"]
            args.append([e["path"] for e in ex] if isinstance(ex, list) else ex["path"] if isinstance(ex, dict) else ex)
        out = getattr(api, endpoint.strip("/"))(*args)
        assert out is not None, endpoint
    result, _gallery = api.predict(str(REPO / "examples" / "standing_woods.jpg"), "", "predicted", 0.5)
    for row in result["models"]:
        assert {*DRIFT_FIELDS, "share_from"} <= set(row)
        if row.get("method"):  # a map: the person was found on this photo (mediapipe is a requirement)
            assert row["share_from"] == "person finder" and isinstance(row["pointing"], bool)
            assert row["person_lift"] == pytest.approx(row["person_share"] / row["person_chance"], rel=2e-3)
    assert "found" in result["person"]
    _overlay, one = api.explain(str(REPO / "examples" / "standing_woods.jpg"), "fnn", "", "predicted", 0.5, "10, 10, 200, 300")
    assert one["share_from"] == "your box" and not math.isnan(one["box_share"])


def test_help_states_the_lift_thresholds_the_verdicts_use():
    from har_demo.explain.metrics import LIFT_BACKGROUND, LIFT_BODY, lift_verdict
    from har_demo.ui.text import help_markdown

    text = help_markdown()
    assert f"from {LIFT_BODY}x up" in text and f"below {LIFT_BACKGROUND}x" in text
    assert [lift_verdict(v) for v in (LIFT_BODY, LIFT_BODY - 1e-9, LIFT_BACKGROUND, LIFT_BACKGROUND - 1e-9, float("nan"))] == [
        "body", "chance", "chance", "background", None]
