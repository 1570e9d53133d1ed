"""Explainability: one ``Explainer`` interface (base.py), one module per method, shared overlay
(overlay.py) and metric (metrics.py) code; all hooks/model surgery live in vit_hooks.py.

Method names (CLI, UI, API): gradcam, legrad, rollout, vit_gradcam, integrated_gradients, occlusion.
"""

from .base import EXPLAINERS, Explanation, applicable_methods, default_method, explain, explain_full, get_explainer

__all__ = ["EXPLAINERS", "Explanation", "applicable_methods", "default_method", "explain", "explain_full", "get_explainer"]
