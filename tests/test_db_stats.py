"""Every statistic, computed in SQL, against the same figure computed with pandas from the raw tables.

pandas derives each photo's current decision from the append-only review log itself (latest
decision not undone), so the denormalised columns the SQL uses are checked too. Last, SQLite's
plans: each statistic must read indices alone, in order, as it must at a million rows.
"""

from __future__ import annotations

import random
from collections import Counter
from datetime import date, datetime, timedelta, timezone

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import delete, event, select, update
from sqlalchemy.orm import Session

from db import stats
from db.engine import close_database, open_database
from db.indexing import unseekable
from db.models import DECISIONS, DailyCount, ImageRow, PredictionRow, ReviewRow, UTCDateTime
from db.records import record_prediction
from db.reviews import undo_last_review
from factories import fake_result, image_factory, make_review_row
from foodclf.errors import ReviewConflict

START = datetime(2024, 5, 1, 6, tzinfo=timezone.utc)
LABELS = ["pizza", "sushi", "steak", "ramen"]
REVIEWERS = ["alice", "bob", "carol"]
NEWER_MODEL = "e" * 64  # the fingerprint of a model that classifies some photos again
RANGES = [
    dict(),
    dict(since=date(2024, 5, 2)),
    dict(until=date(2024, 5, 3)),
    dict(since=START + timedelta(days=1, hours=5), until=START + timedelta(days=3, hours=2)),
    dict(since=START + timedelta(hours=1), until=date(2024, 5, 7)),  # nearly everything: counted from outside
]


@pytest.fixture(scope="module")
def session(module_database):
    """One database (per backend) for the whole module: the tests only read it."""
    with Session(open_database(module_database.url("stats")), expire_on_commit=False) as session:
        yield session


@pytest.fixture(scope="module")
def data(session):
    """~150 photos over 5 days, reviewed by three moderators with skips, corrections and undos.

    A newer model then classifies some photos again: their top label moves on, while the decisions
    already made still judged the older prediction (and some photos are decided again).
    """
    make_image, make_review = image_factory(), make_review_row
    rng = random.Random(42)
    edge_scores = [0.0, 0.1, 0.3, 0.7, 0.9999, 1.0]
    images = []
    for i in range(150):
        score = edge_scores[i] if i < len(edge_scores) else round(rng.random(), 4)
        images.append(
            make_image(session, label=rng.choice(LABELS), score=score, added_at=START + timedelta(hours=i * 0.8))
        )
    clock = START + timedelta(hours=2)
    for image in rng.sample(images, 110):
        for _ in range(rng.choice([1, 1, 2])):
            clock += timedelta(minutes=rng.randint(5, 60))
            action = rng.choice(["confirmed", "confirmed", "corrected", "not_food", "skipped"])
            label = rng.choice(LABELS + ["calzone", "pho"]) if action == "corrected" else None
            make_review(session, image, action=action, label=label, reviewer=rng.choice(REVIEWERS), at=clock)
        if rng.random() < 0.15:
            try:
                undo = undo_last_review(session, rng.choice(REVIEWERS))
            except ReviewConflict:
                continue
            if undo is not None:
                clock += timedelta(minutes=1)
                undo.created_at = clock
                restored = session.get(ImageRow, undo.image_id)
                if restored.current_review_id is not None:
                    restored.reviewed_at = session.get(ReviewRow, restored.current_review_id).created_at
    for image in rng.sample(images[len(edge_scores) :], 25):  # the histogram edge photos keep their scores
        clock += timedelta(minutes=rng.randint(5, 60))
        result = fake_result(rng.choice(LABELS), round(rng.random(), 4), fingerprint=NEWER_MODEL)
        record_prediction(session, image, result).created_at = clock
        if rng.random() < 0.3:
            clock += timedelta(minutes=rng.randint(5, 60))
            action = rng.choice(["confirmed", "corrected"])
            label = rng.choice(LABELS) if action == "corrected" else None
            make_review(session, image, action=action, label=label, reviewer=rng.choice(REVIEWERS), at=clock)
    session.commit()
    return images


def frame(session, model) -> pd.DataFrame:
    return pd.DataFrame(session.execute(select(model.__table__)).mappings().all())


