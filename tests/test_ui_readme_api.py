"""The README's API snippet, run as written (only the address changed) with ``gradio_client``
against a started app with the six models that ship (tiny weights, cards with measured
unseen-source accuracies), and the README's count of models that cannot run here."""

from __future__ import annotations

import contextlib
import io
import json
import re
from pathlib import Path

import pytest

from tests.test_ui_first_screen_browser import ACCURACY, _write_six
from tests.test_ui_support import REPO, tiny_env

pytestmark = [pytest.mark.slow]

README = REPO / "README.md"


def readme_api_snippet() -> str:
    text = README.read_text(encoding="utf-8")
    section = text.split("### API (gradio_client)", 1)[1]
    return re.search(r"```python\n(.*?)```", section, re.DOTALL).group(1)


@pytest.fixture(scope="module")
def started(tmp_path_factory):
    from har_demo.ui.bank import ModelBank
    from tests.test_ui_browser import serve_app

    root = _write_six(tmp_path_factory.mktemp("ckpt"))
    for name, acc in ACCURACY.items():
        path = root / name / "card.json"
        card = json.loads(path.read_text())
        card["unseen_source_accuracy"] = acc
        card["calibration"] = {"temperature": 1.25, "test": {"n": 80, "ece_before": 0.2, "ece_after": 0.1}}
        path.write_text(json.dumps(card))
    with tiny_env(root), serve_app(ModelBank.load()) as (url, bank):
        yield url, bank


def _decimals(value: float) -> int:
    text = repr(value)
    return len(text.split(".")[1]) if "." in text and "e" not in text else 0


def test_readme_api_snippet_runs_as_written(started, monkeypatch):
    url, bank = started
    code = readme_api_snippet()
    assert 'Client("http://127.0.0.1:7860/")' in code
    monkeypatch.chdir(REPO)  # the README: "run these from the repository root"
    out = io.StringIO()
    scope: dict = {}
    with contextlib.redirect_stdout(out):
        exec(compile(code.replace("http://127.0.0.1:7860/", url), "README.md", "exec"), scope)  # noqa: S102 - the README's own code
    result, listing = scope["result"], scope["client"].predict(api_name="/models")
    # rows ordered as the cards: by the cards' unseen-source accuracy, computed here from the test's own table
    expected = sorted(ACCURACY, key=lambda n: -ACCURACY[n]["accuracy"])
    assert [r["model"] for r in result["models"]] == expected
    lead = result["headline"]
    assert lead["model"] == expected[0] == "cnn_base" and "62 %" in lead["why"]
    top = next(r for r in result["models"] if r["model"] == "cnn_base")
    assert lead["label"] == top["label"] and lead["probability"] == top["probs"][top["label"]]
    for row in result["models"]:
        acc = ACCURACY[row["model"]]
        assert row["unseen_source_accuracy"]["accuracy"] == pytest.approx(acc["accuracy"])
        assert row["unseen_source_accuracy"]["ci95"] == pytest.approx(acc["ci95"])
        assert row["near_chance"] == (acc["accuracy"] < 0.45)  # three classes: 1/3 by guessing, marked below 0.45
        margin = row["ambiguity"]["margin"]
        ranked = sorted(row["probs"].values(), reverse=True)
        assert margin == pytest.approx(ranked[0] - ranked[1], abs=2e-4) and _decimals(margin) <= 4  # rounded like the rest
        assert all(_decimals(p) <= 4 for p in row["probs"].values())
        assert row["pose"] == result["models"][0]["pose"] and len(row["pose"]) > 10
    printed = [line for line in out.getvalue().splitlines() if not line.startswith("Loaded as API")]
    assert printed[0].startswith(f"cnn_base {lead['label']} ")  # the snippet's first print: the headline
    models = {m["name"]: m for m in listing}
    assert set(models) == set(bank.names())
    for name, acc in ACCURACY.items():
        assert models[name]["unseen_source_accuracy"]["accuracy"] == pytest.approx(acc["accuracy"])
        assert models[name]["calibration"] == {"temperature": 1.25, "test_ece_before": 0.2, "test_ece_after": 0.1, "helped": True}
        assert models[name]["summary"].startswith(bank.get(name).summary)
    assert models["fnn"]["near_chance"] and not models["cnn_base"]["near_chance"]
    assert models["pose_mlp"]["summary"].count("no pixels") == 1  # a pose-only model reads no pixels
    unavailable = [m for m in listing if not m["available"]]
    assert all(m["unseen_source_accuracy"] is None and m["how_to_enable"] for m in unavailable)
    assert scope["summary"]["models"] and Path(scope["csv_path"]).suffix == ".csv"


def test_use_via_api_examples_fetch_a_real_url(started):
    """Gradio's JavaScript example does ``fetch(example.url)``: without a URL it is ``fetch("")``."""
    from gradio_client import Client

    url, _bank = started
    info = Client(url, verbose=False).view_api(return_format="dict", print_info=False)["named_endpoints"]
    for endpoint in ("/predict", "/explain", "/batch"):
        example = info[endpoint]["parameters"][0]["example_input"]
        for item in example if isinstance(example, list) else [example]:
            assert item["url"].startswith("http://images.cocodataset.org/"), endpoint
            assert (REPO / item["path"]).is_file()
    licences = (REPO / "examples" / "LICENSES.md").read_text()
    assert item["url"] in licences  # the shipped photo's documented source


def test_readme_count_of_models_that_cannot_run_here_matches_the_app(monkeypatch):
    """After the README's install without hub weights: the app's folded line says this number."""
    from har_demo.models.loading import availability
    from har_demo.models.registry import MODELS
    from har_demo.ui.bank import ModelEntry
    from har_demo.ui.render import unavailable_markdown

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.delenv("HAR_CHECKPOINT_DIR", raising=False)
    for var in ("HAR_CLIP_PRETRAINED", "HAR_SIGLIP_PRETRAINED", "HAR_VIT_WEIGHTS", "HAR_CLIP_MODEL", "HAR_SIGLIP_MODEL"):
        monkeypatch.delenv(var, raising=False)
    missing = [name for name in MODELS if not availability(name)[0]]
    hub = [n for n in ("clip_zeroshot", "vit") if n not in missing]
    if hub:
        pytest.skip(f"hub weights are cached on this machine ({', '.join(hub)} available): the README counts a fresh install")
    line = unavailable_markdown([ModelEntry(n, MODELS[n].family, "") for n in missing])
    said = re.search(r'"(\d+) more model\(s\) cannot run\s+here', README.read_text(encoding="utf-8"))
    assert said and f"{said.group(1)} more model(s) cannot run here" in line, (said and said.group(1), len(missing))
