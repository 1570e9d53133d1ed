import json
import pickle

import pytest
import torch

from har_demo.errors import CheckpointError
from har_demo.models.checkpoint import CARD_FILE, WEIGHTS_FILE, load_checkpoint, save_checkpoint
from har_demo.models.registry import build_model, get_spec

TINY = get_spec("cnn_gen").tiny_config()


@pytest.fixture
def saved(tmp_path):
    torch.manual_seed(0)
    model = build_model("cnn_gen", **TINY).eval()
    model.temperature.fill_(1.7)
    # a temperature reaches the app only as one shipped by the unseen-source calibration
    save_checkpoint(model, tmp_path / "ck", card={"seed": 3, "metrics": {"accuracy": 0.5},
                                                  "calibration_unseen": {"shipped": True, "temperature": 1.7}})  # fmt: skip
    return model, tmp_path / "ck"


def test_round_trip_gives_identical_logits(saved):
    model, ck = saved
    loaded = load_checkpoint(ck, expected_name="cnn_gen")
    x = torch.randn(2, 3, 32, 32)
    assert torch.equal(model(x), loaded(x))
    assert float(loaded.temperature) == pytest.approx(1.7)
    card = json.loads((ck / CARD_FILE).read_text())
    assert card["seed"] == 3 and card["classes"] == ["sitting", "standing", "walking_running"]
    assert card["config"]["widths"] == [4, 8, 8]


def test_half_precision_checkpoint_is_smaller_and_close(tmp_path):
    model = build_model("cnn_base", **TINY).eval()
    save_checkpoint(model, tmp_path / "f32")
    save_checkpoint(model, tmp_path / "f16", half=True)
    assert (tmp_path / "f16" / WEIGHTS_FILE).stat().st_size < 0.6 * (tmp_path / "f32" / WEIGHTS_FILE).stat().st_size
    x = torch.randn(2, 3, 32, 32)
    assert torch.allclose(model(x), load_checkpoint(tmp_path / "f16")(x), atol=1e-2)


def test_wrong_model_name_is_refused(saved):
    with pytest.raises(CheckpointError, match="not 'cnn_base'"):
        load_checkpoint(saved[1], expected_name="cnn_base")


def test_wrong_class_names_are_refused(saved):
    ck = saved[1]
    card = json.loads((ck / CARD_FILE).read_text())
    card["classes"] = ["sitting", "walking_running", "standing"]
    (ck / CARD_FILE).write_text(json.dumps(card))
    with pytest.raises(CheckpointError, match="class names"):
        load_checkpoint(ck)


def test_wrong_shape_names_the_file(saved):
    ck = saved[1]
    card = json.loads((ck / CARD_FILE).read_text())
    card["config"]["hidden"] = 32
    (ck / CARD_FILE).write_text(json.dumps(card))
    with pytest.raises(CheckpointError, match=WEIGHTS_FILE):
        load_checkpoint(ck)


def test_tampered_weights_file_gives_clear_error(saved):
    ck = saved[1]
    (ck / WEIGHTS_FILE).write_bytes(b"\x00garbage" * 10)
    with pytest.raises(CheckpointError, match="cannot read checkpoint weights"):
        load_checkpoint(ck)


def test_missing_card_and_bad_json(tmp_path):
    with pytest.raises(CheckpointError, match="not found"):
        load_checkpoint(tmp_path / "nope")
    (tmp_path / "x").mkdir()
    (tmp_path / "x" / CARD_FILE).write_text("{not json")
    with pytest.raises(CheckpointError, match="not valid JSON"):
        load_checkpoint(tmp_path / "x")


class _Boom:
    def __reduce__(self):
        return (exec, ("open(__import__('os').environ['BOOM_FILE'], 'w').write('executed')",))


def test_pickle_in_checkpoint_dir_is_never_executed(saved, tmp_path, monkeypatch):
    _model, ck = saved
    flag = tmp_path / "flag"
    monkeypatch.setenv("BOOM_FILE", str(flag))
    # A malicious pickle under every name a careless loader might try.
    for name in ("model.pt", "model.pth", "pytorch_model.bin", "model.pkl"):
        (ck / name).write_bytes(pickle.dumps(_Boom()))
    loaded = load_checkpoint(ck)
    assert not flag.exists()
    # and a pickle renamed to the safetensors name is rejected, not executed
    (ck / WEIGHTS_FILE).write_bytes(pickle.dumps(_Boom()))
    with pytest.raises(CheckpointError):
        load_checkpoint(ck)
    assert not flag.exists()
    assert loaded is not None
