"""Vision-only timm ViT on a tiny random architecture (no downloads)."""

import itertools
import time

import numpy as np
import pytest
import timm
import torch
from PIL import Image
from safetensors.torch import save_file

from har_demo.errors import ModelUnavailable
from har_demo.models import sources
from har_demo.models.checkpoint import load_checkpoint, save_checkpoint
from har_demo.models.registry import build_model, get_spec
from har_demo.models.vit import check_vit

from .vit_helpers import go_offline, last_block_tokens

TINY = get_spec("vit").tiny_config()["timm_kwargs"]


def tiny(**extra):
    return build_model("vit", timm_kwargs=TINY, **extra).eval()


@pytest.fixture
def offline(monkeypatch, tmp_path):
    go_offline(monkeypatch, tmp_path, ("HAR_VIT_WEIGHTS",))
    yield
    sources.reset_hub_probe()


def test_forward_probabilities_and_preprocessing():
    model = tiny()
    assert model.family == "vit" and model.input_size == 32 and model.mean == (0.5, 0.5, 0.5)
    assert model(torch.randn(2, 3, 32, 32)).shape == (2, 3)
    probs = model.predict_proba([Image.new("RGB", (40, 70), (0, 0, 255)), Image.new("RGB", (70, 40))])
    assert probs.shape == (2, 3)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)
    batch = model.preprocess([Image.new("RGB", (70, 40), (255, 0, 0))])
    assert batch.shape == (1, 3, 32, 32) and torch.allclose(batch[0, :, 3, 3], torch.tensor([1.0, -1.0, -1.0]))


def test_vit_spec_grid_and_input_size_change():
    model = tiny()
    x = torch.randn(2, 3, 32, 32)
    before, tokens, spec = last_block_tokens(model, x)
    assert len(spec.blocks) == len(spec.attn) == len(spec.norm1) == 2
    assert spec.tokens_batch_first and spec.num_prefix_tokens == 1 and spec.patch_size == 8
    assert tokens.shape == (2, 1 + np.prod(spec.grid(32)), 32)
    assert spec.attn[0] is model.vit.blocks[0].attn and spec.norm1[-1] is model.vit.blocks[-1].norm1

    spec.set_input_size(48)
    logits, tokens, spec = last_block_tokens(model, torch.randn(2, 3, 48, 48))
    assert logits.shape == (2, 3) and tokens.shape[1] == 1 + 6 * 6
    model.set_input_size(64)  # always interpolated from the native embedding
    assert model(torch.randn(1, 3, 64, 64)).shape == (1, 3)
    model.set_input_size(32)
    assert torch.equal(model(x), before)


def test_gradients_reach_attention_inputs():
    model = tiny()
    spec = model.vit_spec()
    grabbed = []

    def grab(module, args):
        args[0].retain_grad()
        grabbed.append(args[0])

    handles = [a.register_forward_pre_hook(grab) for a in spec.attn]
    model(torch.randn(1, 3, 32, 32))[0, 2].backward()
    for h in handles:
        h.remove()
    assert len(grabbed) == 2 and all(t.grad is not None and t.grad.abs().sum() > 0 for t in grabbed)


def test_param_groups_and_layerwise_decay():
    model = tiny()
    groups = model.param_groups()
    assert {id(p) for p in groups["head"]} == {id(p) for p in model.vit.head.parameters()}
    assert len(groups["head"]) + len(groups["backbone"]) == len(list(model.parameters()))
    lw = model.layerwise_groups(base_lr=2e-3, decay=0.5)
    lrs = [g["lr"] for g in lw]
    assert len(lw) == 2 + 3 and all(a < b for a, b in itertools.pairwise(lrs)) and lrs[-1] == pytest.approx(2e-3)
    assert {id(p) for p in lw[0]["params"]} >= {id(model.vit.pos_embed), id(model.vit.cls_token)}
    assert sum(len(g["params"]) for g in lw) == len(list(model.parameters()))
    with pytest.raises(ValueError):
        model.layerwise_groups(1e-3, decay=0)


