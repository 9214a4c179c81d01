"""One real sign-in, end to end: a local OpenID Connect provider, `streamlit run dashboard.py`, headless Chromium.

A moderator signs in at the provider, confirms a photo, and the review row carries their email;
they sign out. A person whose groups map to no role sees no data. A forged and an expired session
cookie get no data either. The provider is oidc-provider-mock (PyPI) on loopback; the browser is
Debian's Chromium, driven by Playwright. Without them the test skips, except in CI (CI=true), where
it fails: the sign-in must be tested there.
"""

from __future__ import annotations

import importlib.util
import json
import re
import subprocess
import sys
import time
import urllib.error
from pathlib import Path

import pytest
from itsdangerous import URLSafeTimedSerializer
from sqlalchemy import select

from browser_support import ARGS, CHROMIUM, in_ci, look_at_photo
from db.engine import close_database, open_database, session_scope
from db.models import ReviewRow
from pages_support import GROUPS, Dashboard, seed_photo
from server_support import free_port, get, running_dashboard

WAIT_MS = 60_000
COOKIE_SECRET = "test-cookie-secret-" + "x" * 32
MODERATOR = {"sub": "mod-1", "email": "mod@acme.com", "groups": [GROUPS["moderator"]]}
OUTSIDER = {"sub": "eve-1", "email": "eve@acme.com", "groups": ["interns"]}

pytestmark = pytest.mark.browser


def _needed() -> None:
    """Chromium and the provider, or a skip (a failure in CI, which must run this test)."""
    missing = []
    if not CHROMIUM.exists():
        missing.append("Debian's chromium at /usr/bin/chromium (apt-get install chromium)")
    if importlib.util.find_spec("oidc_provider_mock") is None:  # not imported here: it runs in its own process
        missing.append("oidc-provider-mock (pip install -r requirements.txt)")
    if missing:
        message = "the sign-in test needs " + " and ".join(missing)
        if in_ci():
            pytest.fail(message + "; CI must run it")
        pytest.skip(message)


def _provider(port: int, log: Path) -> subprocess.Popen:
    command = [sys.executable, "-m", "oidc_provider_mock", "--host", "127.0.0.1", "--port", str(port)]
    for user in (MODERATOR, OUTSIDER):
        command += ["--user-claims", json.dumps(user)]
    with log.open("wb") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 30
    while True:
        try:
            if get(f"http://127.0.0.1:{port}/.well-known/openid-configuration")[0] == 200:
                return process
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            raise AssertionError(f"the OpenID Connect provider did not start:\n{log.read_text()[-3000:]}")
        time.sleep(0.2)


def _secrets(folder: Path, app_port: int, provider_port: int) -> Path:
    path = folder / "secrets.toml"
    path.write_text(
        "[auth]\n"
        f'redirect_uri = "http://127.0.0.1:{app_port}/oauth2callback"\n'
        f'cookie_secret = "{COOKIE_SECRET}"\n'
        'client_id = "foodclf"\n'
        'client_secret = "not-checked-by-the-mock"\n'
        f'server_metadata_url = "http://127.0.0.1:{provider_port}/.well-known/openid-configuration"\n'
    )
    return path


def _cookie(base: str, secret: str, claims: dict) -> dict:
    """A `_streamlit_user` cookie as Streamlit writes one, signed with `secret`."""
    payload = dict(claims, origin=base, is_logged_in=True, provider="default")
    value = URLSafeTimedSerializer(secret, salt="_streamlit_user").dumps(json.dumps(payload))
    return {"name": "_streamlit_user", "value": value, "url": base}


def _reviews(settings) -> list[tuple[str, str]]:
    with session_scope(open_database(settings)) as session:
        return [(r.action, r.reviewer) for r in session.scalars(select(ReviewRow))]


def _sign_in(page, base: str, sub: str) -> None:
    page.goto(base)
    page.get_by_role("button", name="Sign in").click()
    page.get_by_role("button", name=sub, exact=True).click()  # the provider's page: a predefined user
    page.wait_for_url(re.compile(re.escape(base) + r"/?(\?.*)?$"), timeout=WAIT_MS)


def test_sign_in_decide_sign_out_and_no_data_without_a_role(settings, tmp_path):
    _needed()
    from playwright.sync_api import expect, sync_playwright

    expect.set_options(timeout=WAIT_MS)  # a cold server loads torch and the model on 2 shared cores
    try:
        _signin_flow(settings, tmp_path, expect, sync_playwright)
    finally:
        expect.set_options(timeout=5_000)  # Playwright's default, for the tests after this one


