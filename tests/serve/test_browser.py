"""The platform in a real browser: Debian's headless Chromium driven by Selenium.

A live uvicorn server (SQLite in a tmp folder, the tiny model of conftest) runs in a thread; the
clinician -> radiologist loop is clicked through as a person would, with the mouse on the canvas
viewer and with the keyboard. Every page must load without a CSP violation or a JavaScript error.

Without ``chromium`` and ``chromedriver`` (``apt-get install chromium chromium-driver``) these tests
skip, and fail under ``CI=true``. ``VCFNET_SCREENSHOTS=docs/figures`` saves a screenshot of each
main page there (the README's figures).
"""

from __future__ import annotations

import os
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image

from tests.conftest import require_or_skip
from tests.io.dicom_fixtures import write_dicom
from tests.serve import conftest as serve
from vcfnet.serve.app import create_app

pytestmark = pytest.mark.browser

CHROMIUM = os.environ.get("VCFNET_CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("VCFNET_CHROMEDRIVER", "/usr/bin/chromedriver")
WINDOW = (1280, 800)
WAIT_S = 10.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def serving(app) -> Iterator[SimpleNamespace]:
    """``app`` served by uvicorn on 127.0.0.1 in a background thread: ``url`` and ``app``."""
    import uvicorn

    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + WAIT_S
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.02)
    try:
        yield SimpleNamespace(url=f"http://127.0.0.1:{port}", app=app)
    finally:
        server.should_exit = True
        thread.join(WAIT_S)


@pytest.fixture(scope="module")
def live_server(tmp_path_factory, tiny_run_dir) -> Iterator[SimpleNamespace]:
    """The platform (SQLite in a tmp folder, the tiny model) served on loopback."""
    app = create_app(serve.make_settings(tmp_path_factory.mktemp("browser"), tiny_run_dir))
    serve.add_users(app)
    with serving(app) as server:
        yield server


