"""Labelled photos to learn from: an image-folder layout or the moderators' reviews, and the split."""

from __future__ import annotations

import hashlib
import random
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Sequence, Union

from db.engine import open_database, session_scope
from db.export_rows import ExportFilters, export_rows
from foodclf.errors import FoodclfError
from foodclf.images import content_id, find_images
from foodclf.labels import normalise_label
from foodclf.metrics import match_labels
from foodclf.promotion import in_evaluation_slice
from foodclf.store import StoredObject, open_store


@dataclass(frozen=True)
class LabelledPhoto:
    """One photo and the label it should get."""

    content_id: str  # sha256 of the file's bytes: the feature cache's key
    label: str
    path: Union[Path, StoredObject]  # a file, or a stored photo in an object store (read when used)
    name: str  # for reports: "<folder>/<file>" or the stored file name


@dataclass
class PhotoSet:
    """The photos of one source, and what was left out of it (with why)."""

    photos: list[LabelledPhoto]
    source: str  # a folder, or "database (filters)"
    left_out: list[str] = field(default_factory=list)
    # Reviewed photos of the frozen evaluation slice, kept out of `photos` (database sources only).
    evaluation: list[LabelledPhoto] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        """Photos per label, sorted by label."""
        return dict(sorted(Counter(p.label for p in self.photos).items()))


def label_folders(folder) -> dict[str, list[Path]]:
    """The image files of each `<label>/` subfolder of `folder` (searched recursively), by folder name.

    Raises:
        FoodclfError: the folder is missing or has no labelled subfolders.
    """
    root = Path(folder).expanduser()
    if not root.is_dir():
        raise FoodclfError(f"There is no folder at {root}; give a folder with one subfolder per label.")
    found = {
        sub.name: find_images([sub]) for sub in sorted(root.iterdir()) if sub.is_dir() and not sub.name.startswith(".")
    }
    found = {name: paths for name, paths in found.items() if paths}
    if not found:
        raise FoodclfError(
            f"{root} has no subfolders with photos; lay photos out as <label>/<file> "
            "(as the image-folder export writes them)."
        )
    return found


def read_image_folder(folder) -> PhotoSet:
    """Photos laid out as `<label>/<file>`; labels are stored-label spelling ("Apple Pie" -> apple_pie)."""
    photos = []
    for name, paths in label_folders(folder).items():
        label = normalise_label(name)
        for path in paths:
            data = path.read_bytes()
            photos.append(LabelledPhoto(content_id(data), label, path, f"{name}/{path.name}"))
    return _deduplicated(photos, str(Path(folder).expanduser()))


def read_reviews(settings, filters=None, *, frozen: bool = True) -> PhotoSet:
    """The moderators' current decisions (filtered as the export filters them), photos from the image store.

    Args:
        settings: database_url and image_dir.
        filters: which decisions (None: every decision).
        frozen: move the photos of the frozen evaluation slice from `photos` to `evaluation`.
    """

    filters = filters or ExportFilters()
    store = open_store(settings.image_dir)
    photos, missing = [], []
    with session_scope(open_database(settings)) as session:
        for row in export_rows(session, filters):
            try:
                # The stored file itself, or for an object store a local copy under FOODCLF_CACHE_DIR.
                path = store.local_file(row.stored_path, settings.cache_dir)
            except FoodclfError:
                missing.append(f"{row.file_name} ({row.content_id[:12]}): missing from {store.where()}")
                continue
            photos.append(LabelledPhoto(row.content_id, row.final_label, path, row.file_name))
    photo_set = _deduplicated(photos, f"database ({describe_filters(filters)})")
    photo_set.left_out[:0] = missing
    if frozen:
        photo_set.evaluation = [p for p in photo_set.photos if in_evaluation_slice(p.content_id)]
        photo_set.photos = [p for p in photo_set.photos if not in_evaluation_slice(p.content_id)]
    return photo_set


def describe_filters(filters) -> str:
    """The export filters in words, for the model card."""
    parts = ["only corrected" if filters.only_corrected else "all decisions"]
    if filters.since:
        parts.append(f"since {filters.since}")
    if filters.until:
        parts.append(f"until {filters.until}")
    if filters.labels:
        parts.append("labels " + ", ".join(filters.labels))
    return "; ".join(parts)


def _deduplicated(photos: list[LabelledPhoto], source: str) -> PhotoSet:
    """One entry per content id: a copy in the same label is dropped, a photo in two labels is left out."""
    by_id: dict[str, list[LabelledPhoto]] = defaultdict(list)
    for photo in photos:
        by_id[photo.content_id].append(photo)
    kept, left_out = [], []
    for copies in by_id.values():
        labels = sorted({p.label for p in copies})
        if len(labels) > 1:
            # Either label could be wrong; learning both would teach the model to hedge.
            left_out.append(f"{copies[0].name}: the same photo is labelled {', '.join(labels)}")
            continue
        kept.append(copies[0])
        left_out += [f"{p.name}: a copy of {copies[0].name}" for p in copies[1:]]
    return PhotoSet(kept, source, left_out)


def align_labels(photo_sets: Iterable[PhotoSet], base_labels: Sequence[str]) -> None:
    """Spell labels as the base model does where they match ignoring case, spaces and underscores."""

    for photo_set in photo_sets:
        spelling = match_labels(sorted({p.label for p in photo_set.photos + photo_set.evaluation}), base_labels)
        photo_set.photos = [
            LabelledPhoto(p.content_id, spelling[p.label] or p.label, p.path, p.name) for p in photo_set.photos
        ]
        photo_set.evaluation = [
            LabelledPhoto(p.content_id, spelling[p.label] or p.label, p.path, p.name) for p in photo_set.evaluation
        ]


def stratified_split(
    photos: Sequence[LabelledPhoto], fraction: float = 0.2, seed: int = 0
) -> tuple[list[LabelledPhoto], list[LabelledPhoto]]:
    """(train, validation): about `fraction` of each label held out; a label with one photo stays in train."""
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"fraction: expected a number between 0 and 1, not {fraction}")
    by_label: dict[str, list[LabelledPhoto]] = defaultdict(list)
    for photo in sorted(photos, key=lambda p: p.content_id):  # file order must not change the split
        by_label[photo.label].append(photo)
    rng = random.Random(seed)
    train, val = [], []
    for label in sorted(by_label):
        group = by_label[label]
        rng.shuffle(group)
        n_val = min(max(1, round(len(group) * fraction)), len(group) - 1)
        val += group[:n_val]
        train += group[n_val:]
    return train, val


def data_fingerprint(photos: Iterable[LabelledPhoto]) -> str:
    """sha256 over the sorted (content id, label) pairs: the same photos and labels give the same id."""
    lines = sorted(f"{p.content_id}\t{p.label}\n" for p in photos)
    return hashlib.sha256("".join(lines).encode()).hexdigest()
