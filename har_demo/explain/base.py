"""The one explainer interface, the registry of methods, and ``explain()``.

An explainer turns (model, image, class) into a saliency map: ``HxW float32 in [0, 1]`` aligned
with the *original* image. A model looks at its *view* of the photo (``HarModel.views``): the
whole photo, or - for a ``person_crop`` model (CLIP, ViT, ``effnet_person`` by default) - the
person finder's box. The view is squashed or letterboxed (the model's ``resize``: squash / pad)
to the square input, so a map computed on the input grid maps back by cropping the view's
``content_box`` (the whole input when squashed), resizing it to the view, and, for a person crop,
placing it at the box in the photo: zero outside the box, where the model saw nothing.

A new method = one module with an ``Explainer`` subclass + one line in ``_METHOD_MODULES``.
Faces (CLI, UI) discover methods through ``EXPLAINERS`` / ``applicable_methods`` - no per-model
``if`` chains.

Shared guarantees (enforced here, not in each method):

* the model is left as it was: eval mode during the map, every module's training flag restored,
  hooks removed (``vit_hooks``), input size restored, no ``.grad`` left on parameters;
* any target class (index or name), not only the predicted one; ``None`` = predicted class;
* ``input_size=`` computes the map at another model resolution (ViTs interpolate their position
  embeddings via ``model.set_input_size``) and restores the model afterwards.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import cv2
import numpy as np
import torch
from PIL import Image

from ..data.io import ImageSource, load_image
from ..data.transforms import content_box
from ..errors import HarError, UnknownName
from ..models.base import HarModel
from ..options import check, from_text, kind_of_default

# name -> "module:Class" (relative to har_demo.explain); the order is the order shown to users.
_METHOD_MODULES: dict[str, str] = {
    "gradcam": "gradcam:GradCAM",
    "legrad": "legrad:LeGrad",
    "rollout": "rollout:GradRollout",
    "vit_gradcam": "vit_gradcam:ViTGradCAM",
    "integrated_gradients": "integrated_gradients:IntegratedGradientsExplainer",
    "occlusion": "occlusion:OcclusionExplainer",
    "landmarks": "landmarks:LandmarkAttribution",
}


@dataclass
class Explanation:
    """A map plus what the same forward pass said (so faces need no second forward)."""

    method: str
    saliency: np.ndarray  # (H, W) float32 in [0, 1], original image size
    target: int  # class index the map explains
    probs: np.ndarray  # (n_classes,) calibrated probabilities of the unperturbed image
    input_size: int  # model resolution the map was computed at
    options: dict[str, Any] = field(default_factory=dict)
    person: Any = None  # the person the model's view was built from (person-crop / pose models), or None
    view_box: tuple[int, int, int, int] | None = None  # where the model's view lies in the photo

    @property
    def predicted(self) -> int:
        return int(np.argmax(self.probs))


def _whole(value: Any) -> int | None:
    """``value`` as an int when it is a whole number (int, integral float, digits), else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return int(value) if np.isfinite(value) and value.is_integer() else None
    if isinstance(value, str):
        try:
            return int(value.strip())
        except ValueError:
            return None
    return None