def raw(session):
    """images (with each photo's current decision derived from the log), predictions and reviews."""
    images, predictions, reviews = frame(session, ImageRow), frame(session, PredictionRow), frame(session, ReviewRow)
    undone = set(reviews["undoes_review_id"].dropna().astype(int))
    decisions = reviews[reviews["action"].isin(DECISIONS) & ~reviews["id"].isin(undone)]
    current = decisions.sort_values("id").groupby("image_id").tail(1)
    current = current.merge(
        predictions[["id", "top_label"]].rename(columns={"id": "prediction_id", "top_label": "judged"}),
        on="prediction_id",
    )
    current = current.rename(columns={"created_at": "decided_at", "final_label": "final"})
    latest = predictions.sort_values("id").groupby("image_id").tail(1)[["image_id", "top_label", "top_score"]]
    images = images[["id", "added_at"]].merge(latest, left_on="id", right_on="image_id")
    images = images.merge(current[["image_id", "action", "final", "judged", "decided_at"]], on="image_id", how="left")
    return images, predictions, reviews


def within(series: pd.Series, since=None, until=None) -> pd.Series:
    keep = pd.Series(True, index=series.index)
    if since is not None:
        keep &= series >= _bound(since)
    if until is not None:
        keep &= series < _bound(until, end=True)
    return keep


def _bound(value, end=False):
    if isinstance(value, datetime):
        return value
    return datetime(value.year, value.month, value.day, tzinfo=timezone.utc) + timedelta(days=int(end))


def label_counts(series: pd.Series) -> list[dict]:
    counts = series.value_counts()
    return sorted(({"label": k, "count": int(v)} for k, v in counts.items()), key=lambda r: (-r["count"], r["label"]))


def test_generated_data_has_every_case(session, data):
    images, _, reviews = raw(session)
    assert set(reviews["action"]) == {"confirmed", "corrected", "not_food", "skipped", "undone"}
    assert images["action"].isna().sum() > 20 and images["action"].notna().sum() > 50
    decided = images[images["action"].notna()]
    assert (decided["judged"] != decided["top_label"]).sum() >= 3  # judged a prediction since replaced


def test_denormalised_decision_columns_match_the_review_log(session, data):
    """The statistics read each photo's decision from images; it must be what the log says."""
    images, _, _ = raw(session)
    derived = images.set_index("id")[["action", "final", "judged", "decided_at"]]
    stored = frame(session, ImageRow).set_index("id")[
        ["current_action", "current_label", "judged_label", "reviewed_at"]
    ]

    def rows(table):
        return sorted(
            (key, *(None if pd.isna(v) else v for v in values))
            for key, values in zip(table.index, table.itertuples(index=False))
        )

    assert rows(stored) == rows(derived)


@pytest.mark.parametrize("span", RANGES)
def test_predicted_and_final_label_counts(session, data, span):
    images, _, _ = raw(session)
    added = images[within(images["added_at"], **span)]
    assert stats.predicted_label_counts(session, **span) == label_counts(added["top_label"])
    decided = images[images["action"].notna() & within(images["decided_at"], **span)]
    assert stats.final_label_counts(session, **span) == label_counts(decided["final"])


@pytest.mark.parametrize("span", RANGES)
def test_category_rates(session, data, span):
    images, _, _ = raw(session)
    decided = images[images["action"].notna() & within(images["decided_at"], **span)]
    expected = []
    for label, group in decided.groupby("judged"):
        n = len(group)
        counts = {a: int((group["action"] == a).sum()) for a in DECISIONS}
        expected.append(
            dict(
                label=label,
                reviewed=n,
                **counts,
                confirmation_rate=counts["confirmed"] / n,
                correction_rate=(counts["corrected"] + counts["not_food"]) / n,
            )
        )
    expected.sort(key=lambda r: (-r["reviewed"], r["label"]))
    assert stats.category_rates(session, **span) == expected


@pytest.mark.parametrize("span", RANGES)
def test_confusion_pairs(session, data, span):
    images, _, _ = raw(session)
    changed = images[images["action"].isin(["corrected", "not_food"]) & within(images["decided_at"], **span)]
    pairs = changed.groupby(["judged", "final"]).size()
    expected = sorted(
        ({"predicted": p, "final": f, "count": int(n)} for (p, f), n in pairs.items()),
        key=lambda r: (-r["count"], r["predicted"], r["final"]),
    )
    assert stats.confusion_pairs(session, **span) == expected
    assert all(r["predicted"] != r["final"] for r in expected)


