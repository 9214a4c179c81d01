"""Trends for product staff: which categories grew or shrank this week, and whether the model is drifting.

Two questions, each answered from db.stats over the photos added (what people post):
- movers: each category's share of this week's photos (the 7 UTC days ending on `until`) against the
  week before, ranked by the change in share points;
- drift: per day, the share of uncertain photos and the mean top score, against a baseline pooled
  over the weeks before this one. A day, or the week, beyond the limits is flagged: the model is
  meeting photos unlike the ones it learnt from (a new dish, a new camera filter, a broken upload path).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import date, timedelta
from typing import Any, Optional

from sqlalchemy import Engine

from db import stats
from db.engine import session_scope

WEEK = 7
BASELINE_WEEKS = 4  # how far back the normal is pooled: long enough to smooth a quiet weekend


@dataclass(frozen=True)
class DriftLimits:
    """How far from the baseline a day or the week may go before it is flagged."""

    uncertain_rise: float = 0.10  # share of uncertain photos above the baseline's, in share points
    confidence_drop: float = 0.05  # mean top score below the baseline's
    min_photos: int = 20  # a day with fewer photos is too noisy to flag alone


@dataclass(frozen=True)
class Level:
    """Pooled figures over some days: photos, share uncertain, mean top score (None without photos)."""

    photos: int
    uncertain_share: Optional[float]
    mean_confidence: Optional[float]


def trends_report(
    engine: Engine, *, until: date, below: float, margin: float, limits: DriftLimits = DriftLimits()
) -> dict[str, Any]:
    """{"week", "movers", "daily", "baseline", "recent", "drift"} for the week ending on `until` (inclusive).

    below and margin are the classifier's uncertainty rule (FOODCLF_UNCERTAIN_BELOW / _MARGIN).
    "drift" lists plain sentences, empty when nothing is beyond the limits.
    """
    this_start, last_start = until - timedelta(days=WEEK - 1), until - timedelta(days=2 * WEEK - 1)
    first = until - timedelta(days=WEEK * (BASELINE_WEEKS + 1) - 1)
    with session_scope(engine) as session:
        now = stats.predicted_label_counts(session, since=this_start, until=until)
        before = stats.predicted_label_counts(session, since=last_start, until=this_start - timedelta(days=1))
        daily = stats.daily_confidence(session, since=first, until=until, below=below, margin=margin)
    baseline = pooled([d for d in daily if d["day"] < this_start])
    recent = pooled([d for d in daily if d["day"] >= this_start])
    for day in daily:
        day["uncertain_share"] = day["uncertain"] / day["photos"] if day["photos"] else None
        day["drifting"] = bool(day["photos"] >= limits.min_photos and beyond(pooled([day]), baseline, limits))
    return dict(
        week=(this_start, until),
        movers=movers(now, before),
        daily=daily,
        baseline=asdict(baseline),
        recent=asdict(recent),
        drift=beyond(recent, baseline, limits) if recent.photos >= limits.min_photos else [],
    )


def movers(now: list[dict], before: list[dict]) -> list[dict[str, Any]]:
    """[{"label", "this_week", "last_week", "share", "share_before", "change"}], biggest change in share first.

    Shares are of all photos of that week; change is in share points (0.05 = five points). A
    category new this week has share_before 0; one gone has share 0.
    """
    counts = {row["label"]: [row["count"], 0] for row in now}
    for row in before:
        counts.setdefault(row["label"], [0, 0])[1] = row["count"]
    total_now, total_before = sum(n for n, _ in counts.values()), sum(b for _, b in counts.values())
    rows = []
    for label, (n, b) in counts.items():
        share = n / total_now if total_now else 0.0
        share_before = b / total_before if total_before else 0.0
        rows.append(
            dict(
                label=label,
                this_week=n,
                last_week=b,
                share=share,
                share_before=share_before,
                change=share - share_before,
            )
        )
    return sorted(rows, key=lambda r: (-abs(r["change"]), -r["this_week"], r["label"]))


def pooled(days: list[dict]) -> Level:
    """The days' photos taken together (a busy day weighs more than a quiet one)."""
    photos = sum(d["photos"] for d in days)
    if not photos:
        return Level(0, None, None)
    uncertain = sum(d["uncertain"] for d in days)
    total_score = sum(d["mean_confidence"] * d["photos"] for d in days if d["photos"])
    return Level(photos, uncertain / photos, total_score / photos)


def beyond(level: Level, baseline: Level, limits: DriftLimits) -> list[str]:
    """What is beyond the limits, in words; empty when nothing is (or there is no baseline to compare)."""
    if not level.photos or not baseline.photos:
        return []
    found = []
    rise = level.uncertain_share - baseline.uncertain_share
    if rise > limits.uncertain_rise:
        found.append(
            f"uncertain photos: {level.uncertain_share:.0%}, against {baseline.uncertain_share:.0%} before "
            f"(+{rise * 100:.0f} points; the limit is {limits.uncertain_rise * 100:.0f})"
        )
    drop = baseline.mean_confidence - level.mean_confidence
    if drop > limits.confidence_drop:
        found.append(
            f"mean confidence: {level.mean_confidence:.0%}, against {baseline.mean_confidence:.0%} before "
            f"(−{drop * 100:.0f} points; the limit is {limits.confidence_drop * 100:.0f})"
        )
    return found
