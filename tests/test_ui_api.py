"""Named API endpoint functions (/predict, /explain, /batch, /models) called directly: same
library results as the UI, user errors as one-line gr.Error."""

from __future__ import annotations

import json
import zipfile

import gradio as gr
import numpy as np
import pytest
from PIL import Image

from har_demo.labels import CLASSES
from har_demo.ui import analysis as an
from har_demo.ui.api import Api
from tests.test_ui_support import example_photo


@pytest.fixture(autouse=True)
def uploads_in_tmp(tmp_path_factory, monkeypatch):
    """The API reads uploaded files only: here every test's tmp_path counts as Gradio's upload folder."""
    monkeypatch.setenv("GRADIO_TEMP_DIR", str(tmp_path_factory.getbasetemp()))


@pytest.fixture(scope="module")
def api(bank):
    return Api(bank)


def test_predict_returns_labels_and_an_overlay_per_model(api, bank):
    result, gallery = api.predict(example_photo(), "", "predicted", 0.5)
    json.dumps(result)  # JSON-serialisable
    assert [r["model"] for r in result["models"]] == bank.available_names()
    ref = an.analyse(bank, example_photo())
    for row in result["models"]:
        assert row["label"] == ref.cards[row["model"]].label and row["label"] in CLASSES
        assert set(row["ambiguity"]) >= {"margin", "flag"}
    assert [cap.split(":")[0] for _, cap in gallery] == bank.available_names()
    assert all(isinstance(img, Image.Image) and img.size == tuple(result["image_size"]) for img, _ in gallery)


def test_predict_model_subset_and_target(api):
    result, gallery = api.predict(example_photo(), "fnn", "standing", 0.5)
    assert [r["model"] for r in result["models"]] == ["fnn"] and result["models"][0]["target"] == "standing"
    assert len(gallery) == 1


def test_explain_with_box_reports_drift(api, bank):
    overlay, info = api.explain(example_photo(), "cnn_base", "occlusion", "sitting", 0.7, "0,0,100,100")
    assert isinstance(overlay, Image.Image)
    assert info["method"] == "occlusion" and info["target"] == "sitting" and info["box"] == [0, 0, 100, 100]
    assert 0.0 <= info["drift"] <= 1.0 or np.isnan(info["drift"])
    _, default = api.explain(example_photo(), "fnn", "", "predicted", 0.5, "")
    assert default["method"] == bank.get("fnn").default_method and "drift" not in default


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda a, p: a.predict(None), "Give a photo first"),
        (lambda a, p: a.predict(p, "nope"), "unknown model 'nope'"),
        (lambda a, p: a.predict(p, "vit"), "vit is not available here"),
        (lambda a, p: a.predict(p, "", "dancing"), "unknown class 'dancing'"),
        (lambda a, p: a.explain(p, "fnn", "gradcam"), "does not apply"),
        (lambda a, p: a.explain(p, "", ""), "give a model name"),
        (lambda a, p: a.explain(p, "fnn", "", "predicted", 0.5, "1,2"), "x0,y0,x1,y1"),
        (lambda a, p: a.batch([]), "labelled images"),
    ],
)
def test_user_errors_are_one_line_gr_errors(api, call, match):
    with pytest.raises(gr.Error, match=match) as err:
        call(api, example_photo())
    assert "\n" not in str(err.value.message)


def test_non_image_upload_names_the_file(api, tmp_path):
    fake = tmp_path / "report.jpg"
    fake.write_text("%PDF-1.4 not an image")
    with pytest.raises(gr.Error, match="report.jpg: not a recognised image"):
        api.predict(str(fake))


def test_batch_returns_metrics_and_csv(api, make_image_folder, tmp_path):
    folder = make_image_folder(1)
    zpath = tmp_path / "b.zip"
    with zipfile.ZipFile(zpath, "w") as zf:
        for f in folder.rglob("*.jpg"):
            zf.write(f, f.relative_to(folder).as_posix())
    summary, csv_path = api.batch([str(zpath)], "fnn")
    json.dumps(summary)
    assert summary["images"] == len(CLASSES) and list(summary["models"]) == ["fnn"]
    assert summary["models"]["fnn"]["n"] == len(CLASSES)
    assert csv_path.endswith(".csv")


def test_models_lists_the_whole_registry(api, bank):
    rows = api.models()
    assert [r["name"] for r in rows] == bank.names()
    for r in rows:
        assert r["available"] == (r["name"] in bank.available_names())
        assert r["available"] or r["how_to_enable"]