class Explainer:
    """Base class: subclasses set ``name``/``summary``/``defaults`` and implement ``attribute``.

    ``defaults`` lists every option the method accepts (constructor keywords); unknown options
    are a ``HarError`` naming the method. ``input_size`` is accepted by every method.
    """

    name: ClassVar[str] = "base"
    summary: ClassVar[str] = ""
    defaults: ClassVar[dict[str, Any]] = {}
    positive_ints: ClassVar[tuple[str, ...]] = ()  # options that must be whole numbers >= 1 (None = default)
    INPUT_SIZE_RANGE: ClassVar[tuple[int, int]] = (16, 1024)

    def __init__(self, input_size: int | None = None, **opts: Any) -> None:
        unknown = sorted(set(opts) - set(self.defaults))
        if unknown:
            known = ", ".join(["input_size", *self.defaults]) or "none"
            raise HarError(f"method {self.name!r} has no option {', '.join(unknown)}; options: {known}")
        lo, hi = self.INPUT_SIZE_RANGE
        if input_size is not None and input_size != 0:
            size = _whole(input_size)
            if size is None or not lo <= size <= hi:
                raise HarError(f"input size must be a whole number from {lo} to {hi} pixels, got {str(input_size)[:40]!r}")
            input_size = size
        self.input_size = int(input_size) if input_size else None
        for key, value in opts.items():  # typed by the default's type; text (``--opt K=V``) read by the one grammar
            if key in self.positive_ints:
                continue  # checked below (whole numbers >= 1, digits accepted)
            kind = kind_of_default(self.defaults[key])
            where = f"method {self.name!r}: option {key}"
            opts[key] = from_text(value, kind, where) if isinstance(value, str) else check(value, kind, where)
        self.opts: dict[str, Any] = {**self.defaults, **opts}
        for key in self.positive_ints:
            value = self.opts.get(key)
            if value is None and self.defaults.get(key) is None:
                continue
            whole = _whole(value)
            if whole is None or whole < 1:
                raise HarError(f"method {self.name!r}: option {key} must be a whole number >= 1, got {str(value)[:40]!r}")
            self.opts[key] = whole

    # --- what subclasses provide -----------------------------------------------------------
    @classmethod
    def applies_to(cls, model: HarModel) -> bool:
        """Whether the method can explain this model (checked before any work). Default: any
        model that looks at the image (``pose_mlp`` sees only landmarks: no pixel matters to it)."""
        return model.uses_image

    view = None  # set by ``explain`` to the model's ``View`` of the photo before ``attribute`` runs

    @classmethod
    def requirement(cls) -> str:
        """What a model must offer for this method (used in the 'not applicable' message)."""
        return "a model that reads the photo's pixels: model.uses_image"

    @classmethod
    def why_not(cls, model: HarModel) -> str:
        """Why the method does not apply to ``model``, in one clause (the 'not applicable' message)."""
        if not model.uses_image:  # pose_mlp: every pixel method attributes to pixels, and none reaches it
            return "it reads no pixels, only its pose vector (landmarks and angles), so there is no pixel to attribute"
        return f"needs {cls.requirement()}"

    def attribute(self, model: HarModel, x: torch.Tensor, target: int | None) -> tuple[torch.Tensor, torch.Tensor, int]:
        """Raw map for one preprocessed image ``x`` (1, 3, S, S).

        Returns ``(raw, logits, target)``: ``raw`` a 2-D tensor on any grid covering the model
        input (patch grid, feature map or pixels; not yet normalised), ``logits`` (1, C) of the
        unperturbed input and the class index explained (the argmax when ``target`` is None).
        Runs with gradients enabled and the model in eval mode."""
        raise NotImplementedError

    # --- the shared pipeline -------------------------------------------------------------
    def explain(self, model: HarModel, image: ImageSource, target_class: int | str | None = None, person: Any = None) -> Explanation:
        """The map of ``model`` on ``image``; ``person`` (one of ``person.multi.find_people``, for a
        model that ``needs_person``) explains that person instead of the most prominent one."""
        from .vit_hooks import explain_mode, input_size_override

        if not self.applies_to(model):
            raise HarError(f"method {self.name!r} does not apply to model {model_label(model)!r} ({self.why_not(model)})")
        pil = image if isinstance(image, Image.Image) and image.mode == "RGB" else load_image(image)
        target = resolve_class(model, target_class)
        with explain_mode(model), input_size_override(model, self.input_size):
            size = model.input_size
            view = model.views([pil])[0] if person is None else model.person_view(pil, person)
            self.view = view  # what the model saw (photo or person crop, the person): landmark maps need it
            with torch.inference_mode(False), torch.enable_grad():
                x = model.preprocess_views([view])
                raw, logits, target = self.attribute(model, x, target)
        return self._explanation(model, pil, view, raw, logits, target, size)

    def _explanation(self, model: HarModel, pil: Image.Image, view, raw, logits: torch.Tensor, target: int, size: int) -> Explanation:
        """The ``Explanation`` of one view: probabilities from ``logits`` (1, C), the raw map on the
        photo (placed in the view's box for a person crop)."""
        probs = torch.softmax(logits.detach().float()[0] / model.temperature.detach().float(), dim=-1).cpu().numpy()
        sal = to_image_map(raw, view.image.size, content_box(view.image.size, size, model.resize), size)
        if view.box != (0, 0, pil.width, pil.height):  # a person crop: the map covers the box only
            from ..person.crop import place_map

            sal = place_map(sal, view.box, pil.size)
        return Explanation(self.name, sal, int(target), probs.astype(np.float32), int(size), dict(self.opts), view.person, view.box)

    # --- every person in one photo ---------------------------------------------------------
    attribute_batch = None  # (model, x (B, ...)) -> (raw maps (B, h, w), logits (B, C), targets): a batched method

    def explain_people(self, model: HarModel, image: ImageSource, people: Sequence[Any]) -> list[Explanation]:
        """One explanation per person (``person.multi.find_people``), each for its predicted class.
        A method with ``attribute_batch`` does every person in one forward and backward pass;
        the others run ``explain`` per person."""
        if self.attribute_batch is None or not people:
            return [self.explain(model, image, person=p) for p in people]
        from .vit_hooks import explain_mode, input_size_override

        if not self.applies_to(model):
            raise HarError(f"method {self.name!r} does not apply to model {model_label(model)!r} ({self.why_not(model)})")
        pil = image if isinstance(image, Image.Image) and image.mode == "RGB" else load_image(image)
        with explain_mode(model), input_size_override(model, self.input_size):
            size = model.input_size
            views = [model.person_view(pil, p) for p in people]
            with torch.inference_mode(False), torch.enable_grad():
                raws, logits, targets = self.attribute_batch(model, model.preprocess_views(views))
        return [self._explanation(model, pil, v, raws[i], logits[i : i + 1], targets[i], size) for i, v in enumerate(views)]


