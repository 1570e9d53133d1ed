"""UI text and examples live outside the code; the example photos are small, real and credited."""

from __future__ import annotations

import json
import re
import string

import pytest
from PIL import Image

from har_demo.labels import CLASSES
from har_demo.models.registry import MODELS
from har_demo.ui import text
from tests.test_ui_support import REPO

ALLOWED_LICENCES = ("creativecommons.org/licenses/by/", "creativecommons.org/licenses/by-sa/", "flickr.com/commons", "usa.gov/copyright")


def test_every_message_formats_with_its_fields():
    for key, template in text.strings()["messages"].items():
        fields = {name: spec for _, name, spec, _ in string.Formatter().parse(template) if name}
        assert text.msg(key, **{f: 0.5 if spec else "x" for f, spec in fields.items()})  # numbers where a format is given


def test_every_model_has_a_how_to_enable_hint():
    for spec in MODELS.values():
        hint = spec.enable_hint()
        assert hint and ("HAR_" in hint) and spec.name in hint, spec.name


def test_examples_cover_every_class_and_exist():
    found = text.examples()
    spec = json.loads((text.UI_DIR / "examples.json").read_text())
    assert len(found) == len(spec["examples"]) >= 4
    assert {e["label"] for e in found} == set(CLASSES)
    assert text.examples_dir() == (REPO / "examples").resolve()


@pytest.mark.parametrize("entry", json.loads((text.UI_DIR / "examples.json").read_text())["examples"], ids=lambda e: e["file"])
def test_example_photo_is_small_real_and_credited(entry):
    path = REPO / "examples" / entry["file"]
    assert path.stat().st_size < 80_000
    with Image.open(path) as im:
        assert im.format == "JPEG" and max(im.size) <= 512 and min(im.size) >= 200
    licences = (REPO / "examples" / "LICENSES.md").read_text()
    row = next((line for line in licences.splitlines() if f"`{entry['file']}`" in line), None)
    assert row, f"{entry['file']} is not credited in examples/LICENSES.md"
    coco_id = re.search(r"COCO (\d+)", entry["caption"]).group(1)
    assert coco_id in row and "flickr.com" in row and "cocodataset.org" in row
    assert any(lic in row for lic in ALLOWED_LICENCES), row
    assert "-nc" not in row and "-nd" not in row
    assert f"({entry['label']})" in row


def test_help_text_mentions_every_control():
    help_md = text.help_markdown()
    for word in ("Opacity", "person box", "drift", "Close call", "Looked at the person", "never saw", "Batch", "/predict"):
        assert word.lower() in help_md.lower(), word
