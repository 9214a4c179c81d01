"""The one way photos come in: skip those already stored, classify the rest, store them.

The dashboard's uploads, the HTTP API and `foodclf ingest` all call `ingest_photos` and only adapt
its input (bytes, files, paths) and its output (one IngestOutcome per input). Each photo's bytes
are written to the image store first, atomically, then its rows are committed in one transaction:
a run killed halfway keeps what it finished, and the next run passes it over.
"""

from __future__ import annotations

import logging
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Iterator, Mapping, Optional, Sequence

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from db.engine import open_database, session_scope
from db.models import SOURCES, ImageRow
from db.records import (
    ImageSummary,
    image_summaries,
    model_summary,
    record_images,
    record_predictions,
    stored_content_ids,
)
from db.similar import near_duplicates_of, photo_hash, record_embeddings, record_hashes
from foodclf.classifier import ClassificationResult, Classifier
from foodclf.errors import FoodclfError, StorageFailed
from foodclf.images import (
    ImageSource,
    LoadedImage,
    content_id,
    display_name,
    find_images,
    read_source,
)
from foodclf.settings import Settings, local_user
from foodclf.store import open_store

# "Already stored?" is asked for this many photos (or bytes read) at once, not photo by photo.
LOOKUP_PHOTOS = 16
LOOKUP_BYTES = 32 * 1024 * 1024
# Classified photos waiting for the storing thread while it stores a group, at most: they go to it together next
# (their decoded pixels are held meanwhile, so at most twice this many are in memory).
STORE_AHEAD = 32
STORE_FAILED = "This photo could not be saved; the details are in the server log. Please try again."

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class IngestOutcome:
    """What became of one input photo.

    status: `stored` (classified now and saved), `known` (already stored with this model's
    prediction: not classified again) or `refused` (error says why; nothing was saved).
    """

    index: int  # the input's position
    name: str
    status: str
    content_id: Optional[str] = None
    photo: Optional[ImageSummary] = None  # the stored photo afterwards, with this model's prediction
    result: Optional[ClassificationResult] = None  # the new prediction (stored only)
    error: Optional[FoodclfError] = None
    # Content ids of other stored photos that look the same (resized or re-encoded copies), nearest first.
    near_duplicates: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return self.error is None


def store_photos(
    session: Session,
    settings: Settings,
    photos: Sequence[tuple[LoadedImage, ClassificationResult]],
    *,
    source: str,
    added_by: str,
) -> dict[str, ImageRow]:
    """Keep classified photos: bytes into the image store, then their image, prediction, embedding and perceptual
    hash rows, one INSERT per table for them all (the embedding from the prediction's own forward pass, the hash
    from `loaded.image`).

    The bytes are written first (atomically), so a committed row always has its file; the caller commits the
    session, so the photos are kept together or not at all.

    Returns:
        Each photo's ImageRow (new, or the existing one for the same content id) by content id, its prediction
        recorded.
    """
    store = open_store(settings.image_dir)
    saved = [(loaded, store.save(loaded)) for loaded, _ in photos]
    images = record_images(session, saved, source=source, added_by=added_by)
    record_predictions(session, [(images[loaded.content_id], result) for loaded, result in photos])
    rows = [(images[loaded.content_id].id, loaded, result) for loaded, result in photos]
    record_embeddings(session, [(image_id, result.fingerprint, result.embedding) for image_id, _, result in rows])
    record_hashes(session, {image_id: loaded.perceptual_hash() for image_id, loaded, _ in rows})
    return images


def store_photo(
    session: Session,
    settings: Settings,
    loaded: LoadedImage,
    result: ClassificationResult,
    *,
    source: str,
    added_by: str,
) -> ImageRow:
    """store_photos for one photo: its ImageRow, with the prediction recorded."""
    return store_photos(session, settings, [(loaded, result)], source=source, added_by=added_by)[loaded.content_id]


def near_duplicates(session: Session, image_id: int) -> tuple[str, ...]:
    """Content ids of the other stored photos that look the same as this one (see db.similar), nearest first."""
    phash = photo_hash(session, image_id)
    return () if phash is None else near_duplicates_by_hash(session, {image_id: phash})[image_id]


def near_duplicates_by_hash(session: Session, hashes: Mapping[int, str]) -> dict[int, tuple[str, ...]]:
    """near_duplicates of photos whose perceptual hashes are known (image id -> hash), in two queries for them all."""
    found = near_duplicates_of(session, hashes)
    others = sorted({other for near in found.values() for other, _ in near})
    ids: dict[int, str] = {}
    for start in range(0, len(others), 500):  # stay under every backend's bound-parameter limit
        chunk = others[start : start + 500]
        ids.update(session.execute(select(ImageRow.id, ImageRow.content_id).where(ImageRow.id.in_(chunk))).all())
    return {image_id: tuple(ids[i] for i, _ in near if i in ids) for image_id, near in found.items()}


