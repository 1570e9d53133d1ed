"""Hardening, round 3 (issue 22, item 3 remainder): a request's uploaded files are removed when it
ends - unless another call holds them, a job names them, or they were uploaded again since."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from types import SimpleNamespace

import pytest

from har_demo.ui import tempfiles as tf
from har_demo.ui.api import Api
from tests.test_ui_support import example_photo


@pytest.fixture
def upload_dir(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("GRADIO_TEMP_DIR", str(tmp_path))
    monkeypatch.setattr(tf, "DELETE_DELAY_S", 0.0)
    return tmp_path


def _uploaded(root: Path, name: str = "photo.jpg") -> Path:
    folder = root / "0123abcd"
    folder.mkdir(exist_ok=True)
    dest = folder / name
    shutil.copy(example_photo(), dest)
    return dest


def test_predict_removes_its_upload_when_it_ends(bank, upload_dir):
    photo = _uploaded(upload_dir)
    Api(bank).predict({"path": str(photo)}, "fnn", "predicted", 0.5)
    assert not photo.exists() and not photo.parent.exists()


def test_a_refused_call_removes_its_upload_too(bank, upload_dir):
    photo = _uploaded(upload_dir)
    with pytest.raises(Exception):  # noqa: B017 - gr.Error: unknown model
        Api(bank).predict({"path": str(photo)}, "nope")
    assert not photo.exists()


def test_batch_removes_every_upload(bank, upload_dir):
    photos = [_uploaded(upload_dir, f"p{i}.jpg") for i in range(3)]
    Api(bank).batch([{"path": str(p)} for p in photos], "fnn")
    assert not any(p.exists() for p in photos)


def test_examples_are_never_removed(bank, upload_dir):
    Api(bank).predict(example_photo(), "fnn")
    assert Path(example_photo()).exists()


def test_a_file_another_call_holds_or_a_job_names_or_uploaded_again_is_kept(upload_dir):
    photo = str(_uploaded(upload_dir))
    with tf.request_files([photo]):
        with tf.request_files([photo]):  # a second visitor's call on the same (content-hashed) path
            pass
        assert os.path.exists(photo)
    assert not os.path.exists(photo)

    photo = str(_uploaded(upload_dir))
    job = SimpleNamespace(data=SimpleNamespace(data=[{"path": photo}]))
    blocks = SimpleNamespace(_queue=SimpleNamespace(event_queue_per_concurrency_id={"models": SimpleNamespace(queue=[job])}, active_jobs=[]))
    with tf.request_files([photo], blocks):
        pass
    assert os.path.exists(photo)  # a queued job still needs it

    with tf.request_files([photo]):
        os.unlink(photo)
        shutil.copy(example_photo(), photo)  # uploaded again meanwhile: a new file
    assert os.path.exists(photo)


def test_only_files_in_the_upload_folder_are_named(upload_dir, tmp_path_factory):
    inside = _uploaded(upload_dir)
    outside = tmp_path_factory.mktemp("elsewhere") / "x.jpg"
    assert tf.upload_paths([{"path": str(inside)}, str(outside), 5, None, SimpleNamespace(path=str(inside))]) == [str(inside)] * 2
