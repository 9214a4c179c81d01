"""Moderators' decisions: append-only reviews, optimistic concurrency, and undo."""

from __future__ import annotations

from typing import Optional

from sqlalchemy import exists, or_, select, update
from sqlalchemy.orm import Session, aliased

from db.models import DECISIONS, ImageRow, PredictionRow, ReviewRow, utcnow
from foodclf.errors import FoodclfError, ReviewConflict, UnknownCategory
from foodclf.labels import NOT_FOOD, clean_label, clean_reviewer_name, model_label

REVIEW_ACTIONS = DECISIONS + ("skipped",)  # what submit_review accepts; `undone` comes from undo only


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
        The new ReviewRow (flushed, so it has an id; the caller commits). When the photo's latest
        review is already this very decision by this reviewer (a double click, a key pressed twice),
        nothing is written and that row comes back with `repeated` set, even from a stale view.

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
    # Compare-and-set first: it takes the write lock (SQLite) or the row lock (PostgreSQL),
    # so the checks and the writes below cannot interleave with another moderator's.
    claimed = action == "skipped" or _claim(session, image_id, expected_review_id)
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
    # A double click, or a key pressed twice, sends the same decision again, often from a view drawn
    # before the first was saved: it is not a conflict with oneself, and not a second row.
    repeat = _repeat_of(session, image, action, label, reviewer)
    if repeat is not None:
        repeat.repeated = True
        return repeat
    if not claimed:
        raise _conflict(session, image_id)
    review = ReviewRow(
        image_id=image.id,
        prediction_id=prediction.id if prediction else None,
        action=action,
        final_label=label,
        reviewer=reviewer,
        note=(note or "").strip() or None,
        created_at=utcnow(),
    )
    session.add(review)
    session.flush()
    if action != "skipped":
        _make_current(session, image, review)
        session.flush()
    return review


def undo_last_review(session: Session, reviewer: str) -> Optional[ReviewRow]:
    """Cancel this reviewer's latest decision still in effect by appending an `undone` row.

    A decision is in effect while it is its photo's current one (a skip, until it is undone); one
    that someone else has since replaced is passed over, so undo never gets stuck on it. The photo
    returns to its previous decision (or to the queue). Undoing again walks further back.

    Returns:
        The `undone` row, or None if nothing of this reviewer's is in effect.

    Raises:
        ReviewConflict: someone else decided on that photo while this undo ran; their decision stands.
    """
    reviewer = _clean_reviewer(reviewer)
    in_effect = or_(
        ReviewRow.action == "skipped",
        exists().where(ImageRow.id == ReviewRow.image_id, ImageRow.current_review_id == ReviewRow.id),
    )
    target = session.scalars(
        select(ReviewRow)
        .where(ReviewRow.reviewer == reviewer, ReviewRow.action != "undone", ~_is_undone(ReviewRow), in_effect)
        .order_by(ReviewRow.id.desc())
        .limit(1)
    ).first()
    if target is None:
        return None
    if target.action != "skipped" and not _claim(session, target.image_id, target.id):
        raise _conflict(session, target.image_id, undoing=True)
    undo = ReviewRow(
        image_id=target.image_id,
        prediction_id=target.prediction_id,
        action="undone",
        reviewer=reviewer,
        undoes_review_id=target.id,
        created_at=utcnow(),
    )
    session.add(undo)
    session.flush()
    if target.action != "skipped":
        previous = session.scalars(
            select(ReviewRow)
            .where(ReviewRow.image_id == target.image_id, ReviewRow.action.in_(DECISIONS), ~_is_undone(ReviewRow))
            .order_by(ReviewRow.id.desc())
            .limit(1)
        ).first()
        _make_current(session, _load_image(session, target.image_id), previous)
        session.flush()
    return undo


def _is_undone(review):
    """SQL: an `undone` row points at this review."""
    undo = aliased(ReviewRow)
    return exists().where(undo.undoes_review_id == review.id)


def _claim(session: Session, image_id: int, expected: Optional[int]) -> bool:
    """UPDATE the photo only if its current decision is still `expected`; False if it is not.

    Either way the statement takes the write lock, so what the caller reads next stays true.
    """
    current = ImageRow.current_review_id
    same = current.is_(None) if expected is None else current == expected
    result = session.execute(
        update(ImageRow)
        .where(ImageRow.id == image_id, same)
        .values(current_review_id=current)
        .execution_options(synchronize_session=False)
    )
    return result.rowcount == 1


def _repeat_of(
    session: Session, image: ImageRow, action: str, label: Optional[str], reviewer: str
) -> Optional[ReviewRow]:
    """The photo's latest review if it is this same decision by this reviewer and still in force, else None.

    A decision is in force while it is the photo's current one; a skip, while no review came after it.
    """
    latest = session.scalars(
        select(ReviewRow).where(ReviewRow.image_id == image.id).order_by(ReviewRow.id.desc()).limit(1)
    ).first()
    if latest is None or (latest.reviewer, latest.action, latest.final_label) != (reviewer, action, label):
        return None
    if action != "skipped" and image.current_review_id != latest.id:
        return None
    return latest


def _conflict(session: Session, image_id: int, undoing: bool = False) -> FoodclfError:
    """The error for a photo whose current decision changed since it was shown: who changed it, or that it is gone."""
    if session.get(ImageRow, image_id, populate_existing=True) is None:
        return FoodclfError("This photo is no longer in the database; reload the queue.")
    latest = session.scalars(
        select(ReviewRow)
        .where(ReviewRow.image_id == image_id, ReviewRow.action != "skipped")
        .order_by(ReviewRow.id.desc())
        .limit(1)
    ).first()
    if latest is None:
        return ReviewConflict(undoing=undoing)
    return ReviewConflict(
        latest.reviewer, latest.action, latest.final_label, utcnow() - latest.created_at, undoing=undoing
    )


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
    name = clean_reviewer_name(reviewer)
    if not name:
        raise FoodclfError("Enter your name before reviewing, so each decision can be traced.")
    return name
