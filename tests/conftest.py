"""Shared fixtures: tiny models built here (no downloads), a fresh database per test."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from db.engine import close_database, open_database
from factories import image_factory, make_review_row, photo
from foodclf.settings import Settings, setting_fields
from foodclf.starter_model import ensure_starter_model
from pages_support import GROUPS, Dashboard, clear_streamlit_caches
from tiny_models import build_tiny_clip, build_tiny_vit


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    return build_tiny_vit(tmp_path_factory.mktemp("tiny-vit"))


@pytest.fixture(scope="session")
def tiny_clip_dir(tmp_path_factory) -> Path:
    return build_tiny_clip(tmp_path_factory.mktemp("tiny-clip"))


@pytest.fixture(scope="session")
def starter_cache_dir(tmp_path_factory) -> Path:
    """A cache folder holding the starter model, built once per session with every network connection refused."""

    def refuse(*args, **kwargs):
        raise OSError("no network in this test")

    cache = tmp_path_factory.mktemp("starter-cache")
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(socket.socket, "connect", refuse)
        ensure_starter_model(Settings(cache_dir=str(cache)))
    return cache


@pytest.fixture
def settings(tmp_path, tiny_model_dir) -> Settings:
    """Settings for one test: its own SQLite file and folders, the tiny model, fp32 on CPU."""
    return Settings(
        model=str(tiny_model_dir),
        database_url=f"sqlite:///{tmp_path / 'foodclf.db'}",
        image_dir=str(tmp_path / "images"),
        model_dir=str(tmp_path / "models"),
        cache_dir=str(tmp_path / "cache"),
        device="cpu",
        precision="fp32",
        workers=1,
        batch_size=4,
    )


@pytest.fixture
def make_photo():
    return photo


# --- database fixtures (db/) ---


@pytest.fixture
def engine(settings):
    """The test's database, migrated to head; disposed afterwards."""
    from db.engine import close_database, open_database

    yield open_database(settings)
    close_database(settings)


@pytest.fixture
def session(engine):
    """A Session on the test's database; tests commit (or not) themselves."""
    from sqlalchemy.orm import Session

    with Session(engine, expire_on_commit=False) as session:
        yield session


@pytest.fixture
def make_image():
    """Factory: make_image(session, **overrides) -> ImageRow (see image_factory)."""
    return image_factory()


@pytest.fixture
def make_review():
    """Factory: make_review(session, image, action=, label=, reviewer=, at=) -> ReviewRow."""
    return make_review_row


# --- dashboard fixtures (pages/) ---


@pytest.fixture
def dashboard(settings, monkeypatch) -> Dashboard:
    """The page's environment: the tiny model, a fresh SQLite file and image folder for this test."""
    for f in setting_fields():
        monkeypatch.delenv(f.metadata["env"], raising=False)
    env = {
        "FOODCLF_MODEL": settings.model,
        "FOODCLF_DATABASE_URL": settings.database_url,
        "FOODCLF_IMAGE_DIR": settings.image_dir,
        "FOODCLF_MODEL_DIR": settings.model_dir,
        "FOODCLF_CACHE_DIR": settings.cache_dir,
        "FOODCLF_DEVICE": "cpu",
        "FOODCLF_PRECISION": "fp32",
        "FOODCLF_WORKERS": "1",
        "FOODCLF_BATCH_SIZE": "4",
        # Sign-in roles for tests that sign someone in (pages_support.sign_in); without sign-in: local admin.
        "FOODCLF_ADMIN_GROUPS": GROUPS["admin"],
        "FOODCLF_MODERATOR_GROUPS": GROUPS["moderator"],
        "FOODCLF_VIEWER_GROUPS": GROUPS["viewer"],
        "FOODCLF_REVIEWER": "local-admin",
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    clear_streamlit_caches()
    engine = open_database(settings)
    yield Dashboard(settings, engine)
    clear_streamlit_caches()
    close_database(settings)
