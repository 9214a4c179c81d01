"""The feedback store's tables: images, predictions, reviews and the trained-model registry."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone
from typing import Any, ClassVar, Optional

from sqlalchemy import (
    JSON,
    Boolean,
    CheckConstraint,
    Date,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from foodclf.labels import LABEL_LENGTH, NAME_LENGTH

# Where an image came from: the dashboard's uploader, `foodclf ingest DIR`, or the HTTP API.
SOURCES = ("upload", "folder", "api")
# What a moderator did. `undone` rows are appended by undo and point at the row they cancel.
DECISIONS = ("confirmed", "corrected", "not_food")
ACTIONS = DECISIONS + ("skipped", "undone")


def utcnow() -> datetime:
    """The current time, timezone-aware UTC."""
    return datetime.now(timezone.utc)


def as_utc(value, name: str, *, end: bool = False) -> Optional[datetime]:
    """A date-range bound as aware UTC; a date means its midnight UTC (with end=True: the next midnight).

    Ranges are `since <= t < until`, so `until=date(2024, 5, 3)` includes all of May 3rd.
    """
    if value is None:
        return None
    try:
        if isinstance(value, datetime):
            if value.tzinfo is None:
                raise ValueError(f"{name}: give a timezone-aware datetime (e.g. tzinfo=timezone.utc)")
            return value.astimezone(timezone.utc)
        if isinstance(value, date):
            start = datetime(value.year, value.month, value.day, tzinfo=timezone.utc)
            return start + timedelta(days=1) if end else start
    except OverflowError:
        # Past what a datetime holds (the end of 9999-12-31, or a far-off zone in year 1 or 9999):
        # the bound is as open as it can be at that end.
        extreme = datetime.max if value.year > 5000 else datetime.min
        return extreme.replace(tzinfo=timezone.utc)
    raise ValueError(f"{name}: expected a date or a datetime, not {type(value).__name__}")


class UTCDateTime(TypeDecorator):
    """An aware UTC datetime, stored naive in UTC so SQLite and PostgreSQL agree on days."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value, dialect):
        if value is None:
            return None
        if value.tzinfo is not None:
            value = value.astimezone(timezone.utc).replace(tzinfo=None)
        return value  # a naive value is taken to be UTC already

    def process_result_value(self, value, dialect):
        return None if value is None else value.replace(tzinfo=timezone.utc)


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


class Base(DeclarativeBase):
    # Named constraints, so later migrations can drop or alter them on every dialect.
    metadata = MetaData(
        naming_convention={
            "ix": "ix_%(table_name)s_%(column_0_N_name)s",
            "uq": "uq_%(table_name)s_%(column_0_N_name)s",
            "ck": "ck_%(table_name)s_%(constraint_name)s",
            "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
            "pk": "pk_%(table_name)s",
        }
    )


