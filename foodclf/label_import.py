"""Importing labels from a spreadsheet, Label Studio or an older tool: each row becomes a normal review.

`python -m foodclf labels import FILE.csv --reviewer NAME`. A CSV has a header with `path` (a photo file,
stored and classified first if it is new, as `ingest` does) or `content_id` (a stored photo), `label`,
and optionally `note`; JSON Lines hold the same keys, one object a line. Rows go in one at a time, each
through db.reviews.submit_review (append-only, conflict-safe); bad rows are listed with their line
number and reason and the rest go in. Importing the same file again adds nothing.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator, Optional

from sqlalchemy import select

from db.engine import open_database, session_scope
from db.models import ReviewRow
from db.records import find_image
from db.reviews import submit_review
from foodclf.classifier import load_classifier
from foodclf.errors import FoodclfError, ReviewConflict, UnknownCategory
from foodclf.images import content_id as content_id_of
from foodclf.images import decode_image, read_source
from foodclf.ingest import store_photo
from foodclf.labels import NOT_FOOD, clean_label
from foodclf.model_registry import active_model_name
from foodclf.settings import Settings

JSONL_SUFFIXES = (".jsonl", ".ndjson")


@dataclass
class ImportReport:
    """What an import did, row by row."""

    rows: int = 0  # data rows read (header and blank lines not counted)
    added: int = 0  # reviews appended
    already: int = 0  # rows whose label the photo already has from this import or a decision
    stored: int = 0  # photos new to the database, stored and classified first
    refused: list[tuple[int, str]] = field(default_factory=list)  # (line number, reason)

    def summary(self) -> str:
        return (
            f"{self.rows} rows: {self.added} labels added, {self.already} already there, "
            f"{self.stored} new photos stored, {len(self.refused)} refused"
        )

    def to_dict(self) -> dict:
        return {
            "rows": self.rows,
            "added": self.added,
            "already": self.already,
            "stored": self.stored,
            "refused": [{"line": line, "reason": reason} for line, reason in self.refused],
        }


def read_rows(path: Path) -> Iterator[tuple[int, dict]]:
    """(line number, row) of a CSV with a header, or of JSON Lines (by the suffix .jsonl / .ndjson).

    Raises:
        FoodclfError: the file is missing, not text, or a CSV without the needed columns.
    """
    try:
        text = path.read_text(encoding="utf-8-sig")  # a spreadsheet's CSV often starts with a BOM
    except FileNotFoundError:
        raise FoodclfError(f"There is no file at {path}.") from None
    except (UnicodeDecodeError, IsADirectoryError):
        raise FoodclfError(f"{path} is not a UTF-8 CSV or JSON Lines file.") from None
    if path.suffix.lower() in JSONL_SUFFIXES:
        for number, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as err:
                yield number, {"_error": f"not a JSON object ({err.msg})"}
                continue
            yield number, row if isinstance(row, dict) else {"_error": "not a JSON object"}
        return
    reader = csv.DictReader(io.StringIO(text, newline=""))
    columns = {(name or "").strip().lower() for name in reader.fieldnames or []}
    if "label" not in columns or not columns & {"path", "content_id"}:
        raise FoodclfError(
            f"{path} needs a header with a `label` column and a `path` or `content_id` column "
            f"(found: {', '.join(sorted(columns)) or 'no header'})."
        )
    for row in reader:
        cleaned = {
            (key or "").strip().lower(): (value or "").strip() if isinstance(value, str) else value
            for key, value in row.items()
        }
        if any(value for key, value in cleaned.items() if key):
            yield reader.line_num, cleaned  # the row's (last) line in the file


def import_labels(
    settings: Settings,
    file,
    *,
    reviewer: str,
    classifier=None,
    on_row: Optional[Callable[[int, Optional[str]], None]] = None,
) -> ImportReport:
    """Import a CSV or JSON Lines file of labels as reviews by `reviewer`.

    Args:
        settings: database, image store, upload limits, and the model for new photos.
        file: the CSV or JSONL file; a relative `path` in it is relative to the file's folder.
        reviewer: recorded as who decided (e.g. "import: Label Studio, 2024-05").
        classifier: classifies new photos before they are stored (default: the model in use, loaded
            only if a row brings a new photo).
        on_row: called with (line number, refusal reason or None) after each row, e.g. for a progress bar.

    Raises:
        FoodclfError: the file cannot be read, has no usable header, or no reviewer name is given.
    """
    file = Path(file).expanduser()
    if not " ".join((reviewer or "").split()):
        raise FoodclfError("Give --reviewer NAME: each imported label is recorded as a decision by someone.")
    engine = open_database(settings)
    report = ImportReport()
    seen: dict[str, tuple[int, str]] = {}  # content id -> (line, label) earlier in this file
    state = {"classifier": classifier}
    for number, row in read_rows(file):
        report.rows += 1
        try:
            outcome = _import_row(settings, engine, file.parent, row, reviewer, seen, number, state)
        except (FoodclfError, ValueError) as err:
            report.refused.append((number, str(err)))
            if on_row is not None:
                on_row(number, str(err))
            continue
        if outcome == "added":
            report.added += 1
        elif outcome == "stored":
            report.added += 1
            report.stored += 1
        else:
            report.already += 1
        if on_row is not None:
            on_row(number, None)
    return report


def _import_row(settings, engine, folder: Path, row: dict, reviewer: str, seen: dict, number: int, state: dict) -> str:
    """One row: 'added', 'stored' (a new photo, then its review) or 'already'; raises with the reason."""
    if "_error" in row:
        raise FoodclfError(row["_error"])
    raw_label = row.get("label")
    if raw_label is None or not str(raw_label).strip():
        raise UnknownCategory("no label")
    try:
        label = clean_label(str(raw_label))
    except UnknownCategory as err:
        raise UnknownCategory(f"unusable label {str(raw_label)!r}: {err}") from None
    note = str(row.get("note") or "").strip() or None
    path_text = str(row.get("path") or "").strip()
    content_id = str(row.get("content_id") or "").strip().lower()
    if not path_text and not content_id:
        raise FoodclfError("no path and no content_id")
    data = None
    if path_text:
        path = Path(path_text).expanduser()
        path = path if path.is_absolute() else folder / path
        if not path.is_file():
            raise FoodclfError(f"no file at {path}")
        # Only read here: a photo already stored is neither decoded nor classified (nor the model loaded).
        data, name = read_source(path, settings.max_upload_bytes)
        content_id = content_id_of(data)
    if content_id in seen:
        line, earlier = seen[content_id]
        if earlier != label:
            raise FoodclfError(f"the same photo is labelled {earlier} on line {line}; one of the two is wrong")
        return "already"
    seen[content_id] = (number, label)
    stored = False
    with session_scope(engine) as session:
        image = find_image(session, content_id)
        if image is None and data is None:
            raise FoodclfError(f"no stored photo has the content id {content_id[:16]}")
        if image is None:
            classifier = _classifier(settings, state)
            try:
                # Decoded as the batch path decodes for this model, so the prediction is the one ingest would store.
                loaded = decode_image(data, name=name, max_pixels=settings.max_pixels, side=classifier.decode_side)
            except FoodclfError:
                del seen[content_id]  # an unreadable file is refused on every line that names it
                raise
            result = classifier.classify_image(loaded.image)
            image = store_photo(session, settings, loaded, result, source="folder", added_by=reviewer)
            stored = True
        if image.current_label == label or _imported_before(session, image.id, reviewer, label):
            return "already"
        try:
            submit_review(
                session,
                image.id,
                action="not_food" if label == NOT_FOOD else "corrected",
                final_label=label,
                reviewer=reviewer,
                expected_review_id=image.current_review_id,
                note=note,
            )
        except ReviewConflict as err:
            raise FoodclfError(f"{err} Run the import again to add it.") from None
    return "stored" if stored else "added"


def _imported_before(session, image_id: int, reviewer: str, label: str) -> bool:
    """This reviewer gave this photo this label before (a moderator may have changed it since: keep theirs)."""
    reviewer = " ".join(reviewer.split())
    return (
        session.scalars(
            select(ReviewRow.id)
            .where(ReviewRow.image_id == image_id, ReviewRow.reviewer == reviewer, ReviewRow.final_label == label)
            .limit(1)
        ).first()
        is not None
    )


def _classifier(settings, state: dict):
    if state["classifier"] is None:
        state["classifier"] = load_classifier(settings, active_model_name(settings))
    return state["classifier"]
