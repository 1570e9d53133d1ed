"""Per-person answers on real multi-person photos (examples/, CC BY / CC BY-SA, examples/LICENSES.md):
person-centred models answer once per person (views built by hand here), maps and drift per person
(drift recomputed here from the map and the mask), ``predict --people``, the API's ``people`` list,
and the compact verdict line. Tiny random models: the numbers, not the accuracy, are under test."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from har_demo.cli import main
from har_demo.data.io import load_image
from har_demo.evaluate import people_counts
from har_demo.explain.people import explain_people, per_person, person_rows, verdict_line
from har_demo.labels import CLASSES
from har_demo.models.base import View
from har_demo.models.checkpoint import save_checkpoint
from har_demo.person import finder
from har_demo.person.multi import find_people
from har_demo.testing import REPO_ROOT, random_model

pytestmark = pytest.mark.skipif(finder.available() is not None, reason="mediapipe not installed")
STANDS = REPO_ROOT / "examples" / "sitting_stands.jpg"  # spectators in the stands: several people
WOODS = REPO_ROOT / "examples" / "standing_woods.jpg"  # two men standing


@pytest.fixture(scope="module")
def stands():
    im = load_image(STANDS)
    people = find_people(im)
    assert len(people) >= 3  # the photo shows a row of spectators
    return im, people


def _models():
    torch.manual_seed(0)
    return {"effnet_person": random_model("effnet_person", tiny=True), "pose_mlp": random_model("pose_mlp", tiny=True),
            "cnn_crop": random_model("cnn_base", tiny=True, person_crop=True), "cnn_base": random_model("cnn_base", tiny=True)}  # fmt: skip


@pytest.fixture(scope="module")
def models():
    return _models()


def _by_hand(model, image, person):
    """The model's view of one person, written out: the crop of its box (person_crop) or the whole photo."""
    if model.person_crop:
        x0, y0, x1, y1 = person.box
        return View(image.crop((x0, y0, x1, y1)), (x0, y0, x1, y1), person)
    return View(image, (0, 0, image.width, image.height), person)


@pytest.mark.parametrize("name", ["effnet_person", "pose_mlp", "cnn_crop"])
def test_person_centred_models_answer_once_per_person(models, stands, name):
    model = models[name]
    im, people = stands
    assert per_person(model)
    probs = model.predict_people(im, people)
    assert probs.shape == (len(people), len(CLASSES))
    for i, person in enumerate(people):
        expected = model.predict_views([_by_hand(model, im, person)])[0]
        np.testing.assert_allclose(probs[i], expected, atol=1e-5)
    assert np.abs(probs - probs[0]).max() > 1e-4  # different people, different answers


def test_whole_photo_models_have_no_per_person_answer(models, stands):
    im, people = stands
    assert not per_person(models["cnn_base"])
    with pytest.raises(ValueError):
        person_rows(models["cnn_base"], im, people)


def test_maps_and_drift_per_person(models, stands):
    model = models["cnn_crop"]
    im, people = stands
    rows = explain_people(model, im, people, "gradcam")
    assert [r["index"] for r in rows] == list(range(1, len(people) + 1))
    for row, person in zip(rows, people):
        sal = row["saliency"]
        assert sal.shape == (im.height, im.width)
        x0, y0, x1, y1 = person.box
        outside = sal.copy()
        outside[y0:y1, x0:x1] = 0
        assert float(outside.max()) == 0.0  # a crop model's map lies in its person's box
        total = float(np.clip(sal, 0, None).sum())
        assert total > 0
        # the drift numbers, recomputed: energy inside this person's mask / inside its box
        inside_mask = float(np.clip(sal, 0, None)[person.mask > 0.5].sum())
        inside_box = float(np.clip(sal, 0, None)[y0:y1, x0:x1].sum())
        assert row["person_share"] == pytest.approx(inside_mask / total, abs=1e-6)
        assert row["box_share"] == pytest.approx(inside_box / total, abs=1e-6)
        assert row["box_share"] == pytest.approx(1.0)  # the map is all inside the box (see above)
        # against chance over this person's view (the box): mask area in the box / box area
        chance = float((person.mask[y0:y1, x0:x1] > 0.5).sum()) / ((y1 - y0) * (x1 - x0))
        assert row["person_chance"] == pytest.approx(chance, abs=1e-6)
        assert row["person_lift"] == pytest.approx(inside_mask / total / chance, rel=1e-6)
        np.testing.assert_allclose([row["probs"][c] for c in CLASSES], model.predict_people(im, [person])[0], atol=1e-4)
    boxes = {tuple(r["box"]) for r in rows}
    assert len(boxes) == len(people)


