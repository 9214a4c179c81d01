"""Moderators' decisions: append-only reviews, optimistic concurrency, and undo."""

from __future__ import annotations

import re
import unicodedata
from datetime import timedelta
from typing import Optional

from sqlalchemy import exists, select, update
from sqlalchemy.orm import Session, aliased

from db.models import DECISIONS, LABEL_LENGTH, NAME_LENGTH, ImageRow, PredictionRow, ReviewRow, utcnow
from foodclf.errors import FoodclfError, ReviewConflict, UnknownCategory
from foodclf.labels import NOT_FOOD, normalise_label

REVIEW_ACTIONS = DECISIONS + ("skipped",)  # what submit_review accepts; `undone` comes from undo only
_LABEL = re.compile(r"\w+")  # after normalise_label: letters, digits, underscores; safe as a folder name


def clean_label(text: Optional[str]) -> str:
    """A category typed by a moderator, as stored: "Apple Pie " -> "apple_pie"; refuses empty or odd names."""
    label = normalise_label(text or "")
    error = None
    if not label.strip("_"):
        error = "Pick or type a category for this photo."
    elif len(label) > LABEL_LENGTH:
        error = f"A category name can be at most {LABEL_LENGTH} characters."
    elif not _LABEL.fullmatch(label):
        odd = "".join(sorted({ch for ch in label if not re.fullmatch(r"\w", ch)}))
        error = f"Use only letters, digits, spaces and hyphens in a category name (not {odd!r})."
    if error:
        raise UnknownCategory(error)
    return label


def model_label(label: str) -> str:
    """A model's own label in stored form; characters a folder name cannot hold become underscores."""
    return re.sub(r"\W+", "_", normalise_label(label)).strip("_")[:LABEL_LENGTH] or "unlabelled"


def submit_review(
    session: Session,
    image_id: int,
    *,
    action: str,
    final_label: Optional[str] = None,
    reviewer: str,
    expected_review_id: Optional[int],
    prediction_id: Optional[int] = None,
    note: Optional[str] = None,
) -> ReviewRow:
    """Append a moderator's decision and make it the photo's current one.

    Args:
        image_id: the photo's row id.
        action: confirmed (final label = the prediction's top label), corrected (final_label required),
            not_food, or skipped (no change). The stored action follows the final label: a label equal
            to the prediction's is `confirmed`, any other `corrected`, "not food" is `not_food`.
        final_label: the category for `corrected` (for `confirmed`, the label the moderator saw);
            any name, not only the model's labels.
        reviewer: who decides.
        expected_review_id: the photo's current_review_id as the moderator saw it (None: unreviewed).
        prediction_id: the prediction judged (default: the photo's latest).
        note: optional free text.

    Returns:
        The new ReviewRow (flushed, so it has an id; the caller commits).

    Raises:
        ReviewConflict: someone else decided on this photo since it was shown; nothing was written.
        UnknownCategory: an empty or unusable category.
        FoodclfError: no such photo, or no reviewer name.
    """
    if action not in REVIEW_ACTIONS:
        raise ValueError(f"action: expected one of {', '.join(REVIEW_ACTIONS)}, not {action!r}")
    reviewer = _clean_reviewer(reviewer)
    # The label the moderator chose: typed or picked for a correction, or the one they saw confirmed.
    chosen = None
    if action == "corrected" or (action == "confirmed" and final_label):
        chosen = clean_label(final_label)
    if action != "skipped":
        # Compare-and-set first: it takes the write lock (SQLite) or the row lock (PostgreSQL),
        # so the check and the writes below cannot interleave with another moderator's.
        _claim(session, image_id, expected_review_id)
    image = _load_image(session, image_id)
    prediction = _judged_prediction(session, image, prediction_id)
    label = None
    if action == "not_food":
        label = NOT_FOOD
    elif action != "skipped":
        predicted = model_label(prediction.top_label) if prediction else None
        label = chosen or predicted
        if label is None:
            raise UnknownCategory("This photo has no prediction to confirm; pick a category instead.")
        # What happened, whatever button was pressed: agreeing with the model is a confirmation.
        action = "not_food" if label == NOT_FOOD else "confirmed" if label == predicted else "corrected"
    review = ReviewRow(
        image_id=image.id, prediction_id=prediction.id if prediction else None, action=action,
        final_label=label, reviewer=reviewer, note=(note or "").strip() or None, created_at=utcnow(),
    )
    session.add(review)
    session.flush()
    if action != "skipped":
        _make_current(session, image, review)
        session.flush()
    return review


