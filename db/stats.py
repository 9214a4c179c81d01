"""Statistics for product staff, aggregated in SQL; each function returns plain dicts.

Date ranges are `since <= t < until` (a date `until` includes that day). Which time counts:
photos by when they were added; current decisions by when they were made (images.reviewed_at);
activity (volume per day, per reviewer) by each review row's time.

Speed at a million photos: each query reads one covering index in that index's own order, with
the date range checked inside the index, so SQLite neither reads the tables nor sorts (the
indices are listed on ImageRow and ReviewRow; tests/test_db_stats.py checks the plans). Counts
per bucket (histogram bins, days) are range counts over an index rather than a GROUP BY on a
computed value, which would sort every row; small groupings are pivoted in Python.
"""

from __future__ import annotations

from collections import Counter
from datetime import date, datetime, timedelta, timezone
from typing import Any, Optional

from sqlalchemy import func, or_, select, union
from sqlalchemy.orm import Session

from db.indexing import unseekable
from db.models import ACTIONS, DECISIONS, DailyCount, ImageRow, PredictionRow, ReviewRow, as_utc

CHANGED = ("corrected", "not_food")  # decisions where moderators changed the model's label
# Range counts per SELECT: bounded so a long history stays under every backend's parameter limit.
SPANS_PER_QUERY = 100


def predicted_label_counts(session: Session, *, since=None, until=None) -> list[dict[str, Any]]:
    """[{"label", "count"}]: photos added in the range, by their latest prediction's top label."""
    stmt = (
        select(ImageRow.top_label, func.count())
        .where(ImageRow.top_label.is_not(None), *_range(ImageRow.added_at, since, until, seek=False))
        .group_by(ImageRow.top_label)
    )
    return _counts(session, stmt)


def final_label_counts(session: Session, *, since=None, until=None) -> list[dict[str, Any]]:
    """[{"label", "count"}]: photos by the label of their current decision made in the range."""
    stmt = (
        # current_label is set exactly when there is a current decision; testing it lets the
        # (current_label, reviewed_at) index answer alone.
        select(ImageRow.current_label, func.count())
        .where(ImageRow.current_label.is_not(None), *_range(ImageRow.reviewed_at, since, until, seek=False))
        .group_by(ImageRow.current_label)
    )
    return _counts(session, stmt)


def category_rates(session: Session, *, since=None, until=None) -> list[dict[str, Any]]:
    """Per predicted category: reviewed, confirmed, corrected, not_food, confirmation_rate, correction_rate.

    The category is the top label of the prediction each current decision judged; correction_rate
    counts both corrections and not-food verdicts (every time moderators changed the model's label).
    """
    # Grouped in the order of the decisions index (action, judged label, ...), pivoted here.
    stmt = (
        select(ImageRow.judged_label, ImageRow.current_action, func.count())
        .where(*_decided(DECISIONS, since, until))
        .group_by(ImageRow.current_action, ImageRow.judged_label)
    )
    by_label: dict[str, dict[str, int]] = {}
    for label, action, n in session.execute(stmt):
        by_label.setdefault(label, dict.fromkeys(DECISIONS, 0))[action] += n
    rows = []
    for label, counts in by_label.items():
        reviewed = sum(counts.values())
        rows.append(
            dict(
                label=label,
                reviewed=reviewed,
                **counts,
                confirmation_rate=counts["confirmed"] / reviewed,
                correction_rate=(counts["corrected"] + counts["not_food"]) / reviewed,
            )
        )
    return sorted(rows, key=lambda row: (-row["reviewed"], row["label"]))


def confusion_pairs(session: Session, *, since=None, until=None) -> list[dict[str, Any]]:
    """[{"predicted", "final", "count"}]: how often moderators changed one label into another."""
    # Grouped by action too, so the decisions index gives the rows already in group order.
    stmt = (
        select(ImageRow.judged_label, ImageRow.current_label, func.count())
        .where(*_decided(CHANGED, since, until))
        .group_by(ImageRow.current_action, ImageRow.judged_label, ImageRow.current_label)
    )
    pairs: Counter[tuple[str, str]] = Counter()
    for predicted, final, n in session.execute(stmt):
        pairs[predicted, final] += n
    ranked = sorted(pairs.items(), key=lambda item: (-item[1], item[0]))
    return [dict(predicted=p, final=f, count=n) for (p, f), n in ranked]


def confidence_histogram(session: Session, *, since=None, until=None, bins: int = 10) -> list[dict[str, Any]]:
    """[{"bin", "low", "high", "count"}] of top scores of photos added in the range; every bin listed."""
    if not 1 <= bins <= 100:
        raise ValueError(f"bins: expected 1 to 100, not {bins}")
    edges = [k / bins for k in range(bins + 1)]
    score = ImageRow.top_score

    def in_bin(k: int) -> list:
        # Half-open [low, high); the first bin takes anything lower, the last anything higher.
        where = [score.is_not(None)]
        if k > 0:
            where.append(score >= edges[k])
        if k < bins - 1:
            where.append(score < edges[k + 1])
        return where

    # One range count per bin over the (top_score, added_at) index.
    added = _range(ImageRow.added_at, since, until, seek=False)
    counts = _range_counts(session, [in_bin(k) + added for k in range(bins)])
    return [dict(bin=k, low=edges[k], high=edges[k + 1], count=counts[k]) for k in range(bins)]


