"""``python -m har_demo bench``: the quick run completes and writes valid JSON with every section;
the timing helpers and the plain references it compares against are right."""

from __future__ import annotations

import json

import pytest
import torch

from har_demo import testing
from har_demo.cli import main
from har_demo.commands import bench
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
    assert ("effnet_lite0", "BN") in refs and ("cnn_base", "BN") not in refs  # BN fold: only where there is BN
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
    assert [r["model"] for r in cold["checkpoint_load"]] == QUICK_MODELS.split(",")
    assert all(r["ratio"] > 0 for r in cold["checkpoint_load"])
    trained = {row["model"]: row for row in quick_report["training"]}
    assert set(trained) == {"cnn_base", "effnet_lite0"}  # clip_zeroshot needs no training
    from har_demo.models.registry import get_spec

    assert trained["effnet_lite0"]["backbone_trainable"] == get_spec("effnet_lite0").train["backbone_trainable"]  # the model's own training config
    assert all(row["images_per_s"] > 0 and row["plain_step_images_per_s"] > 0 for row in trained.values())
    assert trained["effnet_lite0"]["path"] == "training.features.fit_frozen" and trained["cnn_base"]["path"] == "training.loop.fit"
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


def test_time_pair_alternates_the_two_paths():
    calls = []
    ours, ref = bench.time_pair(lambda: calls.append("a"), lambda: calls.append("b"), repeats=3, warmup=1)
    assert calls == ["a", "b"] * 4 and ours.runs == ref.runs == 3


def test_speed_ratio_is_reference_over_ours():
    assert bench.speed_ratio(bench.Timing(2.0, 2.0, 1), bench.Timing(0.5, 0.5, 1)) == 4.0


@pytest.mark.parametrize("name", ["clip_ft", "siglip_ft"])
def test_naive_legrad_reference_equals_legrad(name):
    """The per-layer loop the bench times computes the same map as our one-backward LeGrad."""
    model = testing.random_model(name, tiny=True)
    x = model.preprocess([testing.synthetic_photo(64, 48)])
    with explain_mode(model), torch.enable_grad():
        raw, _logits, _target = LeGrad(start_layer=0).attribute(model, x, 1)  # every layer, like the naive loop
        naive = testing.naive_legrad(model, x, 1)
    assert torch.allclose(raw.flatten(), naive, rtol=1e-4, atol=1e-8) and float(naive.abs().sum()) > 0


def test_random_model_has_no_zero_heads():
    model = testing.random_model("clip_zeroshot", tiny=True)
    assert model.class_emb.abs().sum() > 0 and not model.training


def test_bad_section_and_model_are_one_line_errors(capsys):
    assert main(["bench", "--quick", "--sections", "inference,warp"]) == 2
    assert "unknown bench section 'warp'" in capsys.readouterr().err
    assert main(["bench", "--quick", "--models", "nope"]) == 2
    assert "unknown model 'nope'" in capsys.readouterr().err


def test_physical_cores_is_sane():
    import os

    assert 1 <= bench.physical_cores() <= (os.cpu_count() or 1)


