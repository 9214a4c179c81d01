"""The Classify page's uploads through the one ingest path, as cards keep them: bytes, photo, history."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Optional

from sqlalchemy import Engine

from db.engine import session_scope
from db.records import ImageSummary, image_history
from foodclf.classifier import Classifier
from foodclf.images import display_name
from foodclf.ingest import ingest_photos
from foodclf.settings import Settings

SOURCE = "upload"


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
    """Classify and store each (name, bytes); one UploadOutcome per file, in input order.

    progress is called with each outcome as it is ready (for a progress bar).
    """
    files = [(display_name(name), data) for name, data in files]
    outcomes: list[Optional[UploadOutcome]] = [None] * len(files)
    for outcome in ingest_photos(engine, settings, classifier, files, source=SOURCE, added_by=added_by):
        name, data = files[outcome.index]
        if outcome.ok and outcome.photo is not None:
            with session_scope(engine) as session:
                history = image_history(session, outcome.content_id) or []
            card = UploadOutcome(name, data, outcome.photo, history, known=outcome.status == "known")
        else:
            card = UploadOutcome(name, data, error=str(outcome.error or "This photo could not be saved."))
        outcomes[outcome.index] = card
        if progress is not None:
            progress(card)
    return [outcome for outcome in outcomes if outcome is not None]
