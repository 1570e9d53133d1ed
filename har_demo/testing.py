"""Test support, shared by the tests and the benchmarks: registry models with random weights in
their tiny configs, synthetic photos, a per-layer LeGrad for the bench, and hand-built toy models whose
explanations are known in advance. Nothing in the library layers imports this module.

* ``random_model(name, tiny=True)`` / ``tiny_models()`` - registry models with random weights
  (``ModelSpec.tiny`` configs build offline in well under a second);
* ``synthetic_photo`` / ``sample_image`` - deterministic RGB 'photos' (gradients + noise);
* ``naive_legrad`` - LeGrad one backward per layer (the bench's timing reference);
* ``RegionCNN`` / ``RegionViT`` - models whose class-0 logit depends only on the top-left quadrant
  of the image (the explain maps must concentrate there), with ``energy_inside``.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from .models.base import HarModel, ViTSpec
from .models.registry import MODELS, build_model, get_spec

# cheap options per method for the tests (tiny inputs, 2-core CPU)
CHEAP_OPTS = {
    "integrated_gradients": {"steps": 4, "batch": 4},
    "occlusion": {"window": 8, "stride": 8, "batch": 64},
}


# ---- photos ----------------------------------------------------------------------------------------
def synthetic_photo(w: int = 640, h: int = 480, seed: int = 0, noise: float = 30) -> Image.Image:
    """A deterministic RGB 'photo' (gradients + noise): nothing to download, same bytes each run."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    base = np.stack([xx * 255 / w, yy * 255 / h, (xx + yy) * 127 / (w + h)], axis=-1)
    return Image.fromarray(np.clip(base + rng.normal(0, noise, (h, w, 3)), 0, 255).astype(np.uint8), "RGB")


REPO_ROOT = Path(__file__).resolve().parents[1]
PERSON_PHOTOS = {
    "standing": REPO_ROOT / "examples" / "standing_woods.jpg",  # CC BY-SA 2.0 (examples/LICENSES.md)
    "sitting": REPO_ROOT / "tests" / "assets" / "sitting_motorcycle.jpg",  # CC BY 2.0 (tests/assets/LICENSES.md)
}


def person_photo(kind: str = "standing") -> Image.Image:
    """A real CC-licensed photo in which the person finder finds one person (``standing`` /
    ``sitting``), for tests of person-centred models and maps."""
    from .data.io import load_image

    return load_image(PERSON_PHOTOS[kind])


def sample_image(w: int = 48, h: int = 40, seed: int = 0) -> Image.Image:
    """A small non-square ``synthetic_photo`` with stronger noise (the explain tests' input)."""
    return synthetic_photo(w, h, seed, noise=40)


# ---- registry models with random weights -----------------------------------------------------------
def randomise_untrained(model: torch.nn.Module) -> torch.nn.Module:
    """Give an architecture-only build non-trivial values where it holds zeros (class text
    embeddings, zero-initialised linear heads), so gradients and maps are not trivially zero."""
    with torch.no_grad():
        for key, buf in model.named_buffers():
            if key == "class_emb" and not buf.any():
                buf.copy_(torch.nn.functional.normalize(torch.randn_like(buf), dim=-1))
        for mod in model.modules():
            if isinstance(mod, torch.nn.Linear) and not mod.weight.any():
                mod.weight.normal_(0, 0.02)
    return model


def random_model(name: str, tiny: bool = False, **config) -> HarModel:
    """A registry model with random weights in eval mode (``tiny``: its registry ``tiny`` config)."""
    cfg = get_spec(name).tiny_config(**config) if tiny else config
    return randomise_untrained(build_model(name, pretrained=False, **cfg)).eval()


# Variants of registry lines that exercise other code paths (not registry models themselves).
VARIANTS: dict[str, tuple[str, dict]] = {
    # SigLIP-style timm ViT: no class token (0 prefix tokens), attention-pool head
    "vit_map": ("vit", {"timm_kwargs": {**get_spec("vit").tiny["timm_kwargs"], "class_token": False, "global_pool": "map"}}),
}


def tiny_models() -> dict[str, Callable[[], HarModel]]:
    """name -> factory for every registry model in its tiny config, plus ``VARIANTS``."""
    out: dict[str, Callable[[], HarModel]] = {name: (lambda n=name: random_model(n, tiny=True)) for name in MODELS}
    for label, (name, cfg) in VARIANTS.items():
        out[label] = lambda n=name, c=cfg: random_model(n, tiny=True, **c)
    return out


# ---- per-layer LeGrad (the bench's timing reference) -----------------------------------------------
def naive_legrad(model, x: torch.Tensor, target: int) -> torch.Tensor:
    """LeGrad over every layer the plain way: one forward+backward per layer, the layer's readout
    written here with forward hooks (the last block hands on layer ``l``'s tokens - mean-pooled
    for a class-token model; for an attention-pool model the final norm passes them through to
    the pooler), not ``ViTHooks``' batched readout. The benchmark times it against the
    one-backward ``explain.legrad.LeGrad`` (tests/test_bench.py: same maps); LeGrad itself is
    checked against the authors' formulas in ``tests/test_explain_legrad_reference.py``, which
    uses neither this loop nor ``ViTHooks``."""
    from .explain.vit_hooks import ViTHooks

    spec = model.vit_spec()
    pooler = spec.extra.get("attn_pool") is not None
    prefix, acc = spec.num_prefix_tokens, None
    tok = 1 if spec.tokens_batch_first else 0
    gh, gw = spec.grid(x.shape[-1])
    for layer in range(len(spec.blocks)):
        seen: dict = {}

        def last(m, i, o, seen=seen):
            return seen["out"] if pooler else seen["out"].mean(tok, keepdim=True).expand_as(seen["out"])

        handles = [spec.blocks[layer].register_forward_hook(lambda m, i, o, seen=seen: seen.setdefault("out", o))]
        handles.append(spec.blocks[-1].register_forward_hook(last))
        if pooler:  # the reference feeds the raw block output to the pooler
            handles.append(spec.extra["final_norm"].register_forward_hook(lambda m, i, o: i[0]))
        try:
            with ViTHooks(model, attention=not pooler, pool_attention=pooler) as hooks:
                score = model(x.detach().clone().requires_grad_(True))[0, target]
                (g,) = torch.autograd.grad(score, [hooks.pool_probs if pooler else hooks.attn_probs[layer]])
        finally:
            for h in handles:
                h.remove()
        row = g.clamp(min=0).mean(1)[0, 0][-gh * gw :] if pooler else g.clamp(min=0).mean(1)[0].mean(0)[prefix:]
        acc = row if acc is None else acc + row
    return acc


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


def energy_inside(sal: np.ndarray, frac_h: float = 0.5, frac_w: float = 0.5) -> float:
    h, w = sal.shape
    inside = sal[: round(h * frac_h), : round(w * frac_w)].sum()
    return float(inside / max(sal.sum(), 1e-12))
