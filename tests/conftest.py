"""Shared fixtures: tiny models built here (no downloads), a fresh database per test."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from PIL import Image

from foodclf.settings import Settings
from tiny_models import build_tiny_clip, build_tiny_vit

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
FOOD_PHOTOS = SHARED_DATA / "food-photos" / "pizza_steak_sushi"
HOSTILE_IMAGES = SHARED_DATA / "hostile-images"


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    return build_tiny_vit(tmp_path_factory.mktemp("tiny-vit"))


@pytest.fixture(scope="session")
def tiny_clip_dir(tmp_path_factory) -> Path:
    return build_tiny_clip(tmp_path_factory.mktemp("tiny-clip"))


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


def photo(color=(200, 80, 40), size=(48, 40), fmt="JPEG", **save_args) -> bytes:
    """A small solid-colour photo's bytes."""
    buffer = io.BytesIO()
    mode = "RGBA" if len(color) == 4 else "RGB"
    Image.new(mode, size, color).save(buffer, fmt, **save_args)
    return buffer.getvalue()


@pytest.fixture
def make_photo():
    return photo


# --- database fixtures (db/) ---

FINGERPRINT = "f" * 64  # the fake model's weights fingerprint


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


def fake_result(label="pizza", score=0.9, *, runner_up="steak", fingerprint=FINGERPRINT, model_id="tiny-test"):
    """A ClassificationResult as the classifier would give it, without running a model."""
    from foodclf.classifier import ClassificationResult

    scores = [{"label": label, "score": score}, {"label": runner_up, "score": round((1 - score) / 2, 6)}]
    return ClassificationResult(
        class_scores=scores, highest_probability_class=label, uncertain=score < 0.5,
        model_id=model_id, fingerprint=fingerprint, latency_ms=1.5,
    )


def fake_loaded(data: bytes, file_name="photo.jpg"):
    """A LoadedImage with these bytes (no pixels: the database keeps only the metadata)."""
    from foodclf.images import LoadedImage, content_id

    return LoadedImage(image=None, content_id=content_id(data), data=data, format="JPEG",
                       file_name=file_name, width=48, height=40)


def image_factory():
    """make(session, label=, score=, added_at=, **record_image options) -> ImageRow, with a prediction."""
    from itertools import count

    from db.records import record_image, record_prediction

    numbers = count()

    def make(session, *, label="pizza", score=0.9, added_at=None, fingerprint=FINGERPRINT,
             source="folder", added_by="tester", data=None):
        n = next(numbers)
        loaded = fake_loaded(data or f"photo number {n}".encode(), file_name=f"photo-{n}.jpg")
        image = record_image(session, loaded, source=source, added_by=added_by,
                             stored_path=f"{loaded.content_id}.jpg")
        prediction = record_prediction(session, image, fake_result(label, score, fingerprint=fingerprint))
        if added_at is not None:
            image.added_at = prediction.created_at = added_at
        session.flush()
        return image

    return make


def make_review_row(session, image, *, action="confirmed", label=None, reviewer="alice", at=None, note=None):
    """A decision through submit_review, optionally back-dated to `at`."""
    from db.reviews import submit_review

    review = submit_review(session, image.id, action=action, final_label=label, reviewer=reviewer,
                           expected_review_id=image.current_review_id, note=note)
    if at is not None:
        review.created_at = at
        if image.current_review_id == review.id:
            image.reviewed_at = at
    session.flush()
    return review


@pytest.fixture
def make_image():
    """Factory: make_image(session, **overrides) -> ImageRow (see image_factory)."""
    return image_factory()


@pytest.fixture
def make_review():
    """Factory: make_review(session, image, action=, label=, reviewer=, at=) -> ReviewRow."""
    return make_review_row