class ImageRow(Base):
    """One photo, stored once per content id, with its current prediction and decision denormalised."""

    __tablename__ = "images"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    content_id: Mapped[str] = mapped_column(String(64), unique=True)  # sha256 of the bytes
    file_name: Mapped[str] = mapped_column(String(255))  # sanitised, for display only: never a path
    stored_path: Mapped[str] = mapped_column(String(80))  # "<content id>.<ext>", relative to FOODCLF_IMAGE_DIR
    width: Mapped[int] = mapped_column(Integer)
    height: Mapped[int] = mapped_column(Integer)
    format: Mapped[str] = mapped_column(String(8))
    size_bytes: Mapped[int] = mapped_column(Integer)
    source: Mapped[str] = mapped_column(String(16))  # upload, folder or api
    added_by: Mapped[str] = mapped_column(String(NAME_LENGTH))
    added_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    # The latest prediction, copied here so the queue sorts by score without a join.
    # Plain integers, not foreign keys: images <-> predictions/reviews would be a cycle,
    # which SQLite cannot add after the fact; only db/ code writes them, in one transaction.
    prediction_id: Mapped[Optional[int]] = mapped_column(Integer)
    top_label: Mapped[Optional[str]] = mapped_column(String(LABEL_LENGTH))
    top_score: Mapped[Optional[float]] = mapped_column(Float)
    # 0010: the latest prediction's top-1 minus top-2 score, and its entropy: the queue's other orders.
    top_margin: Mapped[Optional[float]] = mapped_column(Float)
    top_entropy: Mapped[Optional[float]] = mapped_column(Float)

    # The decision in force (latest not skipped, not undone); NULL means unreviewed.
    # It is also the version the optimistic-concurrency check compares.
    current_review_id: Mapped[Optional[int]] = mapped_column(Integer)
    current_label: Mapped[Optional[str]] = mapped_column(String(LABEL_LENGTH))
    current_action: Mapped[Optional[str]] = mapped_column(String(16))
    reviewed_at: Mapped[Optional[datetime]] = mapped_column(UTCDateTime())
    # The top label of the prediction that decision judged (None if it judged none): the category
    # the statistics rate. Not always top_label: the photo may have been classified again since.
    judged_label: Mapped[Optional[str]] = mapped_column(String(LABEL_LENGTH))

    __table_args__ = (
        CheckConstraint(_in("source", SOURCES), name="source"),
        # Queue pages: unreviewed first column, then the sort key, then id as the tie-break; then the
        # other filters' columns, so a page checks them inside the index instead of reading each row.
        Index("ix_images_queue_score", "current_review_id", "top_score", "id", "top_label", "added_at", "source"),
        Index("ix_images_queue_label", "current_review_id", "top_label", "top_score", "id", "added_at", "source"),
        Index("ix_images_queue_id", "current_review_id", "id", "top_label", "top_score", "added_at", "source"),
        Index("ix_images_top_label", "top_label", "id"),
        Index("ix_images_current_label", "current_label", "id"),
        Index("ix_images_added_at", "added_at", "id"),
        Index("ix_images_reviewed_at", "reviewed_at", "current_action"),  # current_action: 0011
        # Statistics (db/stats.py): each groups by the leading columns and checks its date range
        # on the last, all inside the index, so a million photos are counted without a table read.
        Index("ix_images_decided", "current_action", "judged_label", "current_label", "reviewed_at"),
        Index("ix_images_final_label", "current_label", "reviewed_at"),
        Index("ix_images_predicted_label", "top_label", "added_at"),
        Index("ix_images_score", "top_score", "added_at"),
        Index("ix_images_added_review", "added_at", "current_review_id"),
        # 0004: a final label's photos in a date range, newest first, for the browser.
        Index("ix_images_final_added", "current_label", "added_at"),
        # 0010: queue orders by smallest margin and by highest entropy, as ix_images_queue_score.
        Index("ix_images_queue_margin", "current_review_id", "top_margin", "id", "top_label", "added_at", "source"),
        Index("ix_images_queue_entropy", "current_review_id", "top_entropy", "id", "top_label", "added_at", "source"),
    )

    def __repr__(self) -> str:
        return f"ImageRow(id={self.id!r}, content_id={self.content_id[:12]!r}, top_label={self.top_label!r})"


