"""``skip_param_init``: random initialisers skipped in this thread only, restored afterwards, and a
full checkpoint still loads to exactly the saved model."""

from __future__ import annotations

import threading

import torch
from torch import nn
from torch.nn import init

from har_demo.models.checkpoint import load_checkpoint, save_checkpoint
from har_demo.models.fast_init import RANDOM_INITIALISERS, skip_param_init
from har_demo.testing import random_model, synthetic_photo


def test_random_initialisers_are_skipped_inside_and_work_outside():
    t = torch.zeros(8, 8)
    with skip_param_init():
        assert init.kaiming_uniform_(t) is t and not t.any()
        init.normal_(t)
        init.xavier_uniform_(t)
        assert not t.any()
        init.ones_(t)  # constant initialisers still apply
        assert bool((t == 1).all())
    init.normal_(t)
    assert t.std() > 0.5


def test_other_threads_keep_real_initialisers():
    seen = {}
    inside, done = threading.Event(), threading.Event()

    def other():
        inside.wait(5)
        seen["weight"] = nn.Linear(16, 16).weight.detach().clone()
        done.set()

    worker = threading.Thread(target=other)
    worker.start()
    with skip_param_init():
        inside.set()
        done.wait(5)
    worker.join()
    assert seen["weight"].abs().sum() > 0 and seen["weight"].std() > 0.01


def test_originals_are_restored_after_exit_and_after_an_error():
    before = {name: getattr(init, name) for name in RANDOM_INITIALISERS if hasattr(init, name)}
    try:
        with skip_param_init(), skip_param_init():  # nested
            assert init.kaiming_uniform_ is not before["kaiming_uniform_"]
            raise RuntimeError("boom")
    except RuntimeError:
        pass
    assert {name: getattr(init, name) for name in before} == before


def test_full_checkpoint_loads_to_exactly_the_saved_model(tmp_path):
    """open_clip tower (MultiheadAttention: xavier_uniform_ / constant_ inits) + linear head."""
    model = random_model("clip_ft", tiny=True)
    save_checkpoint(model, tmp_path / "clip_ft")
    loaded = load_checkpoint(tmp_path / "clip_ft")
    saved = model.state_dict()
    assert set(loaded.state_dict()) == set(saved)
    assert all(torch.equal(v, saved[k]) for k, v in loaded.state_dict().items())
    x = model.preprocess([synthetic_photo(64, 48)])
    with torch.no_grad():
        assert torch.equal(loaded(x), model(x))
