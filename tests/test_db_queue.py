"""The review queue and the browser: order, filters, keyset pages that neither skip nor repeat."""

from __future__ import annotations

import random
from datetime import date, datetime, timedelta, timezone

import pytest
from sqlalchemy import event

from db.models import as_utc
from db.queue import BrowseFilters, QueueFilters, browse_images, count_images, count_queue, review_queue
from db.reviews import submit_review, undo_last_review
from factories import FINGERPRINT

DAY = datetime(2024, 5, 1, 12, tzinfo=timezone.utc)


def queue_args(filters: dict) -> tuple[QueueFilters, dict]:
    """A test's keyword form split into the filter object and the order keyword."""
    filters = dict(filters)
    order = {"order": filters.pop("order")} if "order" in filters else {}
    return QueueFilters(**filters), order


def all_pages(session, function=review_queue, limit=4, order=None, **filters) -> list:
    """Every page of the queue (or the browser) with these filters, walked by cursor."""
    typed = (QueueFilters if function is review_queue else BrowseFilters)(**filters)
    paging = {"order": order} if order else {}
    items, after, pages = [], None, 0
    while True:
        page = function(session, typed, after=after, limit=limit, **paging)
        items += page.items
        pages += 1
        assert len(page.items) <= limit
        if page.next_after is None:
            return items
        assert len(page.items) == limit
        after = page.next_after
        assert pages < 1000


@pytest.fixture
def photos(session, make_image):
    """30 photos whose scores repeat (so pages end inside runs of equal scores), over 3 days."""
    rng = random.Random(7)
    return [
        make_image(
            session,
            label=rng.choice(["pizza", "sushi", "steak"]),
            score=rng.choice([0.2, 0.5, 0.5, 0.9]),
            added_at=DAY + timedelta(days=i % 3, minutes=i),
            source="upload" if i % 4 == 0 else "folder",
        )
        for i in range(30)
    ]


@pytest.mark.parametrize(
    "order, key",
    [
        ("least_confident", lambda p: (p.top_score, p.id)),
        ("most_confident", lambda p: (-p.top_score, -p.id)),
        ("newest", lambda p: -p.id),
        ("oldest", lambda p: p.id),
    ],
)
@pytest.mark.parametrize("limit", [1, 4, 7, 30, 500])
def test_pages_cover_the_queue_once_in_order(session, photos, order, key, limit):
    items = all_pages(session, order=order, limit=limit)
    assert [item.image_id for item in items] == [p.id for p in sorted(photos, key=key)]


def test_reviewed_photos_leave_the_queue_skipped_ones_stay(session, photos, make_review):
    make_review(session, photos[0], action="confirmed")
    make_review(session, photos[1], action="skipped")
    make_review(session, photos[2], action="not_food")
    listed = {item.image_id for item in all_pages(session)}
    assert listed == {p.id for p in photos[1:]} - {photos[2].id}
    assert count_queue(session) == 28


def test_a_page_boundary_survives_photos_being_reviewed_between_pages(session, photos, make_review):
    expected = [p.id for p in sorted(photos, key=lambda p: (p.top_score, p.id))]
    first = review_queue(session, limit=10)
    for item in first.items:  # the moderator works through page 1, then asks for page 2
        make_review(session, session.get(type(photos[0]), item.image_id), action="confirmed")
    second = review_queue(session, limit=10, after=first.next_after)
    assert [i.image_id for i in first.items + second.items] == expected[:20]
    assert [i.image_id for i in review_queue(session, limit=10).items] == expected[10:20]


@pytest.mark.parametrize(
    "filters, keep",
    [
        (dict(predicted_label="pizza"), lambda p: p.top_label == "pizza"),
        (dict(min_score=0.5), lambda p: p.top_score >= 0.5),
        (dict(max_score=0.5), lambda p: p.top_score <= 0.5),
        (
            dict(min_score=0.3, max_score=0.6, predicted_label="sushi"),
            lambda p: p.top_label == "sushi" and p.top_score == 0.5,
        ),
        (dict(since=date(2024, 5, 2)), lambda p: p.added_at.date() >= date(2024, 5, 2)),
        (dict(until=date(2024, 5, 2)), lambda p: p.added_at.date() <= date(2024, 5, 2)),  # a date includes its day
        (
            dict(since=DAY + timedelta(minutes=10), until=DAY + timedelta(days=1)),
            lambda p: DAY + timedelta(minutes=10) <= p.added_at < DAY + timedelta(days=1),
        ),
        (dict(source="upload"), lambda p: p.source == "upload"),
    ],
)
def test_filters(session, photos, filters, keep):
    expected = [p.id for p in sorted(photos, key=lambda p: (p.top_score, p.id)) if keep(p)]
    assert 0 < len(expected) < len(photos)
    assert [item.image_id for item in all_pages(session, **filters)] == expected
    assert count_queue(session, QueueFilters(**filters)) == len(expected)