class ViTExplainer(Explainer):
    """Base for attention-based methods: applies to models with a ``vit_spec()``."""

    @classmethod
    def applies_to(cls, model: HarModel) -> bool:
        return model.vit_spec() is not None

    @classmethod
    def requirement(cls) -> str:
        return "a vision transformer: model.vit_spec()"


# ---- helpers shared by methods ------------------------------------------------------------------
def layer_range(start_layer: int, depth: int) -> range:
    """Blocks ``start_layer .. depth-1``; negative values count from the end."""
    start = int(start_layer)
    if not -depth <= start < depth:
        raise HarError(f"start_layer {start_layer} out of range for a model with {depth} blocks")
    return range(start % depth, depth)


class ClassScore:
    """Forward wrapper: model logits -> the target class's logit, per example.

    With ``target=None`` the class is the argmax of the first forward it sees, so methods that
    need only one forward+backward (Grad-CAM, ViT methods) pick the predicted class on the fly.
    The logits of the first call are kept (``self.logits``) for the probabilities."""

    def __init__(self, model: HarModel, target: int | None) -> None:
        self.model = model
        self.target = target
        self.logits: torch.Tensor | None = None

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        logits = self.model(x)
        return self.select(logits)

    def select(self, logits: torch.Tensor, first_row: int = 0) -> torch.Tensor:
        if self.logits is None:
            self.logits = logits[first_row : first_row + 1].detach()
            if self.target is None:
                self.target = int(self.logits[0].argmax())
        return logits[:, self.target]


def image_forward(model: HarModel, x: torch.Tensor):
    """``(forward, images)`` for input-attribution methods: for a model whose input carries an
    aux plane (pose vector, ``HarModel.pack_aux``) the attribution runs over the image channels
    only and the vector stays as it is; otherwise ``(model, x)``."""
    if not model.aux_features:
        return model, x
    images = x[:, :3]
    aux = x[:, 3:]

    def forward(img: torch.Tensor) -> torch.Tensor:
        return model(torch.cat([img, aux.expand(img.shape[0], -1, -1, -1)], dim=1))

    return forward, images


def plain_logits(model: HarModel, x: torch.Tensor) -> torch.Tensor:
    """Logits of the unperturbed input without building a graph (multi-forward methods)."""
    with torch.no_grad():
        return model(x).detach()


def normalize_map(raw: torch.Tensor | np.ndarray) -> np.ndarray:
    """Min-max to [0, 1] (float32). A constant map becomes all ones when positive (everything
    equally relevant, e.g. a 1x1 feature map) and all zeros otherwise; non-finite values count 0."""
    arr = raw.detach().float().cpu().numpy() if isinstance(raw, torch.Tensor) else np.asarray(raw, dtype=np.float32)
    arr = np.nan_to_num(arr.astype(np.float32), nan=0.0, posinf=0.0, neginf=0.0)
    lo, hi = float(arr.min()), float(arr.max())
    if not hi > lo:
        return np.full_like(arr, 1.0 if hi > 0 else 0.0, dtype=np.float32)
    return ((arr - lo) / (hi - lo)).astype(np.float32)


