"""Helpers for the dashboard's page tests: the environment a page reads, AppTest, seeded photos."""

from __future__ import annotations

import io
import time
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

from db.engine import session_scope
from db.reviews import submit_review
from foodclf.classifier import ClassificationResult
from foodclf.images import decode_image
from foodclf.ingest import store_photo
from foodclf.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
TIMEOUT = 60  # seconds per AppTest run: the first one loads the tiny model
# The groups the dashboard fixture maps to roles (FOODCLF_*_GROUPS).
GROUPS = {"admin": "foodclf-admins", "moderator": "foodclf-moderators", "viewer": "foodclf-viewers"}


@dataclass
class Dashboard:
    """What a page test needs: the settings the page reads and the engine to check rows with."""

    settings: Settings
    engine: object

    def app(self, page: str):
        """An AppTest of one page file (AppTest can't drive st.navigation, so pages are tested alone)."""
        from streamlit.testing.v1 import AppTest

        return AppTest.from_file(str(ROOT / "pages" / page), default_timeout=TIMEOUT)


def signed_in(who: str, role: str | None = "moderator", /, **claims) -> dict:
    """st.user for a person signed in with sign-in configured: email `who`, in the group of `role`.

    role=None: a group that maps to no role. `iat` is now unless given (FOODCLF_SESSION_HOURS counts from it).
    """
    groups = [GROUPS[role]] if role else ["some-other-team"]
    return {"is_logged_in": True, "email": who, "sub": f"sub-{who}", "groups": groups, "iat": time.time()} | claims


def sign_in(at, who: str, role: str | None = "moderator", /, **claims):
    """Make an AppTest's user a signed-in person with a role (see signed_in); returns the AppTest."""
    at.user = signed_in(who, role, **claims)
    return at


def clear_streamlit_caches() -> None:
    """cache_resource and cache_data are process-global: each test starts from nothing."""
    import streamlit as st

    st.cache_data.clear()
    st.cache_resource.clear()


def jpeg(color=(200, 80, 40), size=(48, 40)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, color).save(buffer, "JPEG")
    return buffer.getvalue()


def fake_result(label: str, score: float, others=("pizza", "sushi", "steak", "ramen")) -> ClassificationResult:
    """A prediction with a chosen top label and score, the rest shared out below it."""
    rest = [name for name in others if name != label][:3]
    remainder = (1.0 - score) / max(1, len(rest))
    scores = [{"label": label, "score": score}] + [{"label": name, "score": remainder} for name in rest]
    return ClassificationResult(
        class_scores=scores,
        highest_probability_class=label,
        uncertain=score < 0.5,
        model_id="tiny-test-model",
        fingerprint="f" * 64,
        latency_ms=1.0,
    )


def seed_photo(
    dashboard: Dashboard, label: str, score: float, color, *, source: str = "folder", name: str | None = None
) -> int:
    """Store one generated photo with a chosen prediction; returns its image id."""
    loaded = decode_image(jpeg(color), name=name or f"{label}-{score:.2f}.jpg")
    with session_scope(dashboard.engine) as session:
        image = store_photo(
            session, dashboard.settings, loaded, fake_result(label, score), source=source, added_by="seed"
        )
        return image.id


def seed_review(dashboard: Dashboard, image_id: int, action: str, reviewer: str, label: str | None = None) -> None:
    with session_scope(dashboard.engine) as session:
        submit_review(session, image_id, action=action, final_label=label, reviewer=reviewer, expected_review_id=None)


def reviews(dashboard: Dashboard) -> list[tuple]:
    """(image_id, action, final_label, reviewer) of every review row, in order."""
    from sqlalchemy import select

    from db.models import ReviewRow

    with session_scope(dashboard.engine) as session:
        rows = session.scalars(select(ReviewRow).order_by(ReviewRow.id))
        return [(r.image_id, r.action, r.final_label, r.reviewer) for r in rows]


def run(at, timeout: float | None = None):
    """Run an AppTest and fail on any exception the page raised (pages must never show a traceback)."""
    at.run(timeout=timeout)
    assert not at.exception, [e.value for e in at.exception]
    return at


def texts(elements) -> list[str]:
    """The values of a list of AppTest elements (error, info, caption...)."""
    return [str(element.value) for element in elements]
