"""Opening the database: folder, pragmas, per-URL cache, migrations that keep rows."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, inspect, select, text
from sqlalchemy.exc import IntegrityError

from db.engine import close_database, open_database, session_scope, upgrade_database
from db.models import Base, ImageRow, ReviewRow
from db.records import find_image, image_history
from db.reviews import submit_review
from db.stats import category_rates
from db.trained_models import list_models, register_model
from foodclf.errors import FoodclfError

ROOT = Path(__file__).resolve().parents[1]


def test_sqlite_file_gets_its_folder_wal_foreign_keys_and_busy_timeout(tmp_path):
    url = f"sqlite:///{tmp_path / 'deep' / 'er' / 'foodclf.db'}"
    engine = open_database(url)
    try:
        assert (tmp_path / "deep" / "er" / "foodclf.db").is_file()
        with engine.connect() as connection:
            assert connection.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            assert connection.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
            assert connection.exec_driver_sql("PRAGMA busy_timeout").scalar() == 30_000
    finally:
        close_database(url)


def test_engines_are_cached_per_url(settings):
    first = open_database(settings)
    assert open_database(settings.database_url) is first
    close_database(settings)
    second = open_database(settings)
    assert second is not first
    close_database(settings)


def test_schema_made_by_migrations_matches_the_models(engine):
    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        assert context.get_current_revision() == "0011"
        assert compare_metadata(context, Base.metadata) == []


def test_foreign_keys_are_enforced(session, make_image):
    image = make_image(session)
    session.add(ReviewRow(image_id=image.id + 1000, action="skipped", reviewer="alice"))
    with pytest.raises(IntegrityError):
        session.flush()


def test_migration_from_the_previous_schema_keeps_every_row(database):
    url = database.url("old", migrated=False)
    old = create_engine(url)
    upgrade_database(old, "0001")
    with old.begin() as connection:
        assert "trained_models" not in inspect(connection).get_table_names()
        connection.execute(
            text(
                # No ids given: each table's first id is 1, and PostgreSQL's sequences move on as in use.
                "INSERT INTO images (content_id, file_name, stored_path, width, height, format, size_bytes,"
                " source, added_by, added_at, prediction_id, top_label, top_score)"
                " VALUES (:cid, 'old photo.jpg', :path, 64, 48, 'JPEG', 1234, 'folder', 'carol',"
                " '2024-05-01 10:00:00.000000', 1, 'pizza', 0.25)"
            ),
            {"cid": "a" * 64, "path": "a" * 64 + ".jpg"},
        )
        connection.execute(
            text(
                "INSERT INTO predictions (image_id, model_id, fingerprint, top_label, top_score, scores,"
                " uncertain, latency_ms, created_at) VALUES (1, 'old-model', :fp, 'pizza', 0.25,"
                ' \'[{"label": "pizza", "score": 0.25}]\', TRUE, 3.5, \'2024-05-01 10:00:00.000000\')'
            ),
            {"fp": "b" * 64},
        )
        connection.execute(
            text(
                "INSERT INTO reviews (image_id, prediction_id, action, final_label, reviewer, created_at)"
                " VALUES (1, 1, 'skipped', NULL, 'dave', '2024-05-02 09:00:00.000000')"
            )
        )
    old.dispose()

    engine = open_database(url)  # what the app and the CLI do on start
    try:
        with session_scope(engine) as session:
            image = find_image(session, "a" * 64)
            assert (image.file_name, image.top_label, image.added_at.isoformat()) == (
                "old photo.jpg",
                "pizza",
                "2024-05-01T10:00:00+00:00",
            )
            assert [e["kind"] for e in image_history(session, 1)] == ["prediction", "review"]
            review = submit_review(session, 1, action="confirmed", reviewer="erin", expected_review_id=None)
            register_model(
                session,
                name="v2",
                path="/models/v2",
                base_model="old-model",
                labels=["pizza"],
                metrics={},
                train_size=1,
                created_by="erin",
            )
        with session_scope(engine) as session:
            assert session.scalars(select(ImageRow.current_label)).all() == ["pizza"]
            assert review.id == 2
            assert [m.name for m in list_models(session)] == ["v2"]
    finally:
        close_database(url)


def test_migration_0003_records_the_label_each_current_decision_judged(database):
    url = database.url("judged", migrated=False)
    old = create_engine(url)
    upgrade_database(old, "0002")
    image = (
        "INSERT INTO images (id, content_id, file_name, stored_path, width, height, format, size_bytes, source,"
        " added_by, added_at, prediction_id, top_label, top_score, current_review_id, current_label,"
        " current_action, reviewed_at) VALUES (:id, :cid, 'p.jpg', 'p.jpg', 64, 48, 'JPEG', 1, 'folder', 'carol',"
        " '2024-05-01 10:00:00.000000', :latest, :top, 0.5, :review, :final, :action, :at)"
    )
    prediction = (
        "INSERT INTO predictions (id, image_id, model_id, fingerprint, top_label, top_score, scores,"
        " uncertain, latency_ms, created_at) VALUES (:id, :image, 'm', :fp, :label, 0.5, '[]', FALSE, 1,"
        " '2024-05-01 10:00:00.000000')"
    )
    review = (
        "INSERT INTO reviews (id, image_id, prediction_id, action, final_label, reviewer, created_at)"
        " VALUES (:id, :image, :prediction, :action, :final, 'dave', '2024-05-02 09:00:00.000000')"
    )
    with old.begin() as connection:
        # Photo 1 was confirmed as pizza, then a newer model called it sushi; photo 2 is unreviewed;
        # photo 3's decision judged no prediction.
        for row in [
            dict(
                id=1,
                cid="a" * 64,
                latest=2,
                top="sushi",
                review=1,
                final="pizza",
                action="confirmed",
                at="2024-05-02 09:00:00.000000",
            ),
            dict(id=2, cid="b" * 64, latest=3, top="ramen", review=None, final=None, action=None, at=None),
            dict(
                id=3,
                cid="c" * 64,
                latest=None,
                top=None,
                review=2,
                final="pho",
                action="corrected",
                at="2024-05-02 09:00:00.000000",
            ),
        ]:
            connection.execute(text(image), row)
        for row in [
            dict(id=1, image=1, fp="1" * 64, label="pizza"),
            dict(id=2, image=1, fp="2" * 64, label="sushi"),
            dict(id=3, image=2, fp="1" * 64, label="ramen"),
        ]:
            connection.execute(text(prediction), row)
        connection.execute(text(review), dict(id=1, image=1, prediction=1, action="confirmed", final="pizza"))
        connection.execute(text(review), dict(id=2, image=3, prediction=None, action="corrected", final="pho"))
    old.dispose()

    engine = open_database(url)
    try:
        with session_scope(engine) as session:
            judged = session.execute(select(ImageRow.id, ImageRow.judged_label).order_by(ImageRow.id)).all()
            assert judged == [(1, "pizza"), (2, None), (3, None)]
            assert [row["label"] for row in category_rates(session)] == ["pizza"]
    finally:
        close_database(url)


def test_opening_again_is_a_no_op_that_keeps_rows(settings, make_image):
    from sqlalchemy.orm import Session

    with Session(open_database(settings)) as session, session.begin():
        make_image(session)
    close_database(settings)
    with session_scope(open_database(settings)) as session:
        assert len(session.scalars(select(ImageRow)).all()) == 1
    close_database(settings)


def test_two_processes_starting_at_once_both_find_the_schema(database):
    url = database.url("race", migrated=False)
    code = f"from db.engine import open_database; open_database({url!r})"
    runs = [subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, stderr=subprocess.PIPE) for _ in range(3)]
    outcomes = [(run.communicate(timeout=60)[1], run.returncode) for run in runs]
    assert outcomes == [(b"", 0)] * 3
    engine = open_database(url)
    try:
        with engine.connect() as connection:
            assert MigrationContext.configure(connection).get_current_revision() == "0011"
    finally:
        close_database(url)


def test_in_memory_database_works():
    engine = open_database("sqlite://")
    try:
        with session_scope(engine) as session:
            assert session.scalars(select(ImageRow)).all() == []
    finally:
        close_database("sqlite://")


def test_a_database_folder_that_cannot_be_made_is_explained(tmp_path):
    (tmp_path / "file").write_text("not a folder")
    with pytest.raises(FoodclfError, match="Cannot create the folder .* FOODCLF_DATABASE_URL"):
        open_database(f"sqlite:///{tmp_path / 'file' / 'foodclf.db'}")


@pytest.mark.parametrize("url", ["nonsense", "postgresql+nodriver://u@h/db"])
def test_an_unusable_database_url_is_explained(url):
    with pytest.raises(FoodclfError, match="FOODCLF_DATABASE_URL cannot be used"):
        open_database(url)
