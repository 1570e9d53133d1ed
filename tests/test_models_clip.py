"""CLIP / SigLIP family on tiny random open_clip configs (no downloads)."""

import itertools
import time

import numpy as np
import open_clip
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from safetensors.torch import save_file

from har_demo.data.transforms import CLIP_MEAN, CLIP_STD
from har_demo.errors import ConfigError, ModelUnavailable
from har_demo.labels import CLASSES, prompts_for
from har_demo.models import sources
from har_demo.models.checkpoint import load_checkpoint, save_checkpoint
from har_demo.models.clip import check_clip, check_siglip, wise_ft
from har_demo.models.loading import availability
from har_demo.models.registry import build_model, get_spec
from har_demo.models.tiny import tiny_siglip_cfg

from .vit_helpers import go_offline, last_block_tokens

TINY = get_spec("clip_ft").tiny_config()["model_cfg"]  # the registry's tiny open_clip config
TINY_SIGLIP = {**TINY, "init_logit_scale": 2.3, "init_logit_bias": -10.0}
TINY_TIMM_TOWER = tiny_siglip_cfg(image_size=160)  # SigLIP-2-like open_clip TimmModel tower
CONFIGS = {
    "clip_zeroshot": TINY,
    "clip_cs": TINY,
    "clip_em": TINY,
    "clip_ft": TINY,
    "siglip_ft": TINY_SIGLIP,
}


def tiny(name, **extra):
    return build_model(name, model_cfg=CONFIGS[name], **extra).eval()


@pytest.fixture
def offline(monkeypatch, tmp_path):
    """The hub unreachable and an empty HF cache, whatever machine runs the tests."""
    go_offline(monkeypatch, tmp_path, ("HAR_CLIP_MODEL", "HAR_CLIP_PRETRAINED", "HAR_SIGLIP_MODEL", "HAR_SIGLIP_PRETRAINED"))
    yield
    sources.reset_hub_probe()


@pytest.mark.parametrize("name", list(CONFIGS))
def test_builds_and_gives_probabilities(name):
    model = tiny(name)
    assert model.family == "clip" and model.name == name
    logits = model(torch.randn(2, 3, 32, 32))
    assert logits.shape == (2, len(CLASSES)) and torch.isfinite(logits).all()
    images = [Image.new("RGB", (50, 80), (200, 30, 30)), Image.new("RGB", (64, 20), (10, 250, 40))]
    probs = model.predict_proba(images)
    assert probs.shape == (2, 3)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)


def test_preprocessing_uses_clip_statistics_and_tower_size():
    model = tiny("clip_em")
    assert model.input_size == 32 and model.mean == pytest.approx(CLIP_MEAN) and model.std == pytest.approx(CLIP_STD)
    batch = model.preprocess([Image.new("RGB", (90, 30), (255, 0, 128))])
    assert batch.shape == (1, 3, 32, 32)  # squash-resize, no crop
    expected = (torch.tensor([1.0, 0.0, 128 / 255]) - torch.tensor(CLIP_MEAN)) / torch.tensor(CLIP_STD)
    assert torch.allclose(batch[0, :, 5, 5], expected, atol=1e-4)


@pytest.mark.parametrize("name", ["clip_zeroshot", "siglip_ft"])
def test_vit_spec_grid_and_input_size_change(name):
    model = tiny(name)
    x32 = torch.randn(2, 3, 32, 32)
    before, tokens, spec = last_block_tokens(model, x32)
    assert len(spec.blocks) == len(spec.attn) == len(spec.norm1) == 2
    assert spec.patch_size == 8 and spec.num_prefix_tokens == 1
    batch_axis = 0 if spec.tokens_batch_first else 1
    assert tokens.shape[batch_axis] == 2
    gh, gw = spec.grid(32)
    assert tokens.shape[1 - batch_axis] == spec.num_prefix_tokens + gh * gw == 1 + 16

    spec.set_input_size(48)
    assert model.input_size == 48 and model.preprocess([Image.new("RGB", (10, 10))]).shape[-1] == 48
    logits, tokens, spec = last_block_tokens(model, torch.randn(2, 3, 48, 48))
    assert logits.shape == (2, 3) and tokens.shape[1 - batch_axis] == 1 + 6 * 6 == 1 + np.prod(spec.grid(48))

    model.set_input_size(32)  # back to native: bit-exact
    assert torch.equal(model(x32), before)


def test_timm_tower_spec_and_resize():
    model = build_model("siglip_ft", model_cfg=TINY_TIMM_TOWER).eval()
    trunk = model.visual.trunk
    x = torch.randn(1, 3, 160, 160)
    before, tokens, spec = last_block_tokens(model, x)
    assert spec.extra["backend"] == "timm" and spec.extra["pool"] == "map"
    assert spec.num_prefix_tokens == trunk.num_prefix_tokens and spec.patch_size == 16
    assert tokens.shape == (1, spec.num_prefix_tokens + 10 * 10, 64)
    spec.set_input_size(192)
    logits, tokens, _ = last_block_tokens(model, torch.randn(1, 3, 192, 192))
    assert logits.shape == (1, 3) and tokens.shape[1] == spec.num_prefix_tokens + 12 * 12
    model.set_input_size(160)
    assert torch.equal(model(x), before)


