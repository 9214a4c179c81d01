"""What the dashboard's moderation pages ask of the store, composed: decisions, the queue, labels, history.

No streamlit here: pages call these and draw the result. Each function opens its own
short transaction, so a page never holds a session across runs.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from typing import Any, Optional

from sqlalchemy import Engine

from db import second_opinions, stats
from db.audit import record_event
from db.engine import session_scope
from db.queue import BrowseFilters, QueueFilters, browse_images, count_images, count_queue, review_queue
from db.records import ImageSummary, image_history, image_summaries, image_summary
from db.reviews import submit_review, undo_last_review
from db.similar import near_duplicate_images, similar_images
from foodclf.errors import FoodclfError, UnknownCategory
from foodclf.labels import NOT_FOOD, clean_label, display_label, model_label

# What each stored action is called where a person reads it.
ACTION_WORDS = {
    "confirmed": "Confirmed",
    "corrected": "Corrected to",
    "not_food": "Marked not food",
    "skipped": "Skipped",
}
# The queue's strategies (db.queue.STRATEGIES), as moderators read them.
QUEUE_ORDERS = {
    "least_confident": "Least confident first",
    "smallest_margin": "Torn between two labels first",
    "highest_entropy": "Most spread-out scores first",
    "disagrees": "Decided, but the newest model disagrees",
}


@dataclass(frozen=True)
class Decision:
    """A moderator's judgement of one photo: action is confirmed, corrected, not_food or skipped."""

    action: str
    label: Optional[str] = None  # the category for corrected; the store fills in the rest


@dataclass(frozen=True)
class Saved:
    """A decision as stored (a correction to the model's own label is stored as confirmed)."""

    action: str
    label: Optional[str]
    summary: ImageSummary  # the photo afterwards, with its new current_review_id
    repeat: bool = False  # the same decision by the same person was already in force: nothing was written


def correction(chosen: Optional[str], typed: Optional[str]) -> Decision:
    """The decision a Correct click means: a typed new category wins over the list's choice.

    Raises:
        UnknownCategory: neither was given, or the typed one can't be a category name.
    """
    if typed and typed.strip():
        label = clean_label(unicodedata.normalize("NFC", typed))
    elif chosen:
        label = chosen
    else:
        raise UnknownCategory("Pick a category from the list or type a new one, then save the correction.")
    return Decision("not_food", NOT_FOOD) if label == NOT_FOOD else Decision("corrected", label)


def save_decision(
    engine: Engine,
    photo: ImageSummary,
    decision: Decision,
    *,
    reviewer: str,
    second_opinion_share: float = 0.0,
) -> Saved:
    """Store a decision on a photo as it was shown (its prediction and current_review_id).

    The same decision again by the same person (a double click) writes nothing: Saved.repeat is set.
    second_opinion_share (FOODCLF_SECOND_OPINION_SHARE): the share of decisions also sent, in the same
    transaction, to the second-opinion queue for a different moderator.

    Raises:
        ReviewConflict: someone else decided on the photo since it was shown; nothing was written.
        UnknownCategory: the category can't be used.
        FoodclfError: no reviewer name, or the photo is gone.
    """
    with session_scope(engine) as session:
        review = submit_review(
            session,
            photo.image_id,
            action=decision.action,
            final_label=decision.label,
            reviewer=reviewer,
            expected_review_id=photo.current_review_id,
            prediction_id=photo.prediction_id,
        )
        if not review.repeated:
            second_opinions.request_if_sampled(session, review, photo.content_id, second_opinion_share)
        return _saved(session, review)


def _saved(session, review) -> Saved:
    """A stored (or repeated) review as the pages report it, with its photo as it is now."""
    return Saved(review.action, review.final_label, image_summary(session, review.image_id), review.repeated)


def candidates(photo: ImageSummary, n: int = 5) -> list[str]:
    """The model's top `n` distinct labels for a photo, best first (the 1-5 keys' choices)."""
    return list(dict.fromkeys(score["label"] for score in photo.scores))[:n]


@dataclass(frozen=True)
class SecondLook:
    """A decided photo shown blind for a second opinion: the photo and the model's answer, not the decision."""

    opinion_id: int
    photo: ImageSummary


@dataclass(frozen=True)
class Dispute:
    """Two moderators who disagreed on a photo, for an admin to settle."""

    opinion_id: int
    photo: ImageSummary
    first_reviewer: str
    first_label: str
    second_reviewer: str
    second_label: str


def decided_label(photo: ImageSummary, decision: Decision) -> str:
    """The stored label a decision on this photo means (confirm: the model's answer, in stored form)."""
    if decision.action == "not_food":
        return NOT_FOOD
    if decision.action == "corrected":
        return clean_label(decision.label)
    if decision.action == "confirmed" and photo.predicted_label:
        return model_label(photo.predicted_label)
    raise UnknownCategory("This photo has no prediction to confirm; pick a category instead.")


