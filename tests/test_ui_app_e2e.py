"""End to end: ``python app.py`` on 127.0.0.1 (free port, tiny checkpoints, offline), driven by
``gradio_client`` through the named endpoints; plus app.py's flags and environment variables."""

from __future__ import annotations

import os
import sys

import pytest
from PIL import Image

from har_demo.labels import CLASSES
from har_demo.ui.process import app_process
from tests.test_ui_support import REPO, example_photo, write_tiny_checkpoints

sys.path.insert(0, str(REPO))
import app as app_module

STARTUP_TIMEOUT_S = 180


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    ckpt = write_tiny_checkpoints(tmp_path_factory.mktemp("ckpt"))
    with open(tmp_path_factory.mktemp("log") / "app.log", "w+") as log, app_process(ckpt, log, timeout_s=STARTUP_TIMEOUT_S) as app:
        yield app.url


@pytest.fixture(scope="module")
def client(server):
    from gradio_client import Client

    return Client(server, verbose=False)


def test_predict_endpoint_returns_labels_and_overlays(client):
    from gradio_client import handle_file

    result, overlays = client.predict(handle_file(example_photo()), "", "predicted", 0.5, api_name="/predict")
    models = [r["model"] for r in result["models"]]
    assert models == ["cnn_base", "fnn"]
    for row in result["models"]:
        assert row["label"] in CLASSES and abs(sum(row["probs"].values()) - 1) < 1e-3
        assert row["label"] == max(row["probs"], key=row["probs"].get)
    assert [o["caption"].split(":")[0] for o in overlays] == models
    with Image.open(overlays[0]["image"]) as im:
        assert im.size == tuple(result["image_size"]) and im.mode == "RGB"


def test_explain_endpoint_and_models_listing(client):
    from gradio_client import handle_file

    overlay, info = client.predict(
        handle_file(example_photo("sitting_table.jpg")), "cnn_base", "gradcam", "standing", 0.6, "10,10,200,200", api_name="/explain"
    )
    assert info["target"] == "standing" and info["method"] == "gradcam" and "drift" in info
    assert os.path.isfile(overlay)
    listing = client.predict(api_name="/models")
    assert {r["name"] for r in listing if r["available"]} == {"cnn_base", "fnn"}


def test_errors_reach_the_client_as_one_line_and_the_server_keeps_answering(client, tmp_path):
    from gradio_client import handle_file

    bogus = tmp_path / "cat.jpg"
    bogus.write_bytes(b"GIF89a but not really")
    with pytest.raises(Exception, match="cat.jpg") as err:
        client.predict(handle_file(str(bogus)), "", "predicted", 0.5, api_name="/predict")
    assert "Traceback" not in str(err.value)
    with pytest.raises(Exception, match="not available here"):
        client.predict(handle_file(example_photo()), "vit", "predicted", 0.5, api_name="/predict")
    result, _ = client.predict(handle_file(example_photo()), "fnn", "predicted", 0.5, api_name="/predict")
    assert result["models"][0]["model"] == "fnn"


def test_ui_events_are_not_part_of_the_public_api(client):
    api = client.view_api(print_info=False, return_format="dict")
    assert set(api["named_endpoints"]) == {"/predict", "/explain", "/batch", "/models"}


# ---- app.py flags / environment ------------------------------------------------------------------
def test_flags_and_env(monkeypatch):
    for var in ("HAR_HOST", "HAR_PORT", "GRADIO_SERVER_NAME", "GRADIO_SERVER_PORT"):
        monkeypatch.delenv(var, raising=False)
    args = app_module.parse_args([])
    assert (args.host, args.port, args.share) == ("127.0.0.1", 7860, False)
    monkeypatch.setenv("GRADIO_SERVER_NAME", "0.0.0.0")
    monkeypatch.setenv("HAR_PORT", "8123")
    args = app_module.parse_args([])
    assert (args.host, args.port) == ("0.0.0.0", 8123)
    monkeypatch.setenv("HAR_HOST", "127.0.0.2")
    assert app_module.parse_args([]).host == "127.0.0.2"
    args = app_module.parse_args(["--host", "::1", "--port", "9000", "--share"])
    assert (args.host, args.port, args.share) == ("::1", 9000, True)


@pytest.mark.parametrize("argv, env", [(["--port", "70000"], {}), ([], {"HAR_PORT": "eighty"})])
def test_bad_port_is_a_usage_error(monkeypatch, capsys, argv, env):
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    with pytest.raises(SystemExit) as exit_:
        app_module.parse_args(argv)
    assert exit_.value.code == 2 and "port" in capsys.readouterr().err.lower()