@pytest.mark.parametrize("name", list(CONFIGS))
def test_gradients_reach_every_attention_input(name):
    model = tiny(name)
    spec = model.vit_spec()
    inputs = []

    def grab(module, args, kwargs):
        args[0].retain_grad()
        inputs.append(args[0])

    handles = [a.register_forward_pre_hook(grab, with_kwargs=True) for a in spec.attn]
    x = torch.randn(1, 3, 32, 32, requires_grad=True)  # frozen towers: explainers make x require grad
    model(x)[0, 1].backward()
    for h in handles:
        h.remove()
    assert len(inputs) == len(spec.attn)
    assert all(t.grad is not None and t.grad.abs().sum() > 0 for t in inputs)


def test_zero_shot_head_is_renormalised_prompt_mean_from_local_weights(tmp_path):
    torch.manual_seed(123)
    ref = open_clip.CLIP(**TINY).eval()
    path = tmp_path / "tiny_clip.safetensors"
    save_file({k: v.contiguous() for k, v in ref.state_dict().items()}, str(path))

    model = build_model("clip_zeroshot", model_cfg=TINY, weights=str(path)).eval()
    assert model.config["weights"] == str(path.resolve())
    assert all(torch.equal(v, ref.visual.state_dict()[k]) for k, v in model.visual.state_dict().items())

    tok = open_clip.SimpleTokenizer(context_length=77)
    with torch.no_grad():
        expected = []
        for cls in CLASSES:
            emb = F.normalize(ref.encode_text(tok(prompts_for(cls))), dim=-1)
            expected.append(F.normalize(emb.mean(0), dim=0))
        expected = torch.stack(expected)
        assert torch.allclose(model.class_emb, expected, atol=1e-6)
        x = torch.randn(2, 3, 32, 32)
        cos = F.normalize(ref.encode_image(x), dim=-1) @ expected.t()
        assert torch.allclose(model(x), ref.logit_scale.exp() * cos, atol=1e-4)


def test_wrong_local_weights_file_is_one_line_error(tmp_path):
    bad = tmp_path / "bad.safetensors"
    save_file({"foo": torch.zeros(2)}, str(bad))
    with pytest.raises(ModelUnavailable, match="bad.safetensors|cannot build") as err:
        build_model("clip_em", model_cfg=TINY, weights=str(bad))
    assert "\n" not in str(err.value)
    missing = str(tmp_path / "nope.safetensors")
    reason = check_clip(model_cfg=TINY, weights=missing)
    assert reason and "nope.safetensors" in reason and "\n" not in reason


@pytest.mark.parametrize("name", ["clip_cs", "clip_em"])
def test_frozen_backbones_stay_frozen(name):
    model = tiny(name).train()
    assert model.backbone_frozen and not any(p.requires_grad for p in model.visual.parameters())
    groups = model.param_groups()
    assert groups["backbone"] == [] and groups["head"] and all(p.requires_grad for p in groups["head"])
    model(torch.randn(2, 3, 32, 32)).sum().backward()
    assert all(p.grad is None for p in model.visual.parameters())
    assert all(p.grad is not None for p in model.head.parameters())
    assert set(model.partial_state_keys()) == {k for k in model.state_dict() if not k.startswith("visual.")}


@pytest.mark.parametrize("name", ["clip_ft", "siglip_ft"])
def test_layerwise_groups_are_monotone_and_complete(name):
    model = tiny(name)
    assert not model.backbone_frozen and all(p.requires_grad for p in model.visual.parameters())
    groups = model.layerwise_groups(base_lr=1e-3, decay=0.7)
    lrs = [g["lr"] for g in groups]
    assert len(groups) == 2 + 3  # embeddings, 2 blocks, final norm/projection, head
    assert all(a < b for a, b in itertools.pairwise(lrs)) and lrs[-1] == pytest.approx(1e-3)
    assert {id(p) for p in groups[-1]["params"]} == {id(p) for p in model.head.parameters()}
    ids = [id(p) for g in groups for p in g["params"]]
    assert len(ids) == len(set(ids)) == sum(1 for p in model.parameters() if p.requires_grad)
    blocks = model.visual.transformer.resblocks
    assert {id(p) for p in groups[2]["params"]} == {id(p) for p in blocks[1].parameters()}


def test_fine_tune_head_starts_as_zero_shot_classifier():
    zs, ft = tiny("clip_zeroshot"), tiny("clip_ft")
    assert torch.allclose(ft.head.weight, zs.logit_scale * zs.class_emb)
    x = torch.randn(3, 3, 32, 32)
    with torch.no_grad():
        assert torch.allclose(ft(x), zs(x), atol=1e-5)


def test_siglip_head_uses_scale_and_bias():
    model = tiny("siglip_ft")
    assert float(model.logit_scale) == pytest.approx(np.exp(2.3), rel=1e-5)
    assert torch.allclose(model.head.bias, torch.full((3,), -10.0))