def test_verdict_line_and_people_counts():
    rows = [{"index": 1, "label": "sitting", "probs": {"sitting": 0.94, "standing": 0.05, "walking_running": 0.01}},
            {"index": 2, "label": "walking_running", "probs": {"sitting": 0.1, "standing": 0.09, "walking_running": 0.81}}]  # fmt: skip
    assert verdict_line(rows) == "1: sitting 94 %, 2: walking/running 81 %"
    assert people_counts([0, 1, 3, 2, 1]) == {"people": 7, "none": 1, "one": 2, "several": 2, "n": 5}


@pytest.fixture
def ckpt_root(tmp_path, monkeypatch):
    root = tmp_path / "checkpoints"
    for name, model in _models().items():
        if name in ("pose_mlp", "cnn_base"):
            save_checkpoint(model, root / name)
    monkeypatch.setenv("HAR_CHECKPOINT_DIR", str(root))
    return root


def test_predict_people_gives_a_row_per_person(ckpt_root, capsys):
    assert main(["predict", "--people", "--json", "--model", "pose_mlp", str(WOODS), str(STANDS)]) == 0
    rows = json.loads(capsys.readouterr().out)
    for path in (WOODS, STANDS):
        people = find_people(load_image(path))
        mine = [r for r in rows if r["path"] == str(path)]
        assert [r["person"] for r in mine] == list(range(1, len(people) + 1))
        assert [r["box"] for r in mine] == [list(p.box) for p in people]  # photos < 1024 px: photo pixels as found
        assert all(r["people"] == len(people) and r["label"] == max(r["probs"], key=r["probs"].get) for r in mine)
    assert len([r for r in rows if r["path"] == str(WOODS)]) == 2


def test_predict_people_with_a_whole_photo_model_is_one_row_per_photo(ckpt_root, capsys):
    assert main(["predict", "--people", "--json", "--model", "cnn_base", str(WOODS)]) == 0
    (row,) = json.loads(capsys.readouterr().out)
    assert row["person"] is None and row["box"] is None and row["people"] == 2


@pytest.fixture(scope="module")
def people_bank(tmp_path_factory):
    """A model bank with a whole-photo model (cnn_base) and a person-centred one (pose_mlp), tiny."""
    from har_demo.models.registry import get_spec
    from har_demo.ui.bank import ModelBank
    from tests.test_ui_support import tiny_env

    root = tmp_path_factory.mktemp("people_ckpt")
    for name in ("cnn_base", "pose_mlp"):
        torch.manual_seed(0)
        save_checkpoint(random_model(name, **get_spec(name).tiny_config()), root / name, card={"data": {"source": "tiny test"}})
    with tiny_env(root):
        return ModelBank.load()


def test_api_predict_lists_every_person_with_the_person_models_verdicts(people_bank, tmp_path_factory, monkeypatch):
    from PIL import Image

    from har_demo.ui import analysis as an
    from har_demo.ui.api import Api

    monkeypatch.setenv("GRADIO_TEMP_DIR", str(tmp_path_factory.getbasetemp()))
    path = tmp_path_factory.getbasetemp() / "stands.jpg"
    path.write_bytes(STANDS.read_bytes())
    result, _ = Api(people_bank).predict(str(path), "", "predicted", 0.5)
    json.dumps(result)
    image = Image.fromarray(an.analyse(people_bank, str(path)).image)
    people = find_people(image)
    assert len(result["people"]) == len(people) >= 3
    pose = people_bank.require("pose_mlp").model
    for rec, person in zip(result["people"], people):
        assert [m["model"] for m in rec["models"]] == ["pose_mlp"]  # cnn_base judges the whole photo: not per person
        (m,) = rec["models"]
        probs = pose.predict_people(image, [person])[0]
        assert m["label"] == CLASSES[int(np.argmax(probs))]
        assert m["probs"][m["label"]] == pytest.approx(float(probs.max()), abs=1e-3)
        assert "saliency" not in m
    assert [r["index"] for r in result["people"]] == list(range(1, len(people) + 1))