def test_queue_for_one_model_orders_by_that_models_scores(session, make_image):
    from db.records import record_prediction
    from factories import fake_result

    old, new = "a" * 64, "b" * 64
    images = [make_image(session, score=0.1 * (i + 1), fingerprint=old) for i in range(5)]
    for i, image in enumerate(images[:3]):  # the new model has seen only three, and ranks them the other way
        record_prediction(session, image, fake_result("sushi", 0.9 - 0.1 * i, fingerprint=new))
    items = all_pages(session, fingerprint=new, limit=2)
    assert [i.image_id for i in items] == [images[2].id, images[1].id, images[0].id]
    assert {(i.fingerprint, i.predicted_label) for i in items} == {(new, "sushi")}
    assert count_queue(session, QueueFilters(fingerprint=new, predicted_label="sushi")) == 3
    assert [i.image_id for i in all_pages(session, fingerprint=old)] == [image.id for image in images]


def test_items_carry_what_the_review_page_needs(session, photos):
    item = review_queue(session, limit=1).items[0]
    assert item.current_review_id is None and item.prediction_id is not None
    assert item.scores[0]["score"] == item.predicted_score
    assert item.stored_path == f"{item.content_id}.jpg"


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (
            dict(order="random"),
            "order: expected one of least_confident, smallest_margin, highest_entropy, disagrees, most_confident, "
            "newest, oldest",
        ),
        (dict(limit=0), "limit: expected 1 to 500"),
        (dict(after="not-a-cursor"), "after: not a cursor from this list and order"),
        (dict(since=datetime(2024, 5, 1)), "since: give a timezone-aware datetime"),
        (dict(source="email"), "source: expected one of upload, folder, api"),
    ],
)
def test_misuse_is_a_value_error(session, photos, kwargs, message):
    kwargs = dict(kwargs)  # the parameter is shared by each backend's run: pop from a copy
    with pytest.raises(ValueError, match=message):
        paging = {key: kwargs.pop(key) for key in ("order", "limit", "after") if key in kwargs}
        review_queue(session, QueueFilters(**kwargs), **paging)


def test_count_queue_refuses_a_filter_it_does_not_know(session):
    with pytest.raises(TypeError, match="unexpected keyword argument 'label'"):
        count_queue(session, QueueFilters(label="pizza"))


def test_a_cursor_from_another_order_is_refused(session, photos):
    cursor = review_queue(session, limit=2, order="newest").next_after
    with pytest.raises(ValueError, match="not a cursor from this list and order"):
        review_queue(session, limit=2, after=cursor)


def explain(session, call) -> str:
    """SQLite's query plan for the SELECT that `call` runs (its first one)."""
    captured = []

    def capture(conn, cursor, statement, parameters, context, executemany):
        if statement.lstrip().upper().startswith("SELECT") and not captured:
            captured.append((statement, parameters))

    engine = session.get_bind()
    event.listen(engine, "before_cursor_execute", capture)
    try:
        call()
    finally:
        event.remove(engine, "before_cursor_execute", capture)
    statement, parameters = captured[0]
    rows = session.connection().exec_driver_sql("EXPLAIN QUERY PLAN " + statement, parameters).all()
    return "\n".join(row[-1] for row in rows)


