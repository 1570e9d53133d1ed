"""Real browser: headless Chromium (Debian ``chromium`` + ``chromium-driver``) drives the page -
upload a photo, press Analyse, wait for the cards, move the opacity slider - and saves a
screenshot under the test's temp dir. Skips (with the reason) where Chromium is not installed."""

from __future__ import annotations

import contextlib
import shutil
import time

import pytest

from tests.test_ui_support import example_photo, free_port, tiny_bank

pytestmark = [pytest.mark.browser, pytest.mark.slow]

CHROMIUM = ("chromium", "chromium-browser", "google-chrome")
FLAGS = (
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--window-size=1500,1200",
)


def _browser_or_skip():
    try:
        from selenium import webdriver  # noqa: F401
    except ImportError:
        msg = "selenium is not installed (pip install -r requirements-dev.txt)"
        print(f"SKIP: {msg}")
        pytest.skip(msg)
    binary = next((shutil.which(b) for b in CHROMIUM if shutil.which(b)), None)
    driver = shutil.which("chromedriver")
    if not binary or not driver:
        msg = "headless Chromium not installed (apt-get install chromium chromium-driver)"
        print(f"SKIP: {msg}; found browser={binary}, chromedriver={driver}")
        pytest.skip(msg)
    return binary, driver


@contextlib.contextmanager
def serve_app(bank):
    """The real app (same launch settings as app.py) for ``bank`` on a free loopback port, in-process."""
    from har_demo.ui import create_app, launch

    demo = create_app(bank)
    port = free_port()
    launch(demo, host="127.0.0.1", port=port, prevent_thread_lock=True, quiet=True)
    try:
        yield f"http://127.0.0.1:{port}/", bank
    finally:
        demo.close()


def start_chrome(binary: str, driver_path: str, profile, window_size: bool = True):
    """Headless Chromium with FLAGS (``window_size=False`` drops the --window-size flag) and its own profile."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    for flag in FLAGS:
        if window_size or not flag.startswith("--window-size"):
            opts.add_argument(flag)
    opts.add_argument(f"--user-data-dir={profile}")
    opts.binary_location = binary
    driver = webdriver.Chrome(service=Service(driver_path), options=opts)
    driver.set_page_load_timeout(60)
    return driver


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """The real app (same launch settings as app.py) on a free loopback port, in-process."""
    binary, driver = _browser_or_skip()
    with serve_app(tiny_bank(tmp_path_factory.mktemp("ckpt"))) as (url, bank):
        yield url, bank, binary, driver


@pytest.fixture
def browser(served, tmp_path):
    url, bank, binary, driver_path = served
    driver = start_chrome(binary, driver_path, tmp_path / "chrome-profile")
    try:
        yield driver, url, bank
    finally:
        driver.quit()


def _overlay_srcs(driver, names):
    from selenium.webdriver.common.by import By

    out = {}
    for name in names:
        imgs = driver.find_elements(By.CSS_SELECTOR, f"#card-{name} img")
        out[name] = imgs[0].get_attribute("src") if imgs else None
    return out


def test_upload_analyse_cards_slider_screenshot(browser, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support import expected_conditions as EC
    from selenium.webdriver.support.ui import WebDriverWait

    driver, url, bank = browser
    names = bank.available_names()
    wait = WebDriverWait(driver, 90)
    driver.get(url)
    upload = wait.until(EC.presence_of_element_located((By.CSS_SELECTOR, "#photo input[type=file]")))
    upload.send_keys(example_photo())
    wait.until(EC.presence_of_element_located((By.CSS_SELECTOR, "#photo img")))
    driver.find_element(By.CSS_SELECTOR, "#analyse").click()

    def cards_ready(d):
        return all(d.find_element(By.ID, f"card-{n}").is_displayed() and _overlay_srcs(d, [n])[n] for n in names)

    wait.until(cards_ready)
    for name in names:
        card = driver.find_element(By.ID, f"card-{name}")
        assert name in card.text, card.text
        assert any(c in card.text for c in ("sitting", "standing", "walking_running"))
    listed = driver.find_element(By.ID, "unavailable").get_attribute("textContent")  # folded: in the page, not shown
    assert all(e.name in listed for e in bank.unavailable())

    before = _overlay_srcs(driver, names)
    driver.find_element(By.CSS_SELECTOR, "#settings button").click()  # the settings fold open
    slider = wait.until(EC.visibility_of_element_located((By.CSS_SELECTOR, "#opacity input[type=range]")))
    slider.click()
    for _ in range(6):
        slider.send_keys(Keys.ARROW_RIGHT)
    wait.until(lambda d: all(src != before[n] for n, src in _overlay_srcs(d, names).items()))
    assert driver.find_element(By.CSS_SELECTOR, "#opacity input[type=number]").get_attribute("value") != "0.5"

    # nothing the page loaded came from outside the app (no web fonts, no CDN, no analytics)
    resources = driver.execute_script("return performance.getEntriesByType('resource').map(e => e.name)")
    outside = [r for r in resources if not r.startswith((url.rstrip("/"), "data:", "blob:"))]
    assert not outside, outside

    driver.execute_script("window.scrollTo(0, 0)")
    time.sleep(0.5)
    shot = tmp_path / "app.png"
    assert driver.save_screenshot(str(shot)) and shot.stat().st_size > 10_000
    print(f"screenshot: {shot}")


def test_a_bad_upload_shows_one_readable_line(browser, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as EC
    from selenium.webdriver.support.ui import WebDriverWait

    driver, url, _bank = browser
    fake = tmp_path / "holiday.jpg"
    fake.write_text("this is a text file, not a photo")
    wait = WebDriverWait(driver, 60)
    driver.get(url)
    upload = wait.until(EC.presence_of_element_located((By.CSS_SELECTOR, "#photo input[type=file]")))
    upload.send_keys(str(fake))
    wait.until(lambda d: "holiday.jpg" in d.find_element(By.ID, "status").text)  # named on upload, before Analyse
    assert "not a recognised image" in driver.find_element(By.ID, "status").text
    driver.find_element(By.CSS_SELECTOR, "#analyse").click()
    wait.until(lambda d: "holiday.jpg" in d.find_element(By.ID, "status").text)
    status = driver.find_element(By.ID, "status").text
    assert "not a recognised image" in status and "Traceback" not in driver.page_source
