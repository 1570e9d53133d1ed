"""Batch-evaluation tab: labelled files / zips -> metrics per model, confusion plot, misclassified
gallery with maps, CSV; bad files are named, not fatal."""

from __future__ import annotations

import csv
import zipfile

import numpy as np
import pytest

from har_demo.errors import DataError, HarError
from har_demo.evaluate import classification_report
from har_demo.labels import CLASSES
from har_demo.ui import batch as bt


@pytest.mark.parametrize(
    "name, label",
    [
        ("sitting_01.jpg", "sitting"),
        ("Standing-bus stop.png", "standing"),
        ("walking_running_7.jpg", "walking_running"),
        ("man running.jpeg", "walking_running"),
        ("IMG_0042.jpg", None),
        ("sitting_or_standing.jpg", None),  # two classes named: ambiguous, not guessed
    ],
)
def test_label_from_file_name(name, label):
    assert bt.label_from_name(name) == label


def _zip_folder(folder, path):
    with zipfile.ZipFile(path, "w") as zf:
        for f in sorted(folder.rglob("*.jpg")):
            zf.write(f, f.relative_to(folder.parent).as_posix())  # "<top>/<class>/<file>"
    return path


@pytest.fixture
def zipped(make_image_folder, tmp_path):
    return _zip_folder(make_image_folder(2, size=(40, 30)), tmp_path / "batch.zip")


def test_zip_batch_metrics_match_the_library(bank, zipped):
    res = bt.evaluate_batch(bank, [str(zipped)])
    assert set(res.reports) == set(bank.available_names())
    n_images = 2 * len(CLASSES)
    assert len(res.predictions) == n_images * len(res.reports)
    for name, rep in res.reports.items():
        rows = [r for r in res.predictions if r["model"] == name]
        y_true = [CLASSES.index(r["true"]) for r in rows]
        y_pred = [CLASSES.index(r["predicted"]) for r in rows]
        assert rep == classification_report(y_true, y_pred)
        wrong = sum(t != p for t, p in zip(y_true, y_pred))
        shown = [g for g in res.gallery if g[1].startswith(f"{name}:")]
        assert len(shown) == min(wrong, bt.MISCLASSIFIED_PER_MODEL)
        for img, caption in shown:
            true, predicted = caption.split(": ", 1)[1].split(" (")[0].split(" -> ")  # "name: true -> predicted (p) · file"
            assert img.ndim == 3 and true in CLASSES and predicted in CLASSES and true != predicted
    assert [r[0] for r in res.rows] == list(res.reports) and len(res.rows[0]) == len(bt.metric_columns())


def test_csv_has_one_row_per_image_and_model(bank, zipped):
    res = bt.evaluate_batch(bank, [str(zipped)], ["fnn"])
    with open(res.csv_path, newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 2 * len(CLASSES)
    assert set(rows[0]) == {"file", "true", "model", "predicted", *(f"p_{c}" for c in CLASSES), "correct"}
    for r in rows:
        assert r["model"] == "fnn" and r["true"] in CLASSES
        assert abs(sum(float(r[f"p_{c}"]) for c in CLASSES) - 1) < 1e-4
        assert r["correct"] == str(r["true"] == r["predicted"]).lower()


def test_loose_files_labelled_by_name_and_unreadable_ones_skipped(bank, make_image_folder, tmp_path):
    folder = make_image_folder(1)
    files = []
    for cls in CLASSES:
        src = next((folder / cls).glob("*.jpg"))
        dst = tmp_path / f"{cls}_photo.jpg"
        dst.write_bytes(src.read_bytes())
        files.append(str(dst))
    unlabelled = tmp_path / "IMG_1.jpg"
    unlabelled.write_bytes(src.read_bytes())
    broken = tmp_path / "sitting_broken.jpg"
    broken.write_bytes(b"\xff\xd8\xff truncated")
    res = bt.evaluate_batch(bank, files + [str(unlabelled), str(broken)], ["cnn_base"])
    assert res.unlabelled == 1 and res.reports["cnn_base"]["n"] == len(CLASSES)
    assert len(res.skipped) == 1 and "sitting_broken.jpg" in res.skipped[0]
    assert {r["file"] for r in res.predictions} == {f"{c}_photo.jpg" for c in CLASSES} | {"IMG_1.jpg"}


def test_confusion_figure_has_a_panel_per_model(bank, zipped):
    res = bt.evaluate_batch(bank, [str(zipped)])
    fig = bt.confusion_figure(res.reports)
    assert len(fig.axes) == len(res.reports)
    for ax, (name, rep) in zip(fig.axes, res.reports.items()):
        assert name in ax.get_title()
        assert np.array_equal(ax.images[0].get_array(), np.asarray(rep["confusion"]))


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda p: p / "notes.txt", "not an image, a .zip or a labels .csv"),
        (lambda p: p / "empty.zip", "not a zip file"),
    ],
)
def test_bad_batch_inputs_are_one_line(bank, tmp_path, make, match):
    path = make(tmp_path)
    path.write_bytes(b"hello")
    with pytest.raises(DataError, match=match):
        bt.evaluate_batch(bank, [str(path)])


def test_too_many_images_is_refused_before_any_model_runs(bank, tmp_path, monkeypatch):
    monkeypatch.setattr(bt, "MAX_IMAGES", 2)
    monkeypatch.setattr(bt, "predict_all", lambda *a, **k: pytest.fail("must not run models"))
    paths = []
    for i in range(3):
        p = tmp_path / f"sitting_{i}.jpg"
        p.write_bytes(b"x")
        paths.append(str(p))
    with pytest.raises(DataError, match="over the limit of 2"):
        bt.evaluate_batch(bank, paths)


def test_batch_callback_fills_every_output(app, zipped, tmp_path, monkeypatch):
    _, ui, cb = app
    monkeypatch.setenv("GRADIO_TEMP_DIR", str(tmp_path / "uploads"))  # the batch tab reads uploaded files only
    uploaded = tmp_path / "uploads" / "abc" / zipped.name
    uploaded.parent.mkdir(parents=True)
    uploaded.write_bytes(zipped.read_bytes())
    with pytest.raises(HarError, match="not an uploaded file"):
        cb.batch.__wrapped__(cb, [str(zipped)], ["fnn"], progress=lambda *a, **k: None)
    out = cb.batch([str(uploaded)], ["fnn", "cnn_base"], progress=lambda *a, **k: None)
    assert [r[0] for r in out[ui.batch_metrics]["value"]] == ["cnn_base", "fnn"]
    assert len(out[ui.batch_confusion].axes) == 2
    assert out[ui.batch_csv].endswith(".csv")
    assert "6 image(s), 2 model(s)" in out[ui.batch_status]
    empty = cb.batch([], ["fnn"], progress=lambda *a, **k: None)
    assert list(empty) == [ui.batch_status]


def test_metric_display_orders_by_the_cards_and_rounds():
    rows = [["a", 4, 0.25, 0.13333, 0.0, 0.4, 0.0], ["b", 4, 0.756, 0.77777, 0.66666, 1.0, 0.66666], ["c", 2, 1.0, 1.0, 1.0, 1.0, 1.0]]
    shown = bt.metric_display(rows, ["b", "a"])
    assert [r[0] for r in shown] == ["b", "a", "c"]  # c is not in the order: after, as it came
    assert shown[0] == ["b", 4, "76 %", "0.78", "0.67", "1.00", "0.67"]
