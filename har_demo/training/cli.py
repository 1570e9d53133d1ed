"""``python train.py`` (and ``accelerate launch train.py``): arguments -> library calls.

Examples::

    python train.py --data ../shared/data/har3/manifest.csv --models cnn_base,cnn_gen,fnn,effnet_lite0 --seeds 5 --out runs/har3
    python train.py --data ../shared/data/har3/manifest.csv --models effnet_lite0 --holdout-source inria_person --out runs/cross
    python train.py --data DATA --augment-ablation --seeds 3 --out runs/ablation
    python train.py --data DATA --models cnn_base,fnn --config cnn_base.widths=[8,16] train.epochs=2 --out runs/tiny
"""

from __future__ import annotations

import argparse
import logging
import shlex
import sys
from collections.abc import Sequence
from pathlib import Path

from .. import settings
from ..errors import HarError
from ..models.registry import get_spec, model_names
from .config import ConfigError, Overrides, parse_augment, parse_overrides, train_config_for

log = logging.getLogger("har_demo.training")

TRAIN_FLAGS = {  # CLI flag dest -> TrainConfig field (flags given explicitly apply to every model)
    "epochs": "epochs",
    "batch_size": "batch_size",
    "lr": "lr",
    "backbone_lr": "backbone_lr",
    "lr_decay": "lr_decay",
    "backbone_trainable": "backbone_trainable",
    "weight_decay": "weight_decay",
    "patience": "patience",
    "warmup": "warmup",
    "precision": "precision",
    "num_workers": "num_workers",
    "label_smoothing": "label_smoothing",
}


def _feature_store(args):
    """One frozen-backbone feature store for the whole command, kept on disk unless ``--feature-cache none``."""
    from .features import DEFAULT_FEATURE_DIR, FeatureStore

    where = args.feature_cache
    if where is not None and where.lower() == "none":
        return FeatureStore()
    return FeatureStore(where or DEFAULT_FEATURE_DIR)