def next_second_opinion(engine: Engine, reviewer: str, exclude: frozenset[int] = frozenset()) -> Optional[SecondLook]:
    """The oldest photo waiting for a second opinion this reviewer may give (never on their own decision)."""
    with session_scope(engine) as session:
        opinion = second_opinions.next_open(session, reviewer, exclude)
        if opinion is None:
            return None
        return SecondLook(opinion.id, image_summary(session, opinion.image_id))


def second_opinions_waiting(engine: Engine, reviewer: str) -> int:
    with session_scope(engine) as session:
        return second_opinions.open_count(session, reviewer)


def give_second_opinion(engine: Engine, look: SecondLook, decision: Decision, *, reviewer: str) -> str:
    """Record a blind second opinion; returns "agreed" or "disagreed" (then an admin settles it).

    Raises:
        OpinionTaken: someone gave it first, or the photo was decided again; nothing was written.
    """
    label = decided_label(look.photo, decision)
    with session_scope(engine) as session:
        return second_opinions.give(session, look.opinion_id, reviewer, label).status


def disputes(engine: Engine, limit: int = 50) -> tuple[list[Dispute], int]:
    """The oldest disagreements waiting for an admin (up to `limit`), and how many there are."""
    with session_scope(engine) as session:
        found = [
            Dispute(
                o.id,
                image_summary(session, o.image_id),
                o.first_reviewer,
                o.first_label,
                o.second_reviewer,
                o.second_label,
            )
            for o in second_opinions.disputed(session, limit)
        ]
        return found, second_opinions.disputed_count(session)


def adjudicate(engine: Engine, dispute: Dispute, decision: Decision, *, admin: str) -> Saved:
    """An admin's decision on a disagreement: a normal review, which becomes the photo's label.

    Raises:
        OpinionTaken: already settled. ReviewConflict: the photo was decided again since.
    """
    with session_scope(engine) as session:
        review = second_opinions.adjudicate(
            session, dispute.opinion_id, admin, action=decision.action, label=decision.label
        )
        return _saved(session, review)


@dataclass(frozen=True)
class Neighbour:
    """A stored photo like another one, and how alike their embeddings are (cosine: 1 is the same)."""

    photo: ImageSummary
    score: float


@dataclass(frozen=True)
class BulkSaved:
    """One decision applied to several photos: those saved, and those refused, each with why."""

    saved: list[Saved]
    refused: list[tuple[ImageSummary, str]]


def similar_photos(engine: Engine, photo: ImageSummary, k: int = 5) -> Optional[list[Neighbour]]:
    """The k stored photos most like this one, by the model that made its latest prediction, most alike first.

    Returns:
        None when that model has no embedding of the photo (stored before similar photos: `foodclf reclassify`).
    """
    if photo.fingerprint is None:
        return None
    with session_scope(engine) as session:
        found = similar_images(session, photo.image_id, photo.fingerprint, k)
        if found is None:
            return None
        summaries = image_summaries(session, [image_id for image_id, _ in found])
    return [Neighbour(summaries[image_id], score) for image_id, score in found if image_id in summaries]


def near_duplicates(engine: Engine, photo: ImageSummary) -> list[ImageSummary]:
    """The other stored photos that look the same as this one (resized or re-encoded copies), nearest first."""
    with session_scope(engine) as session:
        found = near_duplicate_images(session, photo.image_id) or []
        summaries = image_summaries(session, [image_id for image_id, _ in found])
    return [summaries[image_id] for image_id, _ in found if image_id in summaries]


def decision_in_force(photo: ImageSummary) -> Optional[Decision]:
    """The decision in force on a photo as one to apply to another (None while it is undecided).

    A label is passed on as such: on a photo whose prediction is that label it is stored as confirmed.
    """
    if photo.current_review_id is None or photo.action not in ("confirmed", "corrected", "not_food"):
        return None
    if photo.action == "not_food" or photo.final_label == NOT_FOOD:
        return Decision("not_food", NOT_FOOD)
    return Decision("corrected", photo.final_label)


def save_decisions(engine: Engine, photos: list[ImageSummary], decision: Decision, *, reviewer: str) -> BulkSaved:
    """The same decision on each photo, each saved as its own conflict-checked review (see save_decision).

    A photo someone else decided on since it was shown, or that cannot take the decision, is refused with
    the reason; the others are saved.
    """
    saved: list[Saved] = []
    refused: list[tuple[ImageSummary, str]] = []
    for photo in photos:
        try:
            saved.append(save_decision(engine, photo, decision, reviewer=reviewer))
        except FoodclfError as err:
            refused.append((photo, str(err)))
    return BulkSaved(saved, refused)


