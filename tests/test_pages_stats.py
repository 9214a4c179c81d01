"""The Stats page on a seeded database: totals, charts, downloads, the period, empty states."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from db.engine import session_scope
from db.models import ImageRow
from db.reviews import undo_last_review
from foodclf.insights import stats_report
from pages_support import run, seed_photo, seed_review, texts
from ui import charts

PAGE = "stats.py"


def _seed(dashboard) -> dict[str, int]:
    ids = {
        "a": seed_photo(dashboard, "pizza", 0.95, (200, 40, 40)),
        "b": seed_photo(dashboard, "pizza", 0.55, (190, 40, 40)),
        "c": seed_photo(dashboard, "sushi", 0.25, (40, 200, 40)),
        "d": seed_photo(dashboard, "steak", 0.75, (40, 40, 200)),
        "old": seed_photo(dashboard, "steak", 0.85, (90, 90, 90)),
    }
    seed_review(dashboard, ids["a"], "confirmed", "Alice")
    seed_review(dashboard, ids["b"], "corrected", "Alice", label="flatbread")
    seed_review(dashboard, ids["c"], "not_food", "Bob")
    seed_review(dashboard, ids["d"], "skipped", "Bob")
    with session_scope(dashboard.engine) as session:  # added 60 days ago, never reviewed
        session.get(ImageRow, ids["old"]).added_at = datetime.now(timezone.utc) - timedelta(days=60)
    return ids


def _metrics(at) -> dict[str, str]:
    return {m.label: m.value for m in at.metric}


def test_totals_charts_and_downloads_over_the_last_30_days(dashboard):
    _seed(dashboard)
    at = run(dashboard.app(PAGE))
    assert _metrics(at) == {
        "Photos added": "4",
        "Reviewed": "3",
        "Still unreviewed": "1",
        "Corrected": "67%",
        "Reviewers": "2",
    }
    # Six charts of the period, and the two of this week's trends (every photo is new this week).
    assert len(at.get("vega_lite_chart")) == 8
    assert len(at.download_button) == 8
    assert not at.warning


def test_all_time_includes_older_photos(dashboard):
    _seed(dashboard)
    at = run(dashboard.app(PAGE))
    at.segmented_control(key="s_period").set_value("All time")
    run(at)
    assert _metrics(at)["Photos added"] == "5"
    assert _metrics(at)["Still unreviewed"] == "2"


def test_a_custom_range_with_nothing_in_it(dashboard):
    _seed(dashboard)
    at = run(dashboard.app(PAGE))
    at.segmented_control(key="s_period").set_value("Custom")
    run(at)
    long_ago = datetime(2016, 1, 1).date()
    at.date_input(key="s_dates").set_value((long_ago, long_ago + timedelta(days=3)))
    run(at)
    assert any("No photos or reviews in this period" in text for text in texts(at.info))


def test_an_empty_database_says_so(dashboard):
    at = run(dashboard.app(PAGE))
    assert _metrics(at)["Photos added"] == "0"
    assert any("No photos or reviews" in text for text in texts(at.info))


def test_photos_without_reviews_say_no_reviews_yet(dashboard):
    seed_photo(dashboard, "pizza", 0.9, (1, 2, 3))
    at = run(dashboard.app(PAGE))
    assert any("No reviews yet" in text for text in texts(at.info))
    assert len(at.get("vega_lite_chart")) == 5  # movers, drift; categories, confidence, volume


def test_the_tables_behind_the_charts(dashboard):
    _seed(dashboard)
    report = stats_report(dashboard.engine)
    assert report["distribution"][:2] == [
        {"label": "pizza", "predicted": 2, "decided": 1},
        {"label": "steak", "predicted": 2, "decided": 0},
    ]
    assert {"label": "not_food", "predicted": 0, "decided": 1} in report["distribution"]
    rates = {row["label"]: row["correction_rate"] for row in report["rates"]}
    assert rates == {"pizza": 0.5, "sushi": 1.0}
    assert sorted((r["predicted"], r["decided"], r["photos"]) for r in report["confusion"]) == [
        ("pizza", "flatbread", 1),
        ("sushi", "not_food", 1),
    ]
    assert sum(r["photos"] for r in report["histogram"]) == 5
    assert {r["reviewer"]: r["decisions"] for r in report["reviewers"]} == {"Alice": 2, "Bob": 1}


def test_each_reviewer_number_says_what_it_counts(dashboard):
    """The CSV read decisions=27 beside action columns summing to 31: skips and undos are rows, not decisions."""
    ids = _seed(dashboard)
    seed_review(dashboard, ids["old"], "skipped", "Alice")
    with session_scope(dashboard.engine) as session:
        undo_last_review(session, "Alice")  # takes back her skip: an `undone` row
    [alice, bob] = stats_report(dashboard.engine)["reviewers"]
    assert alice == dict(
        reviewer="Alice", review_rows=4, decisions=2, confirmed=1, corrected=1, not_food=0, skipped=1, undone=1
    )
    assert bob == dict(
        reviewer="Bob", review_rows=2, decisions=1, confirmed=0, corrected=0, not_food=1, skipped=1, undone=0
    )
    for row in (alice, bob):
        assert row["review_rows"] == sum(row[a] for a in ("confirmed", "corrected", "not_food", "skipped", "undone"))
    # The page says so, and the chart's legend names all five actions in rows that fit half a page.
    at = run(dashboard.app(PAGE))
    assert any("`review_rows` counts every row" in (m.help or "") for m in at.markdown)
    legend = charts.reviewers_chart([alice, bob]).to_dict()["encoding"]["color"]
    assert legend["scale"]["domain"][-1] == "Undo (took one back)" and len(legend["scale"]["domain"]) == 5
    assert legend["legend"]["orient"] == "bottom" and legend["legend"]["columns"] <= 3


def test_a_drifting_week_is_a_warning_with_its_numbers(dashboard):
    from sqlalchemy.orm import Session

    from factories import image_factory

    make_image, today = image_factory(), datetime.now(timezone.utc).replace(hour=0, minute=0, second=0)
    with Session(dashboard.engine) as session:
        for days_ago in range(1, 21):  # three weeks of confident photos, then a day of doubtful ones
            for score in (0.9, 0.95, 0.3 if days_ago > 3 else 0.35):
                make_image(session, label="pizza", score=score, added_at=today - timedelta(days=days_ago, hours=-1))
        for _ in range(24):
            make_image(session, label="ramen", score=0.3, added_at=today + timedelta(minutes=5))
        session.commit()
    at = run(dashboard.app(PAGE))
    (warning,) = at.warning
    assert "The model may be meeting photos it was not trained for" in warning.value
    assert "uncertain photos: " in warning.value and "mean confidence: " in warning.value
    assert any(text.startswith("Trends: the week") for text in texts(at.subheader))
