"""Every score kept: predictions store the whole score vector compactly; old rows migrate (0010)."""

from __future__ import annotations

import math

from sqlalchemy import create_engine, select, text

from db.engine import close_database, open_database, session_scope, upgrade_database
from db.models import ImageRow, PredictionRow, ScoreLayout
from db.scores import decode_scores, encode_scores, margin_and_entropy, prediction_scores
from factories import photo
from foodclf.images import decode_image


def test_old_predictions_migrate_into_the_new_form(tmp_path):
    url = f"sqlite:///{tmp_path / 'old.db'}"
    old = create_engine(url)
    upgrade_database(old, "0006")
    rows = [
        (
            1,
            "a",
            "pizza",
            '[{"label": "pizza", "score": 0.5}, {"label": "steak", "score": 0.3}, {"label": "sushi", "score": 0.1}]',
        ),
        (2, "b", "ramen", '[{"label": "ramen", "score": 0.9}, {"label": "pizza", "score": 0.05}]'),
    ]
    with old.begin() as connection:
        for n, char, label, scores in rows:
            connection.execute(
                text(
                    "INSERT INTO images (id, content_id, file_name, stored_path, width, height, format, size_bytes,"
                    " source, added_by, added_at, prediction_id, top_label, top_score)"
                    " VALUES (:n, :cid, 'p.jpg', :path, 64, 48, 'JPEG', 1, 'folder', 'carol',"
                    " '2024-05-01 10:00:00.000000', :n, :label, 0.5)"
                ),
                {"n": n, "cid": char * 64, "path": char * 64 + ".jpg", "label": label},
            )
            connection.execute(
                text(
                    "INSERT INTO predictions (id, image_id, model_id, fingerprint, top_label, top_score, scores,"
                    " uncertain, latency_ms, created_at) VALUES (:n, :n, 'old', :fp, :label, 0.5, :scores, 0, 1,"
                    " '2024-05-01 10:00:00.000000')"
                ),
                {"n": n, "fp": "f" * 64, "label": label, "scores": scores},
            )
    old.dispose()

    engine = open_database(url)
    try:
        with session_scope(engine) as session:
            layout = session.get(ScoreLayout, "f" * 64)
            assert layout.labels == ["pizza", "ramen", "steak", "sushi"]  # every label the model's rows named
            first, second = session.scalars(select(PredictionRow).order_by(PredictionRow.id)).all()
            vector = decode_scores(first.all_scores)
            assert [round(v, 3) for v in vector[:1] + vector[2:]] == [0.5, 0.3, 0.1] and math.isnan(vector[1])
            assert {k: round(v, 3) for k, v in prediction_scores(session, first).items()} == {
                "pizza": 0.5,
                "steak": 0.3,
                "sushi": 0.1,
            }  # float16: 3 significant digits
            assert abs(first.margin - 0.2) < 1e-9
            # The entropy is a lower bound: the 0.1 nobody kept counts as one more outcome.
            expected = -sum(p * math.log(p) for p in (0.5, 0.3, 0.1, 0.1))
            assert abs(first.entropy - expected) < 1e-9
            images = session.scalars(select(ImageRow).order_by(ImageRow.id)).all()
            assert [round(i.top_margin, 3) for i in images] == [0.2, 0.85]
            assert images[1].top_entropy == second.entropy
    finally:
        close_database(url)


def test_new_predictions_keep_every_score(session, settings):
    from foodclf.classifier import load_classifier
    from foodclf.ingest import store_photo

    classifier = load_classifier(settings)  # the tiny model: 101 labels, top_k 5
    loaded = decode_image(photo(color=(10, 200, 30)), name="x.jpg")
    result = classifier.classify_image(loaded.image)
    assert len(result.class_scores) == 5 and len(result.all_scores) == 101
    image = store_photo(session, settings, loaded, result, source="upload", added_by="t")
    prediction = session.get(PredictionRow, image.prediction_id)
    assert len(prediction.all_scores) == 202  # 101 float16s
    scores = prediction_scores(session, prediction)
    assert len(scores) == 101 and abs(sum(scores.values()) - 1) < 0.01
    top = result.class_scores
    assert abs(prediction.margin - (top[0]["score"] - top[1]["score"])) < 1e-6
    assert abs(image.top_entropy - margin_and_entropy(result.all_scores)[1]) < 1e-9
    assert 4.0 < image.top_entropy <= math.log(101) + 1e-6  # an untrained model: nearly uniform


def test_encoding_is_compact_and_round_trips():
    data = encode_scores([0.25, 0.5, 0.125, float("nan")])
    assert len(data) == 8
    decoded = decode_scores(data)
    assert decoded[:3] == [0.25, 0.5, 0.125] and math.isnan(decoded[3])
