"""Hardening, round 3 (issue 22, item 7): a session holds no image data (its ``gr.State`` is a key
into one LRU of analyses with a byte budget), and memory goes back to the OS after ``/predict`` as
after a batch."""

from __future__ import annotations

import time

import numpy as np
import pytest

from har_demo.ui import analysis as an
from har_demo.ui import batch as bt
from har_demo.ui import callbacks as cbm
from har_demo.ui import sessions
from har_demo.ui.api import Api
from har_demo.ui.sessions import AnalysisStore, held_bytes
from tests.test_ui_support import example_photo


@pytest.fixture(autouse=True)
def uploads_in_tmp(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("GRADIO_TEMP_DIR", str(tmp_path_factory.getbasetemp()))


def _analysis(side: int = 100, maps: int = 2) -> an.Analysis:
    cards = {f"m{i}": an.CardResult(f"m{i}", saliency=np.zeros((side, side), np.float16)) for i in range(maps)}
    return an.Analysis(np.zeros((side, side, 3), np.uint8), (side, side), cards)


def test_held_bytes_counts_the_image_and_every_map():
    # written out: 100*100*3 uint8 image + two 100*100 float16 maps
    assert held_bytes(_analysis()) == 100 * 100 * 3 + 2 * 100 * 100 * 2


def test_new_sessions_never_hold_more_than_the_budget():
    one = 100 * 100 * 3 + 2 * 100 * 100 * 2
    store = AnalysisStore(budget=10 * one)
    keys = [store.put(_analysis()) for _ in range(300)]  # 300 new sessions, one analysis each
    assert store.bytes == 10 * one and len(store) == 10
    assert store.get(keys[0]) is None and store.get(keys[-1]) is not None  # the oldest went first
    assert all(isinstance(k, str) and len(k) == 32 for k in keys)  # what a session's gr.State holds


def test_a_used_analysis_is_kept_and_the_same_analysis_is_stored_once():
    one = held_bytes(_analysis())
    store = AnalysisStore(budget=2 * one)
    first, same = _analysis(), None
    k1 = store.put(first)
    k2 = store.put(_analysis())
    assert store.get(k1) is first  # used: now the most recent
    store.put(_analysis())  # evicts k2, not k1
    assert store.get(k2) is None and store.get(k1) is first
    same = store.put(first)
    assert same == k1 and store.bytes == 2 * one


def test_the_session_state_is_a_key_not_the_analysis(app):
    _, ui, cb = app
    out = cb.analyse(example_photo(), list(ui.cards), None, 0.5, "", True, False, *[None] * len(ui.cards))
    key = out[ui.state]
    assert isinstance(key, str) and held_bytes(key) == 0
    assert isinstance(cb.store.get(key), an.Analysis)
    redrawn = cb.redraw(key, 0.3, "", True, False)  # the redraw finds the maps through the key
    assert any(v is not None for v in redrawn.values())
    assert (cb.redraw("no-such-key", 0.3, "", True, False)) == {cb.ui.status: cbm.gr.skip()}


def test_memory_is_trimmed_after_predict_and_explain(bank, monkeypatch):
    calls = []
    monkeypatch.setattr(bt, "release_memory", lambda: calls.append(1))
    monkeypatch.setattr(sessions, "TRIM_DELAY_S", 0.0)  # trim at once instead of after the burst
    api = Api(bank)
    api.predict(example_photo(), "fnn", "predicted", 0.5)
    assert calls == [1]
    with pytest.raises(Exception):  # noqa: B017 - a refused call trims too
        api.predict(None)
    assert calls == [1, 1]
    api.explain(example_photo(), "fnn")
    assert len(calls) == 3


def test_a_burst_is_trimmed_once_after_its_last_call(monkeypatch):
    calls = []
    monkeypatch.setattr(bt, "release_memory", lambda: calls.append(time.monotonic()))
    monkeypatch.setattr(sessions, "TRIM_DELAY_S", 0.2)
    monkeypatch.setattr(sessions, "_trim", {"timer": None, "last": 0.0})
    for _ in range(20):  # a burst of 20 calls
        sessions.trim_after_burst()
    assert calls == []  # nothing while the burst lasts
    deadline = time.monotonic() + 5
    while not calls and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.3)
    assert len(calls) == 1  # one trim after it
