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
