"""Tiny models for the explain tests (no tests here).

* ``registry_models()`` - (name, factory) for registry models in tiny configs that build offline
  (random weights; CLIP towers from a literal open_clip config).
* ``RegionCNN`` / ``RegionViT`` - hand-built models whose class-0 logit depends only on the
  top-left quadrant of the image (the explain maps must concentrate there).
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from har_demo.models.base import HarModel, ViTSpec
from har_demo.models.registry import build_model
from har_demo.models.tiny import tiny_clip_cfg, tiny_siglip_cfg

TINY_CNN = dict(input_size=32, widths=[4, 8, 8], hidden=16, pool=2)
TINY_VIT = dict(img_size=32, patch_size=8, embed_dim=32, depth=2, num_heads=2)
TINY_CLIP_CFG = tiny_clip_cfg()  # open_clip ViT tower (nn.MultiheadAttention blocks)
TINY_SIGLIP_CFG = tiny_siglip_cfg(image_size=64)  # SigLIP-2-like open_clip TimmModel tower


def _clip(name: str, cfg: dict) -> Callable[[], HarModel]:
    # random init seeded by the config; the text tower only gives the (random) class embeddings
    return lambda: build_model(name, model_cfg=cfg)


def registry_models() -> list[tuple[str, Callable[[], HarModel]]]:
    return [
        ("cnn_base", lambda: build_model("cnn_base", pretrained=False, **TINY_CNN)),
        ("cnn_gen", lambda: build_model("cnn_gen", pretrained=False, **TINY_CNN)),
        ("fnn", lambda: build_model("fnn", pretrained=False, input_size=16, hidden=[16])),
        ("effnet_lite0", lambda: build_model("effnet_lite0", pretrained=False, input_size=64)),
        ("vit", lambda: build_model("vit", pretrained=False, timm_kwargs=TINY_VIT)),
        # SigLIP-style: no class token (0 prefix tokens), attention-pool head
        ("vit_map", lambda: build_model("vit", pretrained=False, timm_kwargs={**TINY_VIT, "class_token": False, "global_pool": "map"})),
        ("clip_zeroshot", _clip("clip_zeroshot", TINY_CLIP_CFG)),
        ("clip_em", _clip("clip_em", TINY_CLIP_CFG)),  # frozen image tower
        ("clip_ft", _clip("clip_ft", TINY_CLIP_CFG)),
        ("siglip_ft", _clip("siglip_ft", TINY_SIGLIP_CFG)),
    ]


# cheap options per method for the tests (tiny inputs, 2-core CPU)
CHEAP_OPTS = {
    "integrated_gradients": dict(steps=4, batch=4),
    "occlusion": dict(window=8, stride=8, batch=64),
}


# ---- region models: logit depends only on the top-left quadrant ---------------------------------
def quadrant_mask(size: int) -> torch.Tensor:
    m = torch.zeros(size, size)
    m[: size // 2, : size // 2] = 1.0
    return m


class RegionCNN(HarModel):
    """Input masked to the top-left quadrant, bias-free convs (zero activations elsewhere), and a
    class-0 head with positive weights (its Grad-CAM is positive where activations are)."""

    family = "cnn"

    def __init__(self, input_size: int = 32):
        super().__init__(input_size)
        g = torch.Generator().manual_seed(0)
        self.conv1 = nn.Conv2d(3, 8, 3, padding=1, bias=False)
        self.conv2 = nn.Conv2d(8, 8, 3, padding=1, bias=False)
        self.act = nn.ReLU()
        self.fc = nn.Linear(8, 3)
        with torch.no_grad():
            self.conv1.weight.copy_(torch.randn(self.conv1.weight.shape, generator=g) * 0.3)
            self.conv2.weight.copy_(torch.randn(self.conv2.weight.shape, generator=g).abs() * 0.3)
            self.fc.weight.copy_(torch.randn(self.fc.weight.shape, generator=g))
            self.fc.weight[0].abs_()
        self.register_buffer("mask", quadrant_mask(input_size), persistent=False)

    def forward(self, x):
        mask = F.interpolate(self.mask[None, None], size=x.shape[-2:], mode="nearest")
        a = self.act(self.conv2(torch.relu(self.conv1(x * mask))))
        return self.fc(a.mean(dim=(2, 3)))

    def cam_layer(self):
        return self.act


class RegionViT(HarModel):
    """timm ViT (4x4 patch grid) whose patch tokens outside the top-left 2x2 patches are zero and
    stay zero: token mask after the patch embedding, zero biases and position embeddings there,
    and an attention mask letting those tokens attend only to themselves. The class token (the
    head's input) therefore sees only the top-left quadrant."""

    family = "vit"

    def __init__(self, input_size: int = 32):
        import timm

        super().__init__(input_size)
        with torch.random.fork_rng():
            torch.manual_seed(0)
            self.vit = timm.create_model(
                "vit_tiny_patch16_224", pretrained=False, num_classes=3, img_size=input_size, patch_size=8,
                embed_dim=16, depth=2, num_heads=2, qkv_bias=False,
            )
        grid = input_size // 8
        keep = torch.zeros(grid, grid)
        keep[: grid // 2, : grid // 2] = 1.0
        keep = keep.flatten()
        with torch.no_grad():
            for name, p in self.vit.blocks.named_parameters():
                if name.endswith("bias"):
                    p.zero_()
            self.vit.pos_embed[0, 1:] *= keep[:, None]
        inside = torch.cat([torch.ones(1), keep]).bool()
        allowed = inside[:, None] & inside[None, :]
        allowed |= torch.eye(len(inside), dtype=torch.bool)
        self.register_buffer("keep", keep, persistent=False)
        self.register_buffer("allowed", allowed, persistent=False)

    def forward(self, x):
        v = self.vit
        t = v.patch_embed(x) * self.keep[None, :, None]
        t = v._pos_embed(t)
        for blk in v.blocks:
            t = blk(t, attn_mask=self.allowed)
        return v.forward_head(v.norm(t))

    def vit_spec(self):
        blocks = list(self.vit.blocks)
        return ViTSpec(blocks, [b.attn for b in blocks], [b.norm1 for b in blocks], 1, 8)


def sample_image(w: int = 48, h: int = 40, seed: int = 0) -> Image.Image:
    """A non-square RGB image with structure (gradients + noise), deterministic."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    base = np.stack([xx * 255 / w, yy * 255 / h, (xx + yy) * 127 / (w + h)], axis=-1)
    arr = np.clip(base + rng.normal(0, 40, size=(h, w, 3)), 0, 255).astype(np.uint8)
    return Image.fromarray(arr, "RGB")


def energy_inside(sal: np.ndarray, frac_h: float = 0.5, frac_w: float = 0.5) -> float:
    h, w = sal.shape
    inside = sal[: int(round(h * frac_h)), : int(round(w * frac_w))].sum()
    return float(inside / max(sal.sum(), 1e-12))
