"""Model zoo: one registry (registry.py: every fact about each model), one file per family,
checkpoints in checkpoint.py, a model ready to use (checkpoint or pretrained weights) in loading.py.
Never imports explain/, training/ or ui/ (tests/test_layers.py checks it)."""

from .base import HarModel, ViTSpec
from .loading import availability, load_model
from .registry import MODELS, ModelSpec, build_model, get_spec, model_names

__all__ = [
    "MODELS",
    "HarModel",
    "ModelSpec",
    "ViTSpec",
    "availability",
    "build_model",
    "get_spec",
    "load_model",
    "model_names",
]
