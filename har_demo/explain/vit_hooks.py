"""The ONE module with hooks and model surgery (LeGrad-style wrapper). Nothing else in har_demo
patches a model.

* ``explain_mode(model)``: eval mode while a map is computed; every module's training flag and
  every parameter's ``.grad`` restored afterwards.
* ``input_size_override(model, size)``: temporarily run a model at another resolution
  (``model.set_input_size``; ViTs interpolate their position embeddings) and put back the exact
  original tensors afterwards (a 224 -> 448 -> 224 resample would not be lossless).
* ``ViTHooks(model, ...)``: while active, each attention module listed in ``model.vit_spec().attn``
  computes its attention probabilities *explicitly* - ``softmax(q k^T / sqrt(d) + mask)`` for
  open_clip ``nn.MultiheadAttention`` and timm ``Attention`` blocks - and keeps them in the
  autograd graph (``hooks.attn_probs[i]``, shape (B, heads, N, N)), so the gradient of a class
  score with respect to them is one ``torch.autograd.grad`` call. With ``pool_attention`` the same
  is done for the attention-pool head (timm ``AttentionPoolLatent``, SigLIP's MAP head:
  ``hooks.pool_probs``, (B, heads, latents, N)). Optionally it records the last block's ``norm1``
  output (ViT-Grad-CAM) and builds LeGrad's per-layer readouts (below). On exit the original
  ``forward`` methods are back and every hook is removed.

Per-layer readouts in one forward+backward (LeGrad): with ``readout_layers`` set, every block's
input is detached (``x.detach().requires_grad_()``), the outputs of the listed blocks are recorded,
and the last block returns ``cat([its output, readout(x_l) for l in layers])`` along the batch
axis, so the model's own tail (final norm, pooling, projection, head) maps every layer's tokens to
class logits in one batched pass. Because block inputs are detached, the score read out at layer
``l`` depends on ``attn_probs[l]`` only through block ``l`` itself: summing all readout scores and
differentiating once gives, for every ``l``, exactly ``d s_l / d A_l`` - the same numbers as one
backward pass per layer. Forward values are unchanged (detach does not alter values).
With ``readout_skip_norm`` the final norm passes the readout rows through unchanged (the first
rows, the model's own output, are normalised as usual): LeGrad's reference SigLIP code feeds each
block's raw output to the attention pooler. Every step of the tail treats batch rows
independently, so row ``1 + j`` holds layer ``layers[j]``'s readout and nothing else.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterator, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import HarError
from ..models.base import HarModel, ViTSpec


# ---- generic model state --------------------------------------------------------------------------
@contextlib.contextmanager
def explain_mode(model: nn.Module) -> Iterator[nn.Module]:
    """Eval mode inside; afterwards each module's own training flag and each ``.grad`` as before."""
    flags = [(m, m.training) for m in model.modules()]
    grads = [(p, p.grad) for p in model.parameters()]
    model.eval()
    try:
        yield model
    finally:
        for m, flag in flags:
            m.training = flag
        for p, g in grads:
            p.grad = g


def _tensor_slots(model: nn.Module) -> dict[str, tuple[nn.Module, str, bool, torch.Tensor]]:
    slots = {}
    for mod_name, mod in model.named_modules():
        for attr, t in list(mod._parameters.items()) + list(mod._buffers.items()):
            if t is not None:
                slots[f"{mod_name}.{attr}"] = (mod, attr, attr in mod._parameters, t)
    return slots


@contextlib.contextmanager
def input_size_override(model: HarModel, size: int | None) -> Iterator[HarModel]:
    """Run ``model`` at ``size`` px inside the block; restore size and original tensors after."""
    old = int(model.input_size)
    if not size or int(size) == old:
        yield model
        return
    before = _tensor_slots(model)
    try:
        model.set_input_size(int(size))
    except (ValueError, RuntimeError, AssertionError) as err:
        model.set_input_size(old)
        raise HarError(f"model {getattr(model, 'name', type(model).__name__)!r} cannot run at input size {size}: {err}") from None
    try:
        yield model
    finally:
        model.set_input_size(old)
        for mod, attr, is_param, tensor in before.values():
            store = mod._parameters if is_param else mod._buffers
            if store.get(attr) is not tensor:
                store[attr] = tensor


# ---- explicit attention ---------------------------------------------------------------------------
Store = Callable[[torch.Tensor], torch.Tensor]


