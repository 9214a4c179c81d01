"""Export round trips: what moderators submitted reads back identically, and the imagefolder layout loads."""

from __future__ import annotations

import csv
import io
import json
import random
import types
import zipfile
from collections import Counter
from datetime import datetime, timedelta, timezone

import pandas as pd
import pytest

from db.export_rows import EXPORT_COLUMNS, ExportFilters, export_counts, export_rows
from db.models import utcnow
from db.reviews import submit_review
from factories import fake_result, photo
from foodclf.errors import FoodclfError
from foodclf.export import csv_chunks, write_csv, write_imagefolder, write_jsonl
from foodclf.images import decode_image
from foodclf.ingest import store_photo
from foodclf.store import ImageStore


def typed(filters: dict) -> ExportFilters:
    """The test's keyword form as the one filter object the queries take."""
    return ExportFilters(**{k: tuple(v) if k == "labels" else v for k, v in filters.items()})


DECISIONS = [  # (predicted, score, action, typed label, reviewer, file name)
    ("pizza", 0.91, "confirmed", None, "alice", "pizza night.jpg"),
    ("sushi", 0.42, "corrected", "Sashimi", "bob", 'lunch, with "quotes".jpg'),
    ("steak", 0.3333333333333333, "not_food", None, "alice", "crème brûlée ☃.jpg"),
    ("pizza", 0.77, "corrected", "Crème Brûlée", "carol", "dessert.jpg"),
    ("ramen", 0.51, "skipped", None, "bob", "skipped.jpg"),
    ("ramen", 0.12, None, None, None, "unreviewed.jpg"),
]


@pytest.fixture
def submitted(session, settings):
    """Photos stored through store_photo and judged through submit_review; returns the expected rows."""
    expected = []
    for i, (predicted, score, action, typed, reviewer, name) in enumerate(DECISIONS):
        loaded = decode_image(photo(color=(10 * i, 200, 30)), name=name)
        image = store_photo(
            session, settings, loaded, fake_result(predicted, score), source="upload", added_by="tester"
        )
        if action is None:
            continue
        review = submit_review(
            session, image.id, action=action, final_label=typed, reviewer=reviewer, expected_review_id=None
        )
        if action == "skipped":
            continue
        expected.append(
            dict(
                content_id=loaded.content_id,
                file_name=name,
                predicted_label=predicted,
                predicted_score=score,
                final_label=review.final_label,
                action=action,
                reviewer=reviewer,
                reviewed_at=review.created_at.isoformat(),
            )
        )
    session.commit()
    return expected


def test_csv_reads_back_identically(session, submitted):
    buffer = io.StringIO(newline="")
    assert write_csv(export_rows(session), buffer) == 4
    rows = list(csv.DictReader(io.StringIO(buffer.getvalue(), newline="")))
    assert list(rows[0]) == list(EXPORT_COLUMNS)
    for row in rows:
        row["predicted_score"] = float(row["predicted_score"])
    assert rows == submitted
    assert [r["final_label"] for r in rows] == ["pizza", "sashimi", "not_food", "crème_brûlée"]


def test_jsonl_reads_back_identically(session, submitted):
    buffer = io.StringIO()
    assert write_jsonl(export_rows(session), buffer) == 4
    assert [json.loads(line) for line in buffer.getvalue().splitlines()] == submitted


def test_pandas_reads_the_csv_too(session, submitted, tmp_path):
    path = tmp_path / "labels.csv"
    with open(path, "w", newline="", encoding="utf-8") as f:
        write_csv(export_rows(session), f)
    table = pd.read_csv(path)
    assert list(table.columns) == list(EXPORT_COLUMNS)
    assert table["predicted_score"].tolist() == [r["predicted_score"] for r in submitted]


def test_export_is_streamed(session, submitted):
    rows = export_rows(session, batch=2)
    assert isinstance(rows, types.GeneratorType)
    chunks = csv_chunks(rows)
    assert next(chunks) == ",".join(EXPORT_COLUMNS) + "\n"  # the header goes out before any row is read
    assert next(chunks).startswith(submitted[0]["content_id"])


def test_closing_a_half_read_export_closes_its_cursor(session, submitted, monkeypatch):
    from sqlalchemy.engine import Result

    closed = []
    real_close = Result.close

    def close(self):
        closed.append(self)
        real_close(self)

    monkeypatch.setattr(Result, "close", close)
    rows = export_rows(session, batch=2)
    next(rows)
    rows.close()  # what a dropped download does; on PostgreSQL an open server-side cursor would linger
    assert closed
    # The session is still usable, and a fresh export starts from the top.
    assert next(export_rows(session)).content_id == submitted[0]["content_id"]


def test_an_empty_export_is_the_header_alone(session):
    buffer = io.StringIO()
    assert write_csv(export_rows(session), buffer) == 0
    assert buffer.getvalue() == ",".join(EXPORT_COLUMNS) + "\n"


# Filters are built when the test runs (from "now"), not at collection: a run crossing midnight UTC
# would otherwise compare against yesterday.
@pytest.mark.parametrize(
    "filters, keep",
    [
        (lambda now: dict(only_corrected=True), lambda r: r["action"] in ("corrected", "not_food")),
        (lambda now: dict(labels=["pizza", "sashimi"]), lambda r: r["final_label"] in ("pizza", "sashimi")),
        (lambda now: dict(since=now.date() + timedelta(days=1)), lambda r: False),
        (lambda now: dict(until=now.date() - timedelta(days=1)), lambda r: False),
        (lambda now: dict(since=now - timedelta(hours=1), until=now.date()), lambda r: True),
    ],
    ids=["corrected", "labels", "since-tomorrow", "until-yesterday", "last-hour"],
)
def test_filters(session, submitted, filters, keep):
    got = [row.record() for row in export_rows(session, typed(filters(utcnow())))]
    assert got == [row for row in submitted if keep(row)]