def undo_last_review(session: Session, reviewer: str) -> Optional[ReviewRow]:
    """Cancel this reviewer's latest decision by appending an `undone` row; None if there is nothing to undo.

    The photo returns to its previous decision (or to the queue). Undoing again walks further back.

    Raises:
        ReviewConflict: someone else has decided on that photo since; their decision stands.
    """
    reviewer = _clean_reviewer(reviewer)
    target = session.scalars(
        select(ReviewRow)
        .where(ReviewRow.reviewer == reviewer, ReviewRow.action != "undone", ~_is_undone(ReviewRow))
        .order_by(ReviewRow.id.desc()).limit(1)
    ).first()
    if target is None:
        return None
    if target.action != "skipped":
        _claim(session, target.image_id, target.id, undoing=True)
    undo = ReviewRow(
        image_id=target.image_id, prediction_id=target.prediction_id, action="undone",
        reviewer=reviewer, undoes_review_id=target.id, created_at=utcnow(),
    )
    session.add(undo)
    session.flush()
    if target.action != "skipped":
        previous = session.scalars(
            select(ReviewRow)
            .where(ReviewRow.image_id == target.image_id, ReviewRow.action.in_(DECISIONS),
                   ~_is_undone(ReviewRow))
            .order_by(ReviewRow.id.desc()).limit(1)
        ).first()
        _make_current(session, _load_image(session, target.image_id), previous)
        session.flush()
    return undo


def _is_undone(review):
    """SQL: an `undone` row points at this review."""
    undo = aliased(ReviewRow)
    return exists().where(undo.undoes_review_id == review.id)


def _claim(session: Session, image_id: int, expected: Optional[int], undoing: bool = False) -> None:
    """UPDATE the photo only if its current decision is still `expected`; else explain who changed it."""
    current = ImageRow.current_review_id
    same = current.is_(None) if expected is None else current == expected
    result = session.execute(
        update(ImageRow).where(ImageRow.id == image_id, same).values(current_review_id=current)
        .execution_options(synchronize_session=False)
    )
    if result.rowcount == 1:
        return
    if session.get(ImageRow, image_id, populate_existing=True) is None:
        raise FoodclfError("This photo is no longer in the database; reload the queue.")
    latest = session.scalars(
        select(ReviewRow).where(ReviewRow.image_id == image_id, ReviewRow.action != "skipped")
        .order_by(ReviewRow.id.desc()).limit(1)
    ).first()
    raise ReviewConflict(_conflict_message(latest, undoing))


def _conflict_message(review: Optional[ReviewRow], undoing: bool) -> str:
    ask = ("their decision stands, so there is nothing of yours to undo on this photo." if undoing
           else "look again and decide.")
    if review is None:
        return f"This photo's decision was just changed; {ask}"
    ago = _ago(utcnow() - review.created_at)
    if review.action == "undone":
        return f"{review.reviewer} undid a decision on this photo {ago}; {ask}"
    what = {
        "confirmed": f"confirmed as {_spoken(review.final_label)}",
        "corrected": f"corrected to {_spoken(review.final_label)}",
        "not_food": "marked not food",
    }.get(review.action, review.action)
    return f"This photo was just reviewed by {review.reviewer} ({what}) {ago}; {ask}"


def _make_current(session: Session, image: ImageRow, review: Optional[ReviewRow]) -> None:
    judged = session.get(PredictionRow, review.prediction_id) if review and review.prediction_id else None
    image.current_review_id = review.id if review else None
    image.current_label = review.final_label if review else None
    image.current_action = review.action if review else None
    image.reviewed_at = review.created_at if review else None
    image.judged_label = judged.top_label if judged else None


def _load_image(session: Session, image_id: int) -> ImageRow:
    # populate_existing: after _claim we hold the lock, so re-read what another writer may have committed.
    image = session.get(ImageRow, image_id, populate_existing=True)
    if image is None:
        raise FoodclfError("This photo is no longer in the database; reload the queue.")
    return image


def _judged_prediction(session: Session, image: ImageRow, prediction_id: Optional[int]):
    if prediction_id is None:
        return session.get(PredictionRow, image.prediction_id) if image.prediction_id else None
    prediction = session.get(PredictionRow, prediction_id)
    if prediction is None or prediction.image_id != image.id:
        raise ValueError(f"prediction_id: {prediction_id} is not a prediction of image {image.id}")
    return prediction


def _clean_reviewer(reviewer: Optional[str]) -> str:
    # Invisible format characters (zero-width space...) must not make a name out of nothing.
    visible = "".join(ch for ch in reviewer or "" if unicodedata.category(ch) != "Cf")
    name = " ".join(visible.split())[:NAME_LENGTH]
    if not name:
        raise FoodclfError("Enter your name before reviewing, so each decision can be traced.")
    return name


def _spoken(label: Optional[str]) -> str:
    return (label or "no label").replace("_", " ")


def _ago(delta: timedelta) -> str:
    seconds = int(delta.total_seconds())
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60), ("second", 1)):
        if seconds >= size:
            n = seconds // size
            return f"{n} {unit}{'s' if n != 1 else ''} ago"
    return "just now"
