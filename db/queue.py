"""The review queue and the photo browser: filtered lists with keyset pagination."""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from datetime import date, datetime
from typing import Optional

from sqlalchemy import Select, and_, exists, func, or_, select
from sqlalchemy.orm import Session, aliased

from db.indexing import unseekable
from db.models import SOURCES, ImageRow, PredictionRow, ReviewRow, as_utc
from db.records import ImageSummary, summary_select, to_summary
from foodclf.labels import clean_reviewer_name

# Which photos a moderator's minute is worth most: least_confident (default: lowest top score first),
# smallest_margin (top-1 minus top-2 score: the model torn between two labels), highest_entropy (its
# scores spread over many labels), disagrees (decided photos whose latest prediction, e.g. after
# `reclassify` with a new model, differs from the decision: a second look); then the plain orders.
STRATEGIES = ("least_confident", "smallest_margin", "highest_entropy", "disagrees")
ORDERS = STRATEGIES + ("most_confident", "newest", "oldest")
MAX_PAGE = 500


@dataclass(frozen=True)
class QueueFilters:
    """Which unreviewed photos the queue lists; None means any.

    Dates are when the photo was added, `since <= added_at < until` (a date `until` includes that day).
    """

    predicted_label: Optional[str] = None  # only photos whose top label is this
    min_score: Optional[float] = None  # top-score range, inclusive (0 to 1)
    max_score: Optional[float] = None
    since: Optional[date | datetime] = None
    until: Optional[date | datetime] = None
    source: Optional[str] = None  # upload, folder or api
    fingerprint: Optional[str] = None  # judge one model's predictions (default: each photo's latest)
    skipped_by: Optional[str] = None  # leave out photos this reviewer skipped, unless decided since


@dataclass(frozen=True)
class BrowseFilters:
    """Which photos the browser lists; None means any. Dates as in QueueFilters."""

    predicted_label: Optional[str] = None
    final_label: Optional[str] = None
    reviewed: Optional[bool] = None
    since: Optional[date | datetime] = None
    until: Optional[date | datetime] = None
    source: Optional[str] = None


@dataclass(frozen=True)
class Page:
    """One page of photos and the cursor of the next (None on the last page)."""

    items: list[ImageSummary]
    next_after: Optional[str]


def review_queue(
    session: Session,
    filters: QueueFilters = QueueFilters(),
    *,
    order: str = "least_confident",
    after: Optional[str] = None,
    limit: int = 20,
) -> Page:
    """Unreviewed photos (skipped ones included), one page at a time; with order "disagrees", decided ones.

    Args:
        filters: which photos.
        order: least_confident, smallest_margin, highest_entropy, disagrees (decided photos whose latest
            prediction differs from the decision, newest first), most_confident, newest or oldest.
        after: the previous page's next_after; pages stay as fast at page 1,000 as at page 1.
        limit: photos per page, 1 to 500.

    Returns:
        A Page of ImageSummary; pass an item's current_review_id to submit_review as expected_review_id.
    """
    stmt, score, where = _queue_parts(filters, by_score=order in ("least_confident", "most_confident"), order=order)
    # With a fingerprint, predictions(fingerprint, top_score, image_id) is the index that is walked.
    keys = _order_keys(
        order, score, PredictionRow.image_id if filters.fingerprint else ImageRow.id, filters.fingerprint
    )
    return _page(session, stmt.where(*where), keys, order, after, limit)


def count_queue(session: Session, filters: QueueFilters = QueueFilters(), *, order: str = "least_confident") -> int:
    """How many photos review_queue would list with the same filters and order."""
    _, _, where = _queue_parts(filters, order=order)
    stmt = select(func.count()).select_from(ImageRow)
    if filters.fingerprint:
        stmt = stmt.join(PredictionRow, _model_join(filters.fingerprint))
    return session.scalar(stmt.where(*where))


