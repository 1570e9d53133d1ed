"""Helpers shared by the transformer model tests."""


from har_demo.models import sources


def last_block_tokens(model, x):
    """Logits, the last block's output tokens and the model's ViTSpec for one forward."""
    spec = model.vit_spec()
    seen = {}

    def keep(module, inputs, output):
        seen["out"] = output

    handle = spec.blocks[-1].register_forward_hook(keep)
    logits = model(x)
    handle.remove()
    return logits, seen["out"], spec


def go_offline(monkeypatch, tmp_path, env_vars):
    """No hub, an empty HF cache and none of ``env_vars`` set; the hub probe re-runs."""
    for var in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", *env_vars):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty_hf_cache"))
    monkeypatch.setattr(sources, "_tcp_probe", lambda host, port, timeout: False)
    sources.reset_hub_probe()
