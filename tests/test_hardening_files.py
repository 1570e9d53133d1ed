"""Safe loading and files: tampered / wrong-shape checkpoints give one line naming the file on every
loading path (registry bank = the app, CLI, the running app's /models); a pickle in the checkpoint
folder is never executed by the app or the CLI; the running app serves no file outside its own
temp/cache and examples folders (``/file=``, ``/gradio_api/file=``, payload paths); batch zips are
extracted into a temporary folder with limits and removed afterwards.

``hardening_app`` is the one ``python app.py`` process the hardening tests share (corpus, files,
load): started on first use, stopped at the end of the session. Its checkpoint folder holds the tiny
models plus booby-trapped pickles and two broken checkpoints, its TMPDIR is a test folder.
"""

from __future__ import annotations

import ast
import inspect
import io
import json
import os
import pickle
import shutil
import urllib.error
import urllib.parse
import urllib.request
import zipfile
from pathlib import Path

import pytest
import torch
from PIL import Image

from har_demo.cli import main as cli_main
from har_demo.data import zipdata
from har_demo.errors import DataError, HarError
from har_demo.labels import CLASSES
from har_demo.models.checkpoint import CARD_FILE, WEIGHTS_FILE, save_checkpoint
from har_demo.models.registry import MODELS, build_model
from har_demo.ui import batch as bt
from har_demo.ui.text import examples_dir
from tests.test_ui_support import REPO, TINY, example_photo, tiny_env, write_tiny_checkpoints

PICKLE_NAMES = ("model.pt", "model.pth", "pytorch_model.bin", "model.pkl", "open_clip_pytorch_model.bin", "model.ckpt")
QUEUE_SIZE = 22  # >= the load test's 20 clients; small enough for its overflow burst
_SHARED: dict = {}


class Boom:
    """Unpickling this writes ``$HAR_BOOM_FILE``: proof that a pickle was executed."""

    def __reduce__(self):
        return (exec, ("open(__import__('os').environ['HAR_BOOM_FILE'], 'a').write('executed\\n')",))


