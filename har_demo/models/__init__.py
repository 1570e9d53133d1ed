"""Model zoo: one registry (registry.py), one file per family, checkpoints in checkpoint.py.
Never imports explain/, training/ or ui/."""

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