def test_wise_ft_endpoints_and_midpoint():
    zs_model, model = tiny("clip_zeroshot"), tiny("clip_ft")
    zs_state = {k: v.clone() for k, v in model.state_dict().items()}
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        init_logits = model(x)
        for p in model.parameters():  # stand-in for fine-tuning
            p.add_(0.05 * torch.randn_like(p))
        ft_logits = model(x)
    ft_state = {k: v.clone() for k, v in model.state_dict().items()}
    assert not torch.allclose(ft_logits, init_logits)

    with torch.no_grad():
        model.load_state_dict(wise_ft(zs_state, ft_state, 0.0))
        assert torch.equal(model(x), init_logits)
        assert torch.allclose(model(x), zs_model(x), atol=1e-5)
        model.load_state_dict(wise_ft(zs_state, ft_state, 1.0))
        assert torch.equal(model(x), ft_logits)
    mid = wise_ft(zs_state, ft_state, 0.5)["head.weight"]
    assert torch.allclose(mid, (zs_state["head.weight"] + ft_state["head.weight"]) / 2)
    with pytest.raises(ValueError):
        wise_ft(zs_state, ft_state, 1.5)
    with pytest.raises(ValueError):
        wise_ft({k: v for k, v in zs_state.items() if k != "head.bias"}, ft_state, 0.5)


@pytest.mark.parametrize("name", list(CONFIGS))
def test_checkpoint_round_trip_identical_logits(name, tmp_path):
    model = tiny(name)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.01 * torch.randn_like(p))  # differ from the seeded init
    model.temperature.fill_(1.3)  # applied on load only as a shipped unseen-source calibration
    save_checkpoint(model, tmp_path / name, card={"calibration_unseen": {"shipped": True, "temperature": 1.3}})
    loaded = load_checkpoint(tmp_path / name, expected_name=name)
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(model.eval()(x), loaded(x))
    assert loaded.config == model.config and float(loaded.temperature) == pytest.approx(1.3)


def test_partial_checkpoint_of_frozen_head_and_text_recovery(tmp_path):
    model = tiny("clip_cs")
    with torch.no_grad():
        for p in model.head.parameters():
            p.add_(0.1)
    save_checkpoint(model, tmp_path / "ck", partial_keys=model.partial_state_keys())
    loaded = load_checkpoint(tmp_path / "ck")  # base weights: the seeded tiny init
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(model(x), loaded(x))
    assert torch.allclose(loaded.class_text_embeddings(), loaded.class_emb, atol=1e-6)
    assert loaded.encode_text(["a photo of a person sitting."]).norm(dim=-1).item() == pytest.approx(1.0)


def test_unknown_option_is_refused():
    with pytest.raises(ConfigError, match=r"unknown clip_em builder option\(s\) hiden; known: .*hidden"):  # one line for the user
        build_model("clip_em", model_cfg=TINY, hiden=12)


@pytest.mark.parametrize("check,env", [(check_clip, "HAR_CLIP_PRETRAINED"), (check_siglip, "HAR_SIGLIP_PRETRAINED")])
def test_unavailable_offline_with_one_line_reason(offline, check, env):
    start = time.perf_counter()
    reason = check()
    assert time.perf_counter() - start < 3.0
    assert isinstance(reason, str) and env in reason and "\n" not in reason
    assert check(model_cfg=TINY) is None  # tiny random configs need nothing


def test_registry_reports_and_refuses_offline(offline, tmp_path, monkeypatch):
    monkeypatch.setenv("HAR_CHECKPOINT_DIR", str(tmp_path / "no_checkpoints"))
    ok, why = availability("clip_zeroshot")
    assert not ok and "HAR_CLIP_PRETRAINED" in why
    with pytest.raises(ModelUnavailable, match="HAR_CLIP_PRETRAINED"):
        build_model("clip_zeroshot")


def test_this_machine_reports_unavailable_quickly(monkeypatch):
    """The real probe: on an offline machine every pretrained entry is unavailable, fast."""
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    sources.reset_hub_probe()
    start = time.perf_counter()
    online = sources.hub_reachable()
    reasons = [check_clip(), check_siglip()]
    assert time.perf_counter() - start < 3.0
    if online:
        pytest.skip("the hub is reachable from this machine")
    assert all(r and "\n" not in r for r in reasons)


def test_training_at_another_size_is_kept_and_checkpointed(tmp_path):
    model = tiny("clip_ft", image_size=48)
    assert model.input_size == 48 and model.config["image_size"] == 48
    assert model.visual.positional_embedding.shape[0] == 1 + 6 * 6
    with torch.no_grad():
        model.visual.positional_embedding.add_(0.5)  # "trained" at 48 px
    trained = model.visual.positional_embedding.detach().clone()
    model.set_input_size(32)  # interpolated from the trained embedding, not the pretrained one
    model.set_input_size(48)
    assert torch.equal(model.visual.positional_embedding, trained)

    save_checkpoint(model, tmp_path / "ck")
    loaded = load_checkpoint(tmp_path / "ck")
    x = torch.randn(1, 3, 48, 48)
    with torch.no_grad():
        assert loaded.input_size == 48 and torch.equal(model(x), loaded(x))
