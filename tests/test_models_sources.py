"""Where pretrained weights come from: env/config resolution, HF cache lookups, hub probe."""

import socket
import time

import pytest

from har_demo.models import sources
from har_demo.models.clip import check_clip
from har_demo.models.vit import check_vit

ENV = (
    "HF_HUB_OFFLINE",
    "TRANSFORMERS_OFFLINE",
    "HTTPS_PROXY",
    "https_proxy",
    "HF_ENDPOINT",
    "HAR_CLIP_MODEL",
    "HAR_CLIP_PRETRAINED",
    "HAR_SIGLIP_MODEL",
    "HAR_SIGLIP_PRETRAINED",
    "HAR_VIT_WEIGHTS",
)


@pytest.fixture(autouse=True)
def clean(monkeypatch, tmp_path):
    for var in ENV:
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf"))
    sources.reset_hub_probe()
    yield
    sources.reset_hub_probe()


@pytest.fixture
def unreachable(monkeypatch):
    monkeypatch.setattr(sources, "_tcp_probe", lambda host, port, timeout: False)


def fake_cache(root, repo, files):
    """The layout huggingface_hub writes: refs/main -> snapshots/<commit>/<file>."""
    base = root / f"models--{repo.replace('/', '--')}"
    (base / "refs").mkdir(parents=True)
    (base / "refs" / "main").write_text("0" * 40)
    snap = base / "snapshots" / ("0" * 40)
    snap.mkdir(parents=True)
    for name in files:
        (snap / name).write_bytes(b"x")


def test_offline_env_means_no_probe(monkeypatch):
    def boom(*a, **k):
        raise AssertionError("probed although HF_HUB_OFFLINE=1")

    monkeypatch.setattr(socket, "create_connection", boom)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert sources.hub_reachable() is False and sources.hub_offline_forced()
    assert "HF_HUB_OFFLINE=1" in sources.hub_state()


def test_probe_result_is_cached_per_process(monkeypatch):
    calls = []
    monkeypatch.setattr(sources, "_tcp_probe", lambda host, port, timeout: calls.append((host, port, timeout)) or True)
    assert sources.hub_reachable() and sources.hub_reachable()
    assert len(calls) == 1 and calls[0][:2] == ("huggingface.co", 443) and calls[0][2] <= 2.0
    sources.reset_hub_probe()
    sources.hub_reachable(timeout=30)
    assert len(calls) == 2 and calls[1][2] <= 2.0  # never more than 2 s


def test_probe_never_hangs(monkeypatch):
    monkeypatch.setattr(socket, "create_connection", lambda *a, **k: time.sleep(5))
    start = time.perf_counter()
    assert sources.hub_reachable(timeout=0.2) is False
    assert time.perf_counter() - start < 1.5


def test_probe_targets_endpoint_or_proxy(monkeypatch):
    monkeypatch.setenv("HF_ENDPOINT", "http://mirror.local:8080")
    assert sources.hub_address() == ("mirror.local", 8080)
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.local:3128")
    assert sources.hub_address() == ("proxy.local", 3128)


def test_real_probe_is_fast():
    start = time.perf_counter()
    sources.hub_reachable()
    assert time.perf_counter() - start < 3.0


