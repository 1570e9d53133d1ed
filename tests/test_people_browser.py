"""Real browser, several people: upload the spectators photo (examples/sitting_stands.jpg, CC BY
2.0, examples/LICENSES.md), press Analyse, and the headline lists every numbered person with the
person-centred model's verdict, the same as the library's line. Then pick person 2 - by clicking
them on the photo (desktop) or in the "Person" choice under the photo (a 390 x 844 phone) - and the
person-centred cards show person 2 (the library's per-person prediction for person 2), the
whole-photo card says it answers once per photo, and the phone layout stays one column without
sideways scrolling. Screenshots go to ``$HAR_SCREENS_DIR`` when set, else the test's temp dir.
Skips where Chromium or mediapipe is missing (see tests/test_ui_browser.py)."""

from __future__ import annotations

import contextlib
import os
import time
from pathlib import Path

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
    for name in ("cnn_base", "pose_mlp", "effnet_person"):
        torch.manual_seed(0)
        save_checkpoint(random_model(name, **get_spec(name).tiny_config()), root / name, card={"data": {"source": "tiny test"}})
    with tiny_env(root):
        bank = ModelBank.load()
    with serve_app(bank) as (url, bank):
        yield url, bank, binary, driver


def test_numbered_people_and_their_verdicts_in_the_page(people_app, tmp_path):
    from PIL import Image
    from selenium.webdriver.common.by import By

    from har_demo.ui import analysis as an

    url, bank, binary, driver_path = people_app
    photo = example_photo("sitting_stands.jpg")
    ref = an.analyse(bank, photo)
    line = an.people_line(ref.people)
    assert len(ref.everyone) >= 3 and line.startswith("1: ") and "3: " in line
    driver = start_chrome(binary, driver_path, tmp_path / "chrome-profile")
    try:
        _analyse_stands(driver, url, photo)
        note = driver.find_element(By.ID, "verdict").text  # the per-person list sits in the headline
        assert line in note, note
        driver.execute_script("window.scrollTo(0, 0)")
        time.sleep(0.5)
        shot = tmp_path / "people.png"
        assert driver.save_screenshot(str(shot)) and Image.open(shot).size[0] > 500
        print(f"screenshot: {shot}")
    finally:
        driver.quit()


PERSON_MODELS = ("pose_mlp", "effnet_person")


def _screens(tmp_path: Path) -> Path:
    out = Path(os.environ.get("HAR_SCREENS_DIR") or tmp_path)
    out.mkdir(parents=True, exist_ok=True)
    return out


@contextlib.contextmanager
def _viewport(binary, driver_path, profile, width: int, height: int):
    """Headless Chromium whose *viewport* is width x height."""
    driver = start_chrome(binary, driver_path, profile, window_size=False)
    try:
        driver.set_window_size(width, height)
        inner = driver.execute_script("return [window.innerWidth, window.innerHeight]")
        driver.set_window_size(2 * width - inner[0], 2 * height - inner[1])
        yield driver
    finally:
        driver.quit()


def _analyse_stands(driver, url, photo):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as EC
    from selenium.webdriver.support.ui import WebDriverWait

    wait = WebDriverWait(driver, 120)
    driver.get(url)
    upload = wait.until(EC.presence_of_element_located((By.CSS_SELECTOR, "#photo input[type=file]")))
    upload.send_keys(photo)
    wait.until(EC.presence_of_element_located((By.CSS_SELECTOR, "#photo img")))
    driver.find_element(By.CSS_SELECTOR, "#analyse").click()
    wait.until(lambda d: "1: " in d.find_element(By.ID, "verdict").text and d.find_elements(By.CSS_SELECTOR, "#photo-view img"))
    wait.until(lambda d: d.find_element(By.ID, "person-pick").is_displayed())
    return wait


def _card_percents(driver, name: str) -> dict[str, int]:
    """The class -> whole-percent pairs the card's probability bars show."""
    rows = driver.execute_script(
        "return [...document.querySelectorAll(arguments[0])].map(r => r.innerText.trim().split(/\\s+/));",
        f"#card-{name} .har-probs .confidence-set")
    return {r[0]: int(r[-1].rstrip("%")) for r in rows if len(r) >= 2 and r[-1].endswith("%")}


def _expected_percents(ref, index: int) -> dict[str, dict[str, int]]:
    """The library's per-person prediction (``people_cards``) for person ``index``, as whole percents."""
    rec = ref.people[index - 1]
    return {m["model"]: {c: round(100 * v) for c, v in m["probs"].items()} for m in rec["models"] if "probs" in m}


def _shows_person(driver, name: str, expected: dict[str, int]) -> bool:
    text = driver.find_element("css selector", f"#card-{name}").text
    return "About person 2" in text and _card_percents(driver, name) == expected