def _signin_flow(settings, tmp_path, expect, sync_playwright) -> None:

    engine = open_database(settings)
    photo = seed_photo(Dashboard(settings, engine), "sushi", 0.3, (40, 200, 40))
    provider_port, app_port = free_port(), free_port()
    provider = _provider(provider_port, tmp_path / "provider.log")
    env = {
        "FOODCLF_MODERATOR_GROUPS": GROUPS["moderator"],
        "FOODCLF_ADMIN_GROUPS": GROUPS["admin"],
        "FOODCLF_VIEWER_GROUPS": GROUPS["viewer"],
    }
    options = ("--secrets.files", str(_secrets(tmp_path, app_port, provider_port)))
    try:
        with (
            running_dashboard(settings, tmp_path / "streamlit.log", port=app_port, args=options, env=env) as base,
            sync_playwright() as playwright,
        ):
            browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=ARGS, headless=True)
            try:
                # A moderator signs in at the provider and lands on the review queue.
                page = browser.new_page(viewport={"width": 1400, "height": 1000})
                page.set_default_timeout(WAIT_MS)
                page.goto(base)
                expect(page.get_by_text("Sign in to use foodclf")).to_be_visible()
                expect(page.get_by_text("Left to review")).to_have_count(0)  # nothing before signing in
                _sign_in(page, base, MODERATOR["sub"])
                expect(page.get_by_role("heading", name="Review queue")).to_be_visible()
                expect(page.get_by_text("Signed in as")).to_contain_text("mod@acme.com")
                look_at_photo(page)
                page.get_by_role("button", name=re.compile(r"^Confirm: Sushi")).click()
                expect(page.get_by_text("Queue is empty")).to_be_visible()
                page.screenshot(path=str(tmp_path / "confirmed.png"), full_page=True)

                # Sign out: through the provider's end-session page, back to the sign-in page.
                page.get_by_role("button", name="Sign out").click()
                end = page.get_by_role("button", name="End session")
                end.click()
                expect(page.get_by_text("Sign in to use foodclf")).to_be_visible()
                page.goto(base)  # a fresh session: still signed out
                expect(page.get_by_text("Sign in to use foodclf")).to_be_visible()
                expect(page.get_by_text("Left to review")).to_have_count(0)

                # A person in no mapped group: the no-access page, no data.
                outsider = browser.new_context().new_page()
                outsider.set_default_timeout(WAIT_MS)
                _sign_in(outsider, base, OUTSIDER["sub"])
                expect(outsider.get_by_role("heading", name="No access")).to_be_visible()
                expect(outsider.get_by_text("You have no access to foodclf yet")).to_be_visible()
                expect(outsider.get_by_text("Left to review")).to_have_count(0)
                expect(outsider.get_by_role("link", name="Review queue")).to_have_count(0)

                # Hostile cookies: forged (another secret), and genuine but past FOODCLF_SESSION_HOURS.
                claims = {**MODERATOR, "iat": int(time.time())}
                for cookie, expected in (
                    (_cookie(base, "not-the-secret", claims), "Sign in to use foodclf"),
                    (_cookie(base, COOKIE_SECRET, {**claims, "iat": int(time.time()) - 13 * 3600}), "has expired"),
                ):
                    context = browser.new_context()
                    context.add_cookies([cookie])
                    forged = context.new_page()
                    forged.set_default_timeout(WAIT_MS)
                    forged.goto(base)
                    expect(forged.get_by_text(expected)).to_be_visible()
                    expect(forged.get_by_text("Left to review")).to_have_count(0)
                    expect(forged.get_by_text("Signed in as")).to_have_count(0)
                    context.close()
                # The same cookie, fresh and genuine, is accepted: the refusals above were the signature and the age.
                context = browser.new_context()
                context.add_cookies([_cookie(base, COOKIE_SECRET, claims)])
                genuine = context.new_page()
                genuine.goto(base)
                expect(genuine.get_by_text("Signed in as")).to_contain_text("mod@acme.com", timeout=WAIT_MS)
            finally:
                browser.close()
        assert _reviews(settings) == [("confirmed", "mod@acme.com")]
        assert photo
    finally:
        provider.terminate()
        provider.wait(10)
        close_database(settings)
