"""The database at a million rows: is each query a moderator or analyst waits on still fast?

    python bench/db_scale.py [--images 1000000] [--reviewed 0.4] [--repeat 7] [--url URL [--reuse]]
                             [--no-analyze] [--explain]

Fills a fresh database (a temp SQLite file unless --url) with realistic synthetic data:
N photos over 90 days, one prediction each (skewed label mix, confidences from a beta
distribution), and reviews for a fraction of them (mostly confirmations, some corrections,
not-food verdicts and skips) by 20 reviewers. Then times the review queue with its filters and
every statistic, all-time, over 30 of the 90 days and over 89 of them, and prints each median;
`--explain` also prints SQLite's query plans. `--reuse` measures a database an earlier run filled
(a million rows take minutes to load into PostgreSQL). The indices are built after the rows are loaded
(a bulk load's usual order; the schema queried is the migrated one).
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sqlalchemy import insert, text, update  # noqa: E402

from db import stats  # noqa: E402
from db.engine import open_database, session_scope  # noqa: E402
from db.models import ImageRow, PredictionRow, ReviewRow  # noqa: E402
from db.queue import BrowseFilters, QueueFilters, browse_images, count_queue, review_queue  # noqa: E402
from foodclf.labels import FOOD101_LABELS  # noqa: E402

SEED = 7
CHUNK = 20_000
FINGERPRINT = "f" * 64
START = datetime(2026, 8, 1, tzinfo=timezone.utc)
DAYS = 90


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=1_000_000)
    parser.add_argument("--reviewed", type=float, default=0.4, help="fraction of photos with a review")
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--url", help="SQLAlchemy URL of an EMPTY database (default: a temp SQLite file)")
    parser.add_argument(
        "--reuse",
        action="store_true",
        help="with --url: measure the database an earlier run filled, as it is (filling 1M rows takes minutes)",
    )
    parser.add_argument("--explain", action="store_true", help="print SQLite query plans")
    parser.add_argument(
        "--no-analyze",
        dest="analyze",
        action="store_false",
        help="skip ANALYZE after filling, as most deployed SQLite files have no planner statistics",
    )
    args = parser.parse_args()

    url = args.url or f"sqlite:///{Path(tempfile.mkdtemp(prefix='foodclf-dbscale-')) / 'scale.db'}"
    engine = open_database(url)
    if args.reuse:
        if not args.url:
            parser.error("--reuse goes with --url")
        with session_scope(engine) as session:
            print(f"reusing {url}: {stats.summary(session)['images']:,} photos")
    else:
        started = time.perf_counter()
        counts = fill(engine, args.images, args.reviewed, analyze=args.analyze)
        print(
            f"filled {url} in {time.perf_counter() - started:.0f} s: "
            + ", ".join(f"{n:,} {what}" for what, n in counts.items())
            + ("" if args.analyze else "; no ANALYZE")
        )

    print(f"\n{'query':<40} {'median ms':>10} {'max ms':>8}")
    for name, query in queue_queries(engine).items():
        report(name, timings(engine, query, args.repeat))
    print(f"\n{'statistic (median ms)':<32}" + "".join(f"{span:>12}" for span in SPANS))
    for name, statistic in STATISTICS.items():
        medians = [
            statistics.median(timings(engine, lambda s, f=statistic, span=span: f(s, **span), args.repeat))
            for span in SPANS.values()
        ]
        flag = "   <-- over 300 ms" if max(medians) >= 300 else ""
        print(f"{name:<32}" + "".join(f"{m:12.1f}" for m in medians) + flag)
    if args.explain and engine.dialect.name == "sqlite":
        explain(engine)


STATISTICS = {
    "predicted label counts": stats.predicted_label_counts,
    "final label counts": stats.final_label_counts,
    "confirmation/correction rates": stats.category_rates,
    "confusion pairs": stats.confusion_pairs,
    "confidence histogram": stats.confidence_histogram,
    "volume per day": stats.daily_volume,
    "decisions per reviewer": stats.reviewer_activity,
    "summary": stats.summary,
}
SPANS = {
    "all-time": {},
    "30 days": dict(since=START + timedelta(days=30), until=START + timedelta(days=60)),
    "89 days": dict(since=START + timedelta(hours=12), until=START + timedelta(days=89, hours=12)),
}


def queue_queries(engine) -> dict:
    """The review queue and the browser as the dashboard asks for them (the date filters are whole days)."""
    day = (START + timedelta(days=40)).date()
    month = dict(since=(START + timedelta(days=30)).date(), until=(START + timedelta(days=59)).date())
    cursor_at_1000 = _cursor_for_page(engine, 999)
    four_days = dict(since=(START + timedelta(days=40)).date(), until=(START + timedelta(days=43)).date())
    browse_at_100 = _cursor_for_page(
        engine, 99, lambda s, after: browse_images(s, BrowseFilters(**month), limit=50, after=after)
    )
    return {
        "queue page 1 (least confident)": lambda s: review_queue(s, limit=50),
        "queue page 1,000 (keyset)": lambda s: review_queue(s, limit=50, after=cursor_at_1000),
        "queue filtered: label + score range": lambda s: review_queue(
            s, QueueFilters(predicted_label="pizza", min_score=0.2, max_score=0.6), limit=50
        ),
        "queue filtered: one day, newest": lambda s: review_queue(
            s, QueueFilters(since=day, until=day), order="newest", limit=50
        ),
        "queue filtered: source + 30 days": lambda s: review_queue(s, QueueFilters(source="api", **month), limit=50),
        "queue filtered: score range, newest": lambda s: review_queue(
            s, QueueFilters(min_score=0.3, max_score=0.9), order="newest", limit=50
        ),
        "queue count (N left)": lambda s: count_queue(s),
        "queue count: source + 30 days": lambda s: count_queue(s, QueueFilters(source="api", **month)),
        "queue count: label + 30 days": lambda s: count_queue(s, QueueFilters(predicted_label="apple_pie", **month)),
        "browse: final label": lambda s: browse_images(s, BrowseFilters(final_label="sushi"), limit=50),
        "browse: one day": lambda s: browse_images(s, BrowseFilters(since=day, until=day), limit=50),
        "browse: 4 days": lambda s: browse_images(s, BrowseFilters(**four_days), limit=50),
        "browse: 30 days": lambda s: browse_images(s, BrowseFilters(**month), limit=50),
        "browse: 30 days, page 100 (keyset)": lambda s: browse_images(
            s, BrowseFilters(**month), limit=50, after=browse_at_100
        ),
        "browse: 30 days + final label": lambda s: browse_images(
            s, BrowseFilters(final_label="sushi", **month), limit=50
        ),
        "browse: 30 days + label + unreviewed": lambda s: browse_images(
            s, BrowseFilters(predicted_label="pizza", reviewed=False, **month), limit=50
        ),
        "browse: 30 days + reviewed + source": lambda s: browse_images(
            s, BrowseFilters(reviewed=True, source="api", **month), limit=50
        ),
    }


def timings(engine, query, repeat: int) -> list[float]:
    """Milliseconds per run, each in its own session as a page run would have it."""
    times = []
    for _ in range(repeat):
        with session_scope(engine) as session:
            t0 = time.perf_counter()
            query(session)
            times.append((time.perf_counter() - t0) * 1000)
    return times


def report(name: str, times: list[float]) -> None:
    flag = "" if statistics.median(times) < 300 else "   <-- over 300 ms"
    print(f"{name:<40} {statistics.median(times):10.1f} {max(times):8.1f}{flag}")


def _cursor_for_page(engine, pages: int, page=lambda s, after: review_queue(s, limit=50, after=after)):
    """Walk the queue (or `page`) to page `pages` once, so the next page itself can be timed."""
    after = None
    with session_scope(engine) as session:
        for _ in range(pages):
            after = page(session, after).next_after
    return after


def fill(engine, n_images: int, reviewed: float, analyze: bool = True) -> dict[str, int]:
    indices = [index for table in (ImageRow, PredictionRow, ReviewRow) for index in table.__table__.indexes]
    with engine.begin() as connection:
        for index in indices:
            index.drop(connection)
    counts = _load(engine, n_images, reviewed)
    with engine.begin() as connection:
        for index in indices:
            index.create(connection)
        if analyze and engine.dialect.name == "sqlite":
            connection.execute(text("ANALYZE"))
    if engine.dialect.name == "postgresql":
        # What autovacuum does soon after a bulk load anyway: planner statistics, and the visibility
        # map that lets a covering index answer without visiting the table (index-only scans).
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            connection.execute(text("VACUUM ANALYZE" if analyze else "VACUUM"))
        # The rows came with explicit ids: move each id sequence past them, as the app would have.
        with engine.begin() as connection:
            for table in ("images", "predictions", "reviews"):
                connection.execute(
                    text(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), COALESCE(MAX(id), 1)) FROM {table}")
                )
    return counts


def _load(engine, n_images: int, reviewed: float) -> dict[str, int]:
    rng = random.Random(SEED)
    weights = [1 / (rank + 1) ** 0.8 for rank in range(len(FOOD101_LABELS))]  # a few dishes dominate
    reviewers = [f"moderator{i:02d}" for i in range(20)]
    n_reviews = 0
    for first in range(1, n_images + 1, CHUNK):
        ids = range(first, min(first + CHUNK, n_images + 1))
        images, predictions, reviews, currents = [], [], [], []
        for i in ids:
            added = START + timedelta(seconds=rng.random() * DAYS * 86400)
            label = rng.choices(FOOD101_LABELS, weights)[0]
            score = rng.betavariate(5, 2)
            images.append(
                dict(
                    id=i,
                    content_id=f"{i:064x}",
                    file_name=f"IMG_{i}.jpg",
                    stored_path=f"{i:064x}.jpg",
                    width=512,
                    height=384,
                    format="JPEG",
                    size_bytes=60_000,
                    source=rng.choice(("upload", "folder", "api")),
                    added_by="bench",
                    added_at=added,
                    prediction_id=i,
                    top_label=label,
                    top_score=score,
                )
            )
            predictions.append(
                dict(
                    id=i,
                    image_id=i,
                    model_id="nateraw/food",
                    fingerprint=FINGERPRINT,
                    top_label=label,
                    top_score=score,
                    scores=[{"label": label, "score": score}],
                    uncertain=score < 0.5,
                    latency_ms=90.0,
                    created_at=added,
                )
            )
            if rng.random() < reviewed:
                n_reviews += 1
                action = rng.choices(("confirmed", "corrected", "not_food", "skipped"), (75, 18, 2, 5))[0]
                final = {
                    "confirmed": label,
                    "corrected": rng.choice(FOOD101_LABELS),
                    "not_food": "not_food",
                    "skipped": None,
                }[action]
                at = added + timedelta(hours=rng.random() * 48)
                reviews.append(
                    dict(
                        id=n_reviews,
                        image_id=i,
                        prediction_id=i,
                        action=action,
                        final_label=final,
                        reviewer=rng.choice(reviewers),
                        created_at=at,
                    )
                )
                if action != "skipped":  # every review judged photo i's only prediction, labelled `label`
                    currents.append(dict(b_id=i, review=n_reviews, label=final, action=action, at=at, judged=label))
        with engine.begin() as connection:
            connection.execute(insert(ImageRow), images)
            connection.execute(insert(PredictionRow), predictions)
            if reviews:
                connection.execute(insert(ReviewRow), reviews)
            if currents:
                connection.execute(
                    update(ImageRow)
                    .where(ImageRow.id == _bind("b_id"))
                    .values(
                        current_review_id=_bind("review"),
                        current_label=_bind("label"),
                        current_action=_bind("action"),
                        reviewed_at=_bind("at"),
                        judged_label=_bind("judged"),
                    ),
                    currents,
                )
        print(f"\r  {ids[-1]:,} / {n_images:,} photos", end="", file=sys.stderr, flush=True)
    print(file=sys.stderr)
    return {"photos": n_images, "predictions": n_images, "reviews": n_reviews}


def _bind(name):
    from sqlalchemy import bindparam

    return bindparam(name)


def explain(engine) -> None:
    """SQLite's plan for each statement the queue and stats run (read: SEARCH ... USING INDEX)."""
    from sqlalchemy import event

    plans = []

    def capture(conn, cursor, statement, parameters, context, executemany):
        if statement.lstrip().upper().startswith("SELECT"):
            rows = conn.exec_driver_sql("EXPLAIN QUERY PLAN " + statement, parameters).fetchall()
            steps = list(dict.fromkeys(r[-1] for r in rows if not r[-1].startswith("SCALAR SUBQUERY")))
            plans.append((statement.split("\n")[0][:100], steps))  # one line per distinct step

    queries = queue_queries(engine)  # walks to page 1,000 first: not captured
    event.listen(engine, "before_cursor_execute", capture)
    with session_scope(engine) as session:
        for query in queries.values():
            query(session)
        for statistic in STATISTICS.values():
            for span in SPANS.values():
                statistic(session, **span)
    event.remove(engine, "before_cursor_execute", capture)
    for statement, plan in plans:
        print("\n" + statement)
        for line in plan:
            print("   ", line)


if __name__ == "__main__":
    main()
