"""Figures and files for product staff: the Stats page's tables and the Export page's downloads.

No streamlit here; the store computes the figures in SQL and this module only shapes them.
"""

from __future__ import annotations

import io
import itertools
import zipfile
from dataclasses import dataclass
from datetime import date
from typing import Any, Callable, Iterable, Iterator, Optional

from sqlalchemy import Engine

from db import export, stats
from db.engine import session_scope
from db.export import ExportRow, csv_chunks, export_rows, jsonl_chunks, write_imagefolder

# format key -> (what people read, MIME type, file extension)
FORMATS = {
    "csv": ("CSV", "text/csv", "csv"),
    "jsonl": ("JSON Lines", "application/x-ndjson", "jsonl"),
    "imagefolder": ("Image folder (zip, for fine-tuning)", "application/zip", "zip"),
}
Progress = Callable[[int, int], None]  # (rows done, rows in all)


def stats_report(engine: Engine, *, since: Optional[date] = None, until: Optional[date] = None) -> dict[str, Any]:
    """Every figure of the Stats page over a date range (until inclusive): a summary and one table per chart.

    Tables are lists of dicts with stored (raw) labels, ready for a chart and for a CSV download.
    """
    window = dict(since=since, until=until)
    with session_scope(engine) as session:
        predicted = stats.predicted_label_counts(session, **window)
        decided = stats.final_label_counts(session, **window)
        return {
            "summary": stats.summary(session, **window),
            "distribution": distribution(predicted, decided),
            "rates": stats.category_rates(session, **window),
            "confusion": [dict(predicted=r["predicted"], decided=r["final"], photos=r["count"])
                          for r in stats.confusion_pairs(session, **window)],
            "histogram": [dict(low=r["low"], high=r["high"], photos=r["count"])
                          for r in stats.confidence_histogram(session, **window)],
            "volume": [dict(day=r["day"], photos_added=r["added"], decisions=r["decisions"])
                       for r in stats.daily_volume(session, **window)],
            "reviewers": stats.reviewer_activity(session, **window),
        }


def distribution(predicted: list[dict], decided: list[dict]) -> list[dict[str, Any]]:
    """Photos per category as predicted and as decided, side by side, most photos first."""
    table: dict[str, dict[str, Any]] = {}
    for key, rows in (("predicted", predicted), ("decided", decided)):
        for row in rows:
            table.setdefault(row["label"], dict(label=row["label"], predicted=0, decided=0))[key] = row["count"]
    return sorted(table.values(), key=lambda r: (-(r["predicted"] + r["decided"]), r["label"]))


# ---- export ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class ExportFilters:
    """Which decisions an export holds."""

    only_corrected: bool = False  # only decisions that changed the model's label
    since: Optional[date] = None  # by when the decision was made
    until: Optional[date] = None  # inclusive: the whole day
    labels: tuple[str, ...] = ()  # final labels; empty means all

    def kwargs(self) -> dict[str, Any]:
        return dict(only_corrected=self.only_corrected, since=self.since, until=self.until,
                    labels=list(self.labels) or None)


@dataclass(frozen=True)
class ExportFile:
    """A finished download."""

    data: bytes
    file_name: str
    mime: str
    rows: int
    missing: tuple[str, ...] = ()  # content ids whose photo file was not in the image store


def decided_labels(engine: Engine) -> dict[str, int]:
    """Photos per current decided label, most first (counted in SQL): what an export can hold."""
    with session_scope(engine) as session:
        return {row["label"]: row["count"] for row in stats.final_label_counts(session)}


def export_preview(engine: Engine, filters: ExportFilters, n: int = 10) -> list[dict[str, Any]]:
    """The first `n` rows of the export, as exported."""
    with session_scope(engine) as session:
        return [row.record() for row in itertools.islice(export_rows(session, **filters.kwargs()), n)]


def export_counts(engine: Engine, filters: ExportFilters) -> dict[str, int]:
    """Rows per final label an export with these filters holds, most first (counted in SQL)."""
    with session_scope(engine) as session:
        return {row["label"]: row["count"] for row in export.export_counts(session, **filters.kwargs())}


def build_export(
    engine: Engine, image_dir: str, fmt: str, filters: ExportFilters, *, total: int = 0,
    progress: Optional[Progress] = None, stamp: str = "",
) -> ExportFile:
    """The whole export as one file in memory; progress(done, total) is called as rows stream by.

    Args:
        fmt: csv, jsonl or imagefolder.
        total: how many rows to expect (for the progress fraction; 0 if unknown).
        stamp: added to the file name, e.g. a date.
    """
    if fmt not in FORMATS:
        raise ValueError(f"fmt: expected one of {', '.join(FORMATS)}, not {fmt!r}")
    _, mime, extension = FORMATS[fmt]
    name = "foodclf-labels" + (f"-{stamp}" if stamp else "") + f".{extension}"
    counter = _Counted(progress, total)
    with session_scope(engine) as session:
        rows = counter.wrap(export_rows(session, **filters.kwargs()))
        if fmt == "imagefolder":
            buffer = io.BytesIO()
            with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
                report = write_imagefolder(rows, archive, image_dir=image_dir)
            return ExportFile(buffer.getvalue(), name, mime, report.written, tuple(report.missing))
        chunks = csv_chunks(rows) if fmt == "csv" else jsonl_chunks(rows)
        text = "".join(chunks)
    return ExportFile(text.encode("utf-8"), name, mime, counter.done)


class _Counted:
    """Counts rows as they pass and reports progress every few hundred."""

    def __init__(self, progress: Optional[Progress], total: int, every: int = 200):
        self.progress, self.total, self.every, self.done = progress, total, every, 0

    def wrap(self, rows: Iterable[ExportRow]) -> Iterator[ExportRow]:
        for row in rows:
            yield row
            self.done += 1
            if self.progress is not None and self.done % self.every == 0:
                self.progress(self.done, self.total)
        if self.progress is not None:
            self.progress(self.done, self.total)
