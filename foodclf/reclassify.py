"""`foodclf reclassify`: run the model in use over every stored photo, so the queue, browse and stats follow it.

Streamed and resumable: photos are walked in id order a page at a time, a photo that already has a
prediction by this model (its weights fingerprint), its embedding by it and its perceptual hash is passed
over, and each page is committed when it is done, so a run that is killed keeps its pages and the next run
carries on. A prediction is stored once per photo and fingerprint (the table's unique key), so nothing is
duplicated.

This is also the backfill of similar photos and near-duplicates (0007): a photo stored before them is read
again, and its embedding (from the same forward pass as the prediction) and its hash are added.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Callable, Optional

from sqlalchemy import Engine, func, select

from db.engine import open_database, session_scope
from db.models import ImageRow
from db.photos import stored_photos
from db.records import predicted_image_ids, record_predictions
from db.similar import embedded_images, hashed_images, record_embeddings, record_hashes
from foodclf.classifier import Classifier, load_classifier
from foodclf.model_registry import active_model_name
from foodclf.settings import Settings
from foodclf.store import open_store

PAGE = 256  # photos read, classified and committed together


@dataclass
class ReclassifyReport:
    """What one run did."""

    model: str = ""
    fingerprint: str = ""
    photos: int = 0  # stored photos walked
    classified: int = 0  # photos read and run through the model by this run
    already: int = 0  # photos that had this model's prediction, embedding and a hash before the run
    failed: list[tuple[str, str]] = field(default_factory=list)  # (content id, why): file gone or unreadable

    def summary(self) -> str:
        return (
            f"{self.classified} photos classified by {self.model} ({self.fingerprint[:12]}), "
            f"{self.already} had its prediction already, {len(self.failed)} could not be read"
        )

    def add(self, other: "ReclassifyReport") -> None:
        """Count another part of the same run (a page) in this report."""
        self.photos += other.photos
        self.classified += other.classified
        self.already += other.already
        self.failed.extend(other.failed)

    def to_dict(self) -> dict:
        data = asdict(self)
        data["failed"] = [{"content_id": cid, "reason": why} for cid, why in self.failed]
        return data


def reclassify(
    settings: Settings,
    *,
    model: Optional[str] = None,
    classifier=None,
    page: int = PAGE,
    on_photo: Optional[Callable[[int], None]] = None,
) -> ReclassifyReport:
    """Classify every stored photo that has no prediction by the model yet, and make that prediction its latest.

    Args:
        model: a model folder or hub id (default: the model in use).
        classifier: an already loaded classifier (overrides model).
        page: photos per read, batch and commit.
        on_photo: called with the number of photos just walked (a progress bar's update).

    Returns:
        A ReclassifyReport; a run interrupted by an exception keeps every page committed before it.
    """
    classifier = classifier or load_classifier(settings, model or active_model_name(settings))
    store = open_store(settings.image_dir)
    engine = open_database(settings)
    report = ReclassifyReport(model=classifier.model_id, fingerprint=classifier.fingerprint)
    after = 0
    while True:
        done, after = reclassify_page(engine, store, classifier, after_id=after, limit=page, on_photo=on_photo)
        if after is None:
            return report
        report.add(done)


def reclassify_page(
    engine: Engine,
    store,
    classifier: Classifier,
    *,
    after_id: int,
    limit: int,
    on_photo: Optional[Callable[[int], None]] = None,
) -> tuple[ReclassifyReport, Optional[int]]:
    """One page of reclassify: the `limit` photos after `after_id`, those without the model's prediction classified.

    The engines' one unit of work (local: pages in turn; Ray: pages spread over model actors). The
    page's predictions are committed together; a photo that has the prediction already is passed
    over, and a racing writer of the same prediction is absorbed by the table's unique key.

    Returns:
        What the page did, and its last photo id (None: no photo after `after_id`).
    """
    report = ReclassifyReport(model=classifier.model_id, fingerprint=classifier.fingerprint)
    with session_scope(engine) as session:
        rows = stored_photos(session, after_id=after_id, limit=limit)
        ids = [r.image_id for r in rows]
        # Done: this model's prediction, its embedding (if the model gives one) and a hash are all there.
        done = predicted_image_ids(session, ids, classifier.fingerprint) & hashed_images(session, ids)
        if classifier.head_module is not None or classifier.zero_shot:
            done &= embedded_images(session, ids, classifier.fingerprint)
    if not rows:
        return report, None
    todo = [r for r in rows if r.image_id not in done]
    report.photos += len(rows)
    report.already += len(rows) - len(todo)
    if on_photo is not None and len(rows) > len(todo):
        on_photo(len(rows) - len(todo))
    answered = []  # (row, result, phash): recorded together, one INSERT per table for the page
    for row, item in zip(todo, classifier.classify_many([store.source(r.stored_path) for r in todo], phash=True)):
        if item.ok:
            answered.append((row, item.result, item.loaded.perceptual_hash()))
        else:
            report.failed.append((row.content_id, str(item.error)))
        if on_photo is not None:
            on_photo(1)
    with session_scope(engine) as session:
        images = {
            i.id: i
            for i in session.scalars(select(ImageRow).where(ImageRow.id.in_([r.image_id for r, *_ in answered])))
        }
        record_predictions(session, [(images[row.image_id], result) for row, result, _ in answered])
        record_embeddings(
            session, [(row.image_id, result.fingerprint, result.embedding) for row, result, _ in answered]
        )
        record_hashes(session, {row.image_id: phash for row, _, phash in answered})
    report.classified += len(answered)
    return report, rows[-1].image_id


def count_photos(settings: Settings) -> int:
    """How many photos are stored (the progress bar's total)."""
    with session_scope(open_database(settings)) as session:
        return session.scalar(select(func.count()).select_from(ImageRow))
