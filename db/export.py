"""Export of reviewed labels, streamed: CSV, JSONL, and a Hugging Face `imagefolder` layout."""

from __future__ import annotations

import csv
import io
import json
import re
import shutil
import tempfile
import zipfile
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Iterable, Iterator, Optional, TextIO, Union

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from db.models import ImageRow, PredictionRow, ReviewRow, as_utc
from foodclf.errors import FoodclfError
from foodclf.store import ImageStore

EXPORT_COLUMNS = (
    "content_id", "file_name", "predicted_label", "predicted_score", "final_label", "action", "reviewer",
    "reviewed_at",
)
_FOLDER_NAME = re.compile(r"\w+")


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


@dataclass
class FolderExport:
    """What write_imagefolder wrote, and the photos whose bytes were missing from the image store."""

    written: int = 0
    missing: list[str] = field(default_factory=list)


def export_rows(
    session: Session,
    *,
    only_corrected: bool = False,
    since=None,
    until=None,
    labels: Optional[Iterable[str]] = None,
    batch: int = 1000,
) -> Iterator[ExportRow]:
    """Each reviewed photo's current decision, oldest decision first, streamed `batch` rows at a time.

    Args:
        only_corrected: only decisions that changed the model's label (corrected and not_food).
        since, until: when the decision was made, `since <= t < until` (a date `until` includes that day).
        labels: only these final labels.

    The session must stay open while the iterator is consumed.
    """
    stmt = (
        select(
            ImageRow.content_id, ImageRow.file_name, PredictionRow.top_label, PredictionRow.top_score,
            ImageRow.current_label, ImageRow.current_action, ReviewRow.reviewer, ReviewRow.created_at,
            ImageRow.stored_path,
        )
        .select_from(ImageRow)
        .join(ReviewRow, ReviewRow.id == ImageRow.current_review_id)
        .outerjoin(PredictionRow, PredictionRow.id == ReviewRow.prediction_id)
        .where(*_export_where(only_corrected, since, until, labels))
        .order_by(ReviewRow.id)
    )
    result = session.execute(stmt.execution_options(yield_per=batch))
    try:
        for row in result:
            yield ExportRow(*row)
    finally:
        # A half-read export (a dropped download, a preview) must not leave a server-side cursor open.
        result.close()


def export_counts(
    session: Session,
    *,
    only_corrected: bool = False,
    since=None,
    until=None,
    labels: Optional[Iterable[str]] = None,
) -> list[dict[str, Any]]:
    """Rows per final label that export_rows would stream with the same filters, most first: [{label, count}]."""
    stmt = (
        select(ImageRow.current_label, func.count())
        .where(*_export_where(only_corrected, since, until, labels))
        .group_by(ImageRow.current_label)
    )
    rows = session.execute(stmt).all()
    return [dict(label=label, count=n) for label, n in sorted(rows, key=lambda r: (-r[1], r[0]))]


def _export_where(only_corrected, since, until, labels) -> list:
    """The WHERE shared by export_rows and export_counts, so a count always matches its export."""
    # current_label is set exactly when a decision is current (reviews are never deleted, so the
    # export's join to that review always finds it): counts need no join.
    where = [ImageRow.current_label.is_not(None)]
    if only_corrected:
        where.append(ImageRow.current_action.in_(("corrected", "not_food")))
    if since is not None:
        where.append(ImageRow.reviewed_at >= as_utc(since, "since"))
    if until is not None:
        where.append(ImageRow.reviewed_at < as_utc(until, "until", end=True))
    if labels is not None:
        where.append(ImageRow.current_label.in_(list(labels)))
    return where


def csv_chunks(rows: Iterable[ExportRow]) -> Iterator[str]:
    """CSV text: the header, then one chunk per row (for a streamed HTTP response)."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=EXPORT_COLUMNS, lineterminator="\n")
    writer.writeheader()
    yield _take(buffer)
    for row in rows:
        writer.writerow(row.record())
        yield _take(buffer)


def jsonl_chunks(rows: Iterable[ExportRow]) -> Iterator[str]:
    """JSON Lines text, one object per line."""
    for row in rows:
        yield json.dumps(row.record(), ensure_ascii=False) + "\n"


def write_csv(rows: Iterable[ExportRow], file: TextIO) -> int:
    """Write rows as CSV to a text file opened with newline=""; returns how many rows."""
    return _write(csv_chunks(rows), file) - 1  # minus the header


def write_jsonl(rows: Iterable[ExportRow], file: TextIO) -> int:
    """Write rows as JSON Lines to a text file; returns how many rows."""
    return _write(jsonl_chunks(rows), file)


def write_imagefolder(
    rows: Iterable[ExportRow], target: Union[str, Path, zipfile.ZipFile], *, image_dir: Union[str, Path],
) -> FolderExport:
    """Lay photos out as `<label>/<content id>.<ext>` plus `metadata.csv` (file_name,label), as `imagefolder` reads.

    Args:
        target: an empty (or new) folder, or an open ZipFile to stream into (e.g. for a download).
        image_dir: the image store (FOODCLF_IMAGE_DIR).
    """
    store = ImageStore(image_dir)
    report = FolderExport()
    into_zip = isinstance(target, zipfile.ZipFile)
    if not into_zip:
        target = Path(target)
        if target.exists() and any(target.iterdir()):
            raise FoodclfError(f"The export folder {target} is not empty; choose a new folder.")
        target.mkdir(parents=True, exist_ok=True)
    # A ZipFile writes one member at a time, so metadata.csv is kept aside and added last.
    with tempfile.SpooledTemporaryFile(max_size=8 << 20, mode="w+", newline="", encoding="utf-8") as meta:
        writer = csv.writer(meta, lineterminator="\n")
        writer.writerow(["file_name", "label"])
        for row in rows:
            # Labels were checked when stored; checked again because this one becomes a folder name.
            if not _FOLDER_NAME.fullmatch(row.final_label):
                raise FoodclfError(f"The label {row.final_label!r} cannot be a folder name; correct it first.")
            name = f"{row.final_label}/{row.stored_path}"
            source = store.path(row.stored_path)
            if not source.is_file():
                report.missing.append(row.content_id)
                continue
            if into_zip:
                target.write(source, name, compress_type=zipfile.ZIP_STORED)  # photos are compressed already
            else:
                (target / row.final_label).mkdir(exist_ok=True)
                shutil.copyfile(source, target / name)
            writer.writerow([name, row.final_label])
            report.written += 1
        meta.seek(0)
        if into_zip:
            with target.open("metadata.csv", "w") as out:
                shutil.copyfileobj(_Encoded(meta), out)
        else:
            with open(target / "metadata.csv", "w", newline="", encoding="utf-8") as out:
                shutil.copyfileobj(meta, out)
    return report


class _Encoded:
    """A text file read as UTF-8 bytes, for copying into a binary zip member."""

    def __init__(self, text: TextIO):
        self.text = text

    def read(self, size: int = -1) -> bytes:
        return self.text.read(size).encode("utf-8")


def _write(chunks: Iterator[str], file: TextIO) -> int:
    count = 0
    for chunk in chunks:
        file.write(chunk)
        count += 1
    return count


def _take(buffer: io.StringIO) -> str:
    text = buffer.getvalue()
    buffer.seek(0)
    buffer.truncate()
    return text