class PredictionRow(Base):
    """What one model (by weights fingerprint) said about one image."""

    __tablename__ = "predictions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    image_id: Mapped[int] = mapped_column(ForeignKey("images.id"))
    model_id: Mapped[str] = mapped_column(String(255))
    fingerprint: Mapped[str] = mapped_column(String(64))
    top_label: Mapped[str] = mapped_column(String(LABEL_LENGTH))
    top_score: Mapped[float] = mapped_column(Float)
    scores: Mapped[list[dict[str, Any]]] = mapped_column(JSON)  # [{"label", "score"}], highest first
    uncertain: Mapped[bool] = mapped_column(Boolean)
    # 0010: every score, float16 in the model's label order (see db.scores and ScoreLayout).
    all_scores: Mapped[Optional[bytes]] = mapped_column(LargeBinary)
    margin: Mapped[Optional[float]] = mapped_column(Float)  # top-1 minus top-2
    entropy: Mapped[Optional[float]] = mapped_column(Float)  # in nats; from the top k only before 0010
    latency_ms: Mapped[float] = mapped_column(Float)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    __table_args__ = (
        UniqueConstraint("image_id", "fingerprint"),
        Index("ix_predictions_fingerprint_score", "fingerprint", "top_score", "image_id"),
        Index("ix_predictions_top_label", "top_label"),
        Index("ix_predictions_created_at", "created_at"),
    )

    def __repr__(self) -> str:
        return f"PredictionRow(id={self.id!r}, image_id={self.image_id!r}, top_label={self.top_label!r})"


class ScoreLayout(Base):
    """The label order of a model's score vectors (0010): stored once per weights fingerprint."""

    __tablename__ = "score_layouts"

    fingerprint: Mapped[str] = mapped_column(String(64), primary_key=True)
    labels: Mapped[list[str]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    def __repr__(self) -> str:
        return f"ScoreLayout(fingerprint={self.fingerprint[:12]!r}, labels={len(self.labels)})"


class DailyCount(Base):
    """How many rows of a kind fall on one UTC day (0011), kept by database triggers in every write's transaction.

    Kinds: `added` (photos by added_at), `added_reviewed` (of those, the ones with a current
    decision), `predicted` (predictions by created_at), `current` (current decisions by reviewed_at,
    per action), `review` (review rows by created_at, per reviewer and action). Statistics over
    whole days sum these rows instead of counting a million; the triggers are in migration 0011.
    """

    __tablename__ = "daily_counts"

    # Key order = the sums' GROUP BY order, the day range checked inside it; on SQLite the key is the
    # table (WITHOUT ROWID), so that read covers n too.
    kind: Mapped[str] = mapped_column(String(16), primary_key=True)
    reviewer: Mapped[str] = mapped_column(String(NAME_LENGTH), primary_key=True)  # '' unless kind is review
    action: Mapped[str] = mapped_column(String(16), primary_key=True)  # '' for added, added_reviewed, predicted
    day: Mapped[date] = mapped_column(Date, primary_key=True)
    n: Mapped[int] = mapped_column(Integer)
    __table_args__ = ({"sqlite_with_rowid": False},)

    def __repr__(self) -> str:
        return f"DailyCount(day={self.day!r}, kind={self.kind!r}, reviewer={self.reviewer!r}, n={self.n!r})"


class EmbeddingRow(Base):
    """A photo's pooled features from one model (0007): what the model's head saw, for similar photos.

    `vector` is the L2-normalised features as little-endian float16; `sketch` a fixed random projection of
    it to SKETCH_DIM numbers (db/similar.py), which the in-memory index scans before the exact re-rank.
    """

    __tablename__ = "embeddings"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)  # in insertion order: indexes load what is new
    image_id: Mapped[int] = mapped_column(ForeignKey("images.id"))
    fingerprint: Mapped[str] = mapped_column(String(64))
    vector: Mapped[bytes] = mapped_column(LargeBinary)
    sketch: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    __table_args__ = (
        UniqueConstraint("fingerprint", "image_id"),
        Index("ix_embeddings_fingerprint_id", "fingerprint", "id"),
    )

    def __repr__(self) -> str:
        return f"EmbeddingRow(id={self.id!r}, image_id={self.image_id!r}, fingerprint={self.fingerprint[:12]!r})"


class ImageHashRow(Base):
    """A photo's perceptual hash (0007): 64 bits as 16 hex digits, from the decoded picture (near-duplicates)."""

    __tablename__ = "image_hashes"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)  # in insertion order, as embeddings
    image_id: Mapped[int] = mapped_column(ForeignKey("images.id"), unique=True)
    phash: Mapped[str] = mapped_column(String(16))

    def __repr__(self) -> str:
        return f"ImageHashRow(image_id={self.image_id!r}, phash={self.phash!r})"


