"""Roles on every page, checked on the server: allowed pages work, denied ones say so and show no data.

Also the hostile cases: a group that maps to no role, a sign-in that expired, and acts attempted
through a page that was drawn for an admin and is then used by a viewer (a stale page).
"""

from __future__ import annotations

import time

import pytest
from sqlalchemy import select
from streamlit.testing.v1 import AppTest

from db.engine import session_scope
from db.models import AuditEvent, TrainedModel
from db.trained_models import register_model
from pages_support import ROOT, TIMEOUT, reviews, run, seed_photo, seed_review, sign_in, signed_in, texts

PAGES = {
    "stats.py": ("Stats", "viewer"),
    "browse.py": ("Browse photos", "viewer"),
    "review_queue.py": ("Review queue", "moderator"),
    "classify.py": ("Classify photos", "moderator"),
    "export.py": ("Export labels", "admin"),
    "models.py": ("Models", "admin"),
    "audit.py": ("Audit log", "admin"),
}
RANK = {"viewer": 1, "moderator": 2, "admin": 3}
CASES = [(page, role) for page in PAGES for role in RANK]


@pytest.fixture
def data(dashboard):
    """A decided photo and an undecided one, so every page has something it could show."""
    decided = seed_photo(dashboard, "pizza", 0.9, (200, 40, 40))
    seed_review(dashboard, decided, "confirmed", "seed")
    return {"decided": decided, "open": seed_photo(dashboard, "sushi", 0.3, (40, 200, 40))}


def denials(dashboard) -> list[tuple[str, dict]]:
    with session_scope(dashboard.engine) as session:
        rows = session.scalars(select(AuditEvent).where(AuditEvent.action == "role_denied").order_by(AuditEvent.id))
        return [(e.actor, dict(e.detail)) for e in rows]


def _no_data(at) -> None:
    """Nothing of the database on the page: no figures, tables, photos or decision buttons."""
    assert not at.metric and not at.dataframe and not at.get("imgs") and not at.file_uploader
    assert not [b for b in at.button if b.key and b.key.endswith("_confirm")]


@pytest.mark.parametrize("page, role", CASES, ids=[f"{p[:-3]}-{r}" for p, r in CASES])
def test_each_role_on_each_page(dashboard, data, page, role):
    title, needs = PAGES[page]
    at = run(sign_in(dashboard.app(page), f"{role}@acme.com", role))
    if RANK[role] >= RANK[needs]:
        assert [t.value for t in at.title] == [title]
        assert not at.error, texts(at.error)
    else:
        [refusal] = texts(at.error)
        assert refusal.startswith(f"Your role ({role}) does not include") and f"needs the {needs} role" in refusal
        assert not at.title
        _no_data(at)
        [(actor, detail)] = denials(dashboard)
        assert (actor, detail["role"]) == (f"{role}@acme.com", role)


@pytest.mark.parametrize("page", list(PAGES))
@pytest.mark.parametrize("groups", [["interns"], [], "", None, ["/foodclf-admins"], ["FOODCLF-ADMINS"]])
def test_a_group_that_maps_to_no_role_sees_no_data(dashboard, data, page, groups):
    at = sign_in(dashboard.app(page), "eve@acme.com", None, groups=groups)
    run(at)
    assert [t.value for t in at.title] == ["No access"]
    assert any("You have no access to foodclf yet" in text for text in texts(at.info))
    assert at.button(key="signout_no_access")
    _no_data(at)
    [(actor, detail)] = denials(dashboard)
    assert (actor, detail["act"], detail["role"]) == ("eve@acme.com", "dashboard", None)


@pytest.mark.parametrize("page", list(PAGES))
def test_an_expired_or_future_sign_in_must_sign_in_again(dashboard, data, page):
    for issued in (time.time() - 13 * 3600, time.time() + 3600, None):
        at = sign_in(dashboard.app(page), "admin@acme.com", "admin", iat=issued)
        run(at)
        assert any("Your sign-in has expired" in text for text in texts(at.markdown))
        assert at.button(key="signin_0")
        _no_data(at)


def test_a_viewer_browses_read_only(dashboard, data):
    at = run(sign_in(dashboard.app("browse.py"), "viewer@acme.com", "viewer"))
    at.button(key=f"open_{data['open']}").click()
    run(at)
    assert at.dataframe  # the photo's history is there to read
    assert not [b for b in at.button if b.key and b.key.startswith(f"b_{data['open']}_")]  # no decision buttons
    assert any("Read only" in text for text in texts(at.caption))


def test_decisions_carry_the_signed_in_identity(dashboard, data):
    at = run(sign_in(dashboard.app("browse.py"), "mod@acme.com", "moderator"))
    at.button(key=f"open_{data['open']}").click()
    run(at)
    at.button(key=f"b_{data['open']}_not_food").click()
    run(at)
    assert reviews(dashboard)[-1] == (data["open"], "not_food", "not_food", "mod@acme.com")


# ---- stale pages: drawn for someone allowed, then used by a viewer ----------------------------


