"""Statistics for product staff, aggregated in SQL; each function returns plain dicts.

Date ranges are `since <= t < until` (a date `until` includes that day). Which time counts:
photos by when they were added; current decisions by when they were made (images.reviewed_at);
activity (volume per day, per reviewer) by each review row's time.
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

from sqlalchemy import Date, case, distinct, func, select
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import Session
from sqlalchemy.sql.functions import FunctionElement

from db.models import ACTIONS, DECISIONS, ImageRow, PredictionRow, ReviewRow, as_utc


class utc_day(FunctionElement):
    """SQL: the calendar day of a UTCDateTime column (stored naive UTC, so this is the UTC day)."""

    type = Date()
    name = "utc_day"
    inherit_cache = True


@compiles(utc_day)
def _utc_day(element, compiler, **kw):
    return f"CAST({compiler.process(element.clauses, **kw)} AS DATE)"


@compiles(utc_day, "sqlite")
def _utc_day_sqlite(element, compiler, **kw):
    # SQLite's CAST(... AS DATE) is numeric affinity: "2024-05-01 ..." would become 2024.
    return f"date({compiler.process(element.clauses, **kw)})"


def predicted_label_counts(session: Session, *, since=None, until=None) -> list[dict[str, Any]]:
    """[{"label", "count"}]: photos added in the range, by their latest prediction's top label."""
    stmt = (
        select(ImageRow.top_label, func.count())
        .where(ImageRow.top_label.is_not(None), *_range(ImageRow.added_at, since, until))
        .group_by(ImageRow.top_label)
    )
    return _counts(session, stmt)


def final_label_counts(session: Session, *, since=None, until=None) -> list[dict[str, Any]]:
    """[{"label", "count"}]: photos by the label of their current decision made in the range."""
    stmt = (
        # current_label is set exactly when there is a current decision; testing it lets the
        # (current_label, id) index answer alone.
        select(ImageRow.current_label, func.count())
        .where(ImageRow.current_label.is_not(None), *_range(ImageRow.reviewed_at, since, until))
        .group_by(ImageRow.current_label)
    )
    return _counts(session, stmt)


def category_rates(session: Session, *, since=None, until=None) -> list[dict[str, Any]]:
    """Per predicted category: reviewed, confirmed, corrected, not_food, confirmation_rate, correction_rate.

    The category is the top label of the prediction each current decision judged; correction_rate
    counts both corrections and not-food verdicts (every time moderators changed the model's label).
    """
    stmt = (
        _judged(select(
            PredictionRow.top_label, func.count(), *(_count_if(ImageRow.current_action == a) for a in DECISIONS),
        ), since, until)
        .group_by(PredictionRow.top_label)
        .order_by(func.count().desc(), PredictionRow.top_label)
    )
    rows = []
    for label, reviewed, confirmed, corrected, not_food in session.execute(stmt):
        rows.append(dict(
            label=label, reviewed=reviewed, confirmed=confirmed, corrected=corrected, not_food=not_food,
            confirmation_rate=confirmed / reviewed, correction_rate=(corrected + not_food) / reviewed,
        ))
    return rows


def confusion_pairs(session: Session, *, since=None, until=None) -> list[dict[str, Any]]:
    """[{"predicted", "final", "count"}]: how often moderators changed one label into another."""
    stmt = (
        _judged(select(PredictionRow.top_label, ImageRow.current_label, func.count()), since, until)
        .where(ImageRow.current_action.in_(("corrected", "not_food")))
        .group_by(PredictionRow.top_label, ImageRow.current_label)
        .order_by(func.count().desc(), PredictionRow.top_label, ImageRow.current_label)
    )
    return [dict(predicted=p, final=f, count=n) for p, f, n in session.execute(stmt)]


def confidence_histogram(session: Session, *, since=None, until=None, bins: int = 10) -> list[dict[str, Any]]:
    """[{"bin", "low", "high", "count"}] of top scores of photos added in the range; every bin listed."""
    if not 1 <= bins <= 100:
        raise ValueError(f"bins: expected 1 to 100, not {bins}")
    edges = [k / bins for k in range(bins + 1)]
    # A CASE ladder, not floor(): SQLite may lack floor() and PostgreSQL's CAST rounds.
    bucket = case(*((ImageRow.top_score < edges[k], k - 1) for k in range(1, bins)), else_=bins - 1)
    stmt = (
        select(bucket, func.count())
        .where(ImageRow.top_score.is_not(None), *_range(ImageRow.added_at, since, until))
        .group_by(bucket)
    )
    counts = dict(session.execute(stmt).all())
    return [dict(bin=k, low=edges[k], high=edges[k + 1], count=counts.get(k, 0)) for k in range(bins)]


