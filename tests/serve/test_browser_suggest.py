"""Suggest boxes in a real browser: the clinician asks for the localiser's boxes, deletes one,
moves one with the keyboard, saves, and the audit log says what was suggested and changed."""

from __future__ import annotations

from collections.abc import Iterator
from types import SimpleNamespace

import pytest

from tests.serve import conftest as serve
from tests.serve.suggest_fixtures import FakeLocaliser, untrained_localiser
from tests.serve.test_browser import (  # noqa: F401  (driver, browser: fixtures)
    browser,
    css,
    driver,
    login,
    serving,
    status_text,
    submit,
    viewer_ready,
    wait_for,
)
from vcfnet.serve import suggest
from vcfnet.serve.app import create_app
from vcfnet.serve.models import AuditLog

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def live_server(tmp_path_factory, tiny_run_dir) -> Iterator[SimpleNamespace]:
    """As test_browser's, with a localiser configured (answering FakeLocaliser's bodies)."""
    root = tmp_path_factory.mktemp("browser-suggest")
    loc = untrained_localiser(root / "loc")
    app = create_app(serve.make_settings(root, tiny_run_dir, localiser_path=loc))
    serve.add_users(app)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(suggest.LocaliserService, "get", lambda self: FakeLocaliser())
        with serving(app) as server:
            yield server


def _rows(page) -> list[list[str]]:
    rows = page.find_elements("css selector", "table.boxes tbody tr")
    out = []
    for row in rows:
        cells = row.find_elements("css selector", "td")
        level = cells[1].find_elements("css selector", "select")
        value = level[0].get_attribute("value") if level else cells[1].text
        out.append([value, *(c.text for c in cells[2:])])
    return out


def test_suggest_boxes_accept_move_delete(browser, live_server, tmp_path):  # noqa: F811
    from selenium.webdriver.common.keys import Keys

    page = browser
    login(page, "clin")
    submit(page, "a[href='/cases/new']")
    png = tmp_path / "film.png"
    png.write_bytes(serve.png_bytes())
    css(page, "input[type=file]").send_keys(str(png))
    submit(page, "main form button[type=submit]")
    viewer_ready(page)
    css(page, "[data-action=suggest]").click()
    wait_for(page, lambda: "Suggested 3 box" in status_text(page), "the suggestion")
    assert "L1 (grade 3)" in status_text(page)
    assert [r[0] for r in _rows(page)] == ["T12", "L1", "L2"]
    # delete L2 (select it with n, n), move L1 down with the keyboard
    stage = css(page, "canvas.stage")
    stage.send_keys("n")
    stage.send_keys("n")
    css(page, "[data-action=delete]").click()
    stage.send_keys("n")  # back to T12 -> L1
    stage.send_keys("n")
    stage.send_keys(Keys.ARROW_DOWN)
    assert [r[0] for r in _rows(page)] == ["T12", "L1"]
    css(page, "[data-action=save]").click()
    wait_for(page, lambda: "Saved 2 box" in status_text(page), "the save")
    factory = live_server.app.state.vcfnet.session_factory

    def reviewed():
        with factory() as db:
            return db.query(AuditLog).filter(AuditLog.action == "boxes.suggest.review").first()

    entry = wait_for(page, reviewed, "the review in the audit log")
    assert entry.detail == "unchanged T12; changed L1; deleted L2; added -"