def _demote(at, who="lee@acme.com"):
    """The same browser session, now read as a viewer (a role taken away, or a crafted request)."""
    at.user = signed_in(who, "viewer")
    return at


def test_a_stale_review_page_cannot_save_a_decision_for_a_viewer(dashboard, data):
    at = run(sign_in(dashboard.app("review_queue.py"), "lee@acme.com", "moderator"))
    confirm = at.button(key=f"q_{data['open']}_confirm")
    _demote(at)
    confirm.click()
    run(at)
    assert reviews(dashboard) == [(data["decided"], "confirmed", "pizza", "seed")]  # nothing new
    assert [d["act"] for _, d in denials(dashboard)][:1] == ["decide"]  # the click, recorded, then the page


def test_a_stale_export_page_cannot_export_for_a_viewer(dashboard, data):
    at = run(sign_in(dashboard.app("export.py"), "lee@acme.com", "admin"))
    build = at.button(key="e_build")
    _demote(at)
    build.click()
    run(at)
    assert "export_ready" not in at.session_state
    assert not at.get("link_button") and not at.get("download_button")
    with session_scope(dashboard.engine) as session:
        assert session.scalars(select(AuditEvent).where(AuditEvent.action == "export")).all() == []
    assert [d["act"] for _, d in denials(dashboard)] == ["export"]


def test_a_stale_models_page_cannot_switch_or_train_for_a_viewer(dashboard, data, tmp_path):
    from ui import cache

    seed_review(dashboard, data["open"], "corrected", "seed", label="ramen")  # two categories: training may start
    with session_scope(dashboard.engine) as session:
        model_id = register_model(
            session,
            name="v2",
            path=str(dashboard.settings.model),
            base_model="tiny",
            labels=["pizza"],
            metrics={},
            train_size=1,
            created_by="Ana",
        ).id
    at = run(sign_in(dashboard.app("models.py"), "lee@acme.com", "admin"))
    at.selectbox(key="m_choice").set_value(model_id)
    run(at)
    switch = at.button(key="m_switch")
    _demote(at)
    switch.click()
    run(at)
    with session_scope(dashboard.engine) as session:
        assert not session.get(TrainedModel, model_id).active
    at = run(sign_in(dashboard.app("models.py"), "lee@acme.com", "admin"))  # drawn for the admin again
    start = at.button(key="t_start")
    _demote(at)
    start.click()
    run(at)
    assert not cache.training_job().state.running and not cache.training_job().state.finished
    assert [d["act"] for _, d in denials(dashboard)] == ["activate", "models", "train", "models"]


# ---- dashboard.py: the menu, and where it may serve --------------------------------------------


def _dashboard(user=None) -> AppTest:
    at = AppTest.from_file(str(ROOT / "dashboard.py"), default_timeout=TIMEOUT)
    if user is not None:
        at.user = user
    return at


@pytest.mark.parametrize(
    "role, links, start",
    [
        ("viewer", ["Browse", "Stats"], "Browse photos"),
        ("moderator", ["Review queue", "Second opinions", "Classify photos", "Browse", "Stats"], "Review queue"),
        (
            "admin",
            [
                "Review queue",
                "Second opinions",
                "Classify photos",
                "Browse",
                "Stats",
                "Export",
                "Models",
                "Guidelines",
                "Adjudication",
                "Audit log",
            ],
            "Review queue",
        ),
    ],
)
def test_the_menu_lists_only_the_pages_a_role_may_open(dashboard, data, role, links, start):
    at = run(_dashboard(signed_in(f"{role}@acme.com", role)))
    assert [link.label for link in at.sidebar.get("page_link")] == links
    assert [t.value for t in at.title] == [start]
    assert any(f"Signed in as **{role}@acme.com** · {role}" in text for text in texts(at.sidebar.markdown))


@pytest.fixture
def address():
    """Set Streamlit's server.address for one test (process-wide config), then put it back."""
    from streamlit import config

    before = config.get_option("server.address")
    yield lambda value: config.set_option("server.address", value)
    config.set_option("server.address", before)


@pytest.mark.parametrize("where", ["0.0.0.0", "192.168.1.20", None])
def test_an_exposed_address_without_sign_in_is_refused(dashboard, data, address, where):
    address(where)
    at = run(_dashboard())
    [refusal] = texts(at.error)
    assert refusal.startswith(
        f"Refusing to serve the dashboard on {where or 'every network interface'} without sign-in"
    )
    assert "[auth]" in refusal and "make run" in refusal
    assert [t.value for t in at.title] == ["foodclf"] and not at.sidebar.get("page_link")
    _no_data(at)


def test_an_exposed_address_with_sign_in_serves_signed_in_staff(dashboard, data, address):
    address("0.0.0.0")
    at = run(_dashboard(signed_in("mod@acme.com", "moderator")))
    assert [t.value for t in at.title] == ["Review queue"] and not at.error
    signed_out = run(_dashboard({"is_logged_in": False}))
    assert signed_out.button(key="signin_0") and not signed_out.sidebar.get("page_link")
    _no_data(signed_out)