def daily_volume(session: Session, *, since=None, until=None) -> list[dict[str, Any]]:
    """[{"day", "added", "decisions"}] per UTC day, gaps filled with zeros; decisions exclude skips and undos."""
    added = _range(ImageRow.added_at, since, until)
    logged = _range(ReviewRow.created_at, since, until)
    # The days to count: from the first photo or review in the range to the last (index seeks).
    ends = session.execute(
        select(
            *(
                select(extreme(column)).where(*where).scalar_subquery()
                for column, where in ((ImageRow.added_at, added), (ReviewRow.created_at, logged))
                for extreme in (func.min, func.max)
            )
        )
    ).one()
    known = [t for t in ends if t is not None]
    if not known:
        return []
    first, last = min(known).date(), max(known).date()
    days = [first + timedelta(days=i) for i in range((last - first).days + 1)]
    low, high = as_utc(since, "since"), as_utc(until, "until", end=True)
    spans = []
    for day in days:
        start = datetime(day.year, day.month, day.day, tzinfo=timezone.utc)
        end = start + timedelta(days=1)
        spans.append((max(start, low) if low else start, min(end, high) if high else end))
    added_counts = _range_counts(session, [_within(ImageRow.added_at, span) for span in spans])
    decided_counts = _range_counts(
        session, [[ReviewRow.action.in_(DECISIONS), *_within(ReviewRow.created_at, span)] for span in spans]
    )
    rows = [dict(day=day, added=a, decisions=d) for day, a, d in zip(days, added_counts, decided_counts)]
    # The ends came from any review; a skip or undo alone does not make a day.
    busy = [i for i, row in enumerate(rows) if row["added"] or row["decisions"]]
    return rows[busy[0] : busy[-1] + 1] if busy else []


def reviewer_activity(session: Session, *, since=None, until=None) -> list[dict[str, Any]]:
    """[{"reviewer", "decisions", <one count per action>}]: review rows made in the range, by reviewer."""
    rows: dict[str, dict[str, Any]] = {}
    for reviewer, action, n in session.execute(_activity(since, until)):
        row = rows.setdefault(reviewer, dict(reviewer=reviewer, decisions=0, **dict.fromkeys(ACTIONS, 0)))
        row[action] += n
        if action in DECISIONS:
            row["decisions"] += n
    return sorted(rows.values(), key=lambda row: (-row["decisions"], row["reviewer"]))


def summary(session: Session, *, since=None, until=None) -> dict[str, int]:
    """Totals: images, predictions, reviewed, unreviewed, decisions, reviewers, and current decisions by action.

    The range's whole UTC days are summed from daily_counts (kept by triggers, migration 0011);
    only its partial first and last days are counted from the tables, through their indices.
    """
    low, high = as_utc(since, "since"), as_utc(until, "until", end=True)
    days, edges = _whole_days(low, high)
    counted: Counter[tuple[str, str, str]] = Counter()
    if days is not None:
        first, end = days
        where = [DailyCount.day >= first] if first else []
        where += [DailyCount.day < end] if end else []
        stmt = (
            select(DailyCount.kind, DailyCount.reviewer, DailyCount.action, func.sum(DailyCount.n))
            .where(*where)
            .group_by(DailyCount.kind, DailyCount.reviewer, DailyCount.action)
        )
        for kind, reviewer, action, n in session.execute(stmt):
            counted[kind, reviewer, action] += int(n)
    for span in edges:
        # Less than a day each, read by seeking the day's rows in a covering index and counted here.
        for (action,) in session.execute(select(ImageRow.current_action).where(*_within(ImageRow.reviewed_at, span))):
            if action is not None:
                counted["current", "", action] += 1
        for reviewer, action in session.execute(
            select(ReviewRow.reviewer, ReviewRow.action).where(*_within(ReviewRow.created_at, span))
        ):
            counted["review", reviewer, action] += 1
        added, reviewed = session.execute(
            select(func.count(), func.count(ImageRow.current_review_id)).where(*_within(ImageRow.added_at, span))
        ).one()
        counted["added", "", ""] += added
        counted["added_reviewed", "", ""] += reviewed
        counted["predicted", "", ""] += session.scalar(
            select(func.count()).where(*_within(PredictionRow.created_at, span))
        )
    current = {action: counted["current", "", action] for action in DECISIONS}
    reviews = [(reviewer, action, n) for (kind, reviewer, action), n in counted.items() if kind == "review" and n]
    return dict(
        images=counted["added", "", ""],
        predictions=counted["predicted", "", ""],
        reviewed=sum(current.values()),
        unreviewed=counted["added", "", ""] - counted["added_reviewed", "", ""],
        decisions=sum(n for _, action, n in reviews if action in DECISIONS),
        reviewers=len({reviewer for reviewer, _, _ in reviews}),
        **current,
    )


