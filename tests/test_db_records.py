"""Recording photos and predictions: idempotent, latest prediction kept on the image, history in order."""

from __future__ import annotations

from datetime import timezone
from unittest.mock import ANY

import pytest
from sqlalchemy import func, select

import db.records
from db.models import ImageRow, PredictionRow
from db.records import (
    find_image,
    image_history,
    image_summary,
    record_image,
    record_prediction,
    stored_content_ids,
)
from factories import FINGERPRINT, fake_loaded, fake_result


def count(session, model) -> int:
    return session.scalar(select(func.count()).select_from(model))


def test_recording_the_same_photo_twice_keeps_one_row(session):
    first = record_image(
        session, fake_loaded(b"bytes", "first.jpg"), source="upload", added_by="alice", stored_path="x.jpg"
    )
    session.commit()
    second = record_image(
        session, fake_loaded(b"bytes", "renamed.jpg"), source="api", added_by="bob", stored_path="x.jpg"
    )
    assert second.id == first.id
    assert (second.file_name, second.source, second.added_by) == ("first.jpg", "upload", "alice")
    assert count(session, ImageRow) == 1
    assert second.added_at.tzinfo == timezone.utc


def test_a_photo_recorded_by_another_process_meanwhile_is_returned_not_duplicated(session, monkeypatch):
    existing = record_image(session, fake_loaded(b"race"), source="folder", added_by="x", stored_path="r.jpg")
    session.commit()
    # As if the other writer committed between our lookup and our INSERT.
    monkeypatch.setattr(db.records, "find_image", lambda session, key: None)
    again = record_image(session, fake_loaded(b"race"), source="folder", added_by="y", stored_path="r.jpg")
    assert again.id == existing.id
    assert count(session, ImageRow) == 1


def test_prediction_is_recorded_once_per_fingerprint_and_the_latest_is_on_the_image(session):
    image = record_image(session, fake_loaded(b"p"), source="folder", added_by="x", stored_path="p.jpg")
    first = record_prediction(session, image, fake_result("pizza", 0.8))
    again = record_prediction(session, image, fake_result("sushi", 0.1))  # same fingerprint: kept as is
    assert again.id == first.id and again.top_label == "pizza"
    newer = record_prediction(session, image, fake_result("steak", 0.6, fingerprint="e" * 64))
    assert count(session, PredictionRow) == 2
    assert (image.prediction_id, image.top_label, image.top_score) == (newer.id, "steak", 0.6)
    assert newer.scores == [{"label": "steak", "score": 0.6}, {"label": "steak", "score": 0.2}]
    assert (newer.model_id, newer.uncertain, newer.latency_ms) == ("tiny-test", False, 1.5)


def test_unknown_source_is_refused(session):
    with pytest.raises(ValueError, match="source: expected one of upload, folder, api"):
        record_image(session, fake_loaded(b"s"), source="email", added_by="x", stored_path="s.jpg")
    assert count(session, ImageRow) == 0


def test_find_image_by_id_or_content_id(session, make_image):
    image = make_image(session)
    assert find_image(session, image.id) is image
    assert find_image(session, image.content_id.upper()) is image
    assert find_image(session, "0" * 64) is None
    assert find_image(session, 12345) is None


def test_image_summary_has_plain_values(session, make_image, make_review):
    image = make_image(session, label="ramen", score=0.42)
    make_review(session, image, action="corrected", label="Pho", reviewer="alice")
    summary = image_summary(session, image.content_id)
    assert summary.predicted_label == "ramen" and summary.predicted_score == 0.42
    assert (summary.final_label, summary.action, summary.reviewed_by) == ("pho", "corrected", "alice")
    assert summary.current_review_id == image.current_review_id
    assert summary.scores[0] == {"label": "ramen", "score": 0.42}
    assert image_summary(session, "0" * 64) is None


def test_history_lists_predictions_and_reviews_in_time_order(session, make_image, make_review):
    from db.reviews import undo_last_review

    image = make_image(session, label="pizza")
    make_review(session, image, action="skipped", reviewer="bob")
    make_review(session, image, action="confirmed", reviewer="alice")
    record_prediction(session, image, fake_result("sushi", 0.7, fingerprint="e" * 64))
    undo_last_review(session, "alice")
    events = image_history(session, image.id)
    assert [(e["kind"], e.get("action")) for e in events] == [
        ("prediction", None),
        ("review", "skipped"),
        ("review", "confirmed"),
        ("prediction", None),
        ("review", "undone"),
    ]
    assert events[0] == dict(
        kind="prediction",
        at=ANY,
        id=ANY,
        model_id="tiny-test",
        fingerprint=FINGERPRINT,
        label="pizza",
        score=0.9,
        uncertain=False,
        scores=ANY,
    )
    assert events[4]["undoes_review_id"] == events[2]["id"]
    assert not any(e.get("current") for e in events)  # the undo left it unreviewed
    assert image_history(session, "0" * 64) is None


def test_stored_content_ids_only_counts_this_models_predictions(session, make_image):
    mine = make_image(session)
    other = make_image(session, fingerprint="e" * 64)
    ids = [mine.content_id, other.content_id, "0" * 64]
    assert stored_content_ids(session, ids, FINGERPRINT) == {mine.content_id}
    assert stored_content_ids(session, ids * 300, FINGERPRINT) == {mine.content_id}  # chunked IN (...)