def test_an_undone_decision_is_not_exported(session, submitted):
    from db.reviews import undo_last_review

    undo_last_review(session, "carol")
    assert [row.record() for row in export_rows(session)] == submitted[:3]


def read_metadata(text: str) -> pd.DataFrame:
    return pd.read_csv(io.StringIO(text), keep_default_na=False)


def test_imagefolder_layout_loads(session, settings, submitted, tmp_path):
    target = tmp_path / "dataset"
    report = write_imagefolder(export_rows(session), target, image_dir=settings.image_dir)
    assert (report.written, report.missing) == (4, [])
    metadata = read_metadata((target / "metadata.csv").read_text(encoding="utf-8"))
    assert list(metadata.columns) == ["file_name", "label"]
    store = ImageStore(settings.image_dir)
    for row, expected in zip(metadata.itertuples(), submitted):
        assert row.file_name == f"{expected['final_label']}/{expected['content_id']}.jpg"
        assert row.label == expected["final_label"] == row.file_name.split("/")[0]
        assert (target / row.file_name).read_bytes() == store.read(f"{expected['content_id']}.jpg")
    assert sorted(p.name for p in target.iterdir()) == ["crème_brûlée", "metadata.csv", "not_food", "pizza", "sashimi"]


def test_imagefolder_streams_into_a_zip(session, settings, submitted):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        report = write_imagefolder(
            export_rows(session, ExportFilters(only_corrected=True)), archive, image_dir=settings.image_dir
        )
    assert report.written == 3
    with zipfile.ZipFile(buffer) as archive:
        metadata = read_metadata(archive.read("metadata.csv").decode("utf-8"))
        assert sorted(archive.namelist()) == sorted(["metadata.csv", *metadata["file_name"]])
        assert metadata["label"].tolist() == ["sashimi", "not_food", "crème_brûlée"]


def test_a_photo_missing_from_the_store_is_reported_and_left_out(session, settings, submitted, tmp_path):
    missing = submitted[1]["content_id"]
    ImageStore(settings.image_dir).path(f"{missing}.jpg").unlink()
    report = write_imagefolder(export_rows(session), tmp_path / "out", image_dir=settings.image_dir)
    assert (report.written, report.missing) == (3, [missing])
    assert missing not in (tmp_path / "out" / "metadata.csv").read_text()


def test_imagefolder_refuses_a_folder_that_is_not_empty(session, settings, submitted, tmp_path):
    (tmp_path / "old.txt").write_text("x")
    with pytest.raises(FoodclfError, match="is not empty; choose a new folder"):
        write_imagefolder(export_rows(session), tmp_path, image_dir=settings.image_dir)


# ---- export_counts ---------------------------------------------------------------------------


def counted(session, filters) -> list[dict]:
    """What export_counts should say: export_rows' rows counted in Python."""
    counts = Counter(row.final_label for row in export_rows(session, typed(filters)))
    return [dict(label=label, count=n) for label, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))]


START = datetime(2024, 5, 1, 8, tzinfo=timezone.utc)


@pytest.fixture
def generated(session, make_image, make_review):
    """60 photos with random predictions and decisions (some undone, skipped or unreviewed) over 6 days."""
    from db.reviews import undo_last_review

    rng = random.Random(11)
    labels = ["pizza", "sushi", "steak", "ramen"]
    for i in range(60):
        image = make_image(session, label=rng.choice(labels), score=rng.random())
        at = START + timedelta(days=i % 6, hours=rng.randrange(12))
        action = rng.choice(["confirmed", "confirmed", "corrected", "not_food", "skipped", None])
        if action is None:
            continue
        reviewer = rng.choice(["alice", "bob"])
        make_review(
            session,
            image,
            action=action,
            label=rng.choice(labels) if action == "corrected" else None,
            reviewer=reviewer,
            at=at,
        )
        if action != "skipped" and rng.random() < 0.15:
            undo_last_review(session, reviewer)
    session.flush()


@pytest.mark.parametrize(
    "filters",
    [
        {},
        dict(only_corrected=True),
        dict(labels=["pizza", "not_food"]),
        dict(labels=[]),
        dict(since=START.date() + timedelta(days=2)),
        dict(until=START.date() + timedelta(days=3)),
        dict(since=START + timedelta(days=1, hours=5), until=START.date() + timedelta(days=4), only_corrected=True),
        dict(
            since=START.date() + timedelta(days=1),
            until=START.date() + timedelta(days=4),
            labels=["sushi", "steak", "ramen"],
        ),
    ],
)
def test_export_counts_match_the_export(session, generated, filters):
    got = export_counts(session, typed(filters))
    assert got == counted(session, filters)
    # Every filter but an empty label list matches some rows, so the comparison above is not [] == [].
    total = sum(row["count"] for row in got)
    assert total > 0
    if filters.get("labels") == []:  # no label chosen means every label, as on the Export page
        assert got == export_counts(session)
    if not filters:
        assert total > 20


def test_export_counts_of_the_submitted_photos(session, submitted):
    assert export_counts(session) == [
        dict(label=label, count=1) for label in sorted(["pizza", "sashimi", "not_food", "crème_brûlée"])
    ]
    assert export_counts(session, ExportFilters(only_corrected=True, labels=("pizza", "sashimi"))) == [
        dict(label="sashimi", count=1)
    ]
    assert export_counts(session, ExportFilters(since=utcnow().date() + timedelta(days=1))) == []
