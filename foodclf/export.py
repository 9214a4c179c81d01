"""Downloads of the moderators' labels: CSV, JSON Lines, and a Hugging Face `imagefolder` zip.

db.export_rows streams the rows from SQL; this module writes them in each format, straight to a
file, so an export of any size holds a few rows (and one photo) in memory at a time.
"""

from __future__ import annotations

import csv
import io
import itertools
import json
import re
import shutil
import tempfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Optional, TextIO, Union

from sqlalchemy import Engine

from db import stats
from db.audit import record_event
from db.engine import session_scope
from db.export_rows import EXPORT_COLUMNS, ExportFilters, ExportRow, export_counts, export_rows
from foodclf.errors import FoodclfError
from foodclf.store import open_store

# format key -> (what people read, MIME type, file extension)
FORMATS = {
    "csv": ("CSV", "text/csv", "csv"),
    "jsonl": ("JSON Lines", "application/x-ndjson", "jsonl"),
    "imagefolder": ("Image folder (zip, for fine-tuning)", "application/zip", "zip"),
}
Progress = Callable[[int, int], None]  # (rows done, rows in all)
FILE_PREFIX = "export-"  # finished exports in their folder are named export-XXXX.<ext>
_FOLDER_NAME = re.compile(r"\w+")


@dataclass
class FolderExport:
    """What write_imagefolder wrote, and the photos whose bytes were missing from the image store."""

    written: int = 0
    missing: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class ExportFile:
    """A finished export, in a file of its own: whoever asked for it hands it on, then removes it."""

    path: Path  # the written file (in the folder given to build_export)
    file_name: str  # the name to download it as, e.g. foodclf-labels-20240501-0930.csv
    mime: str
    rows: int
    size: int  # bytes
    missing: tuple[str, ...] = ()  # content ids whose photo file was not in the image store

    def remove(self) -> None:
        """Delete the file (nothing happens if it is gone already)."""
        self.path.unlink(missing_ok=True)


def export_folder(cache_dir: Union[str, Path]) -> Path:
    """Where finished exports wait to be downloaded: `exports/` in FOODCLF_CACHE_DIR (on disk, not /tmp,
    which is often memory)."""
    return Path(cache_dir) / "exports"


def decided_labels(engine: Engine) -> dict[str, int]:
    """Photos per current decided label, most first (counted in SQL): what an export can hold."""
    with session_scope(engine) as session:
        return {row["label"]: row["count"] for row in stats.final_label_counts(session)}


def export_preview(engine: Engine, filters: ExportFilters, n: int = 10) -> list[dict[str, Any]]:
    """The first `n` rows of the export, as exported."""
    with session_scope(engine) as session:
        return [row.record() for row in itertools.islice(export_rows(session, filters), n)]


def export_label_counts(engine: Engine, filters: ExportFilters) -> dict[str, int]:
    """Rows per final label an export with these filters holds, most first (counted in SQL)."""
    with session_scope(engine) as session:
        return {row["label"]: row["count"] for row in export_counts(session, filters)}


def build_export(
    engine: Engine,
    image_dir: str,
    fmt: str,
    filters: ExportFilters,
    *,
    actor: str,
    folder: Union[str, Path],
    total: int = 0,
    progress: Optional[Progress] = None,
    stamp: str = "",
) -> ExportFile:
    """Write the export to a new file in `folder`, a few rows at a time; progress(done, total) as rows pass.

    The one export path: the dashboard and the benchmark call it. Memory stays bounded whatever the
    size (rows stream from SQL, photos are copied one at a time into the zip). Every export is recorded
    in the audit trail: who, the format, the filters and the rows. A failed export leaves no file.

    Args:
        fmt: csv, jsonl or imagefolder.
        actor: who asked for it.
        folder: where to write it (created if needed); the caller removes the file (ExportFile.remove).
        total: how many rows to expect (for the progress fraction; 0 if unknown).
        stamp: added to the file name, e.g. a date.
    """
    if fmt not in FORMATS:
        raise ValueError(f"fmt: expected one of {', '.join(FORMATS)}, not {fmt!r}")
    _, mime, extension = FORMATS[fmt]
    name = "foodclf-labels" + (f"-{stamp}" if stamp else "") + f".{extension}"
    Path(folder).mkdir(parents=True, exist_ok=True)
    counter = _Counted(progress, total)
    with tempfile.NamedTemporaryFile(dir=folder, prefix=FILE_PREFIX, suffix=f".{extension}", delete=False) as raw:
        path = Path(raw.name)
        try:
            with session_scope(engine) as session:
                rows = counter.wrap(export_rows(session, filters))
                if fmt == "imagefolder":
                    with zipfile.ZipFile(raw, "w", compression=zipfile.ZIP_DEFLATED) as archive:
                        report = write_imagefolder(rows, archive, image_dir=image_dir)
                    written, missing = report.written, tuple(report.missing)
                else:
                    text = io.TextIOWrapper(raw, encoding="utf-8", newline="")
                    (write_csv if fmt == "csv" else write_jsonl)(rows, text)
                    text.flush()
                    text.detach()  # the file itself is closed by the NamedTemporaryFile
                    written, missing = counter.done, ()
        except BaseException:
            raw.close()
            path.unlink(missing_ok=True)
            raise
    built = ExportFile(path, name, mime, written, path.stat().st_size, missing)
    try:
        with session_scope(engine) as session:  # a write of its own: the export's read ran in a snapshot
            record_event(
                session, actor, "export", format=fmt, filters=filters.to_dict(), rows=built.rows, file=built.file_name
            )
    except BaseException:
        built.remove()  # an export that is not on record is not handed out
        raise
    return built


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
    rows: Iterable[ExportRow],
    target: Union[str, Path, zipfile.ZipFile],
    *,
    image_dir: Union[str, Path],
) -> FolderExport:
    """Lay photos out as `<label>/<content id>.<ext>` plus `metadata.csv` (file_name,label), as `imagefolder` reads.

    Args:
        target: an empty (or new) folder, or an open ZipFile to stream into (e.g. for a download).
        image_dir: the image store (FOODCLF_IMAGE_DIR): a folder or an object store URL.
    """
    store = open_store(image_dir)
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
            try:
                data = store.read(row.stored_path)
            except FoodclfError:  # missing (or unreadable) in the store: listed, the rest go on
                report.missing.append(row.content_id)
                continue
            if into_zip:
                target.writestr(name, data, compress_type=zipfile.ZIP_STORED)  # photos are compressed already
            else:
                (target / row.final_label).mkdir(exist_ok=True)
                (target / name).write_bytes(data)
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
