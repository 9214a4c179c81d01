"""Figures for product staff: every table of the Stats page, computed in SQL by db.stats and shaped here."""

from __future__ import annotations

from datetime import date
from typing import Any, Optional

from sqlalchemy import Engine

from db import stats
from db.engine import session_scope
from db.models import ACTIONS, DECISIONS


def stats_report(engine: Engine, *, since: Optional[date] = None, until: Optional[date] = None) -> dict[str, Any]:
    """Every figure of the Stats page over a date range (until inclusive): a summary and one table per chart.

    Tables are lists of dicts with stored (raw) labels, ready for a chart and for a CSV download.
    """
    window = dict(since=since, until=until)
    with session_scope(engine) as session:
        predicted = stats.predicted_label_counts(session, **window)
        decided = stats.final_label_counts(session, **window)
        return {
            "summary": stats.summary(session, **window),
            "distribution": distribution(predicted, decided),
            "rates": stats.category_rates(session, **window),
            "confusion": [
                dict(predicted=r["predicted"], decided=r["final"], photos=r["count"])
                for r in stats.confusion_pairs(session, **window)
            ],
            "histogram": [
                dict(low=r["low"], high=r["high"], photos=r["count"])
                for r in stats.confidence_histogram(session, **window)
            ],
            "volume": [
                dict(day=r["day"], photos_added=r["added"], decisions=r["decisions"])
                for r in stats.daily_volume(session, **window)
            ],
            "reviewers": reviewer_counts(stats.reviewer_activity(session, **window)),
        }


def distribution(predicted: list[dict], decided: list[dict]) -> list[dict[str, Any]]:
    """Photos per category as predicted and as decided, side by side, most photos first."""
    table: dict[str, dict[str, Any]] = {}
    for key, rows in (("predicted", predicted), ("decided", decided)):
        for row in rows:
            table.setdefault(row["label"], dict(label=row["label"], predicted=0, decided=0))[key] = row["count"]
    return sorted(table.values(), key=lambda r: (-(r["predicted"] + r["decided"]), r["label"]))


def reviewer_counts(activity: list[dict]) -> list[dict[str, Any]]:
    """Per reviewer, the rows they wrote in the period, each number saying what it counts.

    review_rows: every row, so the sum of the five action columns (confirmed, corrected, not_food,
    skipped, undone). decisions: confirmed + corrected + not_food, the judgements (one later undone
    still counts, and its undo is an `undone` row). Skips and undos are rows, not decisions.
    """
    rows = []
    for row in activity:
        counts = {action: row[action] for action in ACTIONS}
        decisions = sum(counts[action] for action in DECISIONS)
        assert decisions == row["decisions"], "db.stats counts decisions as confirmed + corrected + not_food"
        rows.append(dict(reviewer=row["reviewer"], review_rows=sum(counts.values()), decisions=decisions, **counts))
    return rows
