"""``python -m har_demo bench``: the quick run completes and writes valid JSON with every section;
the timing helpers and the plain references it compares against are right."""

from __future__ import annotations

import json

import pytest
import torch

from har_demo import bench
from har_demo.cli import main
from har_demo.explain.legrad import LeGrad
from har_demo.explain.vit_hooks import explain_mode

QUICK_MODELS = "cnn_base,effnet_lite0,clip_zeroshot"


@pytest.fixture(scope="module")
def quick_report(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench") / "bench.json"
    import contextlib
    import io

    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        code = main(["bench", "--quick", "--json", "--quiet", "--models", QUICK_MODELS, "--out", str(out)])
    assert code == 0
    printed = json.loads(buf.getvalue())
    written = json.loads(out.read_text())
    assert printed == written
    return written


def test_quick_report_has_every_section(quick_report):
    r = quick_report
    assert set(bench.SECTIONS) <= set(r) and "goals" in r and "meta" in r
    names = QUICK_MODELS.split(",")
    assert r["meta"]["models"] == names and r["meta"]["tiny"] is True
    assert r["meta"]["threads_set"] == 1 and r["meta"]["seconds"] < 600
    assert [row["model"] for row in r["inference"]] == names
    for row in r["inference"]:
        assert row["latency"]["median_s"] > 0
        assert set(row["throughput"]) == {"1", "8"}
        assert all(v["images_per_s"] > 0 and 0 < v["preprocess_share"] for v in row["throughput"].values())


def test_quick_report_references_and_maps(quick_report):
    refs = {(row["model"], row["comparison"].split(" ")[0]) for row in quick_report["references"]}
    assert ("effnet_lite0", "channels_last") in refs  # the conv net that uses NHWC
    assert ("cnn_base", "channels_last") not in refs  # ... and only it
    assert ("clip_zeroshot", "cached") in refs
    assert ("cnn_base", "Grad-CAM:") in refs
    assert all(row["ratio"] > 0 for row in quick_report["references"])
    maps = {(row["model"], row["method"]) for row in quick_report["maps"]}
    assert maps == {("cnn_base", "gradcam"), ("effnet_lite0", "gradcam"), ("clip_zeroshot", "legrad")}  # quick: defaults only
    assert all(row["default"] for row in quick_report["maps"])


def test_quick_report_photo_cold_start_training(quick_report):
    photo = quick_report["photo"]
    assert set(photo["per_model_median_s"]) == set(QUICK_MODELS.split(",")) and not photo["errors"]
    assert photo["total"]["median_s"] >= max(photo["per_model_median_s"].values()) * 0.5
    cold = quick_report["cold_start"]
    assert not cold["unavailable"] and not cold["errors"]
    assert cold["wall_s"] >= cold["import_s"] + cold["load_s"] > 0
    assert "app" not in cold  # --quick does not spawn app.py
    trained = {row["model"]: row for row in quick_report["training"]}
    assert set(trained) == {"cnn_base", "effnet_lite0"}  # clip_zeroshot needs no training
    assert trained["effnet_lite0"]["backbone_trainable"] == 0.5  # the model's own training config
    assert all(row["images_per_s"] > 0 and row["plain_step_images_per_s"] > 0 for row in trained.values())
    goals = {g["goal"] for g in quick_report["goals"]}
    assert any("slowest model" in g for g in goals)


def test_table_names_every_section(quick_report):
    text = bench.format_report(quick_report)
    for title in ("## inference", "## ours vs plain", "## one map", "## one photo", "## cold start", "## training", "## goals"):
        assert title in text


def test_time_call_warms_up_then_takes_the_median():
    calls = []
    t = bench.time_call(lambda: calls.append(1), repeats=4, warmup=2)
    assert len(calls) == 6 and t.runs == 4 and 0 <= t.min_s <= t.median_s


def test_time_call_budget_stops_after_two_runs():
    import time

    t = bench.time_call(lambda: time.sleep(0.02), repeats=50, warmup=0, budget_s=0.01)
    assert t.runs == 2 and t.min_s >= 0.015


def test_speed_ratio_is_reference_over_ours():
    assert bench.speed_ratio(bench.Timing(2.0, 2.0, 1), bench.Timing(0.5, 0.5, 1)) == 4.0


def test_naive_legrad_reference_equals_legrad():
    """The per-layer reference the bench times computes the same map as our one-backward LeGrad."""
    model = bench.random_model("clip_ft", tiny=True)
    x = model.preprocess([bench.synthetic_photo(64, 48)])
    with explain_mode(model), torch.enable_grad():
        raw, _logits, _target = LeGrad().attribute(model, x, 1)
        naive = bench.naive_legrad(model, x, 1)
    assert torch.allclose(raw.flatten(), naive, rtol=1e-4, atol=1e-8) and float(naive.abs().sum()) > 0


def test_random_model_has_no_zero_heads():
    model = bench.random_model("clip_zeroshot", tiny=True)
    assert model.class_emb.abs().sum() > 0 and not model.training


def test_bad_section_and_model_are_one_line_errors(capsys):
    assert main(["bench", "--quick", "--sections", "inference,warp"]) == 2
    assert "unknown bench section 'warp'" in capsys.readouterr().err
    assert main(["bench", "--quick", "--models", "nope"]) == 2
    assert "unknown model 'nope'" in capsys.readouterr().err


def test_physical_cores_is_sane():
    import os

    assert 1 <= bench.physical_cores() <= (os.cpu_count() or 1)
