"""Photos uploaded in the dashboard: classify the new ones, store them for review, recognise known ones.

Stored exactly as the API and `foodclf ingest` store photos (foodclf.ingest.store_upload), so an
upload appears in the review queue like any other photo.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Optional

from sqlalchemy import Engine

from db.engine import session_scope
from db.records import ImageSummary, image_history, image_summary, stored_content_ids
from foodclf.classifier import Classifier
from foodclf.errors import FoodclfError
from foodclf.images import content_id, display_name, read_source
from foodclf.ingest import store_upload
from foodclf.settings import Settings

SOURCE = "upload"
STORE_FAILED = "This photo could not be saved; the details are in the server log. Please try again."

log = logging.getLogger(__name__)


@dataclass
class UploadOutcome:
    """One uploaded file: its stored photo and history, or the reason it was refused."""

    file_name: str
    data: bytes = b""  # the uploaded bytes, to show the photo
    photo: Optional[ImageSummary] = None
    history: list[dict[str, Any]] = field(default_factory=list)
    known: bool = False  # already stored with this model's prediction: not classified again
    error: Optional[str] = None

    @property
    def ok(self) -> bool:
        return self.error is None


def classify_uploads(
    classifier: Classifier,
    engine: Engine,
    settings: Settings,
    files: Iterable[tuple[str, bytes]],
    *,
    added_by: str,
    progress: Optional[Callable[[UploadOutcome], None]] = None,
) -> list[UploadOutcome]:
    """Classify and store each (name, bytes), in order; a refused file gets its reason and the rest go on.

    Args:
        files: (file name, bytes) pairs as the uploader gives them.
        added_by: recorded as who added new photos (the reviewer, or "dashboard").
        progress: called with each outcome as it is ready (for a progress bar).

    Returns:
        One UploadOutcome per file, in input order.
    """
    files = [(display_name(name), data) for name, data in files]
    outcomes: list[Optional[UploadOutcome]] = [None] * len(files)
    fresh: list[tuple[int, tuple[str, bytes]]] = []

    def done(index: int, outcome: UploadOutcome) -> None:
        outcomes[index] = outcome
        if progress is not None:
            progress(outcome)

    for index, (name, data) in enumerate(files):
        try:
            read_source(data, settings.max_upload_bytes)  # refuses an oversize file before hashing
        except FoodclfError as err:
            done(index, UploadOutcome(name, error=str(err)))
            continue
        cid = content_id(data)
        with session_scope(engine) as session:
            known = bool(stored_content_ids(session, [cid], classifier.fingerprint))
            if known:
                done(index, UploadOutcome(name, data, image_summary(session, cid), image_history(session, cid) or [],
                                          known=True))
        if not known:
            fresh.append((index, (name, data)))

    places = {id(source): index for index, source in fresh}
    for item in classifier.classify_many(source for _, source in fresh):
        index = places[id(item.source)]
        name, data = item.source
        if not item.ok:
            done(index, UploadOutcome(name, error=str(item.error)))
            continue
        try:
            with session_scope(engine) as session:
                store_upload(session, settings, item.loaded, item.result, source=SOURCE, added_by=added_by)
                photo = image_summary(session, item.loaded.content_id)
                history = image_history(session, item.loaded.content_id) or []
        except FoodclfError as err:
            done(index, UploadOutcome(name, data, error=str(err)))
            continue
        except Exception:  # a full disk or a locked database: this photo fails, the rest go on
            log.exception("could not store the upload %s", name)
            done(index, UploadOutcome(name, data, error=STORE_FAILED))
            continue
        done(index, UploadOutcome(name, data, photo, history))
    return [outcome for outcome in outcomes if outcome is not None]
