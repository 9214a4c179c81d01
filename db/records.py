"""Recording photos and predictions, and reading one photo back with its history."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Optional, Sequence

from sqlalchemy import Select, and_, select
from sqlalchemy.orm import Session

from db.models import SOURCES, ImageRow, PredictionRow, ReviewRow, ScoreLayout, utcnow
from db.scores import encode_scores, margin_and_entropy
from foodclf.labels import LABEL_LENGTH, NAME_LENGTH

if TYPE_CHECKING:
    from foodclf.classifier import ClassificationResult
    from foodclf.images import LoadedImage


@dataclass(frozen=True)
class ImageSummary:
    """One photo as the queue and the browser show it: plain values, safe after the session ends."""

    image_id: int
    content_id: str
    file_name: str
    stored_path: str
    width: int
    height: int
    format: str
    source: str
    added_by: str
    added_at: datetime
    prediction_id: Optional[int]
    model_id: Optional[str]
    fingerprint: Optional[str]
    predicted_label: Optional[str]
    predicted_score: Optional[float]
    uncertain: Optional[bool]
    scores: list[dict[str, Any]]  # [{"label", "score"}], highest first
    current_review_id: Optional[int]  # pass back as expected_review_id when submitting a review
    final_label: Optional[str]
    action: Optional[str]
    reviewed_at: Optional[datetime]
    reviewed_by: Optional[str]
    margin: Optional[float] = None  # top-1 minus top-2 score of the prediction shown
    entropy: Optional[float] = None  # of its scores, in nats


def record_images(
    session: Session,
    photos: Sequence[tuple["LoadedImage", str]],
    *,
    source: str,
    added_by: str,
) -> dict[str, ImageRow]:
    """Add the rows of the photos not stored yet, in one INSERT; every photo's row by content id, new or existing.

    Args:
        photos: (loaded photo, its stored path) pairs.
    """
    if source not in SOURCES:
        raise ValueError(f"source: expected one of {', '.join(SOURCES)}, not {source!r}")
    wanted = {loaded.content_id: (loaded, stored_path) for loaded, stored_path in photos}
    images = _images_by_content_id(session, list(wanted))
    added_by = (added_by or "unknown")[:NAME_LENGTH]
    new = [
        dict(
            content_id=cid,
            file_name=loaded.file_name[:255],
            stored_path=stored_path,
            width=loaded.width,
            height=loaded.height,
            format=loaded.format,
            size_bytes=loaded.size_bytes,
            source=source,
            added_by=added_by,
        )
        for cid, (loaded, stored_path) in wanted.items()
        if cid not in images
    ]
    images.update((image.content_id, image) for image in insert_absent(session, ImageRow, ["content_id"], new))
    raced = [cid for cid in wanted if cid not in images]  # stored by another process since the first look
    images.update(_images_by_content_id(session, raced))
    return images


def record_image(session: Session, loaded: "LoadedImage", *, source: str, added_by: str, stored_path: str) -> ImageRow:
    """Add a photo's row, or return the existing one with the same content id."""
    return record_images(session, [(loaded, stored_path)], source=source, added_by=added_by)[loaded.content_id]


def record_predictions(
    session: Session, predictions: Sequence[tuple[ImageRow, "ClassificationResult"]]
) -> dict[tuple[int, str], PredictionRow]:
    """Add what models said about photos (once per photo and weights fingerprint: a repeat keeps the first), in
    one INSERT, and make each new one its photo's latest.

    Returns:
        Every prediction by (image id, fingerprint), new or recorded before.
    """
    values = []
    laid_out: set[str] = set()
    for image, result in predictions:
        scores = [{"label": str(s["label"]), "score": float(s["score"])} for s in result.class_scores]
        every = list(getattr(result, "all_scores", ()) or ())
        labels = list(getattr(result, "score_labels", ()) or ())
        vector = None
        if every and len(every) == len(labels):
            if result.fingerprint not in laid_out:
                ensure_layout(session, result.fingerprint, labels)
                laid_out.add(result.fingerprint)
            vector = encode_scores(every)
        margin, entropy = margin_and_entropy(every if vector is not None else [s["score"] for s in scores])
        values.append(
            dict(
                image_id=image.id,
                model_id=result.model_id[:255],
                fingerprint=result.fingerprint,
                top_label=result.highest_probability_class[:LABEL_LENGTH],
                top_score=scores[0]["score"] if scores else 0.0,
                scores=scores,
                uncertain=bool(result.uncertain),
                latency_ms=float(result.latency_ms),
                all_scores=vector,
                margin=margin,
                entropy=entropy,
            )
        )
    inserted = insert_absent(session, PredictionRow, ["image_id", "fingerprint"], values)
    new = {(p.image_id, p.fingerprint): p for p in inserted}
    found = dict(new)
    for image, result in predictions:
        prediction = new.get((image.id, result.fingerprint))
        if prediction is None:  # recorded before (a rerun, or another process): kept as it was
            continue
        image.prediction_id = prediction.id
        image.top_label = prediction.top_label
        image.top_score = prediction.top_score
        image.top_margin = prediction.margin
        image.top_entropy = prediction.entropy
    before = [key for key in ((image.id, result.fingerprint) for image, result in predictions) if key not in new]
    for fingerprint in {f for _, f in before}:
        ids = [i for i, f in before if f == fingerprint]
        rows = session.scalars(
            select(PredictionRow).where(PredictionRow.fingerprint == fingerprint, PredictionRow.image_id.in_(ids))
        )
        found.update(((p.image_id, p.fingerprint), p) for p in rows)
    session.flush()
    return found


