"""Bulk work on Ray Data: `foodclf ingest DIR --engine ray` and `foodclf reclassify --engine ray`.

For backlogs too big for one process. Both run the same machinery (`_start`, `_pool`, `ModelActor`):
a pool of actors, each loading the model and opening the database once, fed by Ray Data.

Ingest: the same photos, content ids and predictions as the local engine (foodclf.ingest), spread out:

1. Ray Data reads the files (a local folder, or an object-store URL through fsspec) in tasks,
   refusing oversize or unreadable ones with the local engine's sentences;
2. a pool of actors, each loading the model and opening the database once, skips photos already
   stored with this model's prediction, classifies the rest through the project's batch path and
   safe loader, and stores them with foodclf.ingest.store_group (bytes first, then the batch's rows in
   one transaction, each photo alone if that fails), so a rerun adds nothing and a killed run keeps what
   it committed;
3. the driver only counts the outcomes.

Reclassify: the same pages as the local engine (foodclf.reclassify.reclassify_page), spread out: the
driver splits the stored photos into pages of ids in one query, and each actor runs whole pages:
reads the page's rows, passes over photos that have this model's prediction, reads and decodes the
rest through the classifier's batch path (the store's bytes, the one safe decode, in its decode
threads beside the model), and commits the page's predictions together. A rerun reads no photo.

Ray is imported here, inside the functions that need it: the dashboard and the API never load it.
Without `ray_address` Ray starts on this machine; with one, it joins that cluster, whose workers
must have foodclf installed and reach the database and the image store.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Callable, Optional

import fsspec

from db.engine import open_database, session_scope
from db.photos import page_starts
from db.records import stored_content_ids
from foodclf.classifier import load_classifier
from foodclf.errors import FoodclfError, ImageRejected
from foodclf.images import FOLDER_EXTENSIONS, content_id, display_name, find_images, read_source
from foodclf.ingest import IngestReport, store_group
from foodclf.reclassify import PAGE, ReclassifyReport, reclassify_page
from foodclf.settings import Settings, local_user
from foodclf.store import open_store

log = logging.getLogger(__name__)

ROOT = Path(__file__).resolve().parents[1]
STATUSES = ("stored", "known", "refused")


def ingest_folder_ray(
    settings: Settings,
    location: str,
    model: str,
    *,
    actors: int = 2,
    ray_address: Optional[str] = None,
    gpus_per_actor: Optional[float] = None,
    source: str = "folder",
    added_by: str = "",
    on_outcome: Optional[Callable[[str, str, Optional[str]], None]] = None,
) -> IngestReport:
    """Classify and store every photo under `location` not yet stored with this model's prediction, on Ray.

    Args:
        location: a local folder (searched recursively), or an fsspec URL such as s3://bucket/backlog.
        model: the model every actor loads (a folder or hub id).
        actors: model actors in the pool (each holds one copy of the model).
        ray_address: a Ray cluster to join (e.g. "ray://head:10001" or "auto"); None starts Ray here.
        gpus_per_actor: GPUs each actor takes; None: one each when the cluster has enough, else shared.
        on_outcome: called with (path, status, error) for each file as the driver receives it.

    Raises:
        FoodclfError: the folder does not exist, or `actors` is below 1.
    """
    import ray

    if actors < 1:
        raise FoodclfError("--actors must be 1 or more.")
    paths = list_photos(location)
    report = IngestReport(files=len(paths))
    open_database(settings)  # migrated once here, before any actor opens it
    open_store(settings.image_dir).remove_leftovers()
    if not paths:
        return report
    _start(ray, ray_address)
    per_batch = max(1, settings.batch_size) * 2
    # About one block per actor call, so each classifies full batches; at least one block per actor.
    blocks = max(min(actors, len(paths)), -(-len(paths) // per_batch))
    actors = min(actors, blocks)
    dataset = (
        ray.data.from_items([{"path": path} for path in paths], override_num_blocks=blocks)
        .map_batches(_read_files, batch_size=per_batch, fn_kwargs={"max_bytes": settings.max_upload_bytes})
        .map_batches(
            ClassifyAndStore,
            fn_constructor_kwargs=dict(
                settings=settings, model=model, source=source, added_by=added_by or local_user(settings)
            ),
            batch_size=per_batch,
            **_pool(ray, actors, gpus_per_actor),
        )
        .select_columns(["path", "status", "error"])
    )
    for batch in dataset.iter_batches(batch_format="pandas"):
        for path, status, error in zip(batch["path"], batch["status"], batch["error"]):
            error = error or None
            if status == "stored":
                report.stored += 1
            elif status == "known":
                report.already += 1
            else:
                report.refused.append((path, error))
            if on_outcome is not None:
                on_outcome(path, status, error)
    return report


def list_photos(location: str) -> list[str]:
    """The image files under a local folder or an fsspec URL, sorted (URLs keep their scheme)."""
    if "://" not in location:
        folder = Path(location)
        if not folder.exists():
            raise FoodclfError(f"There is no folder or file at {folder}.")
        return [str(path) for path in find_images([folder])]
    fs, root = fsspec.core.url_to_fs(location)
    protocol = location.split("://", 1)[0]
    found = []
    for key in fs.find(root):
        name = key.rsplit("/", 1)[-1]
        if not name.startswith(".") and Path(name).suffix.lower() in FOLDER_EXTENSIONS:
            found.append(f"{protocol}://{key}")
    return sorted(found)


def _read_files(batch: dict, max_bytes: int) -> dict:
    """Ray task: each file's bytes, or why it was refused (oversize files are refused unread)."""
    datas, errors = [], []
    for path in batch["path"]:
        try:
            data = read_source(path, max_bytes)[0] if "://" not in path else _read_url(path, max_bytes)
            datas.append(data)
            errors.append("")
        except FoodclfError as err:
            datas.append(b"")
            errors.append(str(err))
    return {"path": list(batch["path"]), "data": datas, "error": errors}