def test_a_click_on_person_2_shows_their_cards(people_app, tmp_path):
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By

    from har_demo.ui import analysis as an

    url, bank, binary, driver_path = people_app
    photo = example_photo("sitting_stands.jpg")
    ref = an.analyse(bank, photo)
    expected = _expected_percents(ref, 2)
    assert set(expected) == set(PERSON_MODELS) and expected != _expected_percents(ref, 1)  # person 2 answers otherwise
    ys, xs = (ref.everyone[1].mask > 0.5).nonzero()
    i = ((xs - xs.mean()) ** 2 + (ys - ys.mean()) ** 2).argmin()
    x, y = int(xs[i]), int(ys[i])  # on person 2's body, working-image pixels (the photo view's own)
    assert an.people_line(ref.people).startswith("1: ")
    with _viewport(binary, driver_path, tmp_path / "chrome-profile", 1400, 1000) as driver:
        wait = _analyse_stands(driver, url, photo)
        before = {n: _card_percents(driver, n) for n in PERSON_MODELS}
        img = driver.find_element(By.CSS_SELECTOR, "#photo-view img")
        # Gradio reads the click against the image's natural size, the picture centred in the element (object-fit: contain)
        r = driver.execute_script("const i = arguments[0], b = i.getBoundingClientRect();"
                                  "return {w: b.width, h: b.height, nw: i.naturalWidth, nh: i.naturalHeight};", img)
        scale = max(r["nw"] / r["w"], r["nh"] / r["h"])
        dx = x / scale + (r["w"] - r["nw"] / scale) / 2 - r["w"] / 2
        dy = y / scale + (r["h"] - r["nh"] / scale) / 2 - r["h"] / 2
        ActionChains(driver).move_to_element_with_offset(img, round(dx), round(dy)).click().perform()
        wait.until(lambda d: "Cards about person 2" in d.find_element(By.ID, "verdict").text)
        for name in PERSON_MODELS:
            wait.until(lambda d, n=name: _shows_person(d, n, expected[n]))
        assert {n: _card_percents(driver, n) for n in PERSON_MODELS} != before
        assert "One answer for the whole photo" in driver.find_element(By.ID, "card-cnn_base").text
        checked = driver.execute_script("const c = document.querySelector('#person-pick input:checked'); return c && c.value")
        assert checked == "2", checked  # the choice follows the click
        assert "First corner" not in driver.find_element(By.ID, "status").text  # a click on a person is no box corner
        time.sleep(0.8)
        driver.execute_script("window.scrollTo(0, 0)")
        shot = _screens(tmp_path) / "people_pick_desktop.png"
        assert driver.save_screenshot(str(shot))
        print(f"screenshot: {shot}")


def test_picking_person_2_on_a_phone_keeps_the_layout(people_app, tmp_path):
    from selenium.webdriver.common.by import By

    from har_demo.ui import analysis as an

    url, bank, binary, driver_path = people_app
    photo = example_photo("sitting_stands.jpg")
    expected = _expected_percents(an.analyse(bank, photo), 2)
    with _viewport(binary, driver_path, tmp_path / "chrome-profile", 390, 844) as driver:
        wait = _analyse_stands(driver, url, photo)
        choice = driver.find_element(By.CSS_SELECTOR, "#person-pick input[value='2']")
        driver.execute_script("arguments[0].scrollIntoView({block: 'center'})", choice)
        driver.execute_script("arguments[0].closest('label').click()", choice)
        wait.until(lambda d: "Cards about person 2" in d.find_element(By.ID, "verdict").text)
        for name in PERSON_MODELS:
            wait.until(lambda d, n=name: _shows_person(d, n, expected[n]))
        top = lambda css: driver.execute_script("return document.querySelector(arguments[0]).getBoundingClientRect().top + window.scrollY", css)
        order = ["#photo", "#analyse", "#verdict", "#photo-view", "#person-pick", "#best-map", "#cards", "#examples", "#settings"]
        tops = [top(css) for css in order]
        assert tops == sorted(tops), dict(zip(order, tops))  # one column, the choice right after the photo
        layout = driver.execute_script(
            "const p = document.querySelector('#person-pick').getBoundingClientRect();"
            "const cards = [...document.querySelectorAll('#cards .har-card')].filter(e => e.offsetParent);"
            "const opts = [...document.querySelectorAll('#person-pick label')].map(l => l.getBoundingClientRect());"
            "return {scroll: document.scrollingElement.scrollWidth, pickLeft: p.left, pickRight: p.right, pickH: p.height,"
            " cards: cards.map(e => e.getBoundingClientRect().width), optRows: new Set(opts.map(o => Math.round(o.top))).size};")
        assert layout["scroll"] <= 390, layout  # no sideways scrolling
        assert 0 <= layout["pickLeft"] and layout["pickRight"] <= 390 and layout["optRows"] == 1, layout  # "auto 1 2 3 4" on one row
        assert layout["cards"] and all(w >= 300 for w in layout["cards"]), layout
        driver.execute_script("document.querySelector('#verdict').scrollIntoView()")
        time.sleep(0.8)
        shot = _screens(tmp_path) / "people_pick_phone.png"
        assert driver.save_screenshot(str(shot))
        driver.execute_script("document.querySelector('#card-pose_mlp').scrollIntoView()")
        time.sleep(0.5)
        assert driver.save_screenshot(str(_screens(tmp_path) / "people_pick_phone_cards.png"))
        print(f"screenshot: {shot}")