def test_evaluate_judges_one_person_per_photo_and_counts_the_people(models):
    from har_demo.data.datasets import Sample
    from har_demo.evaluate import evaluate_model, format_report

    photos = {"standing": WOODS, "sitting": STANDS, "walking_running": REPO_ROOT / "examples" / "sitting_table.jpg"}
    samples = [Sample(str(p), label, str(p)) for label, p in photos.items()]
    rep = evaluate_model(models["pose_mlp"], samples)
    counts = [len(find_people(load_image(p))) for p in photos.values()]
    assert counts[0] == 2 and counts[1] >= 3  # two men in the woods, a row of spectators
    assert rep["n"] == 3 and rep["probs"].shape == (3, len(CLASSES))  # one answer per photo
    assert rep["people"] == {"people": sum(counts), "none": counts.count(0), "one": counts.count(1),
                             "several": sum(c > 1 for c in counts), "n": 3}  # fmt: skip
    assert f"people found (every person): {sum(counts)} in 3 photos" in format_report(rep)


def test_app_numbers_the_people_and_lists_their_verdicts(people_bank):
    from PIL import Image

    from har_demo.person.draw import person_colour
    from har_demo.ui import analysis as an
    from har_demo.ui.render import verdict_markdown

    analysis = an.analyse(people_bank, str(STANDS))
    image = Image.fromarray(analysis.image)
    people = find_people(image)
    assert len(analysis.everyone) == len(people) >= 3
    probs = people_bank.require("pose_mlp").model.predict_people(image, people)
    expected = ", ".join(f"{i}: {CLASSES[int(np.argmax(p))].replace('_', '/')} {100 * p.max():.0f} %" for i, p in enumerate(probs, 1))
    assert f"pose_mlp: {expected}." in verdict_markdown(analysis, "cnn_base", {})  # the only person-centred model
    assert analysis.cards["cnn_base"].label in CLASSES  # the photo-level cards are still there
    view = an.photo_view(analysis)
    for i, person in enumerate(people):  # each box drawn in its own colour along its top edge
        x0, y0, x1, _ = person.box
        edge = view[y0, x0 + (x1 - x0) // 2]
        assert tuple(int(v) for v in edge) == person_colour(i)


@pytest.mark.parametrize("name", ["effnet_person", "cnn_crop"])
def test_batched_gradcam_equals_one_person_at_a_time(models, stands, name):
    """The batched Grad-CAM (every person in one pass) against captum's, one person at a time."""
    from har_demo.explain.base import make_explainer

    model = models[name]
    im, people = stands
    explainer = make_explainer("gradcam", model)
    together = explainer.explain_people(model, im, people)
    for person, exp in zip(people, together):
        alone = make_explainer("gradcam", model).explain(model, im, person=person)
        (single,) = explainer.explain_people(model, im, [person])
        np.testing.assert_array_equal(single.saliency, alone.saliency)  # a batch of one: exactly captum's map
        assert exp.target == alone.target and exp.view_box == alone.view_box
        np.testing.assert_allclose(exp.probs, alone.probs, atol=1e-5)
        # in a batch the convolutions sum in another order: float noise, which the per-map
        # normalisation of these random tiny models' faint maps can magnify at a few pixels
        assert float(np.abs(exp.saliency - alone.saliency).mean()) < 0.01
    assert any(float(e.saliency.max()) > 0 for e in together)
