"""Frozen-backbone fast path: compute backbone features once, train only the head on them.

With ``backbone_trainable=0`` a pretrained backbone never changes, so running it on every image in
every epoch (and again for every seed, and again for every cross-source fold) is wasted work - on
this project's 2-core CPU it was 30-125 s per EfficientNet epoch. Here the backbone runs once per
image *view*, in eval mode, and the head trains on the cached vectors with the same loop
(``loop.fit``: AdamW, warm-up + cosine, early stopping on val macro-F1, best-epoch restore).

Views of a training image (``TrainConfig.feature_views`` of them):

* view 0 - the eval preprocessing (what inference sees);
* view 1 - its horizontal mirror, when ``hflip`` is one of the augmentations;
* further views - draws of the full training augmentation, seeded by the view index and the photo (not by the
  model seed), so every seed and fold of a run shares them.

Each epoch every training image contributes one view chosen at random (seeded by the model seed).
Validation uses view 0. The backbone stays in eval mode (BatchNorm statistics frozen) - exactly the
network that is saved and evaluated afterwards on the images themselves.

A model opts in with ``HarModel.head_split()`` -> ``(features_fn, head_module)``: ``effnet_lite0``
(with ``backbone_trainable=0``, its default) and the CLIP heads on frozen towers (``clip_cs``,
``clip_em``).
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.utils.data import Dataset

from .. import settings
from ..data.transforms import stretch_transform
from ..errors import ConfigError
from ..labels import CLASSES
from ..models.base import HarModel
from .config import TrainConfig
from .data import CachedDataset
from .loop import FitResult, fit, split_metrics

VIEW_SEED = 1_000_003  # view k of photo p is drawn under a torch seed hashed from (VIEW_SEED + k, p): _item_seed


def uses_frozen_features(model: HarModel, cfg: TrainConfig) -> bool:
    """True when the fast path applies: a model that splits into (features, head) whose backbone
    does not train (``backbone_trainable=0``, or a model that freezes it itself, like ``clip_em``),
    and no linear-probe phase (LP-FT needs the backbone to train afterwards)."""
    if cfg.lp_epochs or cfg.epochs <= 0 or model.head_split() is None:
        return False
    frozen_by_model = not any(p.requires_grad for p in model.param_groups().get("backbone", []))
    return cfg.backbone_trainable == 0 or frozen_by_model


def backbone_fingerprint(model: HarModel) -> str:
    """A short hash of everything but the head (parameters *and* buffers: BatchNorm statistics, CLIP
    class embeddings): cached features are reused only for the same backbone (a randomly
    initialised backbone differs per seed and is never shared)."""
    _, head = model.head_split()
    skip = {id(t) for t in [*head.parameters(), *head.buffers(), model.temperature]}
    h = hashlib.sha1(json.dumps({"cls": type(model).__name__, "config": model.config}, sort_keys=True, default=str).encode())
    with torch.no_grad():
        for t in [*model.parameters(), *model.buffers()]:
            if id(t) not in skip and t.numel():
                h.update(t.detach().float().flatten()[:: max(1, t.numel() // 256)].cpu().numpy().tobytes())
    return h.hexdigest()[:16]


DEFAULT_FEATURE_DIR = settings.get("HAR_FEATURE_CACHE")


def _item_seed(view: int, path: str) -> int:
    """The torch seed of one image's draw for view ``view``: fixed per (view, photo), so an augmented
    view is the same whichever other photos are in the set (a fold, a learning-curve subset, another
    run) and a cached vector of it can be reused."""
    digest = hashlib.blake2b(f"{VIEW_SEED + view}:{path}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") & 0x7FFF_FFFF_FFFF_FFFF


class FeatureStore:
    """Backbone features per (backbone fingerprint, view, image path), kept for a whole run.

    With ``cache_dir`` (``train.py`` uses ``~/.cache/har_demo/features``, ``HAR_FEATURE_CACHE``)
    every vector is also kept on disk under ``<dir>/<fingerprint>/<hash of the backbone's input
    tensor>.npy``: the key is the exact input (pixels, crop, packed pose vector), so a later run - a
    learning-curve point, an ablation, the export run after leave-one-source-out - pays only for
    inputs never seen, and a changed photo, crop, transform or pose vector is a miss, never a stale hit."""

    def __init__(self, cache_dir: str | Path | None = None) -> None:
        self._feats: dict[tuple[str, int, str], torch.Tensor] = {}
        self.cache_dir = Path(cache_dir) if cache_dir is not None else None
        self.computed = 0  # image-views pushed through a backbone (tests check reuse)
        self.loaded = 0  # image-views read from the disk cache

    def __len__(self) -> int:
        return len(self._feats)

    def views(self, key: str, model: HarModel, dataset: CachedDataset, transforms: Sequence[tuple[Callable, float]], device,
              batch_size: int = 64) -> torch.Tensor:
        """(V, N, D) float32 features of ``dataset``'s images under each view ``(transform, flip[, aux])``
        (``aux``: the view's own (N_images, 2, A) pose vectors instead of the dataset's)."""
        features, _ = model.head_split()
        paths = [s.path for s in dataset.samples]
        out = []
        for v, (tf, flip, *aux) in enumerate(transforms):
            aux = aux[0] if aux and aux[0] is not None else dataset.aux
            todo = [i for i, p in enumerate(paths) if (key, v, p) not in self._feats]
            if todo:
                view = CachedDataset(dataset.images, [dataset.samples[i] for i in todo], tf, dataset.indices[todo], aux, flip)
                feats = self._extract(key, features, model, view, [_item_seed(v, paths[i]) for i in todo], device, batch_size)
                for i, f in zip(todo, feats):
                    self._feats[(key, v, paths[i])] = f
            out.append(torch.stack([self._feats[(key, v, p)] for p in paths]) if paths else torch.zeros((0, 0)))
        return torch.stack(out)

    @torch.no_grad()
    def _extract(self, key: str, features: Callable, model: HarModel, dataset: Dataset, seeds: Sequence[int], device,
                 batch_size: int) -> list[torch.Tensor]:
        """One vector per item of ``dataset`` (item j drawn under torch seed ``seeds[j]``)."""
        was_training = model.training
        model.eval()
        folder = self.cache_dir / key if self.cache_dir is not None else None
        result: list = [None] * len(dataset)
        with torch.random.fork_rng(devices=[]):
            for start in range(0, len(dataset), batch_size):
                todo, names = [], []
                for j in range(start, min(len(dataset), start + batch_size)):
                    torch.manual_seed(seeds[j])
                    x = dataset[j][0]
                    name = hashlib.blake2b(x.contiguous().numpy().tobytes(), digest_size=16).hexdigest() if folder else ""
                    if folder is not None and (folder / f"{name}.npy").is_file():
                        try:
                            result[j] = torch.from_numpy(np.load(folder / f"{name}.npy"))
                            self.loaded += 1
                            continue
                        except (OSError, ValueError):
                            (folder / f"{name}.npy").unlink(missing_ok=True)  # a torn write: compute again
                    todo.append((j, x))
                    names.append(name)
                if not todo:
                    continue
                x = torch.stack([t for _, t in todo]).to(device)
                if getattr(model, "channels_last", False):
                    x = x.contiguous(memory_format=torch.channels_last)
                f = features(x).float().cpu()
                self.computed += len(todo)
                for (j, _), name, row in zip(todo, names, f):
                    result[j] = row
                    if folder is not None:
                        folder.mkdir(parents=True, exist_ok=True)
                        tmp = folder / f"{name}.tmp.npy"
                        np.save(tmp, row.numpy())
                        os.replace(tmp, folder / f"{name}.npy")
        model.train(was_training)
        return result


def view_transforms(train: CachedDataset, evaluation: CachedDataset, cfg: TrainConfig, model: HarModel | None = None) -> list[tuple]:
    """The views ``(transform, flip[, aux])`` of a training image (see the module docstring).
    Mirroring is the dataset's ``flip`` (so a pose vector is mirrored with its image). Then one view
    per ``cfg.aspect_views`` factor: the letterboxed crop stretched horizontally
    (``data.transforms.Stretch``) and, for pose models, the pose vector of the stretched person
    (``person.geometry.stretch_person``), so pixels and landmarks agree."""
    clean = evaluation.transform
    views: list[tuple] = [(clean, 0.0)]
    if "hflip" in cfg.augment:
        views.append((clean, 1.0))
    if set(cfg.augment) - {"hflip"}:  # random draws add nothing when mirroring is the only augmentation
        while len(views) < max(1, cfg.feature_views):
            views.append((train.transform, train.flip))
    views = views[: max(1, cfg.feature_views)]
    if cfg.aspect_views:
        if model is None or model.resize != "pad":
            raise ConfigError("aspect_views needs a letterboxing model (resize=pad) on the frozen-feature path")
        for factor in cfg.aspect_views:
            views.append((stretch_transform(model.input_size, factor, model.mean, model.std), 0.0, stretched_aux(model, train, factor)))
    return views


def stretched_aux(model: HarModel, dataset: CachedDataset, factor: float) -> torch.Tensor | None:
    """(N_images, 2, A) pose vectors of every cached image's person stretched by ``factor`` (both
    slots the unmirrored vector: a stretched view is not mirrored); None for models without one."""
    if dataset.aux is None or dataset.persons is None:
        return None
    from ..models.base import View
    from ..person.geometry import stretch_person

    vectors = [model.aux_vector(View(None, (0, 0, 0, 0), None if p is None else stretch_person(p, factor))) for p in dataset.persons]
    v = torch.from_numpy(np.stack(vectors).astype(np.float32))
    return torch.stack([v, v], dim=1)


class _ViewDataset(Dataset):
    """(one random view's feature vector, label) per training image."""

    def __init__(self, feats: torch.Tensor, targets: torch.Tensor):
        self.feats, self.targets = feats, targets

    def __len__(self) -> int:
        return self.feats.shape[1]

    def __getitem__(self, i: int):
        v = int(torch.randint(self.feats.shape[0], ())) if self.feats.shape[0] > 1 else 0
        return self.feats[v, i], self.targets[i]


class _HeadOnly(HarModel):
    """The model's head as a trainable model over feature vectors (shares the head's parameters)."""

    def __init__(self, head: nn.Module):
        super().__init__()
        self.head = head

    def forward(self, f: torch.Tensor) -> torch.Tensor:
        return self.head(f)


def fit_frozen(model: HarModel, datasets: dict[str, CachedDataset], cfg: TrainConfig, accelerator, store: FeatureStore,
               generator: torch.Generator | None = None, desc: str = "", quiet: bool = False) -> FitResult:
    """Train ``model``'s head on cached features of its frozen backbone; the head keeps its best
    validation epoch (like ``loop.fit``). Returns the fit record with ``feature_views`` noted."""
    _, head = model.head_split()
    model.to(accelerator.device)
    key = backbone_fingerprint(model)
    train, val = datasets["train"], datasets["val"]
    views = view_transforms(train, val, cfg, model)
    train_feats = store.views(key, model, train, views, accelerator.device, cfg.eval_batch_size)
    val_feats = store.views(key, model, val, [(val.transform, 0.0)], accelerator.device, cfg.eval_batch_size)
    if cfg.head_solver == "lbfgs":
        result = fit_head_lbfgs(head, train_feats, train.targets, val_feats[0], val.targets, cfg, accelerator.device)
        result.feature_views = len(views)
        return result
    # The head-only model has no backbone group, so loop.fit freezes nothing and trains all of it.
    result = fit(
        _HeadOnly(head),
        _ViewDataset(train_feats, train.targets),
        _ViewDataset(val_feats, val.targets),
        cfg,
        accelerator,
        generator,
        desc,
        quiet,
    )
    result.feature_views = len(views)
    return result


def fit_head_lbfgs(head: nn.Module, feats: torch.Tensor, targets: torch.Tensor, val_feats: torch.Tensor, val_targets: torch.Tensor,
                   cfg: TrainConfig, device) -> FitResult:
    """The head as an exact L2-regularised, class-balanced logistic regression on cached features
    (every view of every training photo), solved to convergence by full-batch L-BFGS - sklearn's
    ``LogisticRegression(C=head_c, class_weight="balanced")`` objective: sum_i w_i CE_i + ||W||^2 / (2 C),
    weights W only (biases and the head's fixed input standardisation are not penalised).

    Why: with ~1,000 photos and a 1,500-d input, how strongly the head is regularised decides how it
    generalises to new sources far more than the optimiser; a deterministic solve makes that one
    number (``head_c``), not an epoch count or an early-stopping draw."""
    import time

    started = time.perf_counter()
    head.to(device).eval()  # no dropout: the solve is deterministic
    x = feats.reshape(-1, feats.shape[-1]).to(device)
    y = targets.repeat(feats.shape[0]).to(device)
    counts = torch.bincount(y, minlength=int(y.max()) + 1).float().clamp(min=1)
    sample_w = (len(y) / (len(counts) * counts))[y]
    weights = [p for n, p in head.named_parameters() if p.requires_grad and n.endswith("weight")]
    params = [p for p in head.parameters() if p.requires_grad]
    opt = torch.optim.LBFGS(params, lr=1.0, max_iter=500, history_size=20, tolerance_grad=1e-6, line_search_fn="strong_wolfe")
    scale = 1.0 / len(y)  # the objective divided by n (same minimiser, better conditioned)

    def closure():
        opt.zero_grad()
        loss = (torch.nn.functional.cross_entropy(head(x), y, reduction="none") * sample_w).sum() * scale
        loss = loss + sum((w**2).sum() for w in weights) * scale / (2.0 * cfg.head_c)
        loss.backward()
        return loss

    with torch.enable_grad():
        final = float(opt.step(closure).detach())
    with torch.no_grad():  # no validation photos: NaN metrics, like the epoch loop's
        logits = head(val_feats.to(device)).float().cpu().numpy() if len(val_targets) else torch.zeros(0, len(CLASSES)).numpy()
        val = split_metrics(logits, val_targets.numpy())
    record = {"epoch": 1, "phase": "lbfgs", "objective": round(final, 5), "head_c": cfg.head_c, **{f"val_{k}": v for k, v in val.items()}}
    return FitResult(history=[record], best_epoch=1, best_val=val, epochs_run=1, seconds=time.perf_counter() - started)