@pytest.mark.parametrize("span", RANGES)
def test_confidence_histogram(session, data, span):
    images, _, _ = raw(session)
    scores = images.loc[within(images["added_at"], **span), "top_score"].to_numpy()
    edges = np.array([k / 10 for k in range(11)])
    bins = np.minimum(np.searchsorted(edges, scores, side="right") - 1, 9)
    expected = [dict(bin=k, low=edges[k], high=edges[k + 1], count=int((bins == k).sum())) for k in range(10)]
    assert stats.confidence_histogram(session, **span) == expected


def test_histogram_edges_fall_in_the_upper_bin(session, data):
    counts = [row["count"] for row in stats.confidence_histogram(session, until=START + timedelta(hours=4.5))]
    # 0.0 and 0.1 -> bins 0 and 1; 0.3 -> 3; 0.7 -> 7; 0.9999 and 1.0 -> 9
    assert counts == [1, 1, 0, 1, 0, 0, 0, 1, 0, 2]


@pytest.mark.parametrize("span", RANGES)
def test_daily_volume(session, data, span):
    images, _, reviews = raw(session)
    added = images.loc[within(images["added_at"], **span), "added_at"].map(lambda t: t.date()).value_counts()
    decided = reviews[reviews["action"].isin(DECISIONS) & within(reviews["created_at"], **span)]
    decided = decided["created_at"].map(lambda t: t.date()).value_counts()
    days = pd.date_range(min(added.index.min(), decided.index.min()), max(added.index.max(), decided.index.max()))
    expected = [
        dict(day=d.date(), added=int(added.get(d.date(), 0)), decisions=int(decided.get(d.date(), 0))) for d in days
    ]
    assert stats.daily_volume(session, **span) == expected


@pytest.mark.parametrize("span", RANGES)
def test_reviewer_activity(session, data, span):
    _, _, reviews = raw(session)
    rows = reviews[within(reviews["created_at"], **span)]
    expected = []
    for reviewer, group in rows.groupby("reviewer"):
        counts = {
            a: int((group["action"] == a).sum()) for a in ("confirmed", "corrected", "not_food", "skipped", "undone")
        }
        expected.append(dict(reviewer=reviewer, decisions=sum(counts[a] for a in DECISIONS), **counts))
    expected.sort(key=lambda r: (-r["decisions"], r["reviewer"]))
    assert stats.reviewer_activity(session, **span) == expected


@pytest.mark.parametrize("span", RANGES)
def test_summary(session, data, span):
    images, predictions, reviews = raw(session)
    added = images[within(images["added_at"], **span)]
    decided = images[images["action"].notna() & within(images["decided_at"], **span)]
    logged = reviews[within(reviews["created_at"], **span)]
    assert stats.summary(session, **span) == dict(
        images=len(added),
        predictions=int(within(predictions["created_at"], **span).sum()),
        reviewed=len(decided),
        unreviewed=int(added["action"].isna().sum()),
        decisions=int(logged["action"].isin(DECISIONS).sum()),
        reviewers=logged["reviewer"].nunique(),
        **{a: int((decided["action"] == a).sum()) for a in DECISIONS},
    )


def test_an_empty_database_gives_empty_statistics(database):
    url = database.url("empty")
    session = Session(open_database(url))
    assert stats.predicted_label_counts(session) == [] and stats.final_label_counts(session) == []
    assert stats.category_rates(session) == [] and stats.confusion_pairs(session) == []
    assert [row["count"] for row in stats.confidence_histogram(session)] == [0] * 10
    assert stats.daily_volume(session) == [] and stats.reviewer_activity(session) == []
    assert stats.summary(session) == dict(
        images=0,
        predictions=0,
        reviewed=0,
        unreviewed=0,
        decisions=0,
        reviewers=0,
        confirmed=0,
        corrected=0,
        not_food=0,
    )
    session.close()
    close_database(url)


STATISTICS = [
    stats.predicted_label_counts,
    stats.final_label_counts,
    stats.category_rates,
    stats.confusion_pairs,
    stats.confidence_histogram,
    stats.daily_volume,
    stats.reviewer_activity,
    stats.summary,
]
BIG_TABLES = {"images", "predictions", "reviews"}