def browse_images(
    session: Session,
    filters: BrowseFilters = BrowseFilters(),
    *,
    after: Optional[str] = None,
    limit: int = 50,
) -> Page:
    """All photos, newest first, filtered by predicted or final label, reviewed or not, and date added.

    Newest first is by id, or by (added_at, id) when a date range is given: the (added_at, id) index
    is then walked in its own order from the range's end, where sorting every photo of a month by id
    took seconds at a million rows. Photos get added_at when they are stored, so the two orders agree
    except for photos stored with an explicit date; either way each page's cursor resumes exactly.
    """
    if filters.since is None and filters.until is None:
        where = _browse_where(filters)
        return _page(session, summary_select().where(*where), [(ImageRow.id, True)], "browse", after, limit)
    # Reviewed or not is checked on each photo walked: seeking the unreviewed 60 % by the queue
    # indices meant sorting them.
    where = _browse_where(filters, hide=unseekable)
    keys = [(ImageRow.added_at, True), (ImageRow.id, True)]
    return _page(session, summary_select().where(*where), keys, "browse_added", after, limit)


def count_images(session: Session, filters: BrowseFilters = BrowseFilters()) -> int:
    """How many photos browse_images would list with the same filters."""
    return session.scalar(select(func.count()).select_from(ImageRow).where(*_browse_where(filters)))


def _queue_parts(
    filters: QueueFilters, by_score: bool = True, order: str = "least_confident"
) -> tuple[Select, object, list]:
    """The SELECT, the score column and the WHERE of the queue; by_score: the order is by score."""
    if filters.fingerprint:
        stmt = summary_select(_model_join(filters.fingerprint), inner=True)
        label, score = PredictionRow.top_label, PredictionRow.top_score
        # Walked in the predictions index; the photo's own columns are checked on its row.
        filter_label, filter_score, hide = label, score, lambda column: column
    else:
        stmt = summary_select()
        label, score = ImageRow.top_label, ImageRow.top_score
        # The queue indices hold every filtered column: SQLite may seek by the label and the score
        # range when the order is by score, and checks the rest inside the index it walks in order.
        # Seeking rows by date or source instead, then reading and sorting them, took seconds.
        hide = unseekable
        filter_label, filter_score = (label, score) if by_score else (hide(label), hide(score))
    if order == "disagrees":
        # Decided photos the latest model labels otherwise, unless the decision was made looking at a
        # prediction with that same label (the moderator already overruled it).
        judged = ImageRow.judged_label
        where = [
            ImageRow.current_review_id.is_not(None),
            score.is_not(None),
            label != ImageRow.current_label,
            or_(judged.is_(None), judged != label),
        ]
    else:
        where = [ImageRow.current_review_id.is_(None), score.is_not(None)]
        column = _strategy_column(order, filters.fingerprint)
        if column is not None:
            where.append(column.is_not(None))
    if filters.predicted_label:
        where.append(filter_label == filters.predicted_label)
    if filters.min_score is not None:
        where.append(filter_score >= float(filters.min_score))
    if filters.max_score is not None:
        where.append(filter_score <= float(filters.max_score))
    where += _added_where(filters.since, filters.until, filters.source, hide)
    if filters.skipped_by:
        where.append(~_skipped_by(filters.skipped_by))
    return stmt, score, where


def _skipped_by(reviewer: str):
    """SQL: this reviewer's latest review of the photo is a skip, and no one has decided on it since.

    Checked per photo the queue walks, through the reviews(image_id, id) index, so a page costs
    its own photos plus the ones passed over; the unfiltered queue never runs it.
    """
    reviewer = clean_reviewer_name(reviewer)  # as submit_review stores the name
    skip, later = aliased(ReviewRow), aliased(ReviewRow)
    # Later rows that end the skip: anything of the reviewer's own (a decision, an undo), or anyone's
    # decision or undo. Someone else's skip does not.
    ended = exists().where(
        later.image_id == skip.image_id,
        later.id > skip.id,
        or_(later.reviewer == reviewer, later.action != "skipped"),
    )
    # The photo's own reviews are few; without hiding them, SQLite seeks all of the reviewer's skips
    # by (reviewer, action) for every photo the queue walks.
    return exists().where(
        skip.image_id == ImageRow.id,
        unseekable(skip.reviewer) == reviewer,
        unseekable(skip.action) == "skipped",
        ~ended,
    )


def _model_join(fingerprint: str):
    return and_(PredictionRow.image_id == ImageRow.id, PredictionRow.fingerprint == fingerprint)


