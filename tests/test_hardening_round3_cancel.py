"""Hardening, round 3 (issue 22, item 4 remainder): a batch whose client went away stops inside a
chunk - before the next photo's decode or the next model call - not only between chunks."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from har_demo import evaluate
from har_demo.data.datasets import Sample
from har_demo.labels import CLASSES


class Gone(Exception):
    pass


def _samples(tmp_path, n: int) -> list[Sample]:
    out = []
    for i in range(n):
        p = tmp_path / f"p{i}.png"
        Image.new("RGB", (16, 16), (i, 9, 9)).save(p)
        out.append(Sample(str(p), CLASSES[0], str(i)))
    return out


@pytest.mark.parametrize("gone_after", [0, 3, 7])
def test_a_gone_client_stops_the_batch_inside_the_chunk(tmp_path, monkeypatch, gone_after):
    decoded, predicted = [], []
    real = evaluate.load_image
    monkeypatch.setattr(evaluate, "load_image", lambda *a, **k: decoded.append(1) or real(*a, **k))

    def predict(images):
        predicted.append(len(images))
        return np.full((len(images), len(CLASSES)), 1 / len(CLASSES), np.float32)

    def check(done: int, total: int) -> None:
        if len(decoded) >= gone_after and gone_after:
            raise Gone(f"{done} of {total}")

    # one chunk of 32 photos: the client goes after `gone_after` decodes
    samples = _samples(tmp_path, 10)
    if gone_after == 0:  # never gone: every photo decoded, each model called once
        evaluate.predict_dataset({"a": predict, "b": predict}, samples, chunk=32, before_chunk=check)
        assert len(decoded) == 10 and predicted == [10, 10]
        return
    with pytest.raises(Gone, match=f"^{gone_after} of 10$"):
        evaluate.predict_dataset({"a": predict, "b": predict}, samples, chunk=32, before_chunk=check)
    assert len(decoded) == gone_after and predicted == []  # stopped at the next photo, no model ran


def test_a_client_gone_during_the_first_model_skips_the_second(tmp_path):
    calls = []

    def predict(images):
        calls.append(1)
        return np.zeros((len(images), len(CLASSES)), np.float32)

    def check(done: int, total: int) -> None:
        if calls:
            raise Gone("gone")

    with pytest.raises(Gone):
        evaluate.predict_dataset({"a": predict, "b": predict}, _samples(tmp_path, 4), chunk=32, before_chunk=check)
    assert calls == [1]
