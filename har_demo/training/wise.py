"""WiSE-FT (Wortsman et al. 2022): interpolate zero-shot and fine-tuned weights, alpha chosen on val."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch


def choose_alpha(
    model: torch.nn.Module,
    zeroshot: dict[str, torch.Tensor],
    finetuned: dict[str, torch.Tensor],
    alphas: Sequence[float],
    score: Callable[[torch.nn.Module], dict],
) -> dict:
    """Load each interpolation into ``model``, score it (``score(model) -> {"macro_f1", "loss"}`` on
    validation), keep the best (higher macro-F1, then lower loss, then the larger alpha) loaded.
    Returns ``{"alpha", "grid": [{"alpha", "macro_f1", "loss", "accuracy"}...]}``."""
    from ..models.clip import wise_ft as interpolate_state  # (1-alpha)*zero-shot + alpha*fine-tuned; exact at 0 and 1

    temperature = {k: v for k, v in model.state_dict().items() if k == "temperature"}
    grid, best, best_key = [], None, None
    for a in sorted({float(x) for x in alphas}):
        model.load_state_dict({**interpolate_state(zeroshot, finetuned, a), **temperature})
        s = score(model)
        grid.append({"alpha": a, **{k: float(v) for k, v in s.items()}})
        key = (round(s["macro_f1"], 12), -round(s["loss"], 12), a)
        if best_key is None or key > best_key:
            best, best_key = a, key
    model.load_state_dict({**interpolate_state(zeroshot, finetuned, best), **temperature})
    return {"alpha": best, "grid": grid}