@pytest.mark.sqlite_only
@pytest.mark.parametrize("span", [RANGES[0], RANGES[3], RANGES[4]], ids=["all-time", "range", "wide range"])
@pytest.mark.parametrize("statistic", STATISTICS, ids=lambda f: f.__name__)
def test_statistics_read_one_covering_index_without_sorting(session, data, statistic, span):
    """At a million rows, reading the table or sorting takes seconds; an index read in order takes ms.

    The database has no ANALYZE statistics, like most deployed ones: the plans must not depend on them.
    """
    steps = []

    def explain(conn, cursor, statement, parameters, context, executemany):
        if statement.lstrip().upper().startswith("SELECT"):
            plan = cursor.connection.execute("EXPLAIN QUERY PLAN " + statement, parameters).fetchall()
            steps.extend(row[-1] for row in plan)

    engine = session.get_bind()
    event.listen(engine, "before_cursor_execute", explain)
    try:
        statistic(session, **span)
    finally:
        event.remove(engine, "before_cursor_execute", explain)
    reads = [step for step in steps if step.split()[:2][-1] in BIG_TABLES]
    if statistic is stats.summary:  # whole days from the per-day counts; partial days from the tables
        assert any("daily_counts" in step for step in steps), steps
        assert bool(reads) == (span is not RANGES[0]), steps
    else:
        assert reads, steps
    assert [step for step in reads if "COVERING INDEX" not in step] == []
    assert [step for step in steps if "TEMP B-TREE" in step] == []


def counted(session) -> dict:
    return {
        (row.kind, row.reviewer, row.action, row.day): row.n
        for row in session.scalars(select(DailyCount).where(DailyCount.n != 0))
    }


def recounted(session) -> dict:
    """daily_counts as migration 0011 would backfill them from the tables now."""
    images, predictions, reviews = frame(session, ImageRow), frame(session, PredictionRow), frame(session, ReviewRow)
    found: Counter = Counter()
    for _, image in images.iterrows():
        found["added", "", "", image["added_at"].date()] += 1
        if not pd.isna(image["current_review_id"]):
            found["added_reviewed", "", "", image["added_at"].date()] += 1
        if pd.notna(image["current_action"]):
            found["current", "", image["current_action"], image["reviewed_at"].date()] += 1
    for at in predictions["created_at"]:
        found["predicted", "", "", at.date()] += 1
    for _, review in reviews.iterrows():
        found["review", review["reviewer"], review["action"], review["created_at"].date()] += 1
    return dict(found)


def test_the_per_day_counts_follow_every_write(session, data):
    """Inserts, decisions, undos, new predictions and dates changed after the fact (as `data` makes them)."""
    assert counted(session) == recounted(session)
    assert sum(n for (kind, *_), n in counted(session).items() if kind == "added") == len(data)


def test_the_per_day_counts_follow_a_bulk_update_and_a_delete(engine, make_image):
    with Session(engine) as session:
        ids = [make_image(session, added_at=START + timedelta(hours=i * 7)).id for i in range(6)]
        session.commit()
        assert counted(session) == recounted(session) != {}
        # One UPDATE statement moving several photos to another day, then a DELETE, as SQL by hand would.
        moved = START + timedelta(days=9)
        session.execute(update(ImageRow).where(ImageRow.id.in_(ids[:3])).values(added_at=moved))
        session.execute(update(ImageRow).where(ImageRow.id == ids[4]).values(prediction_id=None))
        session.execute(delete(PredictionRow).where(PredictionRow.image_id == ids[4]))
        session.commit()
        assert counted(session) == recounted(session)
        assert counted(session)["added", "", "", moved.date()] == 3
        assert sum(n for (kind, *_), n in counted(session).items() if kind == "predicted") == 5


def test_unseekable_ranges_are_sqlite_only_sql():
    from sqlalchemy.dialects import postgresql, sqlite

    hidden = unseekable(ImageRow.added_at) >= START
    assert str(hidden.compile(dialect=sqlite.dialect())) == "+images.added_at >= ?"
    assert str(hidden.compile(dialect=postgresql.dialect())) == (
        "images.added_at >= %(param_1)s::TIMESTAMP WITHOUT TIME ZONE"
    )
    assert isinstance(hidden.right.type, UTCDateTime)  # bound as naive UTC, like the column