def _read_url(url: str, max_bytes: int) -> bytes:
    fs, key = fsspec.core.url_to_fs(url)
    try:
        return read_source(fs.cat_file(key), max_bytes)[0]  # the local engine's size check and sentence
    except FileNotFoundError:
        raise ImageRejected(f"There is no file at {url}.") from None
    except OSError as err:
        raise ImageRejected(f"We could not read {url} ({err}).") from None


def reclassify_ray(
    settings: Settings,
    model: str,
    *,
    actors: int = 2,
    page: int = PAGE,
    ray_address: Optional[str] = None,
    gpus_per_actor: Optional[float] = None,
    on_photo: Optional[Callable[[int], None]] = None,
) -> ReclassifyReport:
    """Classify every stored photo without this model's prediction on Ray, and make that prediction its latest.

    The photos are those stored when the run starts; pages are committed as they are done, so a
    killed run keeps its pages and the next run (either engine) carries on.

    Args:
        model: the model every actor loads (a folder or hub id).
        actors: model actors in the pool (each holds one copy of the model).
        page: photos per page (read, classified and committed together by one actor).
        ray_address: a Ray cluster to join (e.g. "ray://head:10001" or "auto"); None starts Ray here.
        gpus_per_actor: GPUs each actor takes; None: one each when the cluster has enough, else shared.
        on_photo: called with the number of photos a finished page walked (a progress bar's update).

    Raises:
        FoodclfError: `actors` is below 1.
    """
    import ray

    if actors < 1:
        raise FoodclfError("--actors must be 1 or more.")
    engine = open_database(settings)  # migrated once here, before any actor opens it
    with session_scope(engine) as session:
        starts = page_starts(session, page=page)
    report = ReclassifyReport(model=model)
    if not starts:
        return report
    _start(ray, ray_address)
    dataset = ray.data.from_items([{"after": after} for after in starts], override_num_blocks=len(starts)).map_batches(
        ReclassifyPages,
        fn_constructor_kwargs=dict(settings=settings, model=model, page=page),
        batch_size=1,  # one page per call: each page is its own commit
        **_pool(ray, min(actors, len(starts)), gpus_per_actor),
    )
    for batch in dataset.iter_batches(batch_format="pandas"):
        for row in batch.itertuples():
            report.model, report.fingerprint = row.model, row.fingerprint
            failed = [(cid, why) for cid, why in json.loads(row.failed)]
            counts = dict(photos=int(row.photos), already=int(row.already), classified=int(row.classified))
            report.add(ReclassifyReport(**counts, failed=failed))
            if on_photo is not None:
                on_photo(int(row.photos))
    return report


