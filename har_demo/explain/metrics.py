"""Numbers that say how good a map is.

* Faithfulness - deletion / insertion AUC (Petsiuk et al., RISE 2018): pixels of the model input
  are removed (set to the mean colour) or inserted (into a blurred copy) in the map's order,
  most relevant first, in ``steps`` equal chunks; the curve is the calibrated probability of the
  explained class, the score its area over the fraction [0, 1]. Lower deletion / higher
  insertion = more faithful. A random map (seeded, smooth 7x7 blobs) is the baseline.
* Background drift - share of the map's energy (sum of values) inside the person (COCO person
  mask or a user box): near 1 = looks at the person; a model that looks at the bench scores low.
* Drift against chance (``drift_scores``, on every map) - the share inside the person mask the
  person finder found (``person_share``) and inside a box, each next to its *chance* (the share a
  uniform map over what the model sees would get) and their ratio, the *lift* (> 1 = prefers the
  body). A person-crop model sees little but the body, a whole photo mostly background: only the
  lift compares them. Plus the pointing game (is the map's peak on the person?).
* Ambiguity - margin between the top two class probabilities; flagged for any pair whose margin
  is under a threshold (the UI adds the body evidence from the landmarks).
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np
import torch
from torchvision.transforms.v2 import functional as TF

from ..data.io import ImageSource, load_image
from ..data.transforms import content_box
from ..errors import HarError
from ..labels import CLASSES
from ..models.base import HarModel
from .vit_hooks import explain_mode

DEFAULT_STEPS = 16
RANDOM_CELLS = 7
AMBIGUITY_THRESHOLD = 0.15
LIFT_BODY = 1.25  # person lift at or above: the map prefers the body (``lift_verdict``)
LIFT_BACKGROUND = 0.8  # below: it prefers the background around the body (1 / 1.25)
CONFUSABLE = ("sitting", "standing")


# ---- faithfulness ------------------------------------------------------------------------------
def random_map(shape: tuple[int, int], seed: int = 0, cells: int | None = RANDOM_CELLS) -> np.ndarray:
    """A random ``HxW`` float32 map in [0, 1], the baseline a real map should beat.

    ``cells``: uniform noise on a ``cells`` x ``cells`` grid, bilinearly upsampled - blobs as
    smooth as a 7x7 Grad-CAM / ViT-B/32 map, so the comparison is about *where* pixels go, not
    about scattered pixel noise (which hurts a CNN far more than a removed blob). ``None``:
    i.i.d. pixel noise."""
    h, w = int(shape[0]), int(shape[1])
    rng = np.random.default_rng(seed)
    if not cells:
        return rng.random((h, w), dtype=np.float32)
    grid = rng.random((int(cells), int(cells)), dtype=np.float32)
    return cv2.resize(grid, (w, h), interpolation=cv2.INTER_LINEAR)


def auc(curve: Sequence[float]) -> float:
    """Area under a curve sampled at equally spaced fractions of [0, 1] (trapezoid rule)."""
    y = np.asarray(curve, dtype=np.float64)
    if y.size < 2:
        raise ValueError("an AUC needs at least two points")
    return float(np.trapezoid(y, dx=1.0 / (y.size - 1)))


def _blur(x: torch.Tensor) -> torch.Tensor:
    sigma = max(1.0, x.shape[-1] / 32.0)
    k = int(4 * sigma) | 1
    return TF.gaussian_blur(x, kernel_size=[k, k], sigma=[sigma, sigma])


def _masks(saliency: np.ndarray, size: int, steps: int, box: tuple[int, int, int, int] | None = None) -> torch.Tensor:
    """(steps+1, 1, S, S) bool: the top ``k/steps`` fraction of the photo's pixels by saliency.

    ``box`` is where the photo lies in the S x S model input (``data.transforms.content_box``):
    the photo-aligned map is resized into that box only, and only its pixels are ranked and
    counted, so a letterboxed model never has its grey padding "deleted" as if it were evidence."""
    x0, y0, x1, y1 = box if box is not None else (0, 0, size, size)
    w, h = max(1, x1 - x0), max(1, y1 - y0)
    sal = cv2.resize(np.asarray(saliency, dtype=np.float32), (w, h), interpolation=cv2.INTER_LINEAR)
    n = w * h
    order = np.argsort(-sal.ravel(), kind="stable")
    ranks = np.empty(n, dtype=np.int64)
    ranks[order] = np.arange(n)
    counts = np.round(np.linspace(0, n, steps + 1)).astype(np.int64)
    out = np.zeros((steps + 1, 1, size, size), dtype=bool)
    out[:, :, y0 : y0 + h, x0 : x0 + w] = ranks.reshape(1, 1, h, w) < counts.reshape(-1, 1, 1, 1)
    return torch.from_numpy(out)


def perturbation_curves(
    model: HarModel,
    image: ImageSource,
    saliencies: Sequence[np.ndarray],
    target: int,
    steps: int = DEFAULT_STEPS,
    batch: int = 32,
) -> dict[str, np.ndarray]:
    """Deletion and insertion curves for several maps of one image: ``{"deletion": (M, steps+1),
    "insertion": (M, steps+1)}`` probabilities of class ``target``. Forwards are batched.

    The maps are photo-aligned (as explainers return them); each is taken over the model's view
    of the photo (the person box for person-crop models) and placed inside the photo's
    ``content_box`` of the model input. Only image channels are perturbed (a pose vector that
    rides in an extra plane stays), and only inside the photo's content: the insertion start is
    blurred there while a letterbox border keeps its original values, so the last insertion step
    is the clean input (and its probability the clean one), as the first deletion step is."""
    if steps < 1:
        raise HarError("deletion/insertion need steps >= 1")
    pil = load_image(image)
    with explain_mode(model), torch.no_grad():
        view = model.views([pil])[0]
        x = model.preprocess_views([view])
        size = int(x.shape[-1])
        box = content_box(view.image.size, size, model.resize)
        vx0, vy0, vx1, vy1 = view.box
        masks = [_masks(np.asarray(s)[vy0:vy1, vx0:vx1], size, steps, box).to(x.device) for s in saliencies]
        img, aux = x[:, :3], x[:, 3:]
        content = torch.zeros((1, 1, size, size), dtype=torch.bool, device=x.device)
        content[..., box[1] : box[3], box[0] : box[2]] = True
        blurred = torch.where(content, _blur(img), img)  # a letterbox border stays the original's (it is no evidence)
        zero = torch.zeros_like(img)
        inputs = [torch.where(m, zero, img) for m in masks] + [torch.where(m, img, blurred) for m in masks]
        stacked = torch.cat(inputs)
        if aux.shape[1]:
            stacked = torch.cat([stacked, aux.expand(stacked.shape[0], -1, -1, -1)], dim=1)
        if getattr(model, "channels_last", False):
            stacked = stacked.contiguous(memory_format=torch.channels_last)
        probs = []
        for i in range(0, stacked.shape[0], batch):
            logits = model(stacked[i : i + batch]).float()
            probs.append(torch.softmax(logits / model.temperature.float(), dim=-1)[:, target].cpu())
        p = torch.cat(probs).numpy().reshape(2, len(saliencies), steps + 1)
    return {"deletion": p[0], "insertion": p[1]}


def faithfulness(
    model: HarModel,
    image: ImageSource,
    saliency: np.ndarray,
    target: int,
    steps: int = DEFAULT_STEPS,
    seed: int = 0,
) -> dict[str, float | None]:
    """Deletion/insertion AUC of ``saliency`` and of a random map (same image, same class).

    All None for a model that does not read pixels (``uses_image`` False: ``pose_mlp`` reads the
    pose vector found once per photo), whose curves would be flat and equal to the random ones by
    construction - a number there would look like a verdict on the map and mean nothing."""
    if steps < 1:  # the same answer for every model, pose-only ones included
        raise HarError("deletion/insertion need steps >= 1")
    if not model.uses_image:
        return dict.fromkeys(("deletion_auc", "insertion_auc", "deletion_auc_random", "insertion_auc_random"))
    rnd = random_map(np.asarray(saliency).shape, seed)
    curves = perturbation_curves(model, image, [saliency, rnd], target, steps)
    return {
        "deletion_auc": auc(curves["deletion"][0]),
        "insertion_auc": auc(curves["insertion"][0]),
        "deletion_auc_random": auc(curves["deletion"][1]),
        "insertion_auc_random": auc(curves["insertion"][1]),
    }


# ---- background drift --------------------------------------------------------------------------
def parse_box(text: str) -> tuple[float, float, float, float]:
    """``"x0,y0,x1,y1"`` (finite pixel values) -> a tuple; a one-line error otherwise (the text
    echoed cut to a few dozen characters)."""
    text = str(text)
    try:
        parts = [float(v) for v in text.split(",", 4)] if len(text) <= 200 else []
    except ValueError:
        parts = []
    if len(parts) != 4 or not all(np.isfinite(parts)) or parts[2] <= parts[0] or parts[3] <= parts[1]:
        from ..data.io import safe_label

        raise HarError(f"box {safe_label(text, 60)!r} must be x0,y0,x1,y1 in pixels (finite numbers) with x1 > x0 and y1 > y0")
    return parts[0], parts[1], parts[2], parts[3]


def box_mask(shape: tuple[int, int], box: Sequence[float]) -> np.ndarray:
    """``HxW`` bool mask of a pixel box ``(x0, y0, x1, y1)`` (clipped to the image)."""
    h, w = int(shape[0]), int(shape[1])
    x0, y0, x1, y1 = (float(v) for v in box)
    mask = np.zeros((h, w), dtype=bool)
    c0, c1 = int(np.clip(np.floor(x0), 0, w)), int(np.clip(np.ceil(x1), 0, w))
    r0, r1 = int(np.clip(np.floor(y0), 0, h)), int(np.clip(np.ceil(y1), 0, h))
    mask[r0:r1, c0:c1] = True
    return mask


def drift_score(saliency: np.ndarray, mask: np.ndarray) -> float:
    """Share of the map's energy inside ``mask`` (resized to the map if needed), in [0, 1];
    NaN for an all-zero map (no energy anywhere)."""
    sal = np.clip(np.nan_to_num(np.asarray(saliency, dtype=np.float64)), 0.0, None)
    m = np.asarray(mask)
    if m.shape != sal.shape:
        m = cv2.resize(m.astype(np.uint8), (sal.shape[1], sal.shape[0]), interpolation=cv2.INTER_NEAREST)
    total = float(sal.sum())
    if total <= 0.0:
        return float("nan")
    return float(sal[m.astype(bool)].sum() / total)


def _view_mask(shape: tuple[int, int], view_box: Sequence[float] | None) -> np.ndarray:
    """``HxW`` bool: what the model sees of the photo (``view_box``: the person box of a
    person-crop model, ``Explanation.view_box``), the whole map when None."""
    if view_box is None:
        return np.ones((int(shape[0]), int(shape[1])), dtype=bool)
    return box_mask(shape, view_box)


def lift_verdict(lift: float | None) -> str | None:
    """``"body"`` (lift >= ``LIFT_BODY``: the map prefers the body), ``"background"`` (lift <
    ``LIFT_BACKGROUND``: it prefers what is around the body) or ``"chance"`` (in between: no
    clearer preference than a uniform map); None for an undefined lift (empty map, no person)."""
    if lift is None or not np.isfinite(lift):
        return None
    return "body" if lift >= LIFT_BODY else "background" if lift < LIFT_BACKGROUND else "chance"


def drift_scores(saliency: np.ndarray, person=None, view_box: Sequence[float] | None = None,
                 box: Sequence[float] | None = None) -> dict[str, float | bool | None]:
    """Where the map looks, against chance - the one home of these numbers (CLI, UI, API, evaluate).

    Everything is measured inside the model's *view* (``view_box`` in map pixels: the person box
    for a person-crop model, whose map is zero outside it by construction; None = the whole
    photo-aligned map, i.e. the photo's content without any letterbox border):

    * ``person_share`` - share of the map's energy on the person mask (``person.mask > 0.5``);
    * ``person_chance`` - the share a uniform map over the view would get: mask area inside the
      view / view area (a crop model's view is mostly body, a whole photo mostly background, so
      raw shares of the two are not comparable - their lifts are);
    * ``person_lift`` = share / chance (> 1: the map prefers the body; 1: no better than uniform);
    * ``box_share`` / ``box_chance`` / ``box_lift`` - the same for ``box`` (a user box, in map
      pixels) or else the person's box;
    * ``pointing`` - the pointing game: is the map's peak (first ``argmax`` inside the view) on
      the person mask (threshold-free).

    Person fields are None without a person mask (no person, a stored person without its mask,
    or ``person=None`` with a user ``box``); box fields None without any box. Shares and lifts are
    NaN for a map with no energy in the view (and ``pointing`` None); a lift is NaN when the
    chance is 0 (nothing of the person inside the view)."""
    sal = np.clip(np.nan_to_num(np.asarray(saliency, dtype=np.float64)), 0.0, None)
    view = _view_mask(sal.shape, view_box)
    sal = np.where(view, sal, 0.0)
    total = float(sal.sum())
    n_view = float(view.sum())

    def score(region: np.ndarray | None) -> tuple[float | None, float | None, float | None]:
        if region is None:
            return None, None, None
        share = float(sal[region].sum() / total) if total > 0.0 else float("nan")
        chance = float((region & view).sum() / n_view) if n_view else float("nan")
        lift = share / chance if chance > 0.0 and np.isfinite(share) else float("nan")
        return share, chance, lift

    mask = None
    if person is not None and getattr(person, "has_mask", False):
        mask = np.asarray(person.mask) > 0.5
        if mask.shape != sal.shape:
            mask = cv2.resize(mask.astype(np.uint8), (sal.shape[1], sal.shape[0]), interpolation=cv2.INTER_NEAREST).astype(bool)
    if box is None and person is not None:
        box = person.box
    region = box_mask(sal.shape, box) if box is not None else None
    p_share, p_chance, p_lift = score(mask)
    b_share, b_chance, b_lift = score(region)
    pointing = None
    if mask is not None and total > 0.0:
        pointing = bool(mask.ravel()[int(np.argmax(np.where(view, sal, -1.0)))])
    return {"person_share": p_share, "person_chance": p_chance, "person_lift": p_lift,
            "box_share": b_share, "box_chance": b_chance, "box_lift": b_lift, "pointing": pointing}


DRIFT_FIELDS = ("person_share", "person_chance", "person_lift", "box_share", "box_chance", "box_lift", "pointing")


# ---- pose ambiguity ----------------------------------------------------------------------------
def pose_ambiguity(
    probs: Sequence[float],
    threshold: float = AMBIGUITY_THRESHOLD,
    classes: Sequence[str] = CLASSES,
    confusable: Sequence[str] = CONFUSABLE,
) -> dict:
    """Top-2 margin; ``flag`` when the top two classes (any pair) are closer than ``threshold``.
    ``pair`` names them; ``sitting_standing`` says whether it is the study's pose confusion."""
    p = np.asarray(probs, dtype=np.float64)
    if p.ndim != 1 or p.size < 2 or p.size != len(classes):
        raise HarError(f"pose ambiguity needs one probability per class ({len(classes)}), got shape {p.shape}")
    first, second = (int(i) for i in np.argsort(-p, kind="stable")[:2])
    margin = float(p[first] - p[second])
    return {
        "top1": classes[first],
        "top2": classes[second],
        "margin": margin,
        "threshold": float(threshold),
        "flag": bool(margin < threshold),
        "pair": f"{classes[first]}/{classes[second]}",
        "sitting_standing": {classes[first], classes[second]} == set(confusable),
    }
