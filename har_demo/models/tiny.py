"""Tiny open_clip model configs, built locally with random weights (no download): the CLIP and
SigLIP code paths at a size the tests and the quick benchmark can afford. Pass one as a builder's
``model_cfg`` (``build_model("clip_ft", model_cfg=tiny_clip_cfg())``)."""

from __future__ import annotations


def _text_cfg(layers: int) -> dict:
    return {"context_length": 77, "vocab_size": 49408, "width": 32, "heads": 2, "layers": int(layers)}


def tiny_clip_cfg(text_layers: int = 2) -> dict:
    """An open_clip ViT image tower (``nn.MultiheadAttention`` blocks), 32 px, patch 8, 2 blocks."""
    return {
        "embed_dim": 16,
        "vision_cfg": {"image_size": 32, "patch_size": 8, "width": 32, "layers": 2, "head_width": 16},
        "text_cfg": _text_cfg(text_layers),
    }


def tiny_siglip_cfg(image_size: int = 64, text_layers: int = 2) -> dict:
    """SigLIP-2-like: an open_clip TimmModel image tower (timm ViT trunk, attention-pool head, no
    projection) and a sigmoid-loss logit bias."""
    return {
        "embed_dim": 64,
        "init_logit_bias": -10.0,
        "vision_cfg": {
            "timm_model_name": "test_vit",
            "timm_model_pretrained": False,
            "timm_pool": "map",
            "timm_proj": "none",
            "image_size": int(image_size),
        },
        "text_cfg": _text_cfg(text_layers),
    }
