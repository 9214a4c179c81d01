"""End to end in a real browser: upload a photo, see the answer and the chart, confirm, find the review
stored, and export it through the one-time download link.

Drives Debian's Chromium (`apt-get install chromium`) with Playwright for Python; no browser is
ever downloaded. Where that Chromium is absent it skips, saying why, on a developer's machine,
and FAILS under CI (CI=true, as CI services and .ci/run set it): CI must never pass without it.
"""

from __future__ import annotations

import io
import re
import time
from pathlib import Path

import pytest
from PIL import Image
from sqlalchemy import select

from browser_support import ARGS, CHROMIUM, WAIT_MS, look_at_photo, require_chromium
from db.engine import close_database, open_database, session_scope
from db.models import ReviewRow
from server_support import running_dashboard
from shared_data import FOOD_PHOTOS

pytestmark = pytest.mark.browser


@pytest.fixture(autouse=True)
def chromium():
    require_chromium(CHROMIUM)


def _photo(tmp_path: Path) -> Path:
    """A real food photo from the shared data when present, else a generated JPEG."""
    real = sorted(FOOD_PHOTOS.glob("test/*/*.jpg"))
    if real:
        return real[0]
    path = tmp_path / "lunch.jpg"
    buffer = io.BytesIO()
    Image.new("RGB", (320, 240), (210, 120, 60)).save(buffer, "JPEG")
    path.write_bytes(buffer.getvalue())
    return path


def _reviews(settings) -> list[tuple[str, str, str]]:
    engine = open_database(settings)
    with session_scope(engine) as session:
        return [(r.action, r.final_label, r.reviewer) for r in session.scalars(select(ReviewRow))]


def test_upload_see_the_answer_confirm_and_the_review_is_stored(settings, tmp_path):
    from playwright.sync_api import expect, sync_playwright

    photo = _photo(tmp_path)
    try:
        with (
            running_dashboard(settings, tmp_path / "streamlit.log", env={"FOODCLF_REVIEWER": "Robin"}) as base,
            sync_playwright() as playwright,
        ):
            browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=ARGS, headless=True)
            try:
                page = browser.new_page(viewport={"width": 1400, "height": 1000})
                page.set_default_timeout(WAIT_MS)
                # A deep link as the fresh server's first request still runs through dashboard.py.
                page.goto(f"{base}/classify")
                expect(page.get_by_role("heading", name="Classify photos")).to_be_visible(timeout=WAIT_MS)
                nav = page.locator("[data-testid=stSidebar]")
                expect(nav.get_by_role("link", name="Review queue")).to_be_visible(timeout=WAIT_MS)
                # Streamlit's own list of pages/ files is never drawn: the menu is ours, pages only.
                expect(page.locator("[data-testid=stSidebarNav]")).to_have_count(0)
                expect(nav.get_by_role("link")).to_have_count(10)
                # No sign-in configured: the person at this machine is admin, and the sidebar says so.
                expect(
                    nav.get_by_text("Local mode: no sign-in is configured, so you (Robin) are admin")
                ).to_be_visible()

                # Let the page's runs finish first: a file given to an uploader being redrawn is lost
                # (seen on a loaded machine, after the browser test of double decisions). The model loads in
                # the background and the page reruns once it is ready, so wait for the sidebar's model facts.
                expect(nav.get_by_text("Fingerprint")).to_be_visible(timeout=WAIT_MS)
                expect(page.locator("[data-stale=true]")).to_have_count(0, timeout=WAIT_MS)
                page.wait_for_timeout(500)
                expect(page.locator("[data-stale=true]")).to_have_count(0, timeout=WAIT_MS)
                page.locator("input[type=file]").set_input_files(str(photo))
                # .first: while a rerun replaces the page (the model finished loading), the old card may linger.
                answer = page.locator("[data-testid=stMetric]").filter(has_text="Model's answer").first
                expect(answer).to_be_visible(timeout=WAIT_MS)
                top = answer.locator("[data-testid=stMetricValue]").inner_text().strip()
                assert top
                expect(page.locator("[data-testid=stVegaLiteChart]").first).to_be_visible(timeout=WAIT_MS)
                page.screenshot(path=str(tmp_path / "classified.png"), full_page=True)

                look_at_photo(page)
                page.get_by_role("button", name=re.compile(rf"^Confirm: {re.escape(top)}")).click()
                saved = page.get_by_text(re.compile(rf"Confirmed {re.escape(top)} by Robin"))
                expect(saved).to_be_visible(timeout=WAIT_MS)
                page.screenshot(path=str(tmp_path / "confirmed.png"), full_page=True)

                # Decided, so the queue (the start page) has nothing left.
                nav.get_by_role("link", name="Review queue").click()
                expect(page.get_by_text("Queue is empty — nothing to review")).to_be_visible(timeout=WAIT_MS)

                # Export it: the file waits on the server for one fetch by this open page (issue 15).
                nav.get_by_role("link", name="Export").click()
                page.get_by_role("button", name="Prepare download").click()
                button = page.get_by_role("link", name=re.compile(r"^Download foodclf-labels-.*\.csv"))
                expect(button).to_be_visible(timeout=WAIT_MS)
                href = button.get_attribute("href")
                assert href.startswith("/foodclf/download/")
                fetched = page.request.get(base + href)  # the browser's own cookies, as its click would send
                assert fetched.status == 200 and fetched.headers["content-disposition"].startswith("attachment")
                exported = fetched.text().splitlines()
                assert len(exported) == 2 and ",confirmed,Robin," in exported[1]
                assert page.request.get(base + href).status == 404  # once only
            finally:
                browser.close()
        deadline = time.monotonic() + 10
        while not _reviews(settings) and time.monotonic() < deadline:
            time.sleep(0.2)
        [(action, label, reviewer)] = _reviews(settings)
        assert (action, reviewer) == ("confirmed", "Robin")
        assert label.replace("_", " ").lower() == top.lower()
    finally:
        close_database(settings)
