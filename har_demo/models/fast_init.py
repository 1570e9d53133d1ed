"""Skip random parameter initialisation while building a model whose every tensor is about to be
overwritten (a full checkpoint load).

Building a ViT-B/32 spends ~95% of its time in ``torch.nn.init``'s random initialisers
(single-threaded ``uniform_`` over 88M parameters: ~1.5 s on one core) - values a full checkpoint
replaces straight away. Inside ``skip_param_init()`` those initialisers return their tensor
untouched, for the calling thread only: other threads (a training run, another request) keep the
real ones. Constant initialisers (``zeros_``, ``ones_``, ``constant_``) are cheap and stay. Libraries
that draw random values with tensor methods directly (timm's ``trunc_normal_``) are not affected.
"""

from __future__ import annotations

import contextlib
import functools
import threading
from collections.abc import Callable, Iterator

from torch.nn import init

RANDOM_INITIALISERS = (
    "uniform_",
    "normal_",
    "trunc_normal_",
    "xavier_uniform_",
    "xavier_normal_",
    "kaiming_uniform_",
    "kaiming_normal_",
    "orthogonal_",
    "sparse_",
)

_state = threading.local()
_lock = threading.Lock()
_users = 0
_originals: dict[str, Callable] = {}


def _skipping() -> bool:
    return getattr(_state, "depth", 0) > 0


def _wrap(original: Callable) -> Callable:
    @functools.wraps(original)
    def initialiser(tensor, *args, **kwargs):
        if _skipping():
            return tensor
        return original(tensor, *args, **kwargs)

    return initialiser


@contextlib.contextmanager
def skip_param_init() -> Iterator[None]:
    """In this thread, ``torch.nn.init``'s random initialisers leave tensors as allocated. Use only
    when every parameter is loaded afterwards (values are uninitialised memory until then)."""
    global _users
    with _lock:
        if _users == 0:
            for name in RANDOM_INITIALISERS:
                if hasattr(init, name):
                    _originals[name] = getattr(init, name)
                    setattr(init, name, _wrap(_originals[name]))
        _users += 1
    _state.depth = getattr(_state, "depth", 0) + 1
    try:
        yield
    finally:
        _state.depth -= 1
        with _lock:
            _users -= 1
            if _users == 0:
                for name, original in _originals.items():
                    setattr(init, name, original)
                _originals.clear()