def _timm_attention_forward(mod: nn.Module, store: Store, x: torch.Tensor, attn_mask=None, is_causal: bool = False, **_):
    """timm ``Attention`` (non-fused path) with the probabilities passed through ``store``."""
    B, N, _C = x.shape
    heads = mod.num_heads
    head_dim = getattr(mod, "head_dim", _C // heads)
    attn_dim = getattr(mod, "attn_dim", heads * head_dim)
    gate = mod.gate(x).sigmoid() if getattr(mod, "gate", None) is not None else None
    q, k, v = mod.qkv(x).reshape(B, N, 3, heads, head_dim).permute(2, 0, 3, 1, 4).unbind(0)
    q, k = mod.q_norm(q), mod.k_norm(k)
    scores = (q * mod.scale) @ k.transpose(-2, -1)
    if is_causal:
        scores = scores + scores.new_full((N, N), float("-inf")).triu_(1)
    elif attn_mask is not None:  # timm/SDPA semantics: bool True = may attend; float = additive
        if attn_mask.dtype == torch.bool:
            scores = scores.masked_fill(~attn_mask, float("-inf"))
        else:
            scores = scores + attn_mask
    probs = store(scores.softmax(dim=-1))
    out = (mod.attn_drop(probs) @ v).transpose(1, 2).reshape(B, N, attn_dim)
    out = mod.norm(out) if hasattr(mod, "norm") else out
    if gate is not None:
        out = out * gate
    return mod.proj_drop(mod.proj(out))


def _mha_forward(
    mod: nn.MultiheadAttention,
    store: Store,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    key_padding_mask=None,
    need_weights: bool = True,
    attn_mask=None,
    average_attn_weights: bool = True,
    is_causal: bool = False,
):
    """``nn.MultiheadAttention`` written out, probabilities passed through ``store``."""
    self_attention = query is key and key is value
    if not mod.batch_first:  # (L, B, E) -> (B, L, E)
        query, key, value = (t.transpose(0, 1) for t in (query, key, value))
    B, L, E = query.shape
    S = key.shape[1]
    heads = mod.num_heads
    d = E // heads
    if mod._qkv_same_embed_dim and self_attention:  # one GEMM for q, k, v
        q, k, v = F.linear(query, mod.in_proj_weight, mod.in_proj_bias).view(B, L, 3, heads, d).permute(2, 0, 3, 1, 4)
    else:
        if mod._qkv_same_embed_dim:
            w_q, w_k, w_v = mod.in_proj_weight.chunk(3)
        else:
            w_q, w_k, w_v = mod.q_proj_weight, mod.k_proj_weight, mod.v_proj_weight
        b_q, b_k, b_v = mod.in_proj_bias.chunk(3) if mod.in_proj_bias is not None else (None, None, None)
        q = F.linear(query, w_q, b_q).view(B, L, heads, d).transpose(1, 2)
        k = F.linear(key, w_k, b_k).view(B, S, heads, d).transpose(1, 2)
        v = F.linear(value, w_v, b_v).view(B, S, heads, d).transpose(1, 2)
    scores = (q * d**-0.5) @ k.transpose(-2, -1)  # (B, h, L, S)
    if attn_mask is not None:  # torch semantics: bool True = NOT allowed; float = additive
        m = attn_mask.view(B, heads, L, S) if attn_mask.dim() == 3 else attn_mask
        scores = scores.masked_fill(m, float("-inf")) if m.dtype == torch.bool else scores + m.to(scores.dtype)
    elif is_causal:
        scores = scores + scores.new_full((L, S), float("-inf")).triu_(1)
    if key_padding_mask is not None:
        kpm = key_padding_mask[:, None, None, :]
        scores = scores.masked_fill(kpm.bool(), float("-inf")) if kpm.dtype in (torch.bool, torch.uint8) else scores + kpm
    probs = store(scores.softmax(dim=-1))
    out = F.dropout(probs, mod.dropout, mod.training) @ v
    out = mod.out_proj(out.transpose(1, 2).reshape(B, L, E))
    if not mod.batch_first:
        out = out.transpose(0, 1)
    weights = None
    if need_weights:
        weights = probs.mean(dim=1) if average_attn_weights else probs
    return out, weights


def _timm_attn_pool_forward(mod: nn.Module, store: Store, x: torch.Tensor, attn_mask=None):
    """timm ``AttentionPoolLatent`` (the MAP head: a learned latent query attends over the tokens)
    with its probabilities (B, heads, latents, N) passed through ``store``."""
    B, N, C = x.shape
    if mod.pos_embed is not None:
        x = x + mod.pos_embed.unsqueeze(0).to(x.dtype)
    q = mod.q(mod.latent.expand(B, -1, -1)).reshape(B, mod.latent_len, mod.num_heads, mod.head_dim).transpose(1, 2)
    k, v = mod.kv(x).reshape(B, N, 2, mod.num_heads, mod.head_dim).permute(2, 0, 3, 1, 4).unbind(0)
    q, k = mod.q_norm(q), mod.k_norm(k)
    scores = (q * mod.scale) @ k.transpose(-2, -1)
    if attn_mask is not None:  # timm: additive
        scores = scores + attn_mask
    probs = store(scores.softmax(dim=-1))
    out = mod.proj_drop(mod.proj((probs @ v).transpose(1, 2).reshape(B, mod.latent_len, C)))
    if mod.mlp is not None:
        out = out + mod.mlp(mod.norm(out))
    if mod.pool == "token":
        return out[:, 0]
    return out.mean(1) if mod.pool == "avg" else out


def _attention_impl(mod: nn.Module) -> Callable:
    if isinstance(mod, nn.MultiheadAttention):
        if mod.bias_k is not None or mod.add_zero_attn:
            raise HarError("attention surgery: nn.MultiheadAttention with bias_k/add_zero_attn is not supported")
        return _mha_forward
    if all(hasattr(mod, a) for a in ("qkv", "num_heads", "proj", "scale", "q_norm", "k_norm")):
        return _timm_attention_forward
    raise HarError(
        f"attention surgery: {type(mod).__name__} is not supported (expected nn.MultiheadAttention or timm Attention)"
    )


# ---- the wrapper --------------------------------------------------------------------------------
class ViTHooks:
    """Context manager exposing attention probabilities, the last ``norm1`` output and
    (optionally) LeGrad per-layer readouts of a registry ViT/CLIP model; see the module doc.

    attention:       patch every attention module (``attn_probs`` filled on forward).
    norm1:           record the last block's ``norm1`` output (``norm1_out``, in the graph).
    readout_layers:  block indices whose outputs are read out by the model's tail (LeGrad).
    readout_pool:    "mean" - every token replaced by the token mean before the tail (the
                     reference LeGrad code for CLIP); "tokens" - the tail's own pooling.
    pool_attention:  patch the attention-pool head (``spec.extra["attn_pool"]``; ``pool_probs``).
    readout_skip_norm: the final norm (``spec.extra["final_norm"]``) leaves the readout rows as
                     they are (LeGrad's SigLIP reference: raw block output into the pooler).
    """

    def __init__(
        self,
        model: HarModel,
        *,
        attention: bool = True,
        norm1: bool = False,
        readout_layers: Sequence[int] | None = None,
        readout_pool: str = "mean",
        pool_attention: bool = False,
        readout_skip_norm: bool = False,
    ) -> None:
        spec = model.vit_spec()
        if spec is None:
            raise HarError(f"model {getattr(model, 'name', type(model).__name__)!r} is not a vision transformer")
        if readout_pool not in ("mean", "tokens"):
            raise HarError(f"readout_pool must be 'mean' or 'tokens', not {readout_pool!r}")
        self.model = model
        self.spec: ViTSpec = spec
        self.blocks = list(spec.blocks)
        self.attention = attention
        self.norm1 = norm1
        self.readout_layers = sorted({i % len(self.blocks) for i in readout_layers}) if readout_layers is not None else None
        self.readout_pool = readout_pool
        self.pool_attention = pool_attention
        self.readout_skip_norm = readout_skip_norm
        self.attn_pool = spec.extra.get("attn_pool")
        if pool_attention and self.attn_pool is None:
            raise HarError(f"model {getattr(model, 'name', type(model).__name__)!r} has no attention-pool head")
        if readout_skip_norm and (self.readout_layers is None or not spec.tokens_batch_first):
            raise HarError("readout_skip_norm needs readout_layers and batch-first tokens")
        self.pool_probs: torch.Tensor | None = None
        self._n_real = 0
        self.attn_probs: list[torch.Tensor | None] = [None] * len(spec.attn)
        self.norm1_out: torch.Tensor | None = None
        self._outputs: dict[int, torch.Tensor] = {}
        self._handles: list = []
        self._patched: list[tuple[nn.Module, object]] = []

    # dims of the token tensors the blocks pass around
    @property
    def batch_dim(self) -> int:
        return 0 if self.spec.tokens_batch_first else 1

    @property
    def token_dim(self) -> int:
        return 1 if self.spec.tokens_batch_first else 0

    def batch_first(self, t: torch.Tensor) -> torch.Tensor:
        """A (B, N, D) view of a token tensor from a block/norm."""
        return t if self.spec.tokens_batch_first else t.transpose(0, 1)

    # --- enter / exit ------------------------------------------------------------------------
    def __enter__(self) -> ViTHooks:  # noqa: PYI034
        try:
            if self.attention:
                impls = [_attention_impl(m) for m in self.spec.attn]  # fail before touching anything
                for i, (mod, impl) in enumerate(zip(self.spec.attn, impls)):
                    self._patch(mod, impl, self._storer(i))
            if self.pool_attention:
                self._patch(self.attn_pool, _timm_attn_pool_forward, self._store_pool)
            if self.norm1:
                self._handles.append(self.spec.norm1[-1].register_forward_hook(self._record_norm1))
            if self.readout_layers is not None:
                for i, blk in enumerate(self.blocks):
                    self._handles.append(blk.register_forward_pre_hook(self._detach_input, with_kwargs=True))
                    if i in self.readout_layers or i == len(self.blocks) - 1:
                        self._handles.append(blk.register_forward_hook(self._make_block_hook(i)))
                if self.readout_skip_norm:
                    self._handles.append(self.spec.extra["final_norm"].register_forward_hook(self._skip_norm))
        except BaseException:
            self._restore()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self._restore()

    def _patch(self, mod: nn.Module, impl: Callable, store: Store) -> None:
        previous = mod.__dict__.get("forward", _MISSING)

        def forward(*args, **kwargs):
            return impl(mod, store, *args, **kwargs)

        mod.forward = forward
        self._patched.append((mod, previous))

    def _restore(self) -> None:
        for h in self._handles:
            h.remove()
        self._handles.clear()
        for mod, previous in reversed(self._patched):
            if previous is _MISSING:
                mod.__dict__.pop("forward", None)
            else:
                mod.forward = previous
        self._patched.clear()
        self._outputs.clear()

    # --- hooks -------------------------------------------------------------------------------
    def _storer(self, i: int) -> Store:
        def store(probs: torch.Tensor) -> torch.Tensor:
            self.attn_probs[i] = probs
            return probs

        return store

    def _store_pool(self, probs: torch.Tensor) -> torch.Tensor:
        self.pool_probs = probs
        return probs

    def _skip_norm(self, _mod, inp, out):
        n = self._n_real
        return torch.cat([out[:n], inp[0][n:]], dim=0)

    def _record_norm1(self, _mod, _inp, out):
        self.norm1_out = out

    @staticmethod
    def _detach_input(_mod, args, kwargs):
        if args and isinstance(args[0], torch.Tensor):
            return (args[0].detach().requires_grad_(True), *args[1:]), kwargs
        for key in ("x", "q_x"):
            if isinstance(kwargs.get(key), torch.Tensor):
                return args, {**kwargs, key: kwargs[key].detach().requires_grad_(True)}
        raise HarError("LeGrad readout: cannot find the token tensor passed to a transformer block")

    def _make_block_hook(self, i: int):
        last = i == len(self.blocks) - 1

        def hook(_mod, _inp, out):
            if not isinstance(out, torch.Tensor):
                raise HarError("LeGrad readout: transformer blocks must return a tensor")
            if i in self.readout_layers:
                self._outputs[i] = out
            if not last:
                return None
            self._n_real = out.shape[self.batch_dim]
            reads = [self._readout(self._outputs[j]) for j in self.readout_layers]
            return torch.cat([out, *reads], dim=self.batch_dim)

        return hook

    def _readout(self, out: torch.Tensor) -> torch.Tensor:
        if self.readout_pool == "mean":
            return out.mean(dim=self.token_dim, keepdim=True).expand_as(out)
        return out

    # --- helpers for explainers -------------------------------------------------------------
    def patch_grid(self, n_tokens: int, input_size: int) -> tuple[int, int]:
        """(rows, cols) of the patch grid for ``n_tokens`` patch tokens, derived from the model
        (``ViTSpec.grid(input_size)``), falling back to a square grid."""
        gh, gw = self.spec.grid(input_size)
        if gh * gw == n_tokens:
            return gh, gw
        g = round(math.sqrt(n_tokens))
        if g * g == n_tokens:
            return g, g
        raise HarError(f"cannot arrange {n_tokens} patch tokens on a grid (patch size {self.spec.patch_size}, input {input_size})")


_MISSING = object()
