"""Every control of the compare tab, driven through the real callbacks of the built app."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from har_demo.labels import CLASSES
from har_demo.ui import analysis as an
from har_demo.ui import callbacks as cbm
from har_demo.ui.text import msg, text
from tests.test_ui_support import card_values, example_photo

PREDICTED = text("controls", "target_predicted")


def _methods(ui, **overrides):
    return [overrides.get(name, None) for name in ui.cards]


@pytest.fixture(scope="module")
def analysed(app):
    _, ui, cb = app
    out = cb.analyse(example_photo(), list(ui.cards), PREDICTED, 0.5, "", True, False, *_methods(ui))
    return out


def test_cards_exist_for_available_models_and_unavailable_ones_are_listed(app, bank):
    _, ui, _cb = app
    assert list(ui.cards) == bank.available_names()
    listed = ui.unavailable.value
    for entry in bank.unavailable():  # one short line each: the name and how to enable it (the long reason stays in the API)
        assert f"<li><b>{entry.name}</b>" in listed and entry.hint.split(" (")[0].split("`")[0][:40] in listed
    assert listed.count("<li>") == len(bank.unavailable())
    for name, card in ui.cards.items():
        assert card.method.choices and [c[0] for c in card.method.choices] == bank.get(name).methods
        assert card.method.value == bank.get(name).default_method


def test_analyse_fills_every_selected_card(app, analysed):
    _, ui, cb = app
    state = cb.held(analysed[ui.state])
    assert isinstance(state, an.Analysis) and set(state.cards) == set(ui.cards)
    for name in ui.cards:
        vals = card_values(analysed, ui, name)
        assert vals["column"]["visible"] is True
        assert set(vals["label"]) == set(CLASSES)
        assert isinstance(vals["overlay"], np.ndarray) and vals["overlay"].shape == state.image.shape
        assert f"**{state.cards[name].method}**" in vals["info"]
    assert "2 model(s)" in analysed[ui.status]


def test_model_selection_hides_unselected_cards(app):
    _, ui, cb = app
    out = cb.analyse(example_photo(), ["fnn"], PREDICTED, 0.5, "", True, False, *_methods(ui))
    assert list(cb.held(out[ui.state]).cards) == ["fnn"]
    assert card_values(out, ui, "cnn_base")["column"]["visible"] is False
    assert card_values(out, ui, "cnn_base")["label"] is None


@pytest.mark.parametrize(
    "image, models, expected",
    [(None, ["fnn"], "no_image"), ("photo", [], "no_models")],
)
def test_missing_inputs_give_one_line_in_the_status(app, image, models, expected):
    _, ui, cb = app
    out = cb.analyse(example_photo() if image else None, models, PREDICTED, 0.5, "", True, False, *_methods(ui))
    assert out == {ui.status: msg(expected)}


def test_bad_upload_gives_the_decoder_message(app, tmp_path, monkeypatch):
    _, ui, cb = app
    monkeypatch.setenv("GRADIO_TEMP_DIR", str(tmp_path))
    bad = tmp_path / "abc123" / "scan.png"
    bad.parent.mkdir()
    bad.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 20)
    payload = {"path": str(bad), "orig_name": "scan.png", "meta": {"_type": "gradio.FileData"}}
    out = cb.analyse(payload, ["fnn"], PREDICTED, 0.5, "", True, False, *_methods(ui))
    assert list(out) == [ui.status] and "scan.png" in out[ui.status] and "Traceback" not in out[ui.status]


def test_raw_upload_payloads_are_accepted_only_from_the_upload_folder(app, tmp_path, monkeypatch):
    _, ui, cb = app
    monkeypatch.setenv("GRADIO_TEMP_DIR", str(tmp_path / "uploads"))
    inside = tmp_path / "uploads" / "h" / "p.jpg"
    inside.parent.mkdir(parents=True)
    inside.write_bytes(cbm.Path(example_photo()).read_bytes())
    assert cbm.upload_path({"path": str(inside)}) == str(inside.resolve())
    assert cbm.upload_path(example_photo()) == str(cbm.Path(example_photo()).resolve())  # examples folder
    assert cbm.upload_path(None) is None
    outside = tmp_path / "secret.jpg"
    outside.write_bytes(inside.read_bytes())
    for sneaky in ({"path": str(outside)}, str(outside), {"path": str(inside.parent / ".." / ".." / "secret.jpg")}):
        out = cb.analyse(sneaky, ["fnn"], PREDICTED, 0.5, "", True, False, *_methods(ui))
        assert list(out) == [ui.status] and "not an uploaded file" in out[ui.status]
    ok = cb.analyse({"path": str(inside), "orig_name": "p.jpg"}, ["fnn"], PREDICTED, 0.5, "", True, False, *_methods(ui))
    assert cb.held(ok[ui.state]).cards["fnn"].error is None


def test_unexpected_errors_are_logged_and_shown_as_one_line(app, monkeypatch, caplog):
    _, ui, cb = app
    monkeypatch.setattr(cbm, "_analyse", lambda *a, **k: (_ for _ in ()).throw(KeyError("secret detail")))
    with caplog.at_level(logging.ERROR):
        out = cb.analyse(example_photo("sitting_table.jpg"), ["fnn"], PREDICTED, 0.5, "", True, False, *_methods(ui))
    line = out[ui.status]
    assert "KeyError" in line and "secret detail" not in line and "\n" not in line
    assert "secret detail" in caplog.text


def test_method_dropdown_reruns_only_that_model(app, analysed, monkeypatch):
    _, ui, cb = app
    state = cb.held(analysed[ui.state])
    calls = []
    real = an.run_card
    monkeypatch.setattr(an, "run_card", lambda entry, *a: calls.append(entry.name) or real(entry, *a))
    out = cb.method_changed("cnn_base")(state, "occlusion", PREDICTED, 0.5, "")
    assert calls == ["cnn_base"]
    new = cb.held(out[ui.state])
    assert new.cards["cnn_base"].method == "occlusion" and new.cards["fnn"] is state.cards["fnn"]
    assert "**occlusion**" in card_values(out, ui, "cnn_base")["info"]
    assert (cb.method_changed("cnn_base")(None, "occlusion", PREDICTED, 0.5, "")) == {cb.ui.status: cbm.gr.skip()}  # nothing analysed yet


def test_target_class_reruns_all_maps_for_that_class(app, analysed):
    _, ui, cb = app
    out = cb.target_changed(cb.held(analysed[ui.state]), "standing", 0.5, "", True, False, *_methods(ui))
    assert {c.target for c in cb.held(out[ui.state]).cards.values()} == {"standing"}
    for name in ui.cards:
        assert "for **standing**" in card_values(out, ui, name)["info"]
    bad = cb.target_changed(cb.held(analysed[ui.state]), "dancing", 0.5, "", True, False, *_methods(ui))
    assert "unknown class 'dancing'" in bad[ui.status]


def test_opacity_reblends_stored_maps_without_running_models(app, analysed, monkeypatch):
    _, ui, cb = app
    monkeypatch.setattr(an, "run_card", lambda *a, **k: pytest.fail("the slider must not run a model"))
    monkeypatch.setattr(cbm, "_analyse", lambda *a, **k: pytest.fail("the slider must not run a model"))
    state = cb.held(analysed[ui.state])
    low, high = cb.redraw(state, 0.1, "", True, False), cb.redraw(state, 0.9, "", True, False)
    for name in ui.cards:
        overlay = ui.cards[name].overlay
        assert not np.array_equal(low[overlay], high[overlay])
        assert np.array_equal(high[overlay], an.blend(state, name, 0.9, None, True, False))
    assert (cb.redraw(None, 0.3, "", True, False)) == {cb.ui.status: cbm.gr.skip()}


@pytest.mark.parametrize("probs, flagged", [((0.45, 0.44, 0.11), True), ((0.8, 0.1, 0.1), False), ((0.1, 0.45, 0.45), True)])
def test_ambiguity_flag_follows_the_library(app, analysed, probs, flagged):
    _, ui, cb = app
    state = cb.held(analysed[ui.state])
    card = state.cards["fnn"]
    forced_card = an.CardResult("fnn", dict(zip(CLASSES, probs)), card.method, "sitting", card.saliency)
    out = cb.box_changed(an.Analysis(state.image, state.size, {"fnn": forced_card}), 0.5, "")
    info = card_values(out, ui, "fnn")["info"]
    assert ("**Close call**" in info) is flagged  # any close pair; the body evidence is in the headline, once
    assert an.ambiguity(forced_card)["flag"] is flagged
    if flagged:
        assert "body: see above" in info and "Body:" not in info


def test_person_box_gives_drift_scores_from_stored_maps(app, analysed, monkeypatch):
    _, ui, cb = app
    monkeypatch.setattr(an, "run_card", lambda *a, **k: pytest.fail("the box must not run a model"))
    state = cb.held(analysed[ui.state])
    w, h = state.size
    out = cb.box_changed(state, 0.5, f"0, 0, {w // 2}, {h}")
    for name in ui.cards:
        expected = an.drift(state, name, (0, 0, w // 2, h))
        info = card_values(out, ui, name)["info"]
        assert "inside your box" in info
        assert (f"{expected * 100:.0f} %" in info) if not np.isnan(expected) else "n/a" in info
    assert "set" in out[ui.status]
    cleared = cb.box_changed(state, 0.5, "")
    assert "inside your box" not in card_values(cleared, ui, "fnn")["info"]


def test_malformed_box_is_reported_not_fatal(app, analysed):
    _, ui, cb = app
    out = cb.box_changed(cb.held(analysed[ui.state]), 0.5, "left side please")
    assert "expected" in out[ui.status] or "x0,y0,x1,y1" in out[ui.status]
    assert "inside your box" not in card_values(out, ui, "fnn")["info"]
    full = cb.analyse(example_photo(), ["fnn"], PREDICTED, 0.5, "1,2,3", True, False, *_methods(ui))
    assert cb.held(full[ui.state]).cards["fnn"].error is None and "x0,y0,x1,y1" in full[ui.status]


class _Click:
    def __init__(self, x, y):
        self.index = [x, y]


def test_two_clicks_on_the_photo_make_a_box_and_score_it(app, analysed):
    _, ui, cb = app
    state = cb.held(analysed[ui.state])
    first = cb.corner_clicked(None, state, 0.5, "", True, False, _Click(120, 40))
    assert first[ui.corner] == (120, 40) and first[ui.status] == msg("box_corner", x=120, y=40)
    assert not np.array_equal(first[ui.photo_view], an.photo_view(state, None, None))  # the first corner is drawn
    second = cb.corner_clicked(first[ui.corner], state, 0.5, "", True, False, _Click(30.4, 200.6))
    assert second[ui.corner] is None and second[ui.box] == "30, 40, 120, 201"
    for name in ui.cards:
        score = an.drift(state, name, (30, 40, 120, 201))
        assert ("n/a" if np.isnan(score) else f"{score * 100:.0f} %") in card_values(second, ui, name)["info"]
    assert "30, 40, 120, 201" in second[ui.status]
    before_analysis = cb.corner_clicked((1, 1), None, 0.5, "", True, False, _Click(20, 20))
    assert before_analysis[ui.box] == "1, 1, 20, 20"  # the box is kept for the next analysis
    assert cb.clear_box() == {ui.corner: None, ui.box: ""}


def test_examples_are_cached_lazily_per_setting(app, monkeypatch):
    _, ui, cb = app
    photo = example_photo("walking_street.jpg")
    calls = []
    real = cbm._analyse
    monkeypatch.setattr(cbm, "_analyse", lambda *a, **k: calls.append(1) or real(*a, **k))
    first = cb.analyse(photo, ["fnn"], PREDICTED, 0.5, "", True, False, *_methods(ui))
    second = cb.analyse(photo, ["fnn"], PREDICTED, 0.3, "", True, False, *_methods(ui))
    assert len(calls) == 1 and cb.held(second[ui.state]) is cb.held(first[ui.state])
    assert "from the cache" in second[ui.status] and " in 0.00 s" not in second[ui.status]
    cb.analyse(photo, ["fnn"], "sitting", 0.5, "", True, False, *_methods(ui))
    assert len(calls) == 2


def test_headline_and_skeleton_toggle_redraw_without_models(app, analysed, monkeypatch):
    _, ui, cb = app
    state = cb.held(analysed[ui.state])
    assert analysed[ui.verdict].startswith("## ") and "no model here has an unseen-source accuracy" in analysed[ui.verdict]
    assert f"{state.size[0]} x {state.size[1]} px" in analysed[ui.photo_note]
    assert isinstance(analysed[ui.photo_view], np.ndarray) and isinstance(analysed[ui.best_map], np.ndarray)
    # the headline shows the leading card's overlay (the first model here: none has an accuracy)
    lead = next(iter(state.cards))
    assert np.array_equal(analysed[ui.best_map], analysed[ui.cards[lead].overlay])
    assert np.array_equal(analysed[ui.best_map], an.blend(state, lead, 0.5, None, True, False))
    monkeypatch.setattr(an, "run_card", lambda *a, **k: pytest.fail("a redraw must not run a model"))
    with_skeleton = cb.redraw(state, 0.5, "", True, True)
    without = cb.redraw(state, 0.5, "", False, False)
    if state.person is not None:  # the person finder found the woods walker
        assert not np.array_equal(with_skeleton[ui.photo_view], without[ui.photo_view])
        for name in ui.cards:
            assert not np.array_equal(with_skeleton[ui.cards[name].overlay], without[ui.cards[name].overlay])
    assert (cb.redraw(None, 0.5, "", True, False)) == {cb.ui.status: cbm.gr.skip()}


def test_events_with_nothing_to_change_pass_through_gradio(app):
    """Before any photo: the redraw events (several outputs) change nothing - through Gradio's own
    output processing, which refuses an empty dict for several outputs (it raised before)."""
    import asyncio

    demo = app[0]
    fns = demo.fns.values() if isinstance(demo.fns, dict) else demo.fns
    redraws = [f for f in fns if getattr(f.fn, "__name__", "") == "redraw" and len(f.outputs) > 1]
    assert redraws, "the app wires the opacity / skeleton / outline redraw"
    block_fn = redraws[0]
    inputs = [None, 0.5, "", True, False][: len(block_fn.inputs)]
    result = asyncio.run(demo.process_api(block_fn=block_fn, inputs=inputs, state=None))
    assert all(v == {"__type__": "update"} for v in result["data"]) and len(result["data"]) == len(block_fn.outputs)


def test_the_people_follow_up_is_wired_after_analyse_and_changes_nothing_for_one_person(app, tmp_path, monkeypatch):
    """Analyse answers first; its follow-up event (``people``) finds everyone. On a one-person photo
    (tests/assets/sitting_motorcycle.jpg, CC BY 2.0: one person for both finders) or without an
    analysis the follow-up changes nothing - through Gradio's own output processing."""
    import asyncio

    from har_demo.person import finder

    demo, ui, cb = app
    fns = list(demo.fns.values() if isinstance(demo.fns, dict) else demo.fns)
    people = [f for f in fns if getattr(f.fn, "__name__", "") == "people"]
    analyse = [f for f in fns if getattr(f.fn, "__name__", "") == "analyse"]
    assert len(people) == len(analyse) == 2  # the Analyse button and an example click, each followed by the people step
    for follow, first in zip(people, analyse):
        assert follow.trigger_after == fns.index(first) and follow.concurrency_id == first.concurrency_id == "models"
        assert set(follow.outputs) < set(first.outputs)  # it redraws a part of what Analyse drew
    from gradio.state_holder import SessionState

    block_fn = people[0]
    session = SessionState(demo)
    session[ui.state._id] = "a key the store does not hold"
    result = asyncio.run(demo.process_api(block_fn=block_fn, inputs=[None, 0.5, "", True, False], state=session))
    shown = [v for block, v in zip(block_fn.outputs, result["data"]) if not block.stateful]  # a State's value stays on the server
    assert shown and all(v == {"__type__": "update"} for v in shown) and len(result["data"]) == len(block_fn.outputs)
    assert session[ui.state._id] == "a key the store does not hold"  # the session's state is kept
    if finder.available() is not None:
        pytest.skip("mediapipe not installed: no person to follow up")
    monkeypatch.setenv("GRADIO_TEMP_DIR", str(tmp_path))
    upload = tmp_path / "h" / "one.jpg"
    upload.parent.mkdir()
    upload.write_bytes((cbm.Path(__file__).parent / "assets" / "sitting_motorcycle.jpg").read_bytes())
    out = cb.analyse({"path": str(upload)}, ["fnn"], PREDICTED, 0.5, "", True, False, *_methods(ui))
    assert cb.held(out[ui.state]).person is not None
    assert cb.people(out[ui.state], 0.5, "", True, False) == {ui.status: cbm.gr.skip()}
    assert not cb.held(out[ui.state]).everyone