@pytest.mark.sqlite_only
@pytest.mark.parametrize(
    "filters, index",
    [
        ({}, "ix_images_queue_score"),
        (dict(predicted_label="pizza"), "ix_images_queue_label"),
        (dict(order="newest"), "ix_images_queue_id"),
        (dict(fingerprint="f" * 64), "ix_predictions_fingerprint_score"),
    ],
)
def test_queue_pages_are_index_scans_without_a_sort(session, photos, filters, index):
    typed, order = queue_args(filters)
    cursor = review_queue(session, typed, limit=3, **order).next_after
    plan = explain(session, lambda: review_queue(session, typed, limit=3, after=cursor, **order))
    assert index in plan, plan
    assert "TEMP B-TREE" not in plan, plan


@pytest.mark.sqlite_only
@pytest.mark.parametrize(
    "filters",
    [
        dict(source="api"),
        dict(since=date(2024, 5, 2), until=date(2024, 5, 2)),
        dict(predicted_label="pizza", since=date(2024, 5, 2), source="upload"),
        dict(min_score=0.3, max_score=0.6, order="newest", until=date(2024, 5, 2)),
    ],
)
def test_other_filters_are_checked_inside_the_queue_indices(session, photos, filters):
    """With 600k photos waiting, reading each row to check its date or source took seconds per page."""
    typed, order = queue_args(filters)
    count_plan = explain(session, lambda: count_queue(session, typed))
    assert "COVERING INDEX" in count_plan and "TEMP B-TREE" not in count_plan, count_plan
    page_plan = explain(session, lambda: review_queue(session, typed, limit=3, **order))
    assert "ix_images_queue_" in page_plan and "TEMP B-TREE" not in page_plan, page_plan


def test_browse_filters_and_pages(session, photos, make_review):
    make_review(session, photos[0], action="corrected", label="calzone")
    make_review(session, photos[1], action="confirmed")
    newest_first = sorted(photos, key=lambda p: -p.id)
    assert [i.image_id for i in all_pages(session, browse_images)] == [p.id for p in newest_first]
    assert [i.image_id for i in all_pages(session, browse_images, final_label="calzone")] == [photos[0].id]
    reviewed = all_pages(session, browse_images, reviewed=True)
    assert {i.image_id for i in reviewed} == {photos[0].id, photos[1].id}
    assert reviewed[1].final_label == "calzone" and reviewed[1].reviewed_by == "alice"
    pizza_unreviewed = [p.id for p in newest_first[:-2] if p.top_label == "pizza"]
    assert [i.image_id for i in all_pages(session, browse_images, predicted_label="pizza", reviewed=False)] == (
        pizza_unreviewed
    )
    assert count_images(session, BrowseFilters(predicted_label="pizza", reviewed=False)) == len(pizza_unreviewed)
    assert count_images(session, BrowseFilters(since=date(2024, 5, 3))) == 10


@pytest.mark.parametrize(
    "filters",
    [
        dict(since=date(2024, 5, 2)),
        dict(since=date(2024, 5, 1), until=date(2024, 5, 2)),
        dict(until=date(2024, 5, 2), predicted_label="pizza"),
        dict(since=date(2024, 5, 1), source="folder", reviewed=False),
    ],
)
@pytest.mark.parametrize("limit", [1, 3, 7, 500])
def test_browse_with_dates_pages_newest_added_first_through_ties(session, photos, make_image, filters, limit):
    # Photos stored with the same added_at as others, and one added "earlier" than its id says.
    photos = photos + [
        make_image(session, label="pizza", added_at=photos[i].added_at, source="folder") for i in (4, 4, 17)
    ]
    photos.append(make_image(session, label="pizza", added_at=DAY - timedelta(hours=1), source="folder"))
    since = as_utc(filters["since"], "since") if "since" in filters else None
    until = as_utc(filters["until"], "until", end=True) if "until" in filters else None
    expect = [
        p.id
        for p in sorted(photos, key=lambda p: (as_utc(p.added_at, "added_at"), p.id), reverse=True)
        if (since is None or as_utc(p.added_at, "added_at") >= since)
        and (until is None or as_utc(p.added_at, "added_at") < until)
        and filters.get("predicted_label", p.top_label) == p.top_label
        and filters.get("source", p.source) == p.source
    ]
    assert expect
    assert [i.image_id for i in all_pages(session, browse_images, limit=limit, **filters)] == expect
    assert count_images(session, BrowseFilters(**filters)) == len(expect)