def daily_volume(session: Session, *, since=None, until=None) -> list[dict[str, Any]]:
    """[{"day", "added", "decisions"}] per UTC day, gaps filled with zeros; decisions exclude skips and undos."""
    added_day = utc_day(ImageRow.added_at)
    added = session.execute(
        select(added_day, func.count()).where(*_range(ImageRow.added_at, since, until)).group_by(added_day)
    ).all()
    review_day = utc_day(ReviewRow.created_at)
    decided = session.execute(
        select(review_day, func.count())
        .where(ReviewRow.action.in_(DECISIONS), *_range(ReviewRow.created_at, since, until))
        .group_by(review_day)
    ).all()
    by_day: dict[date, dict[str, Any]] = {}
    for key, rows in (("added", added), ("decisions", decided)):
        for day, n in rows:
            by_day.setdefault(day, dict(day=day, added=0, decisions=0))[key] = n
    if not by_day:
        return []
    first, last = min(by_day), max(by_day)
    days = (first + timedelta(days=i) for i in range((last - first).days + 1))
    return [by_day.get(day, dict(day=day, added=0, decisions=0)) for day in days]


def reviewer_activity(session: Session, *, since=None, until=None) -> list[dict[str, Any]]:
    """[{"reviewer", "decisions", <one count per action>}]: review rows made in the range, by reviewer."""
    stmt = (
        select(
            ReviewRow.reviewer, _count_if(ReviewRow.action.in_(DECISIONS)),
            *(_count_if(ReviewRow.action == a) for a in ACTIONS),
        )
        .where(*_range(ReviewRow.created_at, since, until))
        .group_by(ReviewRow.reviewer)
    )
    rows = [dict(reviewer=r[0], decisions=r[1], **dict(zip(ACTIONS, r[2:]))) for r in session.execute(stmt)]
    return sorted(rows, key=lambda row: (-row["decisions"], row["reviewer"]))


def summary(session: Session, *, since=None, until=None) -> dict[str, int]:
    """Totals: images, predictions, reviewed, unreviewed, decisions, reviewers, and current decisions by action."""
    added = _range(ImageRow.added_at, since, until)
    images, unreviewed = session.execute(
        select(func.count(), _count_if(ImageRow.current_review_id.is_(None))).where(*added)
    ).one()
    predictions = session.scalar(
        select(func.count()).select_from(PredictionRow).where(*_range(PredictionRow.created_at, since, until)))
    current = session.execute(
        select(func.count(), *(_count_if(ImageRow.current_action == a) for a in DECISIONS))
        .where(ImageRow.current_review_id.is_not(None), *_range(ImageRow.reviewed_at, since, until))
    ).one()
    decisions, reviewers = session.execute(
        select(_count_if(ReviewRow.action.in_(DECISIONS)), func.count(distinct(ReviewRow.reviewer)))
        .where(*_range(ReviewRow.created_at, since, until))
    ).one()
    return dict(
        images=images, predictions=predictions, reviewed=current[0], unreviewed=unreviewed,
        decisions=decisions, reviewers=reviewers, **dict(zip(DECISIONS, current[1:])),
    )


def _judged(stmt, since, until):
    """Join each photo's current decision to the prediction it judged."""
    return (
        stmt.select_from(ImageRow)
        .join(ReviewRow, ReviewRow.id == ImageRow.current_review_id)
        .join(PredictionRow, PredictionRow.id == ReviewRow.prediction_id)
        .where(*_range(ImageRow.reviewed_at, since, until))
    )


def _count_if(condition):
    # SUM(CASE ...) rather than COUNT(*) FILTER (...): the same SQL on every backend.
    return func.coalesce(func.sum(case((condition, 1), else_=0)), 0)


def _counts(session: Session, stmt) -> list[dict[str, Any]]:
    rows = session.execute(stmt).all()
    return [dict(label=label, count=n) for label, n in sorted(rows, key=lambda r: (-r[1], r[0]))]


def _range(column, since, until) -> list:
    where = []
    if since is not None:
        where.append(column >= as_utc(since, "since"))
    if until is not None:
        where.append(column < as_utc(until, "until", end=True))
    return where