def test_local_safetensors_weights_load_backbone(tmp_path, monkeypatch):
    torch.manual_seed(7)
    ref = timm.create_model("vit_base_patch32_224", pretrained=False, **TINY)  # 1000-class head
    path = tmp_path / "tiny_vit.safetensors"
    save_file(ref.state_dict(), str(path))
    model = tiny(weights=str(path))
    own = model.vit.state_dict()
    assert all(torch.equal(v, own[k]) for k, v in ref.state_dict().items() if not k.startswith("head."))
    assert own["head.weight"].shape == (3, 32)
    assert model.config["weights"] == str(path.resolve())
    # the same file through the environment variable
    monkeypatch.setenv("HAR_VIT_WEIGHTS", str(path))
    assert check_vit() is None
    assert sources.resolve_vit().kind == "file"


def test_weights_file_of_another_model_is_refused(tmp_path):
    path = tmp_path / "other.safetensors"
    save_file({"not.a.vit": torch.zeros(3)}, str(path))
    with pytest.raises(ModelUnavailable, match="vit: cannot build") as err:
        tiny(weights=str(path))
    assert "\n" not in str(err.value)


def test_checkpoint_round_trip_identical_logits(tmp_path):
    model = tiny()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.01 * torch.randn_like(p))
    save_checkpoint(model, tmp_path / "vit")
    loaded = load_checkpoint(tmp_path / "vit", expected_name="vit")
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(model(x), loaded(x))
    assert loaded.config == model.config
    assert set(model.partial_state_keys()) == {"vit.head.weight", "vit.head.bias", "temperature"}


def test_unavailable_offline_with_one_line_reason(offline):
    start = time.perf_counter()
    reason = check_vit()
    assert time.perf_counter() - start < 3.0
    assert reason and "HAR_VIT_WEIGHTS" in reason and "\n" not in reason
    assert check_vit(timm_kwargs=TINY) is None
    assert "not found" in check_vit(weights="/no/such/vit.safetensors")
    with pytest.raises(ModelUnavailable, match="HAR_VIT_WEIGHTS"):
        build_model("vit")


def test_image_size_option_round_trips(tmp_path):
    model = tiny(image_size=48)
    assert model.input_size == 48 and model.vit.pos_embed.shape[1] == 1 + 36
    with torch.no_grad():
        model.vit.pos_embed.add_(0.5)
    trained = model.vit.pos_embed.detach().clone()
    model.set_input_size(32)
    model.set_input_size(48)
    assert torch.equal(model.vit.pos_embed, trained)
    save_checkpoint(model, tmp_path / "ck")
    x = torch.randn(1, 3, 48, 48)
    with torch.no_grad():
        assert torch.equal(model(x), load_checkpoint(tmp_path / "ck")(x))


def test_cached_hub_weights_load_without_network(offline, tmp_path):
    """A timm name whose weights sit in the local HF cache builds with the hub unreachable."""
    torch.manual_seed(3)
    ref = timm.create_model("test_vit", pretrained=False)  # timm's 0.4M-parameter test ViT
    snap = tmp_path / "empty_hf_cache" / "models--timm--test_vit.r160_in1k"
    (snap / "refs").mkdir(parents=True)
    (snap / "refs" / "main").write_text("a" * 40)
    (snap / "snapshots" / ("a" * 40)).mkdir(parents=True)
    save_file(ref.state_dict(), str(snap / "snapshots" / ("a" * 40) / "model.safetensors"))

    assert check_vit(model_name="test_vit") is None
    model = build_model("vit", model_name="test_vit")
    assert model.input_size == 160 and model.config["weights"] == "test_vit"
    own = model.vit.state_dict()
    assert all(torch.equal(v, own[k]) for k, v in ref.state_dict().items() if not k.startswith("head."))