def ingest_photos(
    engine: Engine,
    settings: Settings,
    classifier: Classifier,
    photos: Iterable[tuple[Optional[str], ImageSource]],
    *,
    source: str,
    added_by: str,
    top_k: Optional[int] = None,
) -> Iterator[IngestOutcome]:
    """Store every photo not yet stored with this classifier's prediction; one outcome per input.

    Outcomes come as each photo is done (known and refused ones first, classified ones after their
    batch), each with its input `index`; read lazily, so a folder of any size streams through.

    Args:
        photos: (name, source) pairs; a source is bytes, a path or a binary file. A None name is
            taken from the path, or "photo".
        source: recorded on new photos: upload, folder or api.
        added_by: recorded on new photos.
        top_k: scores kept with each new prediction (None: the classifier's setting; 0: all).
    """
    if source not in SOURCES:
        raise ValueError(f"source: expected one of {', '.join(SOURCES)}, not {source!r}")
    ready: deque[IngestOutcome] = deque()  # known and refused outcomes, found while feeding the model
    names: dict[int, tuple[int, str]] = {}  # id() of a (name, bytes) pair handed to the model -> (index, name)
    seen: set[str] = set()  # content ids handed to the model in this run
    again: list[IngestOutcome] = []  # the same photo a second time: answered once the first is stored
    failed: dict[str, FoodclfError] = {}  # content id -> why its first copy was refused

    def read(index: int, name: Optional[str], photo) -> Optional[tuple[int, str, bytes, str]]:
        try:
            data, read_name = read_source(photo, settings.max_upload_bytes)  # oversize: refused unread
        except FoodclfError as err:
            ready.append(IngestOutcome(index, display_name(name or str(photo)), "refused", error=err))
            return None
        return index, display_name(name) if name else read_name, data, content_id(data)

    def sift(chunk: list[tuple[int, str, bytes, str]]) -> Iterator[tuple[str, bytes]]:
        """Hand the model the photos of a chunk not yet stored with its prediction: one query for the chunk."""
        if not chunk:
            return
        with session_scope(engine) as session:
            stored = stored_content_ids(session, [cid for *_, cid in chunk], classifier.fingerprint)
            known = {}
            for cid in stored:
                summary = model_summary(session, cid, classifier.fingerprint)
                known[cid] = (summary, near_duplicates(session, summary.image_id) if summary is not None else ())
        for index, name, data, cid in chunk:
            if cid in known:
                summary, twins = known[cid]
                ready.append(IngestOutcome(index, name, "known", cid, summary, near_duplicates=twins))
            elif cid in seen:
                again.append(IngestOutcome(index, name, "known", cid))
            else:
                seen.add(cid)
                pair = (name, data)
                names[id(pair)] = (index, name)
                yield pair

    def to_classify() -> Iterator[tuple[str, bytes]]:
        chunk: list[tuple[int, str, bytes, str]] = []
        for index, (name, photo) in enumerate(photos):
            item = read(index, name, photo)
            if item is not None:
                chunk.append(item)
            if len(chunk) >= LOOKUP_PHOTOS or sum(len(data) for _, _, data, _ in chunk) >= LOOKUP_BYTES:
                yield from sift(chunk)
                chunk = []
        yield from sift(chunk)

    # Storing (file writes and fsyncs, then the rows) runs in one thread of its own, overlapped with the model's
    # next batch: on the 2-core machine the fsync waits alone cost as much as Lite0's forward pass. The photos
    # the model answered while the thread was busy go to it together, in one transaction (one INSERT per table,
    # not ten statements a photo); if that fails, each is stored alone, so one bad photo costs only itself.
    # A consumer that stops early (Ctrl-C, a closed request) still gets every photo the model answered stored:
    # the `finally` hands the waiting ones over and leaving the `with` waits for them, and the next run counts
    # them as already there.
    waiting: list[tuple[int, str, LoadedImage, ClassificationResult]] = []  # answered, not yet handed over
    storing: Optional[Future] = None  # the group being stored
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="foodclf-store") as store:
        try:
            for item in classifier.classify_many(
                to_classify(), top_k=top_k, max_pixels=settings.max_pixels, phash=True
            ):
                while ready:
                    yield ready.popleft()
                index, name = names.pop(id(item.source))
                if not item.ok:
                    yield _finished(
                        IngestOutcome(index, name, "refused", content_id(item.source[1]), error=item.error), failed
                    )
                    continue
                waiting.append((index, name, item.loaded, item.result))
                if storing is not None and (storing.done() or len(waiting) >= STORE_AHEAD):
                    for outcome in storing.result():
                        yield _finished(outcome, failed)
                    storing = None
                if storing is None:
                    storing = store.submit(store_group, engine, settings, waiting, source, added_by)
                    waiting = []
            if storing is not None:
                for outcome in storing.result():
                    yield _finished(outcome, failed)
                storing = None
            if waiting:
                for outcome in store_group(engine, settings, waiting, source, added_by):
                    yield _finished(outcome, failed)
                waiting = []
        finally:
            if waiting:  # the consumer stopped: keep what the model answered
                store.submit(store_group, engine, settings, waiting, source, added_by)
    while ready:
        yield ready.popleft()
    for outcome in again:
        if outcome.content_id in failed:
            yield IngestOutcome(
                outcome.index, outcome.name, "refused", outcome.content_id, error=failed[outcome.content_id]
            )
            continue
        with session_scope(engine) as session:
            photo = model_summary(session, outcome.content_id, classifier.fingerprint)
            twins = near_duplicates(session, photo.image_id) if photo is not None else ()
        yield IngestOutcome(outcome.index, outcome.name, "known", outcome.content_id, photo, near_duplicates=twins)