def to_image_map(raw: torch.Tensor | np.ndarray, size: tuple[int, int], box: tuple[int, int, int, int] | None = None,
                 input_size: int | None = None) -> np.ndarray:
    """Normalise a raw map and resize it (bilinear) to the original image ``size=(W, H)``.

    ``box`` (with ``input_size``): where the photo lies in the S x S model input (letterboxed
    models, ``data.transforms.content_box``); the map is cropped to it first, so the padding
    never lands on the photo."""
    arr = normalize_map(raw)
    if arr.ndim != 2:
        raise ValueError(f"explainer produced a map of shape {arr.shape}, expected 2-D")
    if box is not None and input_size and tuple(box) != (0, 0, input_size, input_size):
        s = int(input_size)
        if arr.shape != (s, s):
            arr = cv2.resize(arr, (s, s), interpolation=cv2.INTER_LINEAR)
        x0, y0, x1, y1 = (int(v) for v in box)
        arr = arr[y0:y1, x0:x1]
        arr = normalize_map(arr) if arr.size else np.zeros((1, 1), np.float32)
    w, h = int(size[0]), int(size[1])
    if arr.shape != (h, w):
        arr = cv2.resize(arr, (w, h), interpolation=cv2.INTER_LINEAR)
    return np.clip(arr, 0.0, 1.0).astype(np.float32)


def model_label(model: HarModel) -> str:
    return getattr(model, "name", type(model).__name__)


def resolve_class(model: HarModel, target: int | str | None) -> int | None:
    """A class index from an index or a class name (``None`` stays ``None`` = predicted)."""
    classes = tuple(getattr(model, "classes", ()))
    if target is None:
        return None
    if isinstance(target, str) and not target.strip().lstrip("-").isdigit():
        if target not in classes:
            raise UnknownName(f"unknown class {target!r}; expected one of: {', '.join(classes)}")
        return classes.index(target)
    idx = int(target)
    if not 0 <= idx < len(classes):
        raise UnknownName(f"class index {idx} out of range; model has {len(classes)} classes ({', '.join(classes)})")
    return idx


# ---- the registry ---------------------------------------------------------------------------
class _LazyRegistry(Mapping):
    """``EXPLAINERS``: method name -> Explainer class; modules are imported on first use."""

    def __init__(self, refs: dict[str, str]) -> None:
        self._refs = refs
        self._classes: dict[str, type[Explainer]] = {}

    def __getitem__(self, name: str) -> type[Explainer]:
        if name not in self._classes:
            module, cls = self._refs[name].split(":")
            self._classes[name] = getattr(importlib.import_module(f"har_demo.explain.{module}"), cls)
        return self._classes[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._refs)

    def __len__(self) -> int:
        return len(self._refs)


EXPLAINERS: Mapping[str, type[Explainer]] = _LazyRegistry(_METHOD_MODULES)


def get_explainer(name: str) -> type[Explainer]:
    try:
        return EXPLAINERS[name]
    except KeyError:
        raise UnknownName(f"unknown method {name!r}; available: {', '.join(EXPLAINERS)}") from None


def applicable_methods(model: HarModel) -> list[str]:
    return [name for name, cls in EXPLAINERS.items() if cls.applies_to(model)]


def default_method(model: HarModel) -> str:
    """The registry's ``ModelSpec.default_method`` when the model is registered and the method
    applies, else the first applicable method."""
    from ..models.registry import MODELS

    methods = applicable_methods(model)
    spec = MODELS.get(getattr(model, "name", ""))
    if spec is not None and spec.default_method in methods:
        return spec.default_method
    if not methods:  # integrated_gradients/occlusion apply to every model
        raise HarError(f"no explanation method applies to model {model_label(model)!r}")
    return methods[0]


def make_explainer(method: str, model: HarModel | None = None, **opts: Any) -> Explainer:
    """Instantiate a method by name; with ``model``, check it applies (one-line errors)."""
    cls = get_explainer(method)
    if model is not None and not cls.applies_to(model):
        raise HarError(
            f"method {method!r} does not apply to model {model_label(model)!r} ({cls.why_not(model)}); "
            f"applicable: {', '.join(applicable_methods(model))}"
        )
    return cls(**opts)


def explain_full(
    model: HarModel, image: ImageSource, method: str | None = None, target_class: int | str | None = None, **opts: Any
) -> Explanation:
    """Map + probabilities + explained class. ``method=None`` uses ``default_method(model)``."""
    method = method or default_method(model)
    return make_explainer(method, model, **opts).explain(model, image, target_class)


def explain(model: HarModel, image: ImageSource, method: str | None = None, target_class: int | str | None = None, **opts: Any) -> np.ndarray:
    """``HxW`` float32 map in [0, 1] for the original image size (see ``explain_full``)."""
    return explain_full(model, image, method, target_class, **opts).saliency
