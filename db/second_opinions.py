"""Second opinions: a share of decided photos goes back, blind, to a different moderator.

The first decision stays in force while the second is asked; the second is kept on the
second_opinions row (not as a review), so it changes no label. When the two differ, an admin
adjudicates with a normal review, which becomes the photo's label.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Optional

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from db.models import DECISIONS, ImageRow, ReviewRow, SecondOpinion, as_utc, utcnow
from db.reviews import submit_review
from foodclf.errors import FoodclfError, OpinionTaken
from foodclf.labels import clean_reviewer_name


@dataclass(frozen=True)
class Pair:
    """Two moderators' labels for one photo: the first decision and the blind second opinion."""

    image_id: int
    first_reviewer: str
    first_label: str
    second_reviewer: str
    second_label: str
    status: str


def sampled(content_id: str, review_id: int, share: float) -> bool:
    """Whether this decision is asked again: a fixed share, the same answer every time it is asked.

    A hash rather than a random draw: reproducible, and not something a moderator can game by
    deciding again (each decision is a new draw, but the draw cannot be seen).
    """
    if share <= 0:
        return False
    digest = hashlib.sha256(f"{content_id}:{review_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") < share * 2**64


def request_if_sampled(session: Session, review: ReviewRow, content_id: str, share: float) -> Optional[SecondOpinion]:
    """After a decision on the photo `content_id`: open a second opinion on it if it is in the sampled share.

    Not for a photo already waiting for a second opinion or an adjudication (one question at a time).
    """
    if review.action not in DECISIONS or review.final_label is None or not sampled(content_id, review.id, share):
        return None
    waiting = session.scalar(
        select(func.count())
        .select_from(SecondOpinion)
        .where(SecondOpinion.image_id == review.image_id, SecondOpinion.status.in_(("open", "disagreed")))
    )
    if waiting:
        return None
    opinion = SecondOpinion(
        image_id=review.image_id,
        first_review_id=review.id,
        first_reviewer=review.reviewer,
        first_label=review.final_label,
        created_at=utcnow(),
        status="open",
    )
    session.add(opinion)
    session.flush()
    return opinion


def _still_in_force():
    """The first decision is still the photo's current one (not undone or replaced since)."""
    return (
        select(ImageRow.id)
        .where(ImageRow.id == SecondOpinion.image_id, ImageRow.current_review_id == SecondOpinion.first_review_id)
        .exists()
    )


def next_open(session: Session, reviewer: str, exclude: frozenset[int] = frozenset()) -> Optional[SecondOpinion]:
    """The oldest open second opinion this reviewer may give: never on their own decision."""
    stmt = (
        select(SecondOpinion)
        .where(
            SecondOpinion.status == "open",
            SecondOpinion.first_reviewer != clean_reviewer_name(reviewer),
            _still_in_force(),
        )
        .order_by(SecondOpinion.id)
        .limit(1)
    )
    if exclude:
        stmt = stmt.where(SecondOpinion.image_id.not_in(sorted(exclude)))
    return session.scalars(stmt).first()


def open_count(session: Session, reviewer: str) -> int:
    """How many open second opinions this reviewer may give."""
    return session.scalar(
        select(func.count())
        .select_from(SecondOpinion)
        .where(
            SecondOpinion.status == "open",
            SecondOpinion.first_reviewer != clean_reviewer_name(reviewer),
            _still_in_force(),
        )
    )


def give(session: Session, opinion_id: int, reviewer: str, label: str) -> SecondOpinion:
    """Record the second moderator's label (stored form): agreed, or disagreed (to adjudication).

    Raises:
        FoodclfError: the reviewer made the first decision (a second opinion is someone else's).
        OpinionTaken: someone gave it first, or the photo was decided again since; nothing written.
    """
    reviewer = clean_reviewer_name(reviewer)
    opinion = session.get(SecondOpinion, opinion_id)
    if opinion is None:
        raise OpinionTaken("This second opinion no longer exists.")
    if opinion.first_reviewer == reviewer:
        raise FoodclfError("You made the first decision on this photo: a second opinion must come from someone else.")
    status = "agreed" if label == opinion.first_label else "disagreed"
    # Compare-and-set: two moderators answering at once, exactly one is recorded.
    done = session.execute(
        update(SecondOpinion)
        .where(SecondOpinion.id == opinion_id, SecondOpinion.status == "open", _still_in_force())
        .values(status=status, second_reviewer=reviewer, second_label=label, second_at=utcnow())
        .execution_options(synchronize_session=False)
    ).rowcount
    if not done:
        raise OpinionTaken(
            "Another moderator gave this second opinion first, or the photo was decided again since: "
            "nothing was saved. Here is the next one."
        )
    session.refresh(opinion)
    return opinion


def disputed(session: Session, limit: int = 50) -> list[SecondOpinion]:
    """Second opinions that disagreed, oldest first: the adjudication queue."""
    stmt = select(SecondOpinion).where(SecondOpinion.status == "disagreed").order_by(SecondOpinion.id).limit(limit)
    return list(session.scalars(stmt))


def disputed_count(session: Session) -> int:
    return session.scalar(select(func.count()).select_from(SecondOpinion).where(SecondOpinion.status == "disagreed"))


def adjudicate(session: Session, opinion_id: int, admin: str, *, action: str, label: Optional[str]) -> ReviewRow:
    """An admin settles a disagreement with a normal review (it becomes the photo's label).

    action/label as for submit_review (confirmed, corrected, not_food). The review must follow the
    decision the two moderators saw: if someone decided on the photo since, ReviewConflict.

    Raises:
        OpinionTaken: not (or no longer) waiting for adjudication.
        ReviewConflict: the photo was decided again since the first decision.
    """
    opinion = session.get(SecondOpinion, opinion_id)
    if opinion is None or opinion.status != "disagreed":
        raise OpinionTaken("This disagreement was already settled.")
    review = submit_review(
        session,
        opinion.image_id,
        action=action,
        final_label=label,
        reviewer=admin,
        expected_review_id=opinion.first_review_id,
        note=f"adjudication of a second opinion ({opinion.first_label} / {opinion.second_label})",
    )
    opinion.status = "adjudicated"
    opinion.adjudication_review_id = review.id
    session.flush()
    return review


def pairs(session: Session, *, since=None, until=None) -> list[Pair]:
    """Every second opinion given in the range (agreed, disagreed or adjudicated), oldest first."""
    stmt = select(SecondOpinion).where(SecondOpinion.second_label.is_not(None))
    if since is not None:
        stmt = stmt.where(SecondOpinion.second_at >= as_utc(since, "since"))
    if until is not None:
        stmt = stmt.where(SecondOpinion.second_at < as_utc(until, "until", end=True))
    return [
        Pair(o.image_id, o.first_reviewer, o.first_label, o.second_reviewer, o.second_label, o.status)
        for o in session.scalars(stmt.order_by(SecondOpinion.id))
    ]
