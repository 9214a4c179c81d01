"""`foodclf ingest DIR`: classify every photo under a folder into the database and the image store.

Resumable by construction: each photo's bytes are stored, then its rows are committed in one
transaction, so a run killed halfway keeps what it finished and the next run skips it.
"""

from __future__ import annotations

import argparse
import getpass
import json
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Iterator, Optional

from sqlalchemy.orm import Session

from db.engine import open_database, session_scope
from db.models import SOURCES, ImageRow
from db.records import record_image, record_prediction, stored_content_ids
from foodclf.errors import FoodclfError
from foodclf.images import LoadedImage, content_id, find_images, read_source
from foodclf.settings import Settings
from foodclf.store import ImageStore


@dataclass
class IngestReport:
    """What one ingest run did."""

    files: int = 0  # image files found under the folder
    stored: int = 0  # classified and saved by this run
    already: int = 0  # already stored with this model's prediction (or a duplicate file in the folder)
    refused: list[tuple[str, str]] = field(default_factory=list)  # (path, reason)

    def summary(self) -> str:
        """One line for a person."""
        return f"stored {self.stored}, already there {self.already}, refused {len(self.refused)}"

    def to_dict(self) -> dict:
        """Plain values for --json."""
        data = asdict(self)
        data["refused"] = [{"path": path, "reason": reason} for path, reason in self.refused]
        return data


def store_upload(
    session: Session, settings: Settings, loaded: LoadedImage, result, *, source: str, added_by: str,
) -> ImageRow:
    """Keep one classified photo: bytes into the image store, then its image and prediction rows.

    The dashboard, the API and ingest all store photos through this. The bytes are written first
    (atomically), so a committed row always has its file; the caller commits the session.

    Args:
        loaded: the photo, from foodclf.images.load_image.
        result: the ClassificationResult for it.
        source: upload, folder or api.
        added_by: who added it.

    Returns:
        The ImageRow (new, or the existing one for the same content id) with the prediction recorded.
    """
    stored_path = ImageStore(settings.image_dir).save(loaded)
    image = record_image(session, loaded, source=source, added_by=added_by, stored_path=stored_path)
    record_prediction(session, image, result)
    return image


def ingest_folder(
    settings: Settings,
    folder,
    classifier,
    *,
    source: str = "folder",
    added_by: str = "",
    progress: bool = True,
    on_refused: Optional[Callable[[str, str], None]] = None,
) -> IngestReport:
    """Classify and store every photo under `folder` not yet stored with this classifier's prediction.

    Args:
        folder: a folder (searched recursively) or a single photo.
        classifier: a foodclf Classifier (see load_classifier).
        source: recorded on new images: upload, folder or api.
        added_by: recorded on new images (default: FOODCLF_REVIEWER or the login name).
        progress: show a tqdm bar on stderr.
        on_refused: called with (path, reason) for each file that cannot be classified.

    Returns:
        An IngestReport with the counts and every refused file.

    Raises:
        FoodclfError: the folder does not exist.
    """
    if source not in SOURCES:
        raise ValueError(f"source: expected one of {', '.join(SOURCES)}, not {source!r}")
    folder = Path(folder)
    if not folder.exists():
        raise FoodclfError(f"There is no folder or file at {folder}.")
    added_by = added_by or default_user(settings)
    engine = open_database(settings)
    ImageStore(settings.image_dir).remove_leftovers()
    files = find_images([folder])
    report = IngestReport(files=len(files))
    bar = _progress_bar(len(files), progress)
    sources = _new_sources(files, engine, classifier.fingerprint, settings.max_upload_bytes, report, bar)
    stored_now: set[str] = set()  # a folder may hold the same photo twice
    try:
        for item in classifier.classify_many(sources):
            path = item.source[0] if isinstance(item.source, tuple) else str(item.source)
            if item.ok and item.loaded.content_id in stored_now:
                report.already += 1
            elif item.ok:
                with session_scope(engine) as session:
                    store_upload(session, settings, item.loaded, item.result, source=source, added_by=added_by)
                stored_now.add(item.loaded.content_id)
                report.stored += 1
            else:
                report.refused.append((path, str(item.error)))
                if on_refused is not None:
                    on_refused(path, str(item.error))
            bar.update(1)
    finally:
        bar.close()
    return report


def _new_sources(files, engine, fingerprint, max_bytes, report, bar) -> Iterator:
    """(path, bytes) of each file to classify; files already stored are counted and passed over.

    Hashing here, lazily, reads each file once and keeps memory flat: the batch path pulls only
    a few batches ahead.
    """
    for path in files:
        try:
            data, _ = read_source(path, max_bytes)
        except FoodclfError:
            yield str(path)  # the batch path refuses it again, with the same reason
            continue
        with session_scope(engine) as session:
            already = bool(stored_content_ids(session, [content_id(data)], fingerprint))
        if already:
            report.already += 1
            bar.update(1)
            continue
        yield (str(path), data)


def default_user(settings: Settings) -> str:
    """Who the CLI records as adding photos: FOODCLF_REVIEWER, else the login name."""
    if settings.reviewer:
        return settings.reviewer
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no passwd entry in some containers
        return "cli"


def _progress_bar(total: int, enabled: bool):
    from tqdm import tqdm

    return tqdm(total=total, unit="photo", desc="ingest", file=sys.stderr, disable=not enabled, dynamic_ncols=True)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("folder", metavar="DIR", help="folder to search for photos (recursively)")
    parser.add_argument("--model", help="hub id or model folder (default: FOODCLF_MODEL)")
    parser.add_argument("--source", choices=SOURCES, default="folder", help="recorded as where photos came from")
    parser.add_argument("--json", action="store_true", help="print the report as JSON instead of a summary line")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def run(args: argparse.Namespace, settings: Settings) -> int:
    from tqdm import tqdm

    from foodclf.classifier import load_classifier
    from foodclf.registry import active_model_name

    # Without --model, ingest with the model the dashboard and the API use.
    classifier = load_classifier(settings, args.model or active_model_name(settings))

    def refused(path: str, reason: str) -> None:
        tqdm.write(f"{path}: {reason}", file=sys.stderr)  # above the bar, not through it

    report = ingest_folder(
        settings, args.folder, classifier, source=args.source,
        progress=not args.no_progress and not args.json, on_refused=refused,
    )
    if args.json:
        print(json.dumps(report.to_dict(), ensure_ascii=False))
    else:
        print(f"foodclf ingest: {report.summary()}.")
    return 1 if report.refused else 0