class ReviewRow(Base):
    """One moderator decision; rows are only ever appended (undo appends an `undone` row)."""

    __tablename__ = "reviews"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    image_id: Mapped[int] = mapped_column(ForeignKey("images.id"))
    prediction_id: Mapped[Optional[int]] = mapped_column(ForeignKey("predictions.id"))
    action: Mapped[str] = mapped_column(String(16))  # see ACTIONS
    final_label: Mapped[Optional[str]] = mapped_column(String(LABEL_LENGTH))  # None for skipped, undone
    reviewer: Mapped[str] = mapped_column(String(NAME_LENGTH))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    note: Mapped[Optional[str]] = mapped_column(Text)
    # Unique: a decision is undone at most once, even if two undo clicks race.
    undoes_review_id: Mapped[Optional[int]] = mapped_column(ForeignKey("reviews.id"), unique=True)
    # Not a column: submit_review sets it on the row it returns for a repeat it did not store again.
    repeated: ClassVar[bool] = False

    __table_args__ = (
        CheckConstraint(_in("action", ACTIONS), name="action"),
        Index("ix_reviews_image", "image_id", "id"),
        Index("ix_reviews_reviewer", "reviewer", "id"),
        Index("ix_reviews_created_at", "created_at", "reviewer", "action"),  # reviewer, action: 0011
        # Statistics: activity per reviewer and action, and decisions per day.
        Index("ix_reviews_activity", "reviewer", "action", "created_at"),
        Index("ix_reviews_action", "action", "created_at"),
    )

    def __repr__(self) -> str:
        return (
            f"ReviewRow(id={self.id!r}, image_id={self.image_id!r}, action={self.action!r}, "
            f"final_label={self.final_label!r}, reviewer={self.reviewer!r})"
        )


class TrainedModel(Base):
    """A model fine-tuned from moderators' labels; at most one is active at a time."""

    __tablename__ = "trained_models"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(NAME_LENGTH), unique=True)
    path: Mapped[str] = mapped_column(String(1024))  # folder loadable by load_classifier
    base_model: Mapped[str] = mapped_column(String(255))
    labels: Mapped[list[str]] = mapped_column(JSON)
    metrics: Mapped[dict[str, Any]] = mapped_column(JSON)
    train_size: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    created_by: Mapped[str] = mapped_column(String(NAME_LENGTH))
    active: Mapped[bool] = mapped_column(Boolean, default=False)
    # 0006: {"folders": [paths], "database": [export filters]}: the photos it learnt from, replayed by a
    # retrain that starts from it (None: unknown, e.g. registered before 0006).
    training_source: Mapped[Optional[dict[str, Any]]] = mapped_column(JSON)
    # 0006: each activation through the promotion gate, oldest first: verdict, table, forced by whom and why.
    promotions: Mapped[Optional[list[dict[str, Any]]]] = mapped_column(JSON)

    def __repr__(self) -> str:
        return f"TrainedModel(id={self.id!r}, name={self.name!r}, active={self.active!r})"


# Sensitive acts the audit trail records (db/audit.py); rows are only ever appended.
AUDIT_ACTIONS = (
    "export",
    "training_started",
    "training_finished",
    "training_failed",
    "model_activated",
    "undo",
    "role_denied",
    "token_created",
    "token_revoked",
)
# What an API token may do: tagger classifies and stores photos, reader reads images and labels.
TOKEN_ROLES = ("tagger", "reader")


