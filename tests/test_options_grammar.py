"""One ``KEY=VALUE`` grammar (``har_demo.options``) for ``train.py --config``, ``explain --opt`` and
the builder config: values typed per option, a wrong type or unknown key refused in one line."""

from __future__ import annotations

import json

import pytest
from torch import nn

from har_demo.commands.explain import parse_options
from har_demo.errors import ConfigError, HarError
from har_demo.explain.base import make_explainer
from har_demo.models.registry import build_model, build_tiny, get_spec
from har_demo.options import parse_value
from har_demo.training.cli import main as train_main
from har_demo.training.config import parse_overrides, train_config_for


@pytest.mark.parametrize("text, value", [
    ("true", True), ("False", False), ("FALSE", False), ("tRuE", True), ("null", None), ("None", None),
    ("3", 3), ("-2", -2), ("3e-4", 3e-4), ("0.5", 0.5), ("[8, 16]", [8, 16]), ('{"a": 1}', {"a": 1}),
    ('"3"', "3"), ("hflip", "hflip"), ("nan", "nan"),
])
def test_one_parser_reads_every_value_kind(text, value):
    got = parse_value(text)
    assert got == value and type(got) is type(value)


@pytest.mark.parametrize("item", ["effnet_lite0.person_crop=False", "effnet_lite0.person_crop=false", "effnet_lite0.person_crop=FALSE"])
def test_person_crop_false_turns_the_crop_off(item):
    # the old grammar kept "False" as a string, bool("False") is True: the crop stayed on
    config = parse_overrides([item]).models["effnet_lite0"]
    assert config == {"person_crop": False}
    model = build_tiny("effnet_lite0", **config)
    assert model.person_crop is False
    assert build_tiny("effnet_lite0", person_crop=True).person_crop is True


def test_batch_norm_false_builds_no_batch_norm_and_the_card_config_holds_a_bool():
    config = parse_overrides(["cnn_gen.batch_norm=False", "cnn_gen.dropout=0"]).models["cnn_gen"]
    assert config == {"batch_norm": False, "dropout": 0.0} and isinstance(config["dropout"], float)
    model = build_tiny("cnn_gen", **config)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in model.modules())
    assert model.config["batch_norm"] is False  # what the card stores
    assert any(isinstance(m, nn.BatchNorm2d) for m in build_tiny("cnn_gen").modules())  # the default keeps it


def test_key_value_json_object_and_file_agree_on_types(tmp_path):
    doc = {"train": {"epochs": 2, "lr": 1, "max_grad_norm": None}, "cnn_gen": {"batch_norm": False, "widths": [4, 8]}}
    path = tmp_path / "cfg.json"
    path.write_text(json.dumps(doc))
    kv = parse_overrides(["train.epochs=2", "train.lr=1", "train.max_grad_norm=null", "cnn_gen.batch_norm=false",
                          "cnn_gen.widths=4,8"])
    for o in (kv, parse_overrides([json.dumps(doc)]), parse_overrides([str(path)])):
        assert o.train == {"epochs": 2, "lr": 1.0, "max_grad_norm": None}
        assert isinstance(o.train["lr"], float)
        assert o.models == {"cnn_gen": {"batch_norm": False, "widths": [4, 8]}}


@pytest.mark.parametrize("item, fragment", [
    ("cnn_gen.batch_norm=maybe", "cnn_gen.batch_norm: expected true or false, got 'maybe'"),
    ("cnn_gen.batch_norm=1", "expected true or false"),
    ("train.epochs=two", "train.epochs: expected a whole number"),
    ("train.epochs=2.5", "expected a whole number"),
    ("train.epochs=null", "expected a whole number, got null"),
    ("train.lr=fast", "train.lr: expected a number"),
    ("train.wise_ft=yes", "expected true or false"),
    ("cnn_base.widths=[8,x]", "not valid JSON"),
    ("cnn_base.widths=8,x", "expected a whole number, got 'x'"),
    ("cnn_base.width=3", "unknown cnn_base builder option(s) width; known: batch_norm, dropout, hidden, input_size"),
    ("effnet_lite0.person_crop=off", "expected true or false"),
    ("cnn_base.pretrained=no", "expected true or false"),
    ('{"cnn_gen": {"batch_norm": "False"}}', "batch_norm: expected true or false, got 'False'"),
    ('{"train": {"epochs": "3"}}', "epochs: expected a whole number"),
])
def test_a_wrong_type_or_unknown_key_is_one_config_error_line(item, fragment):
    with pytest.raises(ConfigError) as info:
        parse_overrides([item])
    assert fragment in str(info.value) and "\n" not in str(info.value)


def test_null_for_optional_training_options():
    o = parse_overrides(["train.backbone_lr=none", "vit.train.lr_decay=NULL"])
    assert o.train == {"backbone_lr": None} and o.model_train == {"vit": {"lr_decay": None}}
    assert train_config_for("vit", overrides=o).lr_decay is None


def test_builder_config_is_checked_against_the_builders_parameters():
    with pytest.raises(ConfigError, match="unknown cnn_base builder option.*widths"):
        build_model("cnn_base", **get_spec("cnn_base").tiny_config(width=3))
    with pytest.raises(ConfigError, match="batch_norm: expected true or false, got 'False'"):
        build_model("cnn_gen", **get_spec("cnn_gen").tiny_config(batch_norm="False"))
    with pytest.raises(ConfigError, match="hidden: expected a whole number"):
        build_model("pose_mlp", **get_spec("pose_mlp").tiny_config(hidden="8"))
    with pytest.raises(ConfigError, match="unknown vit builder option.*drop_rate"):
        build_tiny("vit", dropout=0.1)


def test_train_py_refuses_a_wrong_type_in_one_line(tmp_path, capsys):
    rc = train_main(["--data", str(tmp_path / "none"), "--out", str(tmp_path / "run"), "--models", "cnn_gen",
                     "--config", "cnn_gen.batch_norm=maybe"])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and err == "error: --config cnn_gen.batch_norm: expected true or false, got 'maybe'"


def test_opt_uses_the_same_grammar_and_the_method_types_each_option():
    assert parse_options(["steps=8", "sign=abs", "window=None", "flag=FALSE"]) == {"steps": 8, "sign": "abs", "window": None, "flag": False}
    assert make_explainer("integrated_gradients", outlier_perc=2).opts["outlier_perc"] == 2.0
    assert make_explainer("integrated_gradients", outlier_perc="0.5").opts["outlier_perc"] == 0.5
    with pytest.raises(HarError, match="option outlier_perc: expected a number, got 'abc'"):
        make_explainer("integrated_gradients", **parse_options(["outlier_perc=abc"]))
    with pytest.raises(HarError, match="option sign: expected text, got 1"):
        make_explainer("integrated_gradients", **parse_options(["sign=1"]))
    with pytest.raises(HarError, match="KEY=VALUE"):
        parse_options(["steps"])