def record_prediction(session: Session, image: ImageRow, result: "ClassificationResult") -> PredictionRow:
    """Add what a model said about a photo (once per weights fingerprint) and make it the photo's latest."""
    return record_predictions(session, [(image, result)])[(image.id, result.fingerprint)]


def ensure_layout(session: Session, fingerprint: str, labels: list[str]) -> None:
    """Record a model's label order once (its fingerprint covers the labels, so it never changes)."""
    if session.get(ScoreLayout, fingerprint) is None:
        layout = dict(fingerprint=fingerprint, labels=list(labels), created_at=utcnow())
        insert_absent(session, ScoreLayout, ["fingerprint"], [layout])


def find_image(session: Session, key: int | str) -> Optional[ImageRow]:
    """The photo with this row id (int) or content id (sha256 hex), or None."""
    if isinstance(key, int):
        return session.get(ImageRow, key)
    return session.scalars(select(ImageRow).where(ImageRow.content_id == key.strip().lower())).one_or_none()


def stored_content_ids(session: Session, content_ids: list[str], fingerprint: str) -> set[str]:
    """Which of these content ids are stored with a prediction by the model with this fingerprint."""
    found: set[str] = set()
    for start in range(0, len(content_ids), 500):  # stay under every backend's bound-parameter limit
        chunk = content_ids[start : start + 500]
        found.update(
            session.scalars(
                select(ImageRow.content_id)
                .join(PredictionRow, PredictionRow.image_id == ImageRow.id)
                .where(ImageRow.content_id.in_(chunk), PredictionRow.fingerprint == fingerprint)
            )
        )
    return found


def predicted_image_ids(session: Session, image_ids: list[int], fingerprint: str) -> set[int]:
    """Which of these photos (row ids) have a prediction by the model with this fingerprint."""
    found: set[int] = set()
    for start in range(0, len(image_ids), 500):  # stay under every backend's bound-parameter limit
        chunk = image_ids[start : start + 500]
        found.update(
            session.scalars(
                select(PredictionRow.image_id).where(
                    PredictionRow.image_id.in_(chunk), PredictionRow.fingerprint == fingerprint
                )
            )
        )
    return found


def model_summary(session: Session, content_id: str, fingerprint: str) -> Optional[ImageSummary]:
    """A stored photo with one model's prediction of it, or None when that model has not classified it."""
    by_model = and_(PredictionRow.image_id == ImageRow.id, PredictionRow.fingerprint == fingerprint)
    row = session.execute(summary_select(by_model, inner=True).where(ImageRow.content_id == content_id)).one_or_none()
    return None if row is None else to_summary(row)


def image_summary(session: Session, key: int | str) -> Optional[ImageSummary]:
    """One photo with its latest prediction and its current decision, or None."""
    image = find_image(session, key)
    if image is None:
        return None
    row = session.execute(summary_select().where(ImageRow.id == image.id)).one()
    return to_summary(row)


def image_summaries(session: Session, image_ids: list[int]) -> dict[int, ImageSummary]:
    """Several photos with their latest predictions and current decisions, by image id (missing ones left out)."""
    if not image_ids:
        return {}
    rows = session.execute(summary_select().where(ImageRow.id.in_(image_ids))).all()
    return {summary.image_id: summary for summary in map(to_summary, rows)}


