"""Property-based: any label, reviewer name, filter or cursor gives a clean answer or a clear refusal, never a
traceback; keyset pages list every photo exactly once, in order."""

from __future__ import annotations

import re
import unicodedata
from datetime import date, datetime, timedelta, timezone

import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from sqlalchemy import select

from db.export_rows import ExportFilters, export_counts
from db.models import LABEL_LENGTH, NAME_LENGTH, ImageRow, utcnow
from db.queue import ORDERS, BrowseFilters, QueueFilters, browse_images, count_images, count_queue, review_queue
from db.reviews import submit_review
from foodclf.errors import FoodclfError, UnknownCategory
from foodclf.labels import clean_label, clean_reviewer_name, normalise_label

# Function-scoped fixtures (the session) are shared by the examples of one test; each example
# works inside a savepoint that is rolled back, so none sees another's rows.
DB = hypothesis_settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
ANY_TEXT = st.text(st.characters(codec="utf-8"), max_size=300)  # every code point but surrogates
ANY_DATE = st.one_of(
    st.none(),
    st.dates(),
    st.datetimes(timezones=st.just(timezone.utc)),
    st.datetimes(),
    st.integers(),
    st.text(max_size=10),
)


@given(ANY_TEXT | st.none())
@hypothesis_settings(max_examples=500)
def test_any_label_is_cleaned_or_refused_clearly(text):
    try:
        label = clean_label(text)
    except UnknownCategory as err:
        assert str(err).endswith(")") or str(err).endswith("."), str(err)
        return
    assert re.fullmatch(r"\w+", label) and label.strip("_") and len(label) <= LABEL_LENGTH
    assert label == label.lower() or not label.isascii()
    assert clean_label(label) == label  # cleaning is idempotent
    assert normalise_label(text) == label  # nothing but normalisation changed it


@given(ANY_TEXT | st.none())
@hypothesis_settings(max_examples=500)
def test_any_reviewer_name_is_cleaned(text):
    name = clean_reviewer_name(text)
    assert name == name.strip() and len(name) <= NAME_LENGTH and "  " not in name
    assert not any(unicodedata.category(ch)[0] == "C" for ch in name)  # no control or invisible characters
    assert clean_reviewer_name(name) == name


@given(name=ANY_TEXT)
@DB
def test_any_reviewer_name_is_stored_clean_or_refused_clearly(session, make_image, name):
    nested = session.begin_nested()
    try:
        image = make_image(session)
        try:
            review = submit_review(session, image.id, action="skipped", reviewer=name, expected_review_id=None)
        except FoodclfError as err:
            assert str(err) == "Enter your name before reviewing, so each decision can be traced."
            assert clean_reviewer_name(name) == ""  # refused only when nothing visible is left
            return
        stored = review.reviewer
        assert stored and stored == stored.strip() and len(stored) <= NAME_LENGTH
        assert not any(unicodedata.category(ch) == "Cf" for ch in stored)
        assert "  " not in stored and "\n" not in stored and "\t" not in stored
    finally:
        nested.rollback()


def clear_refusal(call):
    """Run `call`; a refusal must be a ValueError/TypeError/FoodclfError naming what was wrong."""
    try:
        return call()
    except (ValueError, TypeError, FoodclfError) as err:
        message = str(err)
        assert message and "Traceback" not in message and len(message) < 300, message
        return None


@given(
    only_corrected=st.booleans(),
    since=ANY_DATE,
    until=ANY_DATE,
    labels=st.one_of(st.none(), st.lists(ANY_TEXT, max_size=3)),
)
@DB
def test_any_export_filter_counts_or_refuses_clearly(session, only_corrected, since, until, labels):
    filters = ExportFilters(only_corrected, since, until, tuple(labels or ()))
    counts = clear_refusal(lambda: export_counts(session, filters))
    assert counts is None or isinstance(counts, list)