def _browse_where(filters: BrowseFilters, hide=lambda column: column) -> list:
    where = []
    if filters.predicted_label:
        where.append(ImageRow.top_label == filters.predicted_label)
    if filters.final_label:
        where.append(ImageRow.current_label == filters.final_label)
    if filters.reviewed is not None:
        review_id = hide(ImageRow.current_review_id)
        where.append(review_id.is_not(None) if filters.reviewed else review_id.is_(None))
    return where + _added_where(filters.since, filters.until, filters.source)


def _added_where(since, until, source, hide=lambda column: column) -> list:
    added_at, source_column = hide(ImageRow.added_at), hide(ImageRow.source)
    where = []
    if since is not None:
        where.append(added_at >= as_utc(since, "since"))
    if until is not None:
        where.append(added_at < as_utc(until, "until", end=True))
    if source:
        if source not in SOURCES:
            raise ValueError(f"source: expected one of {', '.join(SOURCES)}, not {source!r}")
        where.append(source_column == source)
    return where


def _strategy_column(order: str, fingerprint):
    """The column smallest_margin or highest_entropy sorts by (None for the other orders)."""
    if order == "smallest_margin":
        return PredictionRow.margin if fingerprint else ImageRow.top_margin
    if order == "highest_entropy":
        return PredictionRow.entropy if fingerprint else ImageRow.top_entropy
    return None


def _order_keys(order: str, score, image_id, fingerprint=None) -> list[tuple[object, bool]]:
    """(column, descending) pairs, score then image id; all one way, so one index scan serves the page."""
    column = _strategy_column(order, fingerprint)
    keys = {
        "least_confident": [(score, False), (image_id, False)],
        "smallest_margin": [(column, False), (image_id, False)],
        "highest_entropy": [(column, True), (image_id, True)],
        "disagrees": [(image_id, True)],
        "most_confident": [(score, True), (image_id, True)],
        "newest": [(image_id, True)],
        "oldest": [(image_id, False)],
    }.get(order)
    if keys is None:
        raise ValueError(f"order: expected one of {', '.join(ORDERS)}, not {order!r}")
    return keys


def _page(session: Session, stmt: Select, keys, name: str, after: Optional[str], limit: int) -> Page:
    if not 1 <= limit <= MAX_PAGE:
        raise ValueError(f"limit: expected 1 to {MAX_PAGE}, not {limit}")
    if after is not None:
        stmt = stmt.where(_after(keys, _decode(after, name, len(keys))))
    stmt = stmt.order_by(*(col.desc() if desc else col.asc() for col, desc in keys)).limit(limit + 1)
    rows = session.execute(stmt).all()
    items = [to_summary(row) for row in rows[:limit]]
    next_after = None
    if len(rows) > limit:
        last = items[-1]
        values = [_cursor_value(last, col.key) for col, _ in keys]
        next_after = _encode(name, values)
    return Page(items, next_after)


def _cursor_value(item: ImageSummary, key: str):
    if key in ("id", "image_id"):
        return item.image_id
    if key == "added_at":
        return item.added_at.isoformat()  # microseconds kept, so ties on the date resume by id
    if key in ("top_margin", "margin"):
        return item.margin
    if key in ("top_entropy", "entropy"):
        return item.entropy
    return item.predicted_score


def _after(keys, values):
    """Rows strictly after `values` in key order, written so the first key can bound an index range."""
    (first, desc), first_value = keys[0], values[0]
    beyond = (lambda col, v: col < v) if desc else (lambda col, v: col > v)
    if len(keys) == 1:
        return beyond(first, first_value)
    (second, _), second_value = keys[1], values[1]
    bound = first <= first_value if desc else first >= first_value
    return and_(bound, or_(beyond(first, first_value), beyond(second, second_value)))


def _encode(name: str, values: list) -> str:
    raw = json.dumps({"o": name, "k": values}, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode(cursor: str, name: str, size: int) -> list:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        data = json.loads(raw)
        values = data["k"]
        ok = data["o"] == name and len(values) == size
        if ok and name == "browse_added":
            values = [datetime.fromisoformat(values[0]), values[1]]
            ok = values[0].tzinfo is not None
        ok = ok and all(isinstance(v, (int, float, datetime)) for v in values)
    except (binascii.Error, ValueError, TypeError, KeyError):
        ok = False
    if not ok:
        raise ValueError("after: not a cursor from this list and order; start again from the first page")
    return values