def image_history(session: Session, key: int | str) -> Optional[list[dict[str, Any]]]:
    """Every prediction and review of a photo, oldest first (None if there is no such photo)."""
    image = find_image(session, key)
    if image is None:
        return None
    events: list[dict[str, Any]] = []
    for p in session.scalars(select(PredictionRow).where(PredictionRow.image_id == image.id)):
        events.append(
            dict(
                kind="prediction",
                at=p.created_at,
                id=p.id,
                model_id=p.model_id,
                fingerprint=p.fingerprint,
                label=p.top_label,
                score=p.top_score,
                uncertain=p.uncertain,
                scores=p.scores,
            )
        )
    for r in session.scalars(select(ReviewRow).where(ReviewRow.image_id == image.id)):
        events.append(
            dict(
                kind="review",
                at=r.created_at,
                id=r.id,
                action=r.action,
                final_label=r.final_label,
                reviewer=r.reviewer,
                note=r.note,
                prediction_id=r.prediction_id,
                undoes_review_id=r.undoes_review_id,
                current=r.id == image.current_review_id,
            )
        )
    # Ties in time (same clock tick) keep insertion order: predictions come before their reviews.
    events.sort(key=lambda e: (e["at"], e["kind"] == "review", e["id"]))
    return events


def summary_select(prediction_join=None, inner: bool = False) -> Select:
    """SELECT image + prediction + current reviewer; `prediction_join` picks which prediction (default latest)."""
    if prediction_join is None:
        prediction_join = PredictionRow.id == ImageRow.prediction_id
    return (
        select(ImageRow, PredictionRow, ReviewRow.reviewer)
        .join(PredictionRow, prediction_join, isouter=not inner)
        .outerjoin(ReviewRow, ReviewRow.id == ImageRow.current_review_id)
    )


def to_summary(row) -> ImageSummary:
    """An ImageSummary from one row of summary_select()."""
    image, prediction, reviewer = row
    return ImageSummary(
        image_id=image.id,
        content_id=image.content_id,
        file_name=image.file_name,
        stored_path=image.stored_path,
        width=image.width,
        height=image.height,
        format=image.format,
        source=image.source,
        added_by=image.added_by,
        added_at=image.added_at,
        prediction_id=prediction.id if prediction else None,
        model_id=prediction.model_id if prediction else None,
        fingerprint=prediction.fingerprint if prediction else None,
        predicted_label=prediction.top_label if prediction else None,
        predicted_score=prediction.top_score if prediction else None,
        uncertain=prediction.uncertain if prediction else None,
        scores=list(prediction.scores) if prediction else [],
        current_review_id=image.current_review_id,
        final_label=image.current_label,
        action=image.current_action,
        reviewed_at=image.reviewed_at,
        reviewed_by=reviewer,
        margin=prediction.margin if prediction else None,
        entropy=prediction.entropy if prediction else None,
    )


def _images_by_content_id(session: Session, content_ids: list[str]) -> dict[str, ImageRow]:
    images: dict[str, ImageRow] = {}
    for start in range(0, len(content_ids), 500):  # stay under every backend's bound-parameter limit
        chunk = content_ids[start : start + 500]
        rows = session.scalars(select(ImageRow).where(ImageRow.content_id.in_(chunk)))
        images.update((image.content_id, image) for image in rows)
    return images


def insert_absent(session: Session, model, keys: list[str], rows: list[dict[str, Any]]) -> list:
    """INSERT rows in one statement, quietly leaving out those whose unique key already exists
    (another process won the race, or a rerun).

    Returns:
        The new rows as ORM objects (INSERT ... RETURNING: one round trip), in no particular order.
    """
    if not rows:
        return []
    dialect = session.get_bind().dialect.name
    if dialect == "sqlite":
        from sqlalchemy.dialects.sqlite import insert
    elif dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:  # other backends: a racing duplicate surfaces as IntegrityError, never as a second row
        from sqlalchemy import insert

    stmt = insert(model)
    if dialect in ("sqlite", "postgresql"):
        # ON CONFLICT rather than a SAVEPOINT: pysqlite's deferred BEGIN makes savepoints commit early.
        stmt = stmt.on_conflict_do_nothing(index_elements=keys)
    # Rows as parameters, not in the statement: it compiles once per process, and SQLAlchemy sends them as
    # multi-row INSERTs ("insertmanyvalues"), so a batch of photos is one round trip per table, not one a photo.
    return list(session.scalars(stmt.returning(model), rows))