class AuditEvent(Base):
    """One sensitive act: who, what, when, and its particulars (filters, rows, model...).

    Append-only: no code updates or deletes a row, and on SQLite and PostgreSQL a trigger refuses it.
    """

    __tablename__ = "audit_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    actor: Mapped[str] = mapped_column(String(NAME_LENGTH))  # a person, "token:<name>", or a CLI user
    action: Mapped[str] = mapped_column(String(32))  # see AUDIT_ACTIONS
    detail: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)

    __table_args__ = (
        CheckConstraint(_in("action", AUDIT_ACTIONS), name="action"),
        Index("ix_audit_events_at", "at", "id"),
        Index("ix_audit_events_actor", "actor", "at"),
        Index("ix_audit_events_action", "action", "at"),
    )

    def __repr__(self) -> str:
        return f"AuditEvent(id={self.id!r}, actor={self.actor!r}, action={self.action!r})"


# A second opinion's life: open (waiting for a different moderator), agreed, disagreed (waiting for
# an admin), adjudicated (the admin's decision is the photo's label).
OPINION_STATES = ("open", "agreed", "disagreed", "adjudicated")


class SecondOpinion(Base):
    """A decided photo sampled back into the queue, blind, for a different moderator (0012).

    The first decision stays in force; the second is kept here, not as a review, so it changes no
    label. A disagreement waits for an admin, whose decision is a normal review.
    """

    __tablename__ = "second_opinions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    image_id: Mapped[int] = mapped_column(ForeignKey("images.id"))
    first_review_id: Mapped[int] = mapped_column(ForeignKey("reviews.id"), unique=True)
    first_reviewer: Mapped[str] = mapped_column(String(NAME_LENGTH))
    first_label: Mapped[str] = mapped_column(String(LABEL_LENGTH))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    status: Mapped[str] = mapped_column(String(16), default="open")
    second_reviewer: Mapped[Optional[str]] = mapped_column(String(NAME_LENGTH))
    second_label: Mapped[Optional[str]] = mapped_column(String(LABEL_LENGTH))
    second_at: Mapped[Optional[datetime]] = mapped_column(UTCDateTime())
    adjudication_review_id: Mapped[Optional[int]] = mapped_column(ForeignKey("reviews.id"))

    __table_args__ = (
        CheckConstraint(_in("status", OPINION_STATES), name="status"),
        # The open ones, oldest first (the second-opinion queue), and the disputed ones (adjudication).
        Index("ix_second_opinions_status", "status", "id"),
        Index("ix_second_opinions_image_id", "image_id"),
    )

    def __repr__(self) -> str:
        return f"SecondOpinion(id={self.id!r}, image_id={self.image_id!r}, status={self.status!r})"


class Guideline(Base):
    """How moderators tell one category apart (0013): a short description and up to three example photos."""

    __tablename__ = "guidelines"

    label: Mapped[str] = mapped_column(String(LABEL_LENGTH), primary_key=True)  # stored form
    description: Mapped[str] = mapped_column(Text)
    examples: Mapped[list[int]] = mapped_column(JSON)  # image ids, each a photo decided as this label
    updated_by: Mapped[str] = mapped_column(String(NAME_LENGTH))
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    def __repr__(self) -> str:
        return f"Guideline(label={self.label!r}, examples={self.examples!r})"


class ApiToken(Base):
    """An HTTP API token: only its SHA-256 is kept, with a name and a role; revoking deletes the row."""

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(NAME_LENGTH), unique=True)
    role: Mapped[str] = mapped_column(String(16))  # see TOKEN_ROLES
    token_sha256: Mapped[str] = mapped_column(String(64), unique=True)  # hex digest; the token is never stored
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    created_by: Mapped[str] = mapped_column(String(NAME_LENGTH))
    last_used_at: Mapped[Optional[datetime]] = mapped_column(UTCDateTime())

    __table_args__ = (CheckConstraint(_in("role", TOKEN_ROLES), name="role"),)

    def __repr__(self) -> str:
        return f"ApiToken(id={self.id!r}, name={self.name!r}, role={self.role!r})"