def undo_last(engine: Engine, reviewer: str) -> Optional[Saved]:
    """Cancel this reviewer's latest decision; the Saved describes what was undone, None if nothing was.

    Raises:
        ReviewConflict: someone else has decided on that photo since; their decision stands.
    """
    with session_scope(engine) as session:
        undo = undo_last_review(session, reviewer)
        if undo is None:
            return None
        undone = next(
            e
            for e in image_history(session, undo.image_id)
            if e["id"] == undo.undoes_review_id and e["kind"] == "review"
        )
        summary = image_summary(session, undo.image_id)
        record_event(
            session,
            reviewer,
            "undo",
            image_id=undo.image_id,
            review_id=undo.undoes_review_id,
            action=undone["action"],
            label=undone["final_label"],
        )
    return Saved(undone["action"], undone["final_label"], summary)


def refresh(engine: Engine, image_id: int) -> Optional[ImageSummary]:
    """A photo as it is now (after a conflict, to judge it again)."""
    with session_scope(engine) as session:
        return image_summary(session, image_id)


def next_in_queue(
    engine: Engine,
    filters: QueueFilters,
    exclude: frozenset[int] = frozenset(),
    order: str = "least_confident",
) -> Optional[ImageSummary]:
    """The first photo of the queue in `order` (a key of QUEUE_ORDERS), passing over `exclude` (skipped)."""
    page = queue_page(engine, filters, limit=1, exclude=exclude, order=order)
    return page[0] if page else None


def queue_page(
    engine: Engine,
    filters: QueueFilters,
    *,
    limit: int,
    exclude: frozenset[int] = frozenset(),
    order: str = "least_confident",
) -> list[ImageSummary]:
    """Up to `limit` photos of the queue in `order` (least confident first by default), without the excluded ones."""
    found: list[ImageSummary] = []
    after = None
    with session_scope(engine) as session:
        while len(found) < limit:
            # Skipped photos stay in the store's queue; ask for enough to step over ours in one go.
            page = review_queue(
                session, filters, order=order, after=after, limit=min(500, limit - len(found) + len(exclude))
            )
            found += [item for item in page.items if item.image_id not in exclude]
            after = page.next_after
            if after is None:
                break
    return found[:limit]


def queue_count(engine: Engine, filters: QueueFilters, order: str = "least_confident") -> int:
    """How many photos the queue holds in this order (unreviewed ones, skipped included; decided ones for disagrees)."""
    with session_scope(engine) as session:
        return count_queue(session, filters, order=order)


def browse_page(
    engine: Engine,
    filters: BrowseFilters,
    *,
    after: Optional[str] = None,
    limit: int = 24,
) -> tuple[list[ImageSummary], Optional[str], int]:
    """One page of the gallery, newest first: (photos, cursor of the next page, how many match in all)."""
    with session_scope(engine) as session:
        page = browse_images(session, filters, after=after, limit=limit)
        total = count_images(session, filters)
    return page.items, page.next_after, total


def photo_details(engine: Engine, image_id: int) -> tuple[Optional[ImageSummary], list[dict[str, Any]]]:
    """A photo and its whole history (predictions and reviews), oldest first."""
    with session_scope(engine) as session:
        summary = image_summary(session, image_id)
        events = image_history(session, image_id) if summary is not None else []
    return summary, events or []


def known_labels(engine: Engine, model_labels: list[str]) -> list[str]:
    """Every category a moderator may choose: the model's, those predicted or decided before, and not food."""
    with session_scope(engine) as session:
        used = set(stats.known_labels(session))
    labels = sorted((set(model_labels) | used) - {NOT_FOOD}, key=str.casefold)
    return labels + [NOT_FOOD]


def history_rows(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """History events as table rows a person reads, newest first."""
    rows = []
    for event in reversed(events):
        if event["kind"] == "prediction":
            what = f"Predicted {_spoken(event['label'])} ({event['score']:.0%})"
            who = event["model_id"].rstrip("/").rsplit("/", 1)[-1]
        else:
            what = _review_text(event)
            who = event["reviewer"]
        rows.append({"When (UTC)": event["at"].strftime("%Y-%m-%d %H:%M"), "What": what, "Who": who})
    return rows


def _review_text(event: dict[str, Any]) -> str:
    action = event["action"]
    text = {
        "confirmed": f"Confirmed {_spoken(event['final_label'])}",
        "corrected": f"Corrected to {_spoken(event['final_label'])}",
        "not_food": "Marked not food",
        "skipped": "Skipped",
        "undone": "Undid a decision",
    }.get(action, action)
    if event.get("current"):
        text += " (current)"
    return text


def _spoken(label: Optional[str]) -> str:
    return display_label(label) if label else "no label"


def describe(saved: Saved) -> str:
    """'Confirmed Pizza', 'Corrected to Bao buns', 'Marked not food', 'Skipped'."""
    label = f" {display_label(saved.label)}" if saved.label and saved.action in ("confirmed", "corrected") else ""
    return ACTION_WORDS.get(saved.action, saved.action) + label
