"""The admin's model and retention pages in headless Chromium (fixtures of test_browser): a bad
model upload says why in one line, the card stays; retention is set and a purge runs, with the
keyboard for the retention form."""

from __future__ import annotations

import pytest

from tests.serve.test_browser import (  # noqa: F401 (fixtures)
    browser,
    css,
    driver,
    go,
    live_server,
    login,
    navigate,
    submit,
)

pytestmark = pytest.mark.browser


def test_admin_model_and_retention_pages(browser, live_server, tmp_path):  # noqa: F811
    from selenium.webdriver.common.keys import Keys

    login(browser, "admin")
    go(browser, "/admin/model")
    card_hash = live_server.app.state.vcfnet.models.info()["hash"]
    assert card_hash in css(browser, "table.card").text
    bad = tmp_path / "broken.onnx"
    bad.write_bytes(b"not a model")
    css(browser, "input[type=file]").send_keys(str(bad))
    submit(browser, "form[action='/admin/model'] button[type=submit]")
    assert "not a usable vcfnet model" in css(browser, "main").text
    browser.get_log("browser")  # the expected 422 of the error page
    go(browser, "/admin/model")
    assert card_hash in css(browser, "table.card").text  # nothing replaced

    go(browser, "/admin/retention")
    days = css(browser, "input[name=delete_after_days]")
    days.clear()
    # the keyboard submits the form
    navigate(browser, lambda: days.send_keys("365", Keys.ENTER), "the saved retention page")
    assert css(browser, "input[name=delete_after_days]").get_attribute("value") == "365"
    submit(browser, "form[action='/admin/retention/purge'] button[type=submit]")
    assert "Last purge: done" in css(browser, "main").text
