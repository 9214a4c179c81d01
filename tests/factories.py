"""Test data builders: photos, fake classifier results, database rows (conftest wraps them as fixtures)."""

from __future__ import annotations

import io

from PIL import Image

FINGERPRINT = "f" * 64  # the fake model's weights fingerprint


def photo(color=(200, 80, 40), size=(48, 40), fmt="JPEG", **save_args) -> bytes:
    """A small solid-colour photo's bytes."""
    buffer = io.BytesIO()
    mode = "RGBA" if len(color) == 4 else "RGB"
    Image.new(mode, size, color).save(buffer, fmt, **save_args)
    return buffer.getvalue()


def fake_result(label="pizza", score=0.9, *, runner_up="steak", fingerprint=FINGERPRINT, model_id="tiny-test"):
    """A ClassificationResult as the classifier would give it, without running a model."""
    from foodclf.classifier import ClassificationResult

    scores = [{"label": label, "score": score}, {"label": runner_up, "score": round((1 - score) / 2, 6)}]
    return ClassificationResult(
        class_scores=scores,
        highest_probability_class=label,
        uncertain=score < 0.5,
        model_id=model_id,
        fingerprint=fingerprint,
        latency_ms=1.5,
    )


def fake_loaded(data: bytes, file_name="photo.jpg"):
    """A LoadedImage with these bytes (no pixels: the database keeps only the metadata)."""
    from foodclf.images import LoadedImage, content_id

    return LoadedImage(
        image=None, content_id=content_id(data), data=data, format="JPEG", file_name=file_name, width=48, height=40
    )


def image_factory():
    """make(session, label=, score=, added_at=, **record_image options) -> ImageRow, with a prediction."""
    from itertools import count

    from db.records import record_image, record_prediction

    numbers = count()

    def make(
        session,
        *,
        label="pizza",
        score=0.9,
        added_at=None,
        fingerprint=FINGERPRINT,
        source="folder",
        added_by="tester",
        data=None,
    ):
        n = next(numbers)
        loaded = fake_loaded(data or f"photo number {n}".encode(), file_name=f"photo-{n}.jpg")
        image = record_image(session, loaded, source=source, added_by=added_by, stored_path=f"{loaded.content_id}.jpg")
        prediction = record_prediction(session, image, fake_result(label, score, fingerprint=fingerprint))
        if added_at is not None:
            image.added_at = prediction.created_at = added_at
        session.flush()
        return image

    return make


def make_review_row(session, image, *, action="confirmed", label=None, reviewer="alice", at=None, note=None):
    """A decision through submit_review, optionally back-dated to `at`."""
    from db.reviews import submit_review

    review = submit_review(
        session,
        image.id,
        action=action,
        final_label=label,
        reviewer=reviewer,
        expected_review_id=image.current_review_id,
        note=note,
    )
    if at is not None:
        review.created_at = at
        if image.current_review_id == review.id:
            image.reviewed_at = at
    session.flush()
    return review


# --- images that are not food (for the starter model and the not-food gate) ---


def portrait_path():
    """Grace Hopper's portrait, as matplotlib ships it (512 x 600 JPEG)."""
    from matplotlib import cbook

    return cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)


def landscape_path():
    """A landscape photo (a temple on a hillside, 640 x 427), as scikit-learn ships it."""
    from importlib.resources import files

    return files("sklearn.datasets") / "images" / "china.jpg"


def screenshot_image() -> Image.Image:
    """A screenshot-like image: a window with a title bar and lines of black text on white."""
    from PIL import ImageDraw, ImageFont

    image = Image.new("RGB", (1280, 800), "white")
    draw = ImageDraw.Draw(image)
    draw.rectangle((0, 0, 1280, 40), fill=(50, 50, 60))
    font = ImageFont.load_default(size=18)
    for line in range(28):
        draw.text(
            (40, 60 + 25 * line),
            f"{line + 1:>3}  Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tempor incididunt",
            fill="black",
            font=font,
        )
    return image


def gradient_landscape_image() -> Image.Image:
    """A landscape-like gradient: blue sky over a green field with a little texture."""
    image = Image.new("RGB", (640, 400))
    pixels = image.load()
    for y in range(400):
        for x in range(640):
            pixels[x, y] = (90 + y // 4, 150 + y // 5, 235) if y < 220 else (60 + (x * y) % 30, 120 + y // 8, 50)
    return image