@pytest.mark.sqlite_only
@pytest.mark.parametrize(
    "filters",
    [
        dict(since=date(2024, 5, 2), until=date(2024, 5, 2)),
        dict(since=date(2024, 5, 1)),
        dict(until=date(2024, 5, 2), predicted_label="pizza"),
        dict(since=date(2024, 5, 1), until=date(2024, 5, 3), reviewed=True),
        dict(since=date(2024, 5, 1), reviewed=False, source="folder"),
        dict(since=date(2024, 5, 1), until=date(2024, 5, 3), final_label="sushi"),
    ],
)
def test_browse_with_dates_walks_an_index_without_a_sort(session, photos, filters):
    """Sorting every photo of a month by id took seconds at a million rows."""
    cursor = browse_images(session, BrowseFilters(**filters), limit=3).next_after
    for after in (None, cursor):
        plan = explain(
            session, lambda after=after: browse_images(session, BrowseFilters(**filters), limit=3, after=after)
        )
        assert "USE TEMP B-TREE FOR ORDER BY" not in plan, plan


def test_a_browse_cursor_without_dates_is_refused_with_dates(session, photos):
    cursor = browse_images(session, limit=2).next_after
    with pytest.raises(ValueError, match="not a cursor from this list and order"):
        browse_images(session, BrowseFilters(since=date(2024, 5, 1)), limit=2, after=cursor)


# ---- skipped_by ------------------------------------------------------------------------------


def test_skipped_by_leaves_out_that_reviewers_own_skips(session, photos, make_review):
    by_score = sorted(photos, key=lambda p: (p.top_score, p.id))
    first, second, third, fourth, fifth = by_score[:5]
    make_review(session, first, action="skipped", reviewer="bob")
    make_review(session, second, action="skipped", reviewer="bob")
    make_review(session, second, action="skipped", reviewer="carol")  # someone else's skip: still bob's
    make_review(session, third, action="skipped", reviewer="bob")
    make_review(session, third, action="confirmed", reviewer="carol")  # decided, then undone: back for bob
    undo_last_review(session, "carol")
    make_review(session, fourth, action="skipped", reviewer="bob")
    undo_last_review(session, "bob")  # bob took his skip back
    make_review(session, fifth, action="skipped", reviewer="carol")
    submit_review(session, first.id, action="skipped", reviewer=" bob ", expected_review_id=None)

    hidden = {first.id, second.id}
    listed = [item.image_id for item in all_pages(session, skipped_by="bob")]
    assert listed == [p.id for p in by_score if p.id not in hidden]
    assert count_queue(session, QueueFilters(skipped_by="bob")) == 28
    assert {item.image_id for item in all_pages(session, skipped_by="carol")} == {p.id for p in photos} - {
        second.id,
        fifth.id,
    }
    assert count_queue(session, QueueFilters(skipped_by="carol")) == 28
    # Without the filter, and for someone who skipped nothing, every skipped photo stays.
    assert count_queue(session) == count_queue(session, QueueFilters(skipped_by="dave")) == 30
    assert len(all_pages(session, skipped_by="dave", limit=30)) == 30


@pytest.mark.parametrize("order", ["least_confident", "most_confident", "newest", "oldest"])
def test_skipped_by_combines_with_filters_and_fingerprint(session, photos, make_review, order):
    pizzas = [p for p in photos if p.top_label == "pizza"]
    make_review(session, pizzas[0], action="skipped", reviewer="bob")
    make_review(session, photos[1] if photos[1] not in pizzas else photos[2], action="skipped", reviewer="bob")
    for fingerprint in (None, FINGERPRINT):
        filters = dict(predicted_label="pizza", skipped_by="bob", fingerprint=fingerprint)
        listed = {item.image_id for item in all_pages(session, order=order, **filters)}
        assert listed == {p.id for p in pizzas[1:]}
        assert count_queue(session, QueueFilters(**filters)) == len(pizzas) - 1


def test_the_unfiltered_queue_does_not_look_at_reviews(session, photos, engine):
    statements = []
    listen = lambda conn, cursor, statement, *args: statements.append(statement)  # noqa: E731
    event.listen(engine, "before_cursor_execute", listen)
    try:
        review_queue(session, limit=5)
        count_queue(session)
    finally:
        event.remove(engine, "before_cursor_execute", listen)
    assert statements and not any("reviews_1" in sql for sql in statements)