def _floats(text: str) -> list[float]:
    try:
        return [float(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {text!r}") from None


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python train.py",
        description="Train registry models over seeds on one saved split; write checkpoints, cards and results tables.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__.split("Examples::", 1)[1],
    )
    d = p.add_argument_group("data")
    d.add_argument("--data", action="append", help="class-subfolder directory or manifest CSV (repeat to pool several)")
    d.add_argument("--captions", action="append", help="caption file of a captioned photo set to label from captions: COCO JSON, "
                   "Flickr8k 'image,caption' CSV or Flickr30k 'image|n|caption' (with --caption-images; repeat with "
                   "--caption-images / --caption-source for several sets, matched in order)")
    d.add_argument("--caption-images", action="append", help="image folder of --captions (one per --captions)")
    d.add_argument("--caption-source", action="append", help="source name of each caption-labelled set (one per --captions; "
                   "default 'captions' for a single set)")
    d.add_argument("--caption-fraction", action="append", type=float, help="use only this seeded fraction of each class of "
                   "the caption-labelled set (one per --captions; a learning curve: 0.25 is inside 0.5)")
    d.add_argument("--caption-min-agree", type=int, default=2, help="captions that must name the activity (default 2; ties dropped)")
    d.add_argument("--caption-person-check", action="store_true", help="keep only caption-labelled photos where the person finder finds someone")
    d.add_argument("--coco-images", help="COCO image folder (with --coco-captions)")
    d.add_argument("--coco-captions", help="COCO captions JSON")
    d.add_argument("--coco-instances", help="COCO instances JSON (person masks/boxes; single-person filter)")
    d.add_argument("--coco-keypoints", help="COCO person keypoints JSON")
    d.add_argument("--coco-per-class", type=int, default=95, help="images per class (default 95, like the study)")
    d.add_argument("--coco-single-person", action="store_true", help="keep images with exactly one prominent person")
    d.add_argument("--split", type=_floats, default=[0.8, 0.1, 0.1], help="train,val,test fractions (default 0.8,0.1,0.1)")
    d.add_argument("--split-seed", type=int, default=0, help="seed of the split (fixed across model seeds; default 0)")
    d.add_argument("--splits", help="reuse this splits.json instead of making a split")
    d.add_argument("--holdout-source", help="SRC[,SRC]: test on these sources, train/validate on the others (cross-source line)")
    d.add_argument("--leave-one-source-out", type=int, nargs="?", const=10, metavar="MIN", dest="loso",
                   help="one fold per source with >= MIN photos (default 10): train on the others, test on it (OUT/loso.md)")

    m = p.add_argument_group("models and runs")
    m.add_argument("--models", default=",".join(n for n in model_names() if not get_spec(n).composed_of),
                   help="comma-separated registry names (default: all but those put together from others, e.g. person_ensemble)")
    m.add_argument("--seeds", type=int, default=1, help="number of model seeds (0..N-1 from --seed-start)")
    m.add_argument("--seed-start", type=int, default=0)
    m.add_argument("--out", required=True, help="run directory, e.g. runs/NAME")
    m.add_argument("--image-size", type=int, help="input size for every model (builder option input_size)")
    m.add_argument("--config", nargs="+", action="extend", default=[], metavar="CFG",
                   help="overrides: JSON file, JSON object, or KEY=VALUE (train.epochs=2, cnn_base.widths=[8,16], "
                   "effnet_lite0.train.lr=3e-4, clip_ft.pretrained=false)")
    m.add_argument("--resume", action="store_true", help="reuse finished runs (same --out) instead of retraining them")
    m.add_argument("--export", metavar="DIR", help="copy each model's best-validation seed to DIR/<model>/ (e.g. checkpoints); "
                   "with --leave-one-source-out: write the pooled accuracy into DIR/<model>/card.json as unseen_source_accuracy")

    t = p.add_argument_group("training (explicit flags apply to every model; defaults are per model)")
    t.add_argument("--epochs", type=int)
    t.add_argument("--batch-size", type=int)
    t.add_argument("--lr", type=float, help="head LR (whole model when trained from scratch)")
    t.add_argument("--backbone-lr", type=float, help="pretrained backbone LR (default: --lr x 0.1)")
    t.add_argument("--lr-decay", type=float, help="layer-wise LR decay for transformer backbones, e.g. 0.75")
    t.add_argument("--backbone-trainable", type=float, metavar="FRAC",
                   help="fraction of the pretrained backbone (output side) that trains; the rest stays frozen (cheaper on CPU)")
    t.add_argument("--weight-decay", type=float)
    t.add_argument("--patience", type=int, help="early-stopping patience in epochs (0: off)")
    t.add_argument("--warmup", type=float, help="warm-up fraction of the steps")
    t.add_argument("--label-smoothing", type=float)
    t.add_argument("--augment", help="augmentations for every model: names from "
                   "hflip,vflip,perspective,rrc,color_jitter,grayscale, or study / all / none; 'ablation' = --augment-ablation")
    t.add_argument("--augment-ablation", action="store_true", help="run the study's cnn_gen augmentation ablation (ablation.md/json)")
    t.add_argument("--lp-ft", type=int, nargs="?", const=2, metavar="N", help="LP-FT: N linear-probe epochs (default 2) before fine-tuning")
    t.add_argument("--wise-ft", action="store_true", help="WiSE-FT for pretrained models: alpha chosen on val, stored in the card")
    t.add_argument("--wise-alphas", type=_floats, help="WiSE-FT alpha grid (default 0,0.1,...,1)")
    t.add_argument("--no-calibrate", action="store_true", help="skip temperature scaling")
    t.add_argument("--precision", choices=("auto", "no", "fp16", "bf16"), help="mixed precision (auto: bf16/fp16 on GPU, fp32 on CPU)")
    t.add_argument("--num-workers", type=int)
    t.add_argument("--cpu", action="store_true", help="force CPU even when a GPU is present")
    t.add_argument("--feature-cache", default=None, help="folder of the on-disk frozen-backbone feature cache (default "
                   "~/.cache/har_demo/features or HAR_FEATURE_CACHE; 'none' keeps features in memory only)")
    t.add_argument("--quiet", action="store_true", help="no progress bars or per-run lines")
    return p


def _entries(args, overrides: Overrides, names: Sequence[str], augment: list[str] | None, named: bool = True):
    """``named``: the models were listed with ``--models``; then ``--wise-ft`` applies to each one
    (and is refused for one it does not fit); for the default list only to those it fits."""
    from .runner import Entry

    cli = {field: getattr(args, dest) for dest, field in TRAIN_FLAGS.items()}
    extra_common: dict = {}
    if args.lp_ft is not None:
        extra_common["lp_epochs"] = args.lp_ft
    if args.no_calibrate:
        extra_common["calibrate"] = False
    if args.wise_alphas:
        extra_common["wise_alphas"] = args.wise_alphas
    entries = []
    for name in names:
        get_spec(name)  # unknown names -> one line
        config = dict(overrides.models.get(name, {}))
        pretrained = config.pop("pretrained", True)  # a bool: the --config grammar typed it
        extra = dict(extra_common)
        if augment is not None:
            extra["augment"] = augment
        if args.wise_ft and pretrained and (named or get_spec(name).init == "text"):  # train_config_for refuses the rest
            extra["wise_ft"] = True
        train = train_config_for(name, cli, overrides, **extra)
        entries.append(Entry(name, name, config, train, bool(pretrained), args.image_size))
    return entries


def command_line(argv: Sequence[str]) -> str:
    return "python train.py " + shlex.join(list(argv))


def run(args, argv: Sequence[str]) -> int:
    from .ablation import ABLATION_MODEL, ablation_entries, write_ablation
    from .data import ImageCache
    from .dataprep import load_samples, make_run_data
    from .loop import make_accelerator
    from .results import write_results
    from .runner import export_best, run_entries

    names = [n.strip() for n in (args.models or "").split(",") if n.strip()]
    for n in names:
        if get_spec(n).composed_of:
            raise ConfigError(f"{n} is put together from trained {' + '.join(get_spec(n).composed_of)} checkpoints, not trained: "
                              "python tools/make_ensemble.py")
    if len(set(names)) != len(names):
        raise ConfigError(f"--models lists a model twice: {args.models}")
    ablation = args.augment_ablation or (args.augment or "").strip() == "ablation"
    augment = None if args.augment is None or args.augment.strip() == "ablation" else parse_augment(args.augment)
    if args.seeds < 1:
        raise ConfigError("--seeds must be >= 1")
    overrides = parse_overrides(args.config)
    explicit_models = any(a == "--models" or a.startswith("--models=") for a in argv)
    main_names = names if (explicit_models or not ablation) else []
    entries = _entries(args, overrides, main_names, augment, named=explicit_models)
    abl = ablation_entries(_entries(args, overrides, [ABLATION_MODEL], None)[0]) if ablation else []

    out = Path(args.out)
    command = command_line(argv)
    accelerator = make_accelerator(getattr(args, "precision", None) or "auto", cpu=args.cpu)
    holdout = [s.strip() for s in (args.holdout_source or "").split(",") if s.strip()]
    samples, source_info = load_samples(
        args.data, args.coco_images, args.coco_captions, args.coco_instances, args.coco_keypoints,
        args.coco_per_class, args.coco_single_person, out_dir=out if accelerator.is_main_process else None,
        captions=args.captions, caption_images=args.caption_images, caption_source=args.caption_source,
        caption_min_agree=args.caption_min_agree, caption_person_check=args.caption_person_check,
        caption_fraction=args.caption_fraction,
    )
    seeds = list(range(args.seed_start, args.seed_start + args.seeds))
    if args.loso is not None:
        from .loso import run_loso

        if holdout or args.splits or abl:
            raise ConfigError("--leave-one-source-out makes its own splits: drop --holdout-source / --splits / --augment-ablation")
        doc = run_loso(entries, samples, out, seeds, accelerator, args.split_seed, args.split, args.loso, source_info, command,
                       argv=list(argv), quiet=args.quiet, resume=args.resume, cache=ImageCache(samples), features=_feature_store(args))
        if accelerator.is_main_process and args.export:  # the checkpoints there learn how they do on unseen sources
            from .loso import attach_unseen_accuracy

            for model in attach_unseen_accuracy(doc, args.export):
                log.info("unseen_source_accuracy -> %s", Path(args.export) / model / "card.json")
        if accelerator.is_main_process and not args.quiet:
            accelerator.print(f"wrote {out / 'loso.md'}")
        return 0
    split_args = (samples, out, args.split_seed, args.split, holdout, args.splits, source_info)
    if accelerator.is_main_process:  # makes and writes the split; the other processes then read it
        data = make_run_data(*split_args, write=True)
    accelerator.wait_for_everyone()
    if not accelerator.is_main_process:
        data = make_run_data(*split_args, write=False)
    cache = ImageCache(data.all_samples)
    common = {"command": command, "argv": list(argv), "quiet": args.quiet, "resume": args.resume, "cache": cache,
              "features": _feature_store(args)}
    if entries:
        results = run_entries(entries, data, out, seeds, accelerator, **common)
        if accelerator.is_main_process:
            write_results(results, data.info, out, command, seeds)
            if args.export:
                chosen = export_best(results, args.export)
                for model, src in chosen.items():
                    log.info("exported %s -> %s", src, Path(args.export) / model)
            if not args.quiet:
                accelerator.print(f"wrote {out / 'results.md'}")
    if abl:
        results = run_entries(abl, data, out / "ablation", seeds, accelerator, **common)
        if accelerator.is_main_process:
            write_ablation(results, data.info, out, command, seeds)
            if not args.quiet:
                accelerator.print(f"wrote {out / 'ablation.md'}")
    accelerator.wait_for_everyone()
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        settings.check_all()  # a bad HAR_* variable: one line before any work
    except HarError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING if args.quiet else logging.INFO, format="%(message)s")
    try:
        return run(args, argv)
    except HarError as err:  # a user error (errors.py): one line; anything else is a bug and keeps its traceback
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