# ---- benchmarks/gpu_train.py: runs on a CPU in --dry-run; its GPU augmentation is right ----------
def _gpu_train():
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "benchmarks" / "gpu_train.py"
    spec = importlib.util.spec_from_file_location("gpu_train", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_gpu_train_dry_run_writes_json(tmp_path, tiny_manifest, capsys):
    gt = _gpu_train()
    out = tmp_path / "gpu.json"
    argv = ["--dry-run", "--models", "clip_ft", "--data", str(tiny_manifest), "--device", "cpu", "--json", "--out", str(out)]
    assert gt.main(argv) == 0
    report = json.loads(out.read_text())
    assert report == json.loads(capsys.readouterr().out)
    assert report["meta"]["dry_run"] is True and report["meta"]["device"] == "cpu"
    clip = report["models"]["clip_ft"]
    assert clip["data"]["images"] == 9 and clip["data"]["size"] == 32  # the manifest's photos, decoded once
    assert clip["config"]["augment"] == ["hflip", "rrc"] and clip["config"]["param_groups"] > 2  # layer-wise LR groups
    assert clip["eager"]["batch"] == 4 and clip["eager"]["images_per_s"] > 0 and clip["train_gflops_per_image"] > 0
    assert report["reference"]["eager"]["images_per_s"] > 0
    assert "H200" not in report["meta"]["device"] and report["goals"] == []  # a dry run claims no goal


def test_gpu_train_flops_count_attention_projections():
    """Training FLOPs = 3 x forward; nn.MultiheadAttention's projections are counted (the fused
    eval fast path would hide them): an open_clip tower counts like the same-size timm ViT."""
    import timm

    gt = _gpu_train()
    from har_demo.models.registry import get_spec

    kw = get_spec("vit").tiny_config()["timm_kwargs"]
    ref = gt.train_flops_per_image(
        timm.create_model("vit_base_patch32_224", pretrained=False, num_classes=3, **kw), 32, torch.device("cpu")
    )
    clip = gt.train_flops_per_image(testing.random_model("clip_ft", tiny=True).visual, 32, torch.device("cpu"))
    lin = 2 * 17 * (32 * 96 + 32 * 32 + 2 * 32 * 128) * 2  # q/k/v + out + MLP per block, 17 tokens, 2 blocks
    assert clip >= 3 * lin and abs(clip - ref) / ref < 0.2


def test_gpu_augment_identity_flips_and_ranges():
    gt = _gpu_train()
    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (16, 3, 8, 8), dtype=torch.uint8, generator=g)
    mean, std = (0.5, 0.4, 0.3), (0.2, 0.25, 0.3)
    expect = (images.float() / 255 - torch.tensor(mean).view(1, 3, 1, 1)) / torch.tensor(std).view(1, 3, 1, 1)
    plain = gt.GpuAugment([], 8, mean, std, torch.device("cpu"))(images)
    assert torch.allclose(plain, expect, atol=1e-6)
    torch.manual_seed(1)
    flipped = gt.GpuAugment(["hflip"], 8, mean, std, torch.device("cpu"))(images)
    same = [torch.allclose(flipped[i], expect[i], atol=1e-5) for i in range(16)]
    mirrored = [torch.allclose(flipped[i], expect[i].flip(-1), atol=1e-5) for i in range(16)]
    assert all(s or m for s, m in zip(same, mirrored)) and any(same) and any(mirrored)  # per-sample coin
    torch.manual_seed(2)
    aug = gt.GpuAugment(
        ["rrc", "vflip", "color_jitter", "grayscale"], 8, (0, 0, 0), (1, 1, 1), torch.device("cpu"), channels_last=True
    )
    out = aug(images)
    assert out.shape == (16, 3, 8, 8) and out.is_contiguous(memory_format=torch.channels_last)
    assert float(out.min()) >= 0 and float(out.max()) <= 1 and not torch.allclose(out, images.float() / 255)
    with pytest.raises(ValueError, match="perspective"):
        gt.GpuAugment(["perspective"], 8, mean, std, torch.device("cpu"))


def test_gpu_train_peak_table():
    gt = _gpu_train()
    assert gt.peak_tflops("NVIDIA H200") == 989.0 and gt.peak_tflops("NVIDIA H100 PCIe") == 756.0
    assert gt.peak_tflops("cpu") is None and gt.peak_tflops("cpu", 5.0) == 5.0


@pytest.mark.parametrize("name", [n for n, spec in __import__("har_demo.models.registry", fromlist=["MODELS"]).MODELS.items() if spec.trainable])
def test_training_section_runs_for_every_trainable_registry_model(name):
    """The training benchmark builds its synthetic set from the model's own facts (input size,
    pose vector), so every registry line that trains - a new one too - can be timed."""
    from har_demo.commands.bench_sections import Profile
    from har_demo.commands.bench_startup import bench_training
    from har_demo.models.registry import build_tiny

    prof = Profile.quick()
    (row,) = bench_training([name], build_tiny, prof)
    assert row["model"] == name and row["images"] == prof.train_images
    assert row["images_per_s"] > 0 and row["plain_step_images_per_s"] > 0

