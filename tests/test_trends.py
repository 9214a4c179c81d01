"""Trends for product staff: this week's movers against last week, and drift of the model's confidence."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone

import pytest

from db.stats import daily_confidence
from foodclf.trends import DriftLimits, Level, beyond, movers, pooled, trends_report

END = date(2026, 11, 29)  # a Sunday; "this week" is Nov 23 – 29
RULE = dict(below=0.5, margin=0.1)  # the classifier's default uncertainty rule


def at(day: date, hour: int = 12) -> datetime:
    return datetime(day.year, day.month, day.day, hour, tzinfo=timezone.utc)


def seed(session, make_image, per_day: dict[date, list[tuple[str, float]]]) -> None:
    for day, photos in per_day.items():
        for i, (label, score) in enumerate(photos):
            make_image(session, label=label, score=score, added_at=at(day, i % 24))
    session.commit()


def test_daily_confidence_counts_each_day_by_the_classifiers_rule(session, make_image):
    # fake_result's runner-up has (1 - top) / 2: 0.55 has a 0.325 margin (certain), 0.4 is under 0.5.
    seed(
        session,
        make_image,
        {END - timedelta(days=2): [("pizza", 0.9), ("pizza", 0.4), ("ramen", 0.55)], END: [("sushi", 0.3)]},
    )
    make_image(session, label="pizza", score=0.9, added_at=at(END + timedelta(days=1)))  # after the range
    session.commit()
    rows = daily_confidence(session, since=END - timedelta(days=2), until=END, **RULE)
    assert [(r["day"], r["photos"], r["uncertain"]) for r in rows] == [
        (END - timedelta(days=2), 3, 1),
        (END - timedelta(days=1), 0, 0),
        (END, 1, 1),
    ]
    assert rows[0]["mean_confidence"] == pytest.approx((0.9 + 0.4 + 0.55) / 3)
    assert rows[1]["mean_confidence"] is None
    # The margin half of the rule: 0.55 - 0.225 = 0.325 is under a 0.4 margin, so it is uncertain too.
    rows = daily_confidence(
        session, since=END - timedelta(days=2), until=END - timedelta(days=2), below=0.5, margin=0.4
    )
    assert rows[0]["uncertain"] == 2


def test_movers_rank_the_change_in_share_and_name_new_and_gone_categories():
    now = [dict(label="pizza", count=6), dict(label="ramen", count=3), dict(label="bao", count=1)]
    before = [dict(label="pizza", count=6), dict(label="ramen", count=2), dict(label="sushi", count=2)]
    rows = {r["label"]: r for r in movers(now, before)}
    assert rows["pizza"]["change"] == pytest.approx(0.6 - 0.6)
    assert rows["ramen"]["change"] == pytest.approx(0.3 - 0.2)
    assert (rows["bao"]["share_before"], rows["bao"]["share"]) == (0.0, pytest.approx(0.1))
    assert (rows["sushi"]["this_week"], rows["sushi"]["change"]) == (0, pytest.approx(-0.2))
    assert [r["label"] for r in movers(now, before)] == ["sushi", "bao", "ramen", "pizza"]
    assert movers([], []) == []


def test_drift_needs_a_change_beyond_the_limits():
    baseline = Level(photos=400, uncertain_share=0.10, mean_confidence=0.85)
    limits = DriftLimits(uncertain_rise=0.10, confidence_drop=0.05)
    assert beyond(Level(100, 0.19, 0.81), baseline, limits) == []  # within both limits
    found = beyond(Level(100, 0.35, 0.70), baseline, limits)
    assert len(found) == 2
    assert found[0].startswith("uncertain photos: 35%, against 10% before (+25 points")
    assert found[1].startswith("mean confidence: 70%, against 85% before")
    assert beyond(Level(100, 0.9, 0.1), Level(0, None, None), limits) == []  # nothing to compare with
    assert pooled([]) == Level(0, None, None)
    assert pooled(
        [dict(photos=1, uncertain=1, mean_confidence=0.2), dict(photos=3, uncertain=0, mean_confidence=0.6)]
    ) == Level(4, 0.25, pytest.approx(0.5))


def test_a_week_of_unfamiliar_photos_is_flagged_and_a_steady_one_is_not(engine, session, make_image):
    # Four weeks of confident photos, then a week where most are uncertain from Wednesday on.
    normal = [("pizza", 0.92), ("ramen", 0.88), ("pizza", 0.9), ("sushi", 0.35)] * 2  # 8 a day, 1 in 4 uncertain
    days = {END - timedelta(days=d): normal for d in range(7, 35)}
    strange = [("pizza", 0.3), ("ramen", 0.35), ("sushi", 0.4), ("pizza", 0.9)] * 2  # 3 in 4 uncertain
    limits = DriftLimits(min_photos=8)
    days.update({END - timedelta(days=d): (strange if d <= 4 else normal) for d in range(7)})
    seed(session, make_image, days)

    report = trends_report(engine, until=END, limits=limits, **RULE)
    assert report["week"] == (END - timedelta(days=6), END)
    assert report["baseline"]["photos"] == 28 * 8
    assert report["baseline"]["uncertain_share"] == pytest.approx(0.25)
    drifting = [row["day"] for row in report["daily"] if row["drifting"]]
    assert drifting == [END - timedelta(days=d) for d in range(4, -1, -1)]
    assert len(report["drift"]) == 2 and report["drift"][0].startswith("uncertain photos: ")
    assert report["movers"][0]["label"] in ("pizza", "ramen", "sushi")

    # The same database judged a week earlier: every week like the others, nothing flagged.
    steady = trends_report(engine, until=END - timedelta(days=7), limits=limits, **RULE)
    assert steady["baseline"]["photos"] == 21 * 8 and steady["recent"]["photos"] == 7 * 8
    assert steady["drift"] == [] and not any(row["drifting"] for row in steady["daily"])
    assert all(abs(row["change"]) < 1e-9 for row in steady["movers"])
