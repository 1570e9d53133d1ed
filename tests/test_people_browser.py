"""Real browser, several people: upload the spectators photo (examples/sitting_stands.jpg, CC BY
2.0, examples/LICENSES.md), press Analyse, and the note under the photo lists every numbered person
with the person-centred model's verdict, the same as the library's line; a screenshot is saved.
Skips where Chromium or mediapipe is missing (see tests/test_ui_browser.py)."""

from __future__ import annotations

import time

import pytest
import torch

from har_demo.person import finder
from tests.test_ui_browser import _browser_or_skip, serve_app, start_chrome
from tests.test_ui_support import example_photo

pytestmark = [pytest.mark.browser, pytest.mark.slow,
              pytest.mark.skipif(finder.available() is not None, reason="mediapipe not installed")]  # fmt: skip


@pytest.fixture(scope="module")
def people_app(tmp_path_factory):
    from har_demo.models.checkpoint import save_checkpoint
    from har_demo.models.registry import get_spec
    from har_demo.testing import random_model
    from har_demo.ui.bank import ModelBank
    from tests.test_ui_support import tiny_env

    binary, driver = _browser_or_skip()
    root = tmp_path_factory.mktemp("people_ckpt")
    for name in ("cnn_base", "pose_mlp"):
        torch.manual_seed(0)
        save_checkpoint(random_model(name, **get_spec(name).tiny_config()), root / name, card={"data": {"source": "tiny test"}})
    with tiny_env(root):
        bank = ModelBank.load()
    with serve_app(bank) as (url, bank):
        yield url, bank, binary, driver


def test_numbered_people_and_their_verdicts_in_the_page(people_app, tmp_path):
    from PIL import Image
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as EC
    from selenium.webdriver.support.ui import WebDriverWait

    from har_demo.ui import analysis as an

    url, bank, binary, driver_path = people_app
    photo = example_photo("sitting_stands.jpg")
    ref = an.analyse(bank, photo)
    line = an.people_line(ref.people)
    assert len(ref.everyone) >= 3 and line.startswith("1: ") and "3: " in line
    driver = start_chrome(binary, driver_path, tmp_path / "chrome-profile")
    try:
        wait = WebDriverWait(driver, 120)
        driver.get(url)
        upload = wait.until(EC.presence_of_element_located((By.CSS_SELECTOR, "#photo input[type=file]")))
        upload.send_keys(photo)
        wait.until(EC.presence_of_element_located((By.CSS_SELECTOR, "#photo img")))
        driver.find_element(By.CSS_SELECTOR, "#analyse").click()
        wait.until(lambda d: "1: " in d.find_element(By.ID, "verdict").text)
        note = driver.find_element(By.ID, "verdict").text  # the per-person list sits in the headline
        assert line in note, note
        driver.execute_script("window.scrollTo(0, 0)")
        time.sleep(0.5)
        shot = tmp_path / "people.png"
        assert driver.save_screenshot(str(shot)) and Image.open(shot).size[0] > 500
        print(f"screenshot: {shot}")
    finally:
        driver.quit()