@given(
    predicted_label=st.one_of(st.none(), ANY_TEXT),
    min_score=st.one_of(st.none(), st.floats(allow_nan=True, allow_infinity=True)),
    max_score=st.one_of(st.none(), st.floats(allow_nan=True, allow_infinity=True)),
    since=ANY_DATE,
    until=ANY_DATE,
    source=st.one_of(st.none(), st.sampled_from(["upload", "api", "x"]), ANY_TEXT),
    skipped_by=st.one_of(st.none(), ANY_TEXT),
    order=st.one_of(st.sampled_from(ORDERS), ANY_TEXT),
    after=st.one_of(st.none(), ANY_TEXT),
    limit=st.integers(-5, 600),
)
@DB
def test_any_queue_filter_pages_or_refuses_clearly(
    session, make_image, predicted_label, min_score, max_score, since, until, source, skipped_by, order, after, limit
):
    nested = session.begin_nested()
    try:
        make_image(session, score=0.4)
        filters = QueueFilters(
            predicted_label=predicted_label,
            min_score=min_score,
            max_score=max_score,
            since=since,
            until=until,
            source=source,
            skipped_by=skipped_by,
        )
        page = clear_refusal(lambda: review_queue(session, filters, order=order, after=after, limit=limit))
        assert page is None or len(page.items) <= max(limit, 0)
        clear_refusal(lambda: count_queue(session, filters))
        browse = BrowseFilters(
            predicted_label=predicted_label, final_label=predicted_label, since=since, until=until, source=source
        )
        clear_refusal(lambda: browse_images(session, browse, after=after, limit=limit))
    finally:
        nested.rollback()


PHOTOS = st.lists(
    st.tuples(st.sampled_from([0.1, 0.25, 0.5, 0.5, 0.75, 0.9]), st.integers(0, 5)), min_size=0, max_size=25
)


# "disagrees" lists decided photos, not these unreviewed ones (tests/test_queue_strategies.py covers it).
@given(photos=PHOTOS, order=st.sampled_from([o for o in ORDERS if o != "disagrees"]), limit=st.integers(1, 7))
@DB
def test_queue_pages_list_every_photo_once_in_order(session, make_image, photos, order, limit):
    nested = session.begin_nested()
    try:
        start = utcnow() - timedelta(days=10)
        for score, day in photos:
            make_image(session, score=score, added_at=start + timedelta(days=day))
        seen, after = [], None
        while True:
            page = review_queue(session, order=order, after=after, limit=limit)
            seen += page.items
            if page.next_after is None:
                break
            after = page.next_after
        ids = [item.image_id for item in seen]
        assert len(ids) == len(set(ids)) == len(photos) == count_queue(session, order=order)
        key = {
            "least_confident": lambda i: (i.predicted_score, i.image_id),
            "smallest_margin": lambda i: (i.margin, i.image_id),
            "highest_entropy": lambda i: (-i.entropy, -i.image_id),
            "most_confident": lambda i: (-i.predicted_score, -i.image_id),
            "newest": lambda i: -i.image_id,
            "oldest": lambda i: i.image_id,
        }[order]
        assert seen == sorted(seen, key=key)
    finally:
        nested.rollback()


@given(photos=PHOTOS, limit=st.integers(1, 7), window=st.tuples(st.integers(0, 6), st.integers(0, 6)))
@DB
def test_browse_pages_by_date_list_every_photo_once_newest_first(session, make_image, photos, limit, window):
    nested = session.begin_nested()
    try:
        start = datetime(2024, 3, 1, tzinfo=timezone.utc)
        for score, day in photos:
            make_image(session, score=score, added_at=start + timedelta(days=day, seconds=score))
        since, until = date(2024, 3, 1) + timedelta(days=min(window)), date(2024, 3, 1) + timedelta(days=max(window))
        seen, after = [], None
        while True:
            page = browse_images(session, BrowseFilters(since=since, until=until), after=after, limit=limit)
            seen += page.items
            if page.next_after is None:
                break
            after = page.next_after
        ids = [item.image_id for item in seen]
        expected = session.scalars(
            select(ImageRow.id).where(
                ImageRow.added_at >= datetime.combine(since, datetime.min.time(), timezone.utc),
                ImageRow.added_at < datetime.combine(until + timedelta(days=1), datetime.min.time(), timezone.utc),
            )
        ).all()
        assert sorted(ids) == sorted(expected) and len(ids) == len(set(ids))
        assert len(ids) == count_images(session, BrowseFilters(since=since, until=until))
        assert [(i.added_at, i.image_id) for i in seen] == sorted(
            ((i.added_at, i.image_id) for i in seen), reverse=True
        )
    finally:
        nested.rollback()


@pytest.mark.parametrize("bound", [date.max, date.min, datetime.max.replace(tzinfo=timezone.utc)])
def test_extreme_dates_are_answered_not_crashed(session, bound):
    assert export_counts(session, ExportFilters(since=bound, until=bound)) == []