def test_clip_defaults_env_and_config_precedence(monkeypatch, tmp_path):
    src = sources.resolve_clip("clip")
    assert (src.model_name, src.weights, src.kind, src.quick_gelu) == ("ViT-B-32", "openai", "tag", True)
    sig = sources.resolve_clip("siglip")
    assert (sig.model_name, sig.weights) == ("ViT-B-16-SigLIP2", "webli")
    import open_clip

    assert ("ViT-B-16-SigLIP2", "webli") in open_clip.list_pretrained()

    monkeypatch.setenv("HAR_CLIP_MODEL", "ViT-B-16")
    monkeypatch.setenv("HAR_CLIP_PRETRAINED", "laion2b_s34b_b88k")
    src = sources.resolve_clip("clip")
    assert (src.model_name, src.weights, src.kind, src.quick_gelu) == ("ViT-B-16", "laion2b_s34b_b88k", "tag", False)
    # config beats env (a checkpoint card rebuilds what it recorded)
    assert sources.resolve_clip("clip", model_name="ViT-B-32", weights="openai").model_name == "ViT-B-32"
    # literal model configs never pick up the environment
    assert sources.resolve_clip("clip", model_cfg={"embed_dim": 8}).kind == "random"

    weights = tmp_path / "w.safetensors"
    weights.write_bytes(b"x")
    monkeypatch.setenv("HAR_CLIP_PRETRAINED", str(weights))
    src = sources.resolve_clip("clip")
    assert src.kind == "file" and src.weights == str(weights.resolve())
    monkeypatch.setenv("HAR_CLIP_PRETRAINED", "hf-hub:org/some-clip")
    src = sources.resolve_clip("clip")
    assert (src.kind, src.model_name, src.weights) == ("hf-hub", "hf-hub:org/some-clip", None)


def test_bad_tag_and_missing_file_are_explained(unreachable, monkeypatch):
    reason = check_clip(model_name="ViT-B-32", weights="no_such_tag")
    assert "unknown pretrained tag" in reason and "openai" in reason
    monkeypatch.setenv("HAR_CLIP_PRETRAINED", "/missing/clip.safetensors")
    reason = check_clip()
    assert "not found" in reason and "HAR_CLIP_PRETRAINED" in reason


def test_weights_in_local_hf_cache_count_as_available(unreachable, tmp_path):
    cache = tmp_path / "hf"
    assert check_clip() is not None and check_vit() is not None
    fake_cache(cache, "timm/vit_base_patch32_clip_224.openai", ["open_clip_model.safetensors"])
    assert check_clip() is None
    fake_cache(cache, "timm/vit_base_patch32_224.augreg_in21k_ft_in1k", ["model.safetensors"])
    assert check_vit() is None
    assert sources.cached_hf_file(
        "timm/vit_base_patch32_224.augreg_in21k_ft_in1k", ["pytorch_model.bin", "model.safetensors"]
    ).endswith("model.safetensors")


def test_siglip_needs_its_tokenizer_cached_too(unreachable, tmp_path):
    from har_demo.models.clip import check_siglip

    fake_cache(tmp_path / "hf", "timm/ViT-B-16-SigLIP2", ["open_clip_model.safetensors"])
    assert "tokenizer" in check_siglip()
    (tmp_path / "hf" / "models--timm--ViT-B-16-SigLIP2" / "snapshots" / ("0" * 40) / "tokenizer_config.json").write_text("{}")
    assert check_siglip() is None


def test_hub_access_switches_hf_to_cache_only_when_unreachable(unreachable):
    from huggingface_hub import constants

    before = constants.HF_HUB_OFFLINE
    with sources.hub_access():
        assert constants.HF_HUB_OFFLINE is True
    assert constants.HF_HUB_OFFLINE == before


def test_vit_resolution(monkeypatch, tmp_path):
    assert sources.resolve_vit() == sources.VitSource("vit_base_patch32_224", None, "hub")
    assert sources.resolve_vit(timm_kwargs={"depth": 1}).kind == "random"
    monkeypatch.setenv("HAR_VIT_WEIGHTS", "vit_base_patch32_224.augreg_in1k")
    assert sources.resolve_vit() == sources.VitSource("vit_base_patch32_224.augreg_in1k", None, "hub")
    monkeypatch.setenv("HAR_VIT_WEIGHTS", str(tmp_path / "missing.safetensors"))
    src = sources.resolve_vit()
    assert src.kind == "file" and "not found" in sources.vit_unavailable(src)


def test_path_detection():
    assert sources.looks_like_path("./w.bin") and sources.looks_like_path("weights.safetensors")
    assert not sources.looks_like_path("laion2b_s34b_b79k") and not sources.looks_like_path("hf-hub:org/repo")
    assert sources.local_file("hf-hub:org/repo") is None and sources.local_file(None) is None