def _whole_days(low: Optional[datetime], high: Optional[datetime]):
    """Split `low <= t < high` into whole UTC days ((first, end) dates, None for open; or None) and partial spans."""

    def midnight(day: date) -> datetime:
        return datetime(day.year, day.month, day.day, tzinfo=timezone.utc)

    try:
        first = None if low is None else low.date() if low == midnight(low.date()) else low.date() + timedelta(days=1)
    except OverflowError:  # a bound within the last day a datetime holds: no whole day after it
        return None, [(low, high or low)]
    end = None if high is None else high.date()
    if first is not None and end is not None and first >= end:
        return None, [(low, high)] if low < high else []
    edges = []
    if first is not None and low < midnight(first):
        edges.append((low, midnight(first)))
    if end is not None and midnight(end) < high:
        edges.append((midnight(end), high))
    return (first, end), edges


def _decided(actions, since, until) -> list:
    """WHERE for current decisions with these actions made in the range that judged a prediction.

    Every column is in the (current_action, judged_label, current_label, reviewed_at) index.
    """
    return [
        ImageRow.current_action.in_(actions),
        ImageRow.judged_label.is_not(None),
        *_range(ImageRow.reviewed_at, since, until, seek=False),
    ]


def _activity(since, until):
    """(reviewer, action, count) of review rows made in the range: the (reviewer, action, created_at) index."""
    return (
        select(ReviewRow.reviewer, ReviewRow.action, func.count())
        .where(*_range(ReviewRow.created_at, since, until, seek=False))
        .group_by(ReviewRow.reviewer, ReviewRow.action)
    )


def _range_counts(session: Session, conditions: list[list]) -> list[int]:
    """COUNT(*) for each list of conditions on one table, as scalar subqueries of a few SELECTs."""
    return _range_aggregates(session, [(func.count(), where) for where in conditions])


def _counts(session: Session, stmt) -> list[dict[str, Any]]:
    rows = session.execute(stmt).all()
    return [dict(label=label, count=n) for label, n in sorted(rows, key=lambda r: (-r[1], r[0]))]


def _range(column, since, until, *, seek: bool = True) -> list:
    """WHERE for `since <= column < until`; seek=False when a covering index is read in GROUP BY order."""
    if not seek:
        column = unseekable(column)
    where = []
    if since is not None:
        where.append(column >= as_utc(since, "since"))
    if until is not None:
        where.append(column < as_utc(until, "until", end=True))
    return where


def _within(column, span) -> list:
    low, high = span
    return [column >= low, column < high]


def known_labels(session: Session) -> list[str]:
    """Every label that is a photo's latest predicted top label or its current final label, sorted.

    Each half of the UNION reads one covering index on its label column, with no table read and
    no counting: cheaper than the two GROUP BYs of the statistics at a million photos.
    """
    stmt = union(
        select(ImageRow.top_label).where(ImageRow.top_label.is_not(None)).distinct(),
        select(ImageRow.current_label).where(ImageRow.current_label.is_not(None)).distinct(),
    )
    return sorted(session.scalars(stmt))


def daily_confidence(
    session: Session, *, since: date, until: date, below: float, margin: float
) -> list[dict[str, Any]]:
    """[{"day", "photos", "uncertain", "mean_confidence"}] per UTC day, since to until inclusive, every day listed.

    Of the photos added that day with a prediction: how many, how many uncertain (top score under
    `below` or top-1 minus top-2 under `margin`, the classifier's own rule) and their mean top score
    (None on a day without photos). Three aggregates per day over the added_at index, as range counts.
    """
    days = [since + timedelta(days=i) for i in range((until - since).days + 1)]
    spans = []
    for day in days:
        start = datetime(day.year, day.month, day.day, tzinfo=timezone.utc)
        spans.append([ImageRow.top_score.is_not(None), *_within(ImageRow.added_at, (start, start + timedelta(days=1)))])
    uncertain = or_(ImageRow.top_score < below, func.coalesce(ImageRow.top_margin, 1.0) < margin)
    photos = _range_aggregates(session, [(func.count(), where) for where in spans])
    doubtful = _range_aggregates(session, [(func.count(), [*where, uncertain]) for where in spans])
    means = _range_aggregates(session, [(func.avg(ImageRow.top_score), where) for where in spans])
    return [
        dict(day=day, photos=n, uncertain=u, mean_confidence=float(m) if n else None)
        for day, n, u, m in zip(days, photos, doubtful, means)
    ]


def _range_aggregates(session: Session, parts: list[tuple]) -> list:
    """One aggregate per (expression, conditions on one table), as scalar subqueries of a few SELECTs."""
    values: list = []
    for start in range(0, len(parts), SPANS_PER_QUERY):
        chunk = parts[start : start + SPANS_PER_QUERY]
        values.extend(
            session.execute(select(*(select(agg).where(*where).scalar_subquery() for agg, where in chunk))).one()
        )
    return values