def plant_pickles(folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name in PICKLE_NAMES:
        (folder / name).write_bytes(pickle.dumps(Boom()))


def hostile_checkpoint_root(root: Path) -> Path:
    """Tiny cnn_base + fnn, a pickle bomb next to every model's files (and as the only file of the
    others), cnn_gen saved wider than its card says (wrong shape), vit with a pickle renamed to
    model.safetensors (tampered)."""
    write_tiny_checkpoints(root)
    for name in MODELS:
        plant_pickles(root / name)
    torch.manual_seed(0)
    save_checkpoint(build_model("cnn_gen", pretrained=False, **TINY["cnn_base"]), root / "cnn_gen")
    card = json.loads((root / "cnn_gen" / CARD_FILE).read_text())
    card["config"]["hidden"] = 32
    (root / "cnn_gen" / CARD_FILE).write_text(json.dumps(card))
    (root / "vit" / CARD_FILE).write_text(json.dumps({"model": "vit", "classes": list(CLASSES), "config": {}}))
    (root / "vit" / WEIGHTS_FILE).write_bytes(pickle.dumps(Boom()))
    return root


def hardening_app(config: pytest.Config, tmp_path_factory: pytest.TempPathFactory):
    """The shared app process (``benchmarks.load_test.AppProcess``), started once per session."""
    if "app" not in _SHARED:
        from benchmarks.load_test import running_app

        work = tmp_path_factory.mktemp("hardening_app")
        boom = work / "BOOM"
        ckpt = hostile_checkpoint_root(work / "checkpoints")
        ctx = running_app(ckpt, {"HAR_BOOM_FILE": str(boom), "HAR_QUEUE_SIZE": str(QUEUE_SIZE)}, workdir=work)
        app = ctx.__enter__()
        app.boom, app.checkpoints, app.tmp = boom, ckpt, work / "tmp"
        _SHARED["app"] = app
        config.add_cleanup(lambda: ctx.__exit__(None, None, None))
    return _SHARED["app"]


@pytest.fixture(scope="session")
def app_server(request, tmp_path_factory):
    return hardening_app(request.config, tmp_path_factory)


@pytest.fixture
def boom(tmp_path, monkeypatch) -> Path:
    """The flag file a ``Boom`` unpickling writes (checked to work, then removed)."""
    flag = tmp_path / "BOOM"
    monkeypatch.setenv("HAR_BOOM_FILE", str(flag))
    pickle.loads(pickle.dumps(Boom()))  # the trap is live: unpickling does run it
    assert flag.read_text() == "executed\n"
    flag.unlink()
    return flag


# ---- checkpoints ------------------------------------------------------------------------------------
def test_running_app_lists_broken_checkpoints_with_the_file_and_ran_no_pickle(app_server):
    from gradio_client import Client

    listing = Client(app_server.url, verbose=False, analytics_enabled=False).predict(api_name="/models")
    by = {r["name"]: r for r in listing}
    assert by["cnn_base"]["available"] and by["fnn"]["available"]
    gen, vit = by["cnn_gen"], by["vit"]
    assert not gen["available"] and f"checkpoints/cnn_gen/{WEIGHTS_FILE}" in gen["detail"]
    assert not any(str(app_server.checkpoints) in r["detail"] for r in listing)  # no absolute server paths
    assert "does not fit model 'cnn_gen'" in gen["detail"] and "\n" not in gen["detail"]
    assert not vit["available"] and f"cannot read checkpoint weights checkpoints/vit/{WEIGHTS_FILE}" in vit["detail"]
    assert not app_server.boom.exists(), "a pickle in the checkpoint folder was executed"
    assert "Traceback" not in app_server.log()


def _tamper(ck: Path, how: str) -> Path:
    """Break a saved checkpoint one way; returns the file the error must name."""
    weights, card_path = ck / WEIGHTS_FILE, ck / CARD_FILE
    card = json.loads(card_path.read_text())
    if how == "truncated_weights":
        weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    elif how == "garbage_weights":
        weights.write_bytes(os.urandom(512))
    elif how == "header_lies":  # a valid-looking header promising more data than the file has
        header = json.dumps({"w": {"dtype": "F32", "shape": [1000, 1000], "data_offsets": [0, 4_000_000]}}).encode()
        weights.write_bytes(len(header).to_bytes(8, "little") + header + b"\0" * 16)
    elif how == "pickle_as_weights":
        weights.write_bytes(pickle.dumps(Boom()))
    elif how == "wrong_shape":
        card["config"]["hidden"] = 64
    elif how == "wrong_width":
        card["config"]["widths"] = [8, 8, 8]
    elif how == "extra_tensor":
        from safetensors.torch import load_file, save_file

        tensors = load_file(str(weights))
        tensors["smuggled.weight"] = torch.zeros(3)
        save_file(tensors, str(weights))
    elif how == "card_not_json":
        card_path.write_text("{'model': cnn_base")
        return card_path
    elif how == "card_classes_reordered":
        card["classes"] = list(reversed(CLASSES))
        card_path.write_text(json.dumps(card))
        return card_path
    elif how == "card_other_model":
        card["model"] = "fnn"
        card_path.write_text(json.dumps(card))
        return ck
    if how in ("wrong_shape", "wrong_width"):
        card_path.write_text(json.dumps(card))
    return weights


TAMPERINGS = ["truncated_weights", "garbage_weights", "header_lies", "pickle_as_weights", "wrong_shape", "wrong_width",
              "extra_tensor", "card_not_json", "card_classes_reordered", "card_other_model"]


@pytest.mark.parametrize("how", TAMPERINGS)
def test_tampered_checkpoint_is_one_line_naming_the_file_in_bank_and_cli(tmp_path, boom, capsys, how):
    from har_demo.ui.bank import ModelBank

    root = write_tiny_checkpoints(tmp_path / "ck", names=("cnn_base",))
    named = _tamper(root / "cnn_base", how)
    img = tmp_path / "photo.png"
    Image.new("RGB", (20, 20), (90, 120, 30)).save(img)
    with tiny_env(root):
        entry = ModelBank.load(names=["cnn_base"]).get("cnn_base")  # the app's loading path
        rc = cli_main(["predict", str(img), "--model", "cnn_base"])
    err = capsys.readouterr().err
    shown = f"checkpoints/{named.relative_to(root).as_posix()}"  # the app shows no absolute server path
    assert not entry.available and shown in entry.source and str(root) not in entry.source and "\n" not in entry.source, entry.source
    assert rc == 2 and err.count("\n") == 1 and str(named) in err and "Traceback" not in err, err
    assert not boom.exists()


def test_pickles_in_every_checkpoint_folder_are_never_executed_by_bank_or_cli(tmp_path, boom, capsys):
    from har_demo.ui.bank import ModelBank

    root = hostile_checkpoint_root(tmp_path / "ck")
    img = tmp_path / "photo.png"
    Image.new("RGB", (20, 20), (90, 120, 30)).save(img)
    with tiny_env(root):
        bank = ModelBank.load()
        codes = [cli_main(["predict", str(img), "--model", name]) for name in MODELS]
    capsys.readouterr()
    assert bank.available_names() == ["cnn_base", "fnn"] and codes[list(MODELS).index("cnn_base")] == 0
    assert set(codes) <= {0, 2}
    assert not boom.exists(), "a pickle was executed"


def _calls(tree: ast.AST, dotted: str):
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and ast.unparse(node.func) == dotted:
            yield node


def test_library_never_unpickles_outside_weights_only_loads():
    """No ``pickle.load(s)`` anywhere in har_demo; every ``torch.load`` passes ``weights_only=True``."""
    for path in sorted((REPO / "har_demo").rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for name in ("pickle.load", "pickle.loads", "pickle.Unpickler", "dill.load", "joblib.load"):
            assert not list(_calls(tree, name)), f"{path}: {name}"
        for call in list(_calls(tree, "torch.load")) + list(_calls(tree, "load_state_dict")):
            if ast.unparse(call.func) == "load_state_dict" and not call.args:
                continue
            kw = {k.arg: ast.unparse(k.value) for k in call.keywords}
            if ast.unparse(call.func) == "torch.load" or "weights_only" in kw:
                assert kw.get("weights_only") == "True", f"{path}:{call.lineno}: {ast.unparse(call)}"


# ---- files served by the running app -------------------------------------------------------------------
def _get(url: str) -> tuple[int, bytes]:
    req = urllib.request.Request(url, method="GET")
    opener = urllib.request.build_opener(_NoRedirect)
    try:
        with opener.open(req, timeout=20) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as err:
        return err.code, err.read()


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):  # a redirect is reported as such, not followed
        return None


def _secrets(app_server) -> dict[str, bytes]:
    """Files on the server's disk that must never be served, with their contents."""
    secret_tmp = app_server.tmp / "secret.txt"  # in the server's TMPDIR but not Gradio's cache
    secret_tmp.write_text("tmp secret 42")
    files = [Path("/etc/passwd"), REPO / "app.py", app_server.checkpoints / "cnn_base" / CARD_FILE,
             app_server.checkpoints / "cnn_base" / WEIGHTS_FILE, secret_tmp, examples_dir().parent / "README.md"]
    return {str(p): p.read_bytes() for p in files if p.is_file()}


def test_file_routes_refuse_paths_outside_cache_and_examples(app_server):
    base = app_server.url.rstrip("/")
    ex = examples_dir()
    targets = list(_secrets(app_server).items())
    traversal = [(f"{ex}/../app.py", (REPO / "app.py").read_bytes()),
                 (f"{ex}/..%2fapp.py", (REPO / "app.py").read_bytes()),
                 (f"{ex}/%2e%2e/%2e%2e/{REPO.name}/app.py", (REPO / "app.py").read_bytes())]
    checked = 0
    for path, content in targets + traversal:
        quoted = path if "%" in path else urllib.parse.quote(path)
        for route in ("/gradio_api/file=", "/file=", "/gradio_api/file/"):
            status, body = _get(base + route + quoted)
            assert status in (400, 403, 404), f"{route}{path} -> {status}"
            assert content[:64] not in body or not content, f"{route}{path} leaked the file"
            checked += 1
    assert checked >= 20
    # positive controls: the same route does serve an example photo and a file the client uploaded
    status, body = _get(base + "/gradio_api/file=" + urllib.parse.quote(example_photo()))
    assert status == 200 and body == Path(example_photo()).read_bytes()
    from gradio_client import Client, handle_file

    client = Client(app_server.url, verbose=False, analytics_enabled=False, download_files=False)
    _, overlays = client.predict(handle_file(example_photo()), "fnn", "predicted", 0.5, api_name="/predict")
    served = overlays[0]["image"]
    status, body = _get(base + "/gradio_api/file=" + urllib.parse.quote(served.path if hasattr(served, "path") else served["path"]))
    assert status == 200 and body[:2] == b"\xff\xd8"  # the JPEG overlay from Gradio's cache


def test_api_payload_pointing_at_a_server_file_is_refused(app_server):
    """A client that sends a server path instead of uploading gets no prediction on that file."""
    base = app_server.url.rstrip("/")
    for path in ("/etc/passwd", str(app_server.checkpoints / "cnn_base" / CARD_FILE), str(REPO / "app.py")):
        payload = {"data": [{"path": path, "meta": {"_type": "gradio.FileData"}}, "", "predicted", 0.5]}
        req = urllib.request.Request(base + "/gradio_api/call/predict", data=json.dumps(payload).encode(),
                                     headers={"Content-Type": "application/json"}, method="POST")
        with urllib.request.urlopen(req, timeout=20) as r:
            event_id = json.load(r)["event_id"]
        with urllib.request.urlopen(f"{base}/gradio_api/call/predict/{event_id}", timeout=60) as r:
            stream = r.read().decode()
        assert "event: error" in stream and '"label"' not in stream, f"{path}: {stream[:300]}"
        assert "Traceback" not in stream


def test_compare_tab_refuses_payload_paths_outside_uploads_and_examples(tmp_path):
    from har_demo.ui.callbacks import upload_path

    outside = tmp_path / "secret.jpg"
    Image.new("RGB", (8, 8)).save(outside)
    for path in (str(outside), "/etc/passwd", f"{examples_dir()}/../app.py"):
        with pytest.raises(HarError, match="not an uploaded file"):
            upload_path({"path": path})
    assert upload_path({"path": example_photo()}) == str(Path(example_photo()).resolve())


# ---- batch zips: temporary, limited, cleaned up -------------------------------------------------------
def _class_zip(path: Path, extra: dict[str, bytes] | None = None) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        for k, cls in enumerate(CLASSES):
            buf = io.BytesIO()
            Image.new("RGB", (16, 12), (60 * k, 90, 30)).save(buf, "JPEG")
            zf.writestr(f"{cls}/a.jpg", buf.getvalue())
        for name, data in (extra or {}).items():
            zf.writestr(name, data)
    return path


@pytest.mark.parametrize("bad", [None, "../escape.jpg"])
def test_batch_zip_goes_to_a_temp_dir_with_limits_and_is_removed(tmp_path, monkeypatch, bad):
    from tests.test_ui_support import tiny_bank

    bank = tiny_bank(tmp_path / "ck")
    seen = []
    real = zipdata.extract_zip_dataset

    def spy(zip_path, dest_dir, **limits):
        seen.append((Path(dest_dir), limits))
        return real(zip_path, dest_dir, **limits)

    monkeypatch.setattr(zipdata, "extract_zip_dataset", spy)
    monkeypatch.setattr("tempfile.tempdir", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    z = _class_zip(tmp_path / "upload.zip", {bad: b"\xff\xd8"} if bad else None)
    if bad:
        with pytest.raises(DataError, match="path traversal"):
            bt.evaluate_batch(bank, [str(z)], ["fnn"])
    else:
        assert bt.evaluate_batch(bank, [str(z)], ["fnn"]).reports["fnn"]["n"] == len(CLASSES)
    (dest, limits), = seen
    assert (tmp_path / "tmp") in dest.parents and dest.parent.name.startswith("har_batch_")
    assert limits.pop("max_files") == bt.MAX_IMAGES
    budget = limits.pop("budget")  # one budget shared by every upload of the request
    assert limits == {} and (budget.max_files, budget.max_bytes) == (bt.MAX_IMAGES, bt.BATCH_MAX_BYTES)
    defaults = {k: v.default for k, v in inspect.signature(real).parameters.items() if v.default is not inspect.Parameter.empty}
    assert 0 < defaults["max_total_bytes"] <= 2**30 and 0 < defaults["max_ratio"] <= 1000
    assert not dest.parent.exists(), "the extracted batch was left behind"
    assert not list((tmp_path / "tmp").rglob("*.jpg")) and not (tmp_path / "escape.jpg").exists()


def test_running_app_leaves_no_extracted_batch_behind(app_server, tmp_path):
    from gradio_client import Client, handle_file

    client = Client(app_server.url, verbose=False, analytics_enabled=False)
    good = _class_zip(tmp_path / "good.zip")
    evil = _class_zip(tmp_path / "evil.zip", {"../../escape.jpg": b"\xff\xd8"})
    summary, _ = client.predict([handle_file(str(good))], "fnn", api_name="/batch")
    assert summary["images"] == len(CLASSES)
    with pytest.raises(Exception, match="path traversal"):
        client.predict([handle_file(str(evil))], "fnn", api_name="/batch")
    leftovers = [p for p in app_server.tmp.rglob("*") if "har_batch_" in str(p) and not p.name.endswith(".csv")]
    assert leftovers == [] and not list(app_server.tmp.parent.rglob("escape.jpg"))
    shutil.rmtree(tmp_path, ignore_errors=True)
