"""``--config`` overrides and the precedence of training options."""

from __future__ import annotations

import json

import pytest

from har_demo.data.transforms import STUDY_AUGMENT
from har_demo.models.registry import get_spec
from har_demo.training.cli import build_parser
from har_demo.training.config import ConfigError, parse_overrides, train_config_for


def test_key_value_json_object_and_file_forms_agree(tmp_path):
    kv = parse_overrides(["train.epochs=3", "cnn_base.widths=[4,8]", "cnn_base.train.lr=0.01", "batch_size=5"])
    doc = {"train": {"epochs": 3, "batch_size": 5}, "cnn_base": {"widths": [4, 8], "train": {"lr": 0.01}}}
    obj = parse_overrides([json.dumps(doc)])
    path = tmp_path / "cfg.json"
    path.write_text(json.dumps(doc))
    f = parse_overrides([str(path)])
    for o in (kv, obj, f):
        assert o.train == {"epochs": 3, "batch_size": 5}
        assert o.models == {"cnn_base": {"widths": [4, 8]}}
        assert o.model_train == {"cnn_base": {"lr": 0.01}}


def test_precedence_defaults_cli_global_then_model_overrides():
    o = parse_overrides(["train.lr=0.5", "effnet_lite0.train.lr=0.25"])
    assert train_config_for("cnn_gen").augment == tuple(STUDY_AUGMENT)  # per-model default
    assert train_config_for("effnet_lite0").epochs == get_spec("effnet_lite0").train["epochs"]  # the registry line
    assert train_config_for("effnet_lite0", {"epochs": 2, "lr": None}).epochs == 2  # explicit flag beats default
    assert train_config_for("cnn_base", {"lr": 0.1}, o).lr == 0.5  # --config train.* beats flags
    assert train_config_for("effnet_lite0", {"lr": 0.1}, o).lr == 0.25  # per-model override wins


@pytest.mark.parametrize(
    "item, fragment",
    [
        ("train.epoch=2", "epoch"),
        ("nosuchmodel.width=3", "nosuchmodel"),
        ("cnn_base.train.nope=1", "nope"),
        ("{not json", "not valid JSON"),
        ("missing_file.json", "missing_file.json"),
    ],
)
def test_bad_overrides_name_the_culprit(item, fragment):
    with pytest.raises(ConfigError, match=fragment):
        parse_overrides([item])


def test_invalid_values_are_config_errors():
    with pytest.raises(ConfigError, match="precision"):
        train_config_for("cnn_base", overrides=parse_overrides(["train.precision=fp8"]))
    with pytest.raises(ConfigError, match="lr_decay"):
        train_config_for("vit", {"lr_decay": 1.5})


@pytest.mark.parametrize("name", ["cnn_base", "effnet_lite0", "vit", "clip_cs"])
def test_wise_ft_is_refused_unless_the_head_starts_from_text(name):
    with pytest.raises(ConfigError, match=f"--wise-ft needs a head initialised from text embeddings .*clip_ft.*; {name}'s head starts random"):
        train_config_for(name, wise_ft=True)


@pytest.mark.parametrize("name", ["clip_ft", "siglip_ft"])
def test_wise_ft_is_accepted_for_text_initialised_heads(name):
    assert train_config_for(name, wise_ft=True).wise_ft


def test_wise_ft_flag_on_a_scratch_model_is_one_line_from_train_py(tmp_path, capsys):
    from har_demo.training.cli import main

    assert main(["--data", str(tmp_path / "none.csv"), "--models", "cnn_base", "--wise-ft", "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "--wise-ft" in err and "cnn_base" in err


def test_parser_accepts_the_documented_command_line():
    args = build_parser().parse_args(
        ["--data", "d.csv", "--models", "cnn_base,fnn", "--seeds", "5", "--epochs", "3", "--out", "runs/x", "--augment", "study", "--holdout-source", "a,b", "--image-size", "96", "--batch-size", "16", "--lr", "3e-4", "--lp-ft", "--wise-ft", "--lr-decay", "0.7", "--config", "train.patience=2", "fnn.hidden=[8]"]
    )
    assert args.seeds == 5 and args.lp_ft == 2 and args.wise_ft and args.lr_decay == 0.7
    assert args.config == ["train.patience=2", "fnn.hidden=[8]"] and args.holdout_source == "a,b"


def test_wise_ft_flag_with_the_default_model_list_applies_where_it_fits():
    """``train.py --wise-ft`` without ``--models`` trains every model, WiSE-FT for those whose head
    starts from text; naming a model it does not fit is still refused (test above)."""
    from har_demo.models.registry import MODELS
    from har_demo.training.cli import _entries

    args = build_parser().parse_args(["--data", "d.csv", "--out", "o", "--wise-ft"])
    entries = _entries(args, parse_overrides([]), list(MODELS), None, named=False)
    wise = {e.model for e in entries if e.train.wise_ft}
    assert wise == {n for n, s in MODELS.items() if s.init == "text"} and "clip_ft" in wise and "effnet_lite0" not in wise