@pytest.fixture(scope="module")
def driver(live_server):
    """Headless Chromium at 1280x800 that keeps the console log."""
    have = Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists()
    have = have or bool(shutil.which("chromium") and shutil.which("chromedriver"))
    require_or_skip(have, "chromium/chromedriver not installed (apt-get install chromium-driver)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM if Path(CHROMIUM).exists() else shutil.which("chromium")
    for arg in (
        "--headless=new",
        "--no-sandbox",  # CI runs as root
        "--disable-dev-shm-usage",
        "--disable-gpu",
        f"--window-size={WINDOW[0]},{WINDOW[1]}",
        "--force-device-scale-factor=1",
        "--lang=en-US",
    ):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    path = CHROMEDRIVER if Path(CHROMEDRIVER).exists() else shutil.which("chromedriver")
    browser = webdriver.Chrome(service=Service(path), options=options)
    # the window's frame is not part of the page: make the viewport itself 1280 x 800
    frame = browser.execute_script(
        "return [window.outerWidth - window.innerWidth, window.outerHeight - window.innerHeight];"
    )
    browser.set_window_size(WINDOW[0] + frame[0], WINDOW[1] + frame[1])
    browser.base_url = live_server.url
    yield browser
    browser.quit()


@pytest.fixture()
def browser(driver):
    """The module's browser, logged out, with an empty console; no console errors at the end."""
    driver.delete_all_cookies()
    driver.get_log("browser")
    yield driver
    assert_clean_console(driver)


# --- helpers ---------------------------------------------------------------------------------


def assert_clean_console(driver) -> None:
    """No CSP violation, JavaScript error or failed request since the last call."""
    problems = [
        entry["message"]
        for entry in driver.get_log("browser")
        if entry["level"] in ("SEVERE", "WARNING")
        or "Content Security Policy" in entry["message"]
        or "Refused to" in entry["message"]
    ]
    assert not problems, "browser console:\n" + "\n".join(problems)


def wait_for(driver, predicate, what: str, timeout: float = WAIT_S):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(
                f"timed out waiting for {what}; page:\n{driver.current_url}\n{css(driver, 'body').text}"
            )
        time.sleep(0.05)


def css(driver, selector: str):
    from selenium.webdriver.common.by import By

    return driver.find_element(By.CSS_SELECTOR, selector)


def go(driver, path: str) -> None:
    driver.get(driver.base_url + path)


def status_text(driver) -> str:
    return css(driver, ".viewer .status").text


def viewer_ready(driver) -> None:
    """Wait until viewer.js has drawn the image (it then writes its status line or table)."""
    wait_for(
        driver,
        lambda: driver.execute_script(
            "const c = document.querySelector('canvas.stage');"
            "return c && c.width > 200 && document.querySelector('.viewer').dataset.ready;"
        ),
        "the viewer to load its image",
    )


def heatmap_loaded(driver) -> None:
    wait_for(
        driver, lambda: css(driver, ".viewer").get_attribute("data-heatmap") == "loaded", "heatmap"
    )


def login(driver, username: str) -> None:
    go(driver, "/login")
    name, password = css(driver, "input[name=username]"), css(driver, "input[name=password]")
    name.send_keys(username)
    password.send_keys(serve.PASSWORD)
    assert name.get_attribute("value") == username
    assert password.get_attribute("value") == serve.PASSWORD
    submit(driver, "form button[type=submit]")
    assert "/login" not in driver.current_url, f"{username} did not log in"


def logout(driver) -> None:
    submit(driver, "header form button[type=submit]")
    assert driver.current_url.endswith("/login")


def submit(driver, selector: str) -> None:
    """Click a submit button (or link) and wait until the next page has loaded."""
    navigate(driver, lambda: css(driver, selector).click(), f"the page after {selector}")


def navigate(driver, action, what: str) -> None:
    """Run ``action`` (a click, Enter in a form) and wait until the page it opens has loaded:
    reading the old page meanwhile would race with the navigation."""
    driver.execute_script("window.previousPage = true;")
    action()
    wait_for(driver, lambda: new_page_loaded(driver), what)


def new_page_loaded(driver) -> bool:
    from selenium.common.exceptions import WebDriverException

    try:
        return driver.execute_script(
            "return !window.previousPage && document.readyState === 'complete';"
        )
    except WebDriverException:  # the old document went away under the call
        return False


def select(driver, selector: str, value: str) -> None:
    from selenium.webdriver.support.ui import Select

    Select(css(driver, selector)).select_by_value(value)


def image_geometry(driver) -> dict:
    """The canvas's rectangle in the viewport and the fitted image's scale and origin in it.

    The viewer fits the image into the canvas and centres it (viewer.js ``fit``); the canvas is
    scrolled fully into view first, since pointer actions take viewport coordinates.
    """
    return driver.execute_script(
        "const c = document.querySelector('canvas.stage');"
        "c.scrollIntoView({block: 'center'});"
        "const r = c.getBoundingClientRect();"
        "const data = JSON.parse(document.getElementById('viewer-data').textContent);"
        "const scale = Math.min(r.width / data.width, r.height / data.height);"
        "return {left: r.left, top: r.top, width: r.width, height: r.height, scale,"
        "  x0: (r.width - data.width * scale) / 2, y0: (r.height - data.height * scale) / 2};"
    )


def to_viewport(driver, x: float, y: float) -> tuple[int, int]:
    """Viewport coordinates of image pixel (x, y) in the freshly fitted viewer."""
    g = image_geometry(driver)
    return (
        round(g["left"] + g["x0"] + x * g["scale"]),
        round(g["top"] + g["y0"] + y * g["scale"]),
    )


def image_to_canvas_fraction(driver, x: float, y: float) -> tuple[float, float]:
    g = image_geometry(driver)
    return (g["x0"] + x * g["scale"]) / g["width"], (g["y0"] + y * g["scale"]) / g["height"]


def canvas_pixel(driver, fx: float, fy: float) -> list[int]:
    """RGBA of the canvas at fractions (fx, fy) of its width and height.

    Read from a one-pixel copy: reading the viewer's own canvas again and again makes Chromium warn
    (willReadFrequently).
    """
    return driver.execute_script(
        "const c = document.querySelector('canvas.stage');"
        "const x = Math.round(c.width * arguments[0]), y = Math.round(c.height * arguments[1]);"
        "const copy = document.createElement('canvas'); copy.width = 1; copy.height = 1;"
        "const ctx = copy.getContext('2d', {willReadFrequently: true});"
        "ctx.drawImage(c, x, y, 1, 1, 0, 0, 1, 1);"
        "return Array.from(ctx.getImageData(0, 0, 1, 1).data);",
        fx,
        fy,
    )


def screenshot(driver, name: str) -> None:
    """With VCFNET_SCREENSHOTS set: save the page as <dir>/platform-<name>.png, palette-reduced."""
    folder = os.environ.get("VCFNET_SCREENSHOTS")
    if not folder:
        return
    path = Path(folder) / f"platform-{name}.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    driver.execute_script("window.scrollTo(0, 0);")
    driver.save_screenshot(str(path))
    image = Image.open(path).convert("RGB")
    image.quantize(colors=128, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE).save(
        path, optimize=True
    )


def spine_dicom(path: Path) -> Path:
    """A synthetic lateral lumbar radiograph: five vertebral bodies, the third one wedged."""
    height, width = 480, 360
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    image = 600 + 900 * np.exp(-(((xx - 180) / 150) ** 2))  # soft tissue
    for i in range(5):
        top, bottom = 40 + i * 84, 40 + i * 84 + 62
        left, right = 120, 250
        wedge = 22 if i == 2 else 0  # L3: anterior wedge, its front (left) edge is lower
        top_at_x = top + wedge * (right - xx) / (right - left)
        body = (xx >= left) & (xx <= right) & (yy >= top_at_x) & (yy <= bottom)
        image = np.where(body, 2600 + 500 * np.exp(-(((xx - 185) / 60) ** 2)), image)
    rng = np.random.default_rng(7)
    image = image + rng.normal(0, 60, image.shape)
    stored = np.clip(image, 0, 4095).astype(np.uint16)
    return write_dicom(path, stored, window=(2000, 4000))


# --- tests -----------------------------------------------------------------------------------


def test_clinician_to_radiologist_loop(browser, tmp_path):
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.actions.action_builder import ActionBuilder

    driver = browser
    go(driver, "/login")
    assert "Research software, not a medical device" in css(driver, ".notice").text
    screenshot(driver, "login")

    # the clinician uploads a DICOM
    login(driver, "clin")
    assert driver.current_url.endswith("/cases")
    submit(driver, "a[href='/cases/new']")
    css(driver, "input[type=file]").send_keys(str(spine_dicom(tmp_path / "spine.dcm")))
    submit(driver, "main form button[type=submit]")
    case_url = driver.current_url
    assert "/cases/" in case_url
    viewer_ready(driver)

    # ... draws a box with the mouse, labels its level and saves
    select(driver, "[data-control=mode]", "draw")
    start, end = to_viewport(driver, 110, 200), to_viewport(driver, 260, 300)
    middle = ((start[0] + end[0]) // 2, (start[1] + end[1]) // 2)
    actions = ActionBuilder(driver)
    actions.pointer_action.move_to_location(*start).pointer_down()
    actions.pointer_action.move_to_location(*middle).move_to_location(*end).pointer_up()
    actions.perform()
    rows = driver.find_elements("css selector", "table.boxes tbody tr")
    assert len(rows) == 1
    cells = [td.text for td in rows[0].find_elements("css selector", "td")]
    x1, y1, x2, y2 = map(int, cells[2:])
    assert abs(x1 - 110) <= 3 and abs(y1 - 200) <= 3 and abs(x2 - 260) <= 3 and abs(y2 - 300) <= 3
    select(driver, "table.boxes select", "L3")
    css(driver, "[data-action=save]").click()
    wait_for(driver, lambda: "Saved 1 box" in status_text(driver), "the boxes to be saved")

    # ... analyses and sees the probabilities and the heatmap
    submit(driver, "button[data-requires-saved]")
    viewer_ready(driver)
    result = css(driver, "#result").text
    assert "p(acute)" in result and "L3" in result
    focused = driver.switch_to.active_element  # the focus moved to what changed
    assert focused.get_attribute("id") == "result"
    heatmap_loaded(driver)
    inside = image_to_canvas_fraction(driver, 185, 250)
    with_heatmap = canvas_pixel(driver, *inside)
    screenshot(driver, "case")
    toggle = css(driver, "[data-control=heatmap]")
    toggle.click()
    assert not toggle.is_selected()
    without = canvas_pixel(driver, *inside)
    assert with_heatmap != without
    toggle.click()
    assert canvas_pixel(driver, *inside) == with_heatmap
    slider = css(driver, "[data-control=opacity]")
    ActionChains(driver).click_and_hold(slider).move_by_offset(-200, 0).release().perform()
    assert slider.get_attribute("value") == "0"
    assert canvas_pixel(driver, *inside) == without

    # ... and asks the radiologist for a second read
    select(driver, "select[name=radiologist]", "rad")
    css(driver, "textarea[name=note]").send_keys("Back pain after a fall; L3?")
    submit(driver, "#reads form button[type=submit]")
    assert "new" in css(driver, "#reads .read").text
    go(driver, "/cases")
    assert "new" in css(driver, "main table").text
    screenshot(driver, "cases")
    logout(driver)

    # the radiologist reads: first impression, then the AI result, then the signed report
    login(driver, "rad")
    assert driver.current_url.endswith("/worklist")
    assert "Back pain after a fall" in css(driver, "main table").text
    screenshot(driver, "worklist")
    submit(driver, "main table a[href^='/reads/']")
    viewer_ready(driver)
    assert "p(acute)" not in css(driver, "main").text
    select(driver, "#impression select[name=finding_L3]", "acute")
    submit(driver, "#impression form.stack button[type=submit]")
    submit(driver, "#impression button.primary")
    viewer_ready(driver)
    assert "p(acute)" in css(driver, "#result").text
    heatmap_loaded(driver)
    css(driver, "#report textarea[name=text]").send_keys("Acute wedge fracture of L3.")
    submit(driver, "#report form.stack button[type=submit]")
    submit(driver, "#report form.inline button.primary")
    report = css(driver, "#report article.report").text
    assert "Acute wedge fracture of L3." in report and "L3: acute" in report
    screenshot(driver, "report")
    logout(driver)

    # the clinician sees the signed report
    login(driver, "clin")
    driver.get(case_url)
    viewer_ready(driver)
    signed = css(driver, "#reads article.report").text
    assert "Acute wedge fracture of L3." in signed and "signed" in signed


def test_keyboard_only(browser, live_server):
    """Log in, reach the viewer, select and move a box, save: with Tab, keys and Enter only."""
    from selenium.webdriver.common.keys import Keys

    driver = browser
    go(driver, "/login")
    wait_for(  # autofocus (Chromium applies it after the load)
        driver,
        lambda: driver.execute_script("return document.activeElement.name") == "username",
        "the focus on the user name",
    )
    driver.switch_to.active_element.send_keys("clin", Keys.TAB)
    driver.switch_to.active_element.send_keys(serve.PASSWORD, Keys.ENTER)
    wait_for(driver, lambda: driver.current_url.endswith("/cases"), "the log-in")
    api = serve.login(live_server.app, "clin")  # a case with one box, made through the API
    case = serve.upload(api, serve.png_bytes()).json()
    box = {"level": "L3", "x1": 40, "y1": 60, "x2": 140, "y2": 130}
    assert serve.put_boxes(api, case["id"], [box]).status_code == 200
    go(driver, f"/cases/{case['id']}")
    viewer_ready(driver)
    before = [td.text for td in driver.find_elements("css selector", "table.boxes td")][2:6]
    assert before == ["40", "60", "140", "130"]

    def tab_to(selector: str, backwards: bool = False) -> None:
        target = css(driver, selector)
        for _ in range(40):
            if driver.switch_to.active_element == target:
                return
            key = Keys.SHIFT + Keys.TAB if backwards else Keys.TAB
            driver.switch_to.active_element.send_keys(key)
        raise AssertionError(f"Tab never reached {selector}")

    css(driver, "body").click()
    tab_to("canvas.stage")
    canvas = driver.switch_to.active_element
    canvas.send_keys("n")
    assert "Box 1 (L3) selected" in status_text(driver)
    canvas.send_keys(Keys.ARROW_RIGHT, Keys.ARROW_RIGHT, Keys.ARROW_DOWN)
    after = [td.text for td in driver.find_elements("css selector", "table.boxes td")][2:6]
    assert int(after[0]) == int(before[0]) + 10 and int(after[1]) == int(before[1]) + 5
    assert f"Box 1 (L3) moved, at x {after[0]}, y {after[1]}" in status_text(driver)
    rows = lambda: len(driver.find_elements("css selector", "table.boxes tbody tr"))  # noqa: E731
    canvas.send_keys("a")  # a new box without the mouse, then gone again
    assert rows() == 2 and "Box 2 (" in status_text(driver) and "added" in status_text(driver)
    canvas.send_keys(Keys.DELETE)
    assert rows() == 1 and "deleted; 1 box(es) left" in status_text(driver)
    tab_to("[data-action=save]", backwards=True)  # Tab leaves the canvas: no keyboard trap
    driver.switch_to.active_element.send_keys(Keys.ENTER)
    wait_for(driver, lambda: "Saved 1 box" in status_text(driver), "the boxes to be saved")
    driver.refresh()
    viewer_ready(driver)
    assert [td.text for td in driver.find_elements("css selector", "table.boxes td")][2:6] == after


TIMERS = "return Object.keys(localStorage).filter(k => k.startsWith('vcfnet-study-time')).length"


def check_sliders_and_crop(driver) -> None:
    """The first box's crop is shown and follows the viewer's invert; its sliders move with the
    arrow keys and keep the sum at 100."""
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.keys import Keys

    pixel = "return document.querySelector('canvas.crop').getContext('2d').getImageData(5, 5, 1, 1).data[0]"
    wait_for(
        driver,
        lambda: driver.execute_script(
            "const c = document.querySelector('canvas.crop'); return c && c.dataset.window"
        ),
        "the crop",
    )
    before = driver.execute_script(pixel)
    css(driver, ".viewer [data-action=invert]").click()
    inverted = lambda: abs(driver.execute_script(pixel) - (255 - before)) <= 1  # noqa: E731
    wait_for(driver, inverted, "the inverted crop")
    css(driver, ".viewer [data-action=invert]").click()
    wait_for(driver, lambda: driver.execute_script(pixel) == before, "the crop back")
    sliders = driver.find_elements(
        "css selector", "fieldset.box-read[data-box='0'] input[type=range]"
    )
    sliders[0].click()  # focus; a click moves the thumb too
    ActionChains(driver).send_keys(Keys.HOME).perform()
    ActionChains(driver).send_keys(*[Keys.ARROW_RIGHT] * 40).perform()
    values = [int(s.get_attribute("value")) for s in sliders]
    assert values[0] == 40 and sum(values) == 100, values
    outputs = driver.find_elements("css selector", "fieldset.box-read[data-box='0'] output")
    assert [int(o.text) for o in outputs] == values
    assert sliders[1].get_attribute("aria-valuetext") == f"{values[1]} %"
    driver.execute_script("document.activeElement.blur();")


def check_key_said_and_links_followed(driver, study_id: int) -> None:
    """Key 1 says the chosen class in the live status line; Enter on a link follows the link
    (the reading page's Enter-submits shortcut leaves links alone)."""
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.keys import Keys

    ActionChains(driver).send_keys("1").perform()
    assert status_text(driver) == f"{css(driver, 'fieldset.box-read legend').text}: acute"
    link = css(driver, "header nav a[href='/reading']")
    navigate(driver, lambda: link.send_keys(Keys.ENTER), "the reading list")
    assert driver.current_url.endswith("/reading")
    go(driver, f"/reading/{study_id}")
    viewer_ready(driver)


def test_reader_study_read_with_the_keyboard(browser, live_server, tmp_path):
    """Issue 14: a researcher designs and launches a 6-case study with two readers; both read the
    unaided and then the aided session with keys 1/2/3 and Enter (confidence sliders that keep
    their sum at 100, the crop beside the film, a resume after logout); the study page's MRMC
    result equals ``vcfnet readers`` on the exported files, Figure 6 is shown."""
    import json

    from selenium.webdriver.common.action_chains import ActionChains

    from vcfnet.cli.main import main

    driver, app = browser, live_server.app
    api = serve.login(app, "clin")
    boxes = [
        {"level": "L1", "x1": 40, "y1": 50, "x2": 120, "y2": 110},
        {"level": "L2", "x1": 60, "y1": 130, "x2": 170, "y2": 200},
    ]
    case_ids = []
    for i in range(6):
        case_id = serve.upload(api, serve.png_bytes(seed=200 + i)).json()["id"]
        assert serve.put_boxes(api, case_id, boxes).status_code == 200
        case_ids.append(case_id)

    login(driver, "res")
    assert driver.current_url.endswith("/studies")
    css(driver, "input[name=name]").send_keys("Browser study")
    submit(driver, "form[action='/studies'] button")
    study_id = int(driver.current_url.rsplit("/", 1)[1])
    classes = ("acute", "chronic", "pathologic")
    for i, case_id in enumerate(case_ids):
        select(driver, f"#add-case-{case_id} select[name=truth_0]", classes[(2 * i) % 3])
        select(driver, f"#add-case-{case_id} select[name=truth_1]", classes[(2 * i + 1) % 3])
        submit(driver, f"button[form=add-case-{case_id}]")
    for username, level in (("rad", "trainee"), ("rad2", "expert")):
        select(driver, "form[action$='/readers'] select[name=username]", username)
        css(driver, "form[action$='/readers'] input[name=level]").send_keys(level)
        submit(driver, "form[action$='/readers'] button")
    css(driver, "input[name=washout_days]").clear()
    css(driver, "input[name=washout_days]").send_keys("0")
    select(driver, "select[name=ratings]", "sliders")
    submit(driver, "form[action$='/settings'] button")
    driver.execute_script("window.confirm = () => true;")
    submit(driver, "form[action$='/launch'] button")
    assert "launched" in css(driver, "h1").text
    logout(driver)

    keys = {"rad": "12312", "rad2": "3211"}
    for username in ("rad", "rad2"):
        login(driver, username)
        go(driver, f"/reading/{study_id}")
        for n in range(12):
            viewer_ready(driver)
            aided = "aided" in css(driver, "h1").text and "unaided" not in css(driver, "h1").text
            assert ("AI result" in css(driver, "body").text) == aided
            assert ("session 2" in css(driver, "h1").text) == (n >= 6)
            # the title a screen reader announces after each read names the case and session
            assert driver.title.startswith(f"Case {n % 6 + 1} of 6, session {1 + (n >= 6)} (")
            if username == "rad2" and n == 6:
                heatmap_loaded(driver)
                screenshot(driver, "reader-study-reading")
            if username == "rad" and n == 0:
                check_sliders_and_crop(driver)
            if username == "rad" and n == 3:  # resume after logout: the same place
                logout(driver)
                login(driver, username)
                go(driver, f"/reading/{study_id}")
                viewer_ready(driver)
                assert css(driver, "progress").get_attribute("value") == "3"
                assert "case 4 of 6" in css(driver, "body").text
                assert driver.execute_script(TIMERS) == 1  # the time on case 4 so far was kept
            if username == "rad" and n == 1:
                check_key_said_and_links_followed(driver, study_id)
            pattern = keys[username]
            ActionChains(driver).send_keys(pattern[n % len(pattern)]).perform()
            ActionChains(driver).send_keys(pattern[(n + 1) % len(pattern)]).perform()
            driver.execute_script("window.previousPage = true;")
            ActionChains(driver).send_keys("\ue007").perform()  # Enter
            wait_for(driver, lambda: new_page_loaded(driver), "the next case")
        assert "read every case in both sessions" in css(driver, "body").text
        assert driver.execute_script(TIMERS) == 0  # dropped with each submitted read
        logout(driver)

    login(driver, "res")
    go(driver, f"/studies/{study_id}")
    page = css(driver, "#results").text
    assert "interim" not in page and "Table 3" in page and "Figure 6" in page
    wait_for(
        driver,
        lambda: driver.execute_script(
            "return document.querySelector('#results figure img').naturalWidth > 0"
        ),
        "Figure 6",
    )
    res = serve.login(app, "res")
    for name in ("truth", "reads"):
        (tmp_path / f"{name}.csv").write_bytes(res.get(f"/studies/{study_id}/{name}.csv").content)
    out = tmp_path / "cli"
    args = ["--truth", str(tmp_path / "truth.csv"), "--reads", str(tmp_path / "reads.csv")]
    assert main(["-q", "readers", *args, "--out", str(out), "--no-figures"]) == 0
    mrmc = json.loads((out / "mrmc.json").read_text())
    rows = {
        tr.find_element("css selector", "td").text: tr.text
        for tr in driver.find_elements("css selector", "table.mrmc tbody tr")
    }
    for cls in classes:
        v = mrmc["classes"][cls]
        expected = f"{v['auc_unaided']:.3f} {v['auc_aided']:.3f} {v['difference']:.3f}"
        assert rows[cls].startswith(f"{cls} {expected}"), (rows[cls], expected)
    screenshot(driver, "reader-study-results")