def _start(ray, ray_address: Optional[str]) -> None:
    """Join the cluster at `ray_address`, or start Ray here; quiet, as the CLI shows its own progress."""
    if not ray.is_initialized():
        # Workers on this machine import foodclf from this checkout, as the driver does.
        runtime_env = None if ray_address else {"env_vars": {"PYTHONPATH": str(ROOT)}}
        ray.init(address=ray_address, runtime_env=runtime_env, include_dashboard=False, log_to_driver=False)
    # The CLI shows its own progress bar: no Ray Data progress lines on stderr.
    ray.data.DataContext.get_current().enable_progress_bars = False
    logging.getLogger("ray.data").setLevel(logging.WARNING)


def _pool(ray, actors: int, gpus_per_actor: Optional[float]) -> dict:
    """map_batches' arguments for a pool of `actors` model actors, each with its share of the cluster's GPUs."""
    if gpus_per_actor is None:
        gpus = ray.cluster_resources().get("GPU", 0)
        gpus_per_actor = min(1.0, gpus / actors) if gpus else 0
    return dict(compute=ray.data.ActorPoolStrategy(size=actors), num_gpus=gpus_per_actor or None)


class ModelActor:
    """A Ray actor's state: the model loaded and the database opened once, for every batch it is given."""

    def __init__(self, settings: Settings, model: str):
        self.settings = settings
        self.classifier = load_classifier(settings, model)
        self.engine = open_database(settings)


class ReclassifyPages(ModelActor):
    """Ray actor: each page of stored photos reclassified (foodclf.reclassify.reclassify_page) and committed."""

    def __init__(self, settings: Settings, model: str, page: int):
        super().__init__(settings, model)
        self.page = page
        self.store = open_store(settings.image_dir)

    def __call__(self, batch: dict) -> dict:
        pages = [
            reclassify_page(self.engine, self.store, self.classifier, after_id=int(after), limit=self.page)[0]
            for after in batch["after"]
        ]
        return {
            "model": [done.model for done in pages],
            "fingerprint": [done.fingerprint for done in pages],
            "photos": [done.photos for done in pages],
            "already": [done.already for done in pages],
            "classified": [done.classified for done in pages],
            "failed": [json.dumps(done.failed) for done in pages],  # (content id, why) pairs
        }


class ClassifyAndStore(ModelActor):
    """Ray actor: the model and the database opened once; each batch skipped, classified or stored."""

    def __init__(self, settings: Settings, model: str, source: str, added_by: str):
        super().__init__(settings, model)
        self.source = source
        self.added_by = added_by

    def __call__(self, batch: dict) -> dict:
        paths = list(batch["path"])
        status = ["refused"] * len(paths)
        errors = list(batch["error"])
        ids = [content_id(bytes(data)) if not error else "" for data, error in zip(batch["data"], errors)]
        with session_scope(self.engine) as session:
            known = stored_content_ids(session, [cid for cid in ids if cid], self.classifier.fingerprint)
        todo: dict[int, int] = {}  # id() of a (name, bytes) pair handed to the model -> its row
        first: dict[str, int] = {}  # content id -> the row that classifies it (the same photo twice: once)
        pairs = []
        for row, (path, data, cid) in enumerate(zip(paths, batch["data"], ids)):
            if not cid:
                continue
            if cid in known or cid in first:
                status[row] = "known"
                continue
            first[cid] = row
            pair = (display_name(path.rsplit("/", 1)[-1]), bytes(data))
            todo[id(pair)] = row
            pairs.append(pair)
        answered = []  # stored together (foodclf.ingest.store_group: one transaction, each alone if that fails)
        for item in self.classifier.classify_many(pairs, max_pixels=self.settings.max_pixels, phash=True):
            row = todo[id(item.source)]
            if item.ok:
                answered.append((row, item.source[0], item.loaded, item.result))
            else:
                errors[row] = str(item.error)
        for outcome in store_group(self.engine, self.settings, answered, self.source, self.added_by):
            if outcome.ok:
                status[outcome.index] = "stored"
            else:
                errors[outcome.index] = str(outcome.error)
        for cid, row in first.items():  # a later copy of a refused photo is refused for the same reason
            if status[row] == "refused":
                for other, other_cid in enumerate(ids):
                    if other_cid == cid and other != row:
                        status[other], errors[other] = "refused", errors[row]
        return {"path": paths, "status": status, "error": errors}
