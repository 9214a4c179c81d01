"""One decode for every route: a phone-size photo gets the same pixels, so the same scores, by any path.

API single photo, API batch / ingest / dashboard (the streaming batch path) and training's feature
extraction all decode through foodclf.images.decode_image.
"""

from __future__ import annotations

import io
import math

import numpy as np
import pytest
import torch
from fastapi.testclient import TestClient
from PIL import Image

from foodclf.api.app import create_app
from foodclf.classifier import load_classifier
from foodclf.images import content_id
from foodclf.training.backbone import load_backbone
from foodclf.training.data import LabelledPhoto
from foodclf.training.features import extract_features


@pytest.fixture(scope="module")
def phone_photo(tmp_path_factory):
    """A 4032 x 3024 JPEG (a 12 MP phone photo) with fine detail, so the decoding scale shows in the pixels."""
    y, x = np.mgrid[0:3024, 0:4032].astype(np.float32)
    rng = np.random.default_rng(0)
    texture = rng.normal(0, 25, (3024 // 4, 4032 // 4)).repeat(4, 0).repeat(4, 1)
    red = 128 + 90 * np.sin(x / 3.0) + texture
    green = 128 + 90 * np.sin((x + y) / 5.0)
    blue = 128 + 60 * np.cos(y / 2.0) - texture
    pixels = np.clip(np.stack([red, green, blue], -1), 0, 255).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, "JPEG", quality=80)
    path = tmp_path_factory.mktemp("phone") / "IMG_0001.jpg"
    path.write_bytes(buffer.getvalue())
    assert len(buffer.getvalue()) < 10 * 1024 * 1024  # under the upload limit
    return path


def scores_of(class_scores) -> dict[str, float]:
    return {s["label"]: s["score"] for s in class_scores}


def assert_same_scores(a: dict[str, float], b: dict[str, float]) -> None:
    assert a.keys() == b.keys()
    assert all(math.isclose(a[label], b[label], abs_tol=1e-5) for label in a), max(
        abs(a[label] - b[label]) for label in a
    )


def test_the_api_single_path_the_batch_path_and_training_features_see_the_same_pixels(settings, phone_photo, tmp_path):
    data = phone_photo.read_bytes()
    classifier = load_classifier(settings)

    with TestClient(create_app(settings, classifier)) as client:
        single = client.post("/v1/classify?top_k=0", files={"file": ("IMG_0001.jpg", data, "image/jpeg")})
    assert single.status_code == 200, single.text
    single_scores = scores_of(single.json()["class_scores"])

    # The streaming batch path: API batch, dashboard uploads and ingest.
    item = next(iter(classifier.classify_many([("IMG_0001.jpg", data)], top_k=0)))
    assert item.ok
    assert_same_scores(single_scores, scores_of(item.result.class_scores))

    # Training: pooled features of the same photo through the same network's head.
    backbone = load_backbone(settings, str(settings.model))
    features = extract_features(backbone, [LabelledPhoto(content_id(data), "x", phone_photo, "IMG_0001.jpg")], None)
    assert not features.unreadable
    with torch.inference_mode():
        logits = backbone.head(features.vectors).softmax(-1)[0]
    training_scores = {backbone.labels[i]: float(p) for i, p in enumerate(logits)}
    assert_same_scores(single_scores, training_scores)
