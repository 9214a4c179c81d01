"""dashboard.py: routing to every page, the sidebar (model, who is signed in), and Streamlit sign-in as identity."""

from __future__ import annotations

import time

import pytest
from streamlit.testing.v1 import AppTest

from pages_support import ROOT, TIMEOUT, reviews, run, seed_photo, sign_in, texts

PAGES = ["review_queue.py", "classify.py", "browse.py", "stats.py", "export.py", "models.py", "audit.py"]
TITLES = ["Review queue", "Classify photos", "Browse photos", "Stats", "Export labels", "Models", "Audit log"]


def _dashboard(reviewer=None, role="admin") -> AppTest:
    """dashboard.py for a signed-in person (None: no sign-in configured, the local admin)."""
    at = AppTest.from_file(str(ROOT / "dashboard.py"), default_timeout=TIMEOUT)
    if reviewer:
        sign_in(at, reviewer, role)
    return at


def test_the_queue_is_the_default_page_and_every_page_is_routed(dashboard):
    at = run(_dashboard("Ana"))
    assert [t.value for t in at.title] == ["Review queue"]
    for page, title in zip(PAGES, TITLES):
        at.switch_page(f"pages/{page}")
        run(at)
        assert [t.value for t in at.title] == [title], page


def test_the_sidebar_shows_the_model_and_the_reviewer(dashboard):
    first = run(_dashboard("Ana"))
    assert any("Signed in as **Ana** · admin" in text for text in texts(first.sidebar.markdown))
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:  # the model loads in the background; pages don't wait for it
        at = run(_dashboard("Ana"))
        if not any("Loading the model" in text for text in texts(at.sidebar.markdown)):
            break
        time.sleep(0.2)
    assert any("tiny-vit" in text for text in texts(at.sidebar.markdown))
    [facts] = texts(at.sidebar.caption)
    assert "101 labels · cpu · fp32 · PyTorch" in facts and "Fingerprint `" in facts


def _sidebar_once_loaded() -> AppTest:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:  # the model loads in the background; pages don't wait for it
        at = run(_dashboard("Ana"))
        if not any("Loading the model" in text for text in texts(at.sidebar.markdown)):
            return at
        time.sleep(0.2)
    return at


def test_the_sidebar_says_plainly_when_the_offline_starter_model_answers(dashboard, monkeypatch, starter_cache_dir):
    from huggingface_hub import try_to_load_from_cache

    if isinstance(try_to_load_from_cache("nateraw/food", "config.json"), str):
        pytest.skip("nateraw/food is in this machine's hub cache, so it loads offline")
    monkeypatch.delenv("FOODCLF_MODEL")  # unset: the default, which cannot be downloaded here
    monkeypatch.setenv("FOODCLF_CACHE_DIR", str(starter_cache_dir))
    monkeypatch.setattr("foodclf.classifier._hub_reachable", lambda timeout=3.0: False)
    at = _sidebar_once_loaded()
    assert any("**starter**" in text for text in texts(at.sidebar.markdown))
    assert [i.value for i in at.sidebar.info] == [
        "offline: starter model, 46 everyday foods + not food; set FOODCLF_MODEL for Food-101's 101 dishes"
    ]
    [facts] = texts(at.sidebar.caption)
    assert "47 labels" in facts and "not-food gate" in facts


def test_a_model_that_cannot_load_is_explained(dashboard, monkeypatch, tmp_path):
    monkeypatch.setenv("FOODCLF_MODEL", str(tmp_path / "no-such-model"))
    at = run(dashboard.app("classify.py"))
    at.file_uploader(key="classify_upload").set_value([("a.jpg", b"\xff\xd8\xff", "image/jpeg")])
    run(at)
    assert any("There is no model folder" in text for text in texts(at.error))
    assert at.button(key="model_retry_page")


@pytest.mark.parametrize(
    "user, expected",
    [
        ({"name": "Sam Lee", "email": "sam@example.com"}, "sam@example.com"),  # the email, not the display name
        ({"email": None, "sub": "248289761001"}, "248289761001"),  # no email: the subject
    ],
)
def test_the_signed_in_person_is_the_reviewer(dashboard, user, expected):
    photo = seed_photo(dashboard, "pizza", 0.4, (1, 2, 3))
    at = sign_in(dashboard.app("review_queue.py"), "x", "moderator", **user)
    run(at)
    assert "reviewer_entry" not in [t.key for t in at.text_input]  # no name to type
    at.button(key=f"q_{photo}_confirm").click()
    run(at)
    assert reviews(dashboard) == [(photo, "confirmed", "pizza", expected)]


def test_signed_out_with_sign_in_configured_sees_only_the_sign_in_button(dashboard):
    photo = seed_photo(dashboard, "pizza", 0.4, (1, 2, 3))
    at = dashboard.app("review_queue.py")
    at.user = {"is_logged_in": False}
    run(at)
    assert at.button(key="signin_0")
    assert not [b for b in at.button if b.key == f"q_{photo}_confirm"] and not at.metric


def test_without_sign_in_the_local_user_is_admin_and_a_note_says_so(dashboard):
    at = run(_dashboard())
    [note] = texts(at.sidebar.info)
    assert note.startswith("Local mode: no sign-in is configured, so you (local-admin) are admin")
    assert "this machine only" in note
    links = [link.label for link in at.sidebar.get("page_link")]
    assert links == [
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
    ]


def test_the_streamlit_config_matches_the_settings():
    import tomllib

    from foodclf.settings import Settings

    config = tomllib.loads((ROOT / ".streamlit" / "config.toml").read_text())
    assert config["server"]["maxUploadSize"] == Settings().max_upload_mb  # the uploader refuses what the loader would
    assert config["client"]["showErrorDetails"] == "none"  # tracebacks stay in the server log


def test_no_silent_fallback_when_the_database_cannot_say_which_model_is_in_use(dashboard, monkeypatch, caplog):
    """Classifying with FOODCLF_MODEL instead would store its answers as if the team's model gave them."""
    from sqlalchemy.exc import OperationalError

    from foodclf import model_registry
    from foodclf.errors import ModelUnavailable
    from ui import cache

    def unreadable(settings):
        raise OperationalError("SELECT active model", {}, Exception("database is locked"))

    monkeypatch.setattr(model_registry, "active_model_name", unreadable)
    at = run(_dashboard("Ana"))
    sidebar = " ".join(texts(at.sidebar.markdown) + texts(at.sidebar.caption))
    assert "No model" in sidebar and "cannot say which model is in use" in sidebar
    assert "cannot read the active model" in caplog.text
    # Every page that classifies asks the same function, which refuses rather than guessing.
    with pytest.raises(ModelUnavailable, match="cannot say which model is in use"):
        cache.classifier()