def _finished(outcome: IngestOutcome, failed: dict[str, FoodclfError]) -> IngestOutcome:
    """An outcome as it is handed out; a refused photo's reason is kept for its copies later in the run."""
    if not outcome.ok and outcome.content_id:
        failed[outcome.content_id] = outcome.error
    return outcome


def store_group(engine, settings, group, source, added_by) -> list[IngestOutcome]:
    """Store a group of classified photos, (index, name, loaded, result) each, in one transaction; if that fails,
    each alone, so that every photo the others' failure did not concern is kept. One outcome a photo."""
    if len(group) > 1:
        try:
            return _store_together(engine, settings, group, source, added_by)
        except Exception:  # noqa: BLE001  (which photo failed is found by storing each alone)
            log.warning("storing %d photos together failed; storing them one by one", len(group), exc_info=True)
    outcomes = []
    for index, name, loaded, result in group:
        try:
            outcomes += _store_together(engine, settings, [(index, name, loaded, result)], source, added_by)
        except FoodclfError as err:
            outcomes.append(IngestOutcome(index, name, "refused", loaded.content_id, error=err))
        except Exception:  # noqa: BLE001  (a full disk or a locked database: this photo fails, the rest go on)
            log.exception("could not store the photo %s", name)
            outcomes.append(IngestOutcome(index, name, "refused", loaded.content_id, error=StorageFailed(STORE_FAILED)))
    return outcomes


def _store_together(engine, settings, group, source, added_by) -> list[IngestOutcome]:
    photos = [(loaded, result) for _, _, loaded, result in group]
    with session_scope(engine) as session:
        images = store_photos(session, settings, photos, source=source, added_by=added_by)
        ids = {cid: image.id for cid, image in images.items()}
        summaries = image_summaries(session, list(ids.values()))  # by row id: the photos are in the session already
        twins = near_duplicates_by_hash(
            session, {ids[loaded.content_id]: loaded.perceptual_hash() for loaded, _ in photos}
        )
    outcomes = []
    for index, name, loaded, result in group:
        image_id = ids[loaded.content_id]
        outcomes.append(
            IngestOutcome(
                index, name, "stored", loaded.content_id, summaries[image_id], result, near_duplicates=twins[image_id]
            )
        )
    return outcomes


def ingest_in_order(*args, **kwargs) -> list[IngestOutcome]:
    """ingest_photos' outcomes as a list in input order (for a request or an upload of a few photos)."""
    return sorted(ingest_photos(*args, **kwargs), key=lambda outcome: outcome.index)


@dataclass
class IngestReport:
    """What one folder ingest did."""

    files: int = 0  # image files found under the folder
    stored: int = 0  # classified and saved by this run
    already: int = 0  # already stored with this model's prediction (or the same file twice in the folder)
    refused: list[tuple[str, str]] = field(default_factory=list)  # (path, reason)

    def summary(self) -> str:
        """One line for a person."""
        return f"stored {self.stored}, already there {self.already}, refused {len(self.refused)}"

    def to_dict(self) -> dict:
        """Plain values for --json."""
        data = asdict(self)
        data["refused"] = [{"path": path, "reason": reason} for path, reason in self.refused]
        return data


def ingest_folder(
    settings: Settings,
    folder,
    classifier: Classifier,
    *,
    source: str = "folder",
    added_by: str = "",
    on_outcome: Optional[Callable[[IngestOutcome, str], None]] = None,
) -> IngestReport:
    """Classify and store every photo under `folder` not yet stored with this classifier's prediction.

    Args:
        folder: a folder (searched recursively) or a single photo.
        source: recorded on new photos: upload, folder or api.
        added_by: recorded on new photos (default: FOODCLF_REVIEWER or the login name).
        on_outcome: called with each outcome and its file's path, as it is done (a progress bar).

    Raises:
        FoodclfError: the folder does not exist.
    """
    folder = Path(folder)
    if not folder.exists():
        raise FoodclfError(f"There is no folder or file at {folder}.")
    engine = open_database(settings)
    open_store(settings.image_dir).remove_leftovers()
    files = find_images([folder])
    report = IngestReport(files=len(files))
    photos = ((None, path) for path in files)
    for outcome in ingest_photos(
        engine, settings, classifier, photos, source=source, added_by=added_by or local_user(settings)
    ):
        path = str(files[outcome.index])
        if outcome.status == "stored":
            report.stored += 1
        elif outcome.status == "known":
            report.already += 1
        else:
            report.refused.append((path, str(outcome.error)))
        if on_outcome is not None:
            on_outcome(outcome, path)
    return report
