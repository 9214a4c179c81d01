"""The rows an export holds: each reviewed photo's current decision, filtered and streamed from SQL."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Iterator, Optional

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from db.models import ImageRow, PredictionRow, ReviewRow, as_utc

EXPORT_COLUMNS = (
    "content_id",
    "file_name",
    "predicted_label",
    "predicted_score",
    "final_label",
    "action",
    "reviewer",
    "reviewed_at",
)


@dataclass(frozen=True)
class ExportRow:
    """One photo's current decision, as exported."""

    content_id: str
    file_name: str
    predicted_label: Optional[str]
    predicted_score: Optional[float]
    final_label: str
    action: str
    reviewer: str
    reviewed_at: datetime
    stored_path: str  # where the bytes are in the image store; not exported

    def record(self) -> dict[str, Any]:
        """The exported columns; reviewed_at as ISO 8601 with its UTC offset."""
        return {name: getattr(self, name) for name in EXPORT_COLUMNS} | {"reviewed_at": self.reviewed_at.isoformat()}


@dataclass(frozen=True)
class ExportFilters:
    """Which decisions an export (or a training run from the reviews) holds."""

    only_corrected: bool = False  # only decisions that changed the model's label (corrected, not_food)
    since: Optional[date] = None  # by when the decision was made
    until: Optional[date] = None  # inclusive: the whole day
    labels: tuple[str, ...] = ()  # final labels; empty means all

    def to_dict(self) -> dict[str, Any]:
        """As plain JSON values (for the audit trail)."""
        return {
            "only_corrected": self.only_corrected,
            "since": self.since.isoformat() if self.since else None,
            "until": self.until.isoformat() if self.until else None,
            "labels": list(self.labels),
        }


def export_rows(
    session: Session, filters: ExportFilters = ExportFilters(), *, batch: int = 1000
) -> Iterator[ExportRow]:
    """Each reviewed photo's current decision, oldest decision first, streamed `batch` rows at a time.

    Dates are `since <= t < until` on when the decision was made (a date `until` includes that day).
    The session must stay open while the iterator is consumed.
    """
    stmt = (
        select(
            ImageRow.content_id,
            ImageRow.file_name,
            PredictionRow.top_label,
            PredictionRow.top_score,
            ImageRow.current_label,
            ImageRow.current_action,
            ReviewRow.reviewer,
            ReviewRow.created_at,
            ImageRow.stored_path,
        )
        .select_from(ImageRow)
        .join(ReviewRow, ReviewRow.id == ImageRow.current_review_id)
        .outerjoin(PredictionRow, PredictionRow.id == ReviewRow.prediction_id)
        .where(*_export_where(filters))
        .order_by(ReviewRow.id)
    )
    result = session.execute(stmt.execution_options(yield_per=batch))
    try:
        for row in result:
            yield ExportRow(*row)
    finally:
        # A half-read export (a dropped download, a preview) must not leave a server-side cursor open.
        result.close()


def export_counts(session: Session, filters: ExportFilters = ExportFilters()) -> list[dict[str, Any]]:
    """Rows per final label that export_rows would stream with the same filters, most first: [{label, count}]."""
    stmt = select(ImageRow.current_label, func.count()).where(*_export_where(filters)).group_by(ImageRow.current_label)
    rows = session.execute(stmt).all()
    return [dict(label=label, count=n) for label, n in sorted(rows, key=lambda r: (-r[1], r[0]))]


def _export_where(filters) -> list:
    """The WHERE shared by export_rows and export_counts, so a count always matches its export."""
    # current_label is set exactly when a decision is current (reviews are never deleted, so the
    # export's join to that review always finds it): counts need no join.
    where = [ImageRow.current_label.is_not(None)]
    if filters.only_corrected:
        where.append(ImageRow.current_action.in_(("corrected", "not_food")))
    if filters.since is not None:
        where.append(ImageRow.reviewed_at >= as_utc(filters.since, "since"))
    if filters.until is not None:
        where.append(ImageRow.reviewed_at < as_utc(filters.until, "until", end=True))
    if filters.labels:
        where.append(ImageRow.current_label.in_(list(filters.labels)))
    return where
