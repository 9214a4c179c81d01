"""Retraining that keeps what the current model knew: its labels, its scores as a teacher, its photos replayed.

`train --base current` must not forget the dishes the moderators did not review this time. Two things
carry them over (docs/training.md, "Retraining from the current model"):

- replay: the photos the current model learnt from, when the registry knows where they came from
  (a folder, or the moderators' decisions under some filters), join the training photos;
- distillation: the current model's scores on the stored photos, reviewed or not, are kept as soft
  targets for its own labels (foodclf.training.head.Distillation).
"""

from __future__ import annotations

import hashlib
import heapq
from dataclasses import dataclass, replace
from datetime import date
from pathlib import Path
from typing import Optional, Sequence

import torch

from db.engine import open_database, session_scope
from db.export_rows import ExportFilters
from db.photos import iter_stored_photos
from foodclf.promotion import in_evaluation_slice
from foodclf.store import open_store
from foodclf.training.data import LabelledPhoto, PhotoSet, align_labels, read_image_folder, read_reviews
from foodclf.training.head import Distillation

# The label given to stored photos read only for the teacher's scores: they have no label to learn.
UNLABELLED = ""


@dataclass(frozen=True)
class KeepSettings:
    """How a retrain keeps the current model's knowledge; defaults measured in bench/learning_loop.py."""

    distill_photos: int = 2000  # stored photos scored by the teacher, at most (a stable sample by content id)
    distill_weight: float = 1.0  # of the distillation loss beside the labelled photos' loss
    temperature: float = 2.0  # softens the teacher's scores, so its second guesses are kept too
    # A stored photo less like a new label's photos than this share of them is taken to show an old label.
    novelty_quantile: float = 0.05

    def to_dict(self) -> dict:
        return dict(self.__dict__)


@dataclass
class Teacher:
    """The current model's classification layer, on the same pooled features as the new head."""

    labels: list[str]
    weight: torch.Tensor  # (labels, features)
    bias: torch.Tensor
    calibration: float = 1.0  # the model's own temperature (saved with it): its scores as it gives them

    def probabilities(self, features: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
        logits = features @ self.weight.T + self.bias
        return (logits / (self.calibration * temperature)).softmax(-1)


def teacher_of(backbone, calibration: float = 1.0) -> Teacher:
    """The backbone's current head as a teacher (call before with_new_head replaces it)."""
    head = backbone.head
    return Teacher(
        list(backbone.labels),
        head.weight.detach().float().cpu().clone(),
        head.bias.detach().float().cpu().clone() if head.bias is not None else torch.zeros(head.out_features),
        calibration,
    )


def source_record(photo_set: PhotoSet, filters=None, inherited: Optional[dict] = None) -> dict:
    """What the registry keeps about where a model's photos came from: {"folders": [...], "database": [...]}.

    Args:
        photo_set: the run's own photos; a folder source is recorded by its absolute path.
        filters: the ExportFilters of a database source (None: a folder source).
        inherited: the base model's own record, when the run replayed it.
    """
    record = {
        "folders": list((inherited or {}).get("folders", [])),
        "database": list((inherited or {}).get("database", [])),
    }
    if filters is None:
        folder = str(Path(photo_set.source).expanduser().resolve())
        if folder not in record["folders"]:
            record["folders"].append(folder)
    else:
        entry = {
            "only_corrected": bool(filters.only_corrected),
            "since": filters.since.isoformat() if filters.since else None,
            "until": filters.until.isoformat() if filters.until else None,
            "labels": list(filters.labels),
        }
        if entry not in record["database"]:
            record["database"].append(entry)
    return record


def replay_photos(settings, record: Optional[dict], labels: Sequence[str], exclude: set[str]) -> PhotoSet:
    """The photos a model learnt from, read again from the sources its registry record names.

    Only photos of `labels` (the teacher's) are kept, none of `exclude` (the frozen evaluation slice's);
    a folder that is gone is noted in left_out.
    """
    record = record or {}
    keep = set(labels)
    photos, left_out, sources = [], [], []
    for folder in record.get("folders", []):
        if not Path(folder).is_dir():
            left_out.append(f"replay: the folder {folder} the current model learnt from is gone")
            continue
        found = read_image_folder(folder)
        photos += found.photos
        sources.append(folder)
    for entry in record.get("database", []):
        filters = ExportFilters(
            only_corrected=bool(entry.get("only_corrected")),
            since=date.fromisoformat(entry["since"]) if entry.get("since") else None,
            until=date.fromisoformat(entry["until"]) if entry.get("until") else None,
            labels=tuple(entry.get("labels") or ()),
        )
        photos += read_reviews(settings, filters).photos  # the frozen evaluation slice stays out
        sources.append("database")
    replay = PhotoSet(photos, "replay of " + (", ".join(sources) or "nothing"), left_out)
    align_labels([replay], labels)
    seen, kept = set(), []
    for photo in replay.photos:
        if photo.label in keep and photo.content_id not in seen and photo.content_id not in exclude:
            seen.add(photo.content_id)
            kept.append(photo)
    replay.photos = kept
    return replay


def stored_photos_to_distil(settings, limit: int, exclude: set[str]) -> list[LabelledPhoto]:
    """Up to `limit` stored photos (reviewed or not) for the teacher to score, outside the evaluation slice.

    The sample is the same every run (the lowest hashes of the content ids), so cached features are reused.
    """
    store = open_store(settings.image_dir)
    chosen: list[tuple[int, LabelledPhoto]] = []
    with session_scope(open_database(settings)) as session:
        for row in iter_stored_photos(session):
            if row.content_id in exclude or in_evaluation_slice(row.content_id):
                continue
            key = -int.from_bytes(hashlib.sha256(f"distil:{row.content_id}".encode()).digest()[:8], "big")
            item = (key, LabelledPhoto(row.content_id, UNLABELLED, row.stored_path, row.file_name))
            if len(chosen) < limit:
                heapq.heappush(chosen, item)
            elif key > chosen[0][0]:
                heapq.heapreplace(chosen, item)
    ranked = [photo for _, photo in sorted(chosen, key=lambda item: -item[0])]
    # Each kept photo's source: its file, or for an object store the object, read when used.
    return [replace(p, path=store.source(p.path)) for p in ranked if store.exists(p.path)]


def old_only_mask(
    distill_x: torch.Tensor, train_x: torch.Tensor, train_y: torch.Tensor, new_classes: Sequence[int], quantile: float
) -> torch.Tensor:
    """Which stored photos look like none of the new labels' photos, so are taken to show an old label.

    Cosine similarity to each new label's mean (standardised features): a photo less similar to every new
    label than all but `quantile` of that label's own photos is taken to be old. With no new label, all are.
    """
    if not len(distill_x):
        return torch.zeros(0, dtype=torch.bool)
    every = torch.cat([train_x, distill_x])
    mean, std = every.mean(0), every.std(0, unbiased=False).clamp(min=1e-6)

    def unit(x):
        z = (x - mean) / std
        return z / z.norm(dim=1, keepdim=True).clamp(min=1e-6)

    z_train, z_distill = unit(train_x), unit(distill_x)
    old = torch.ones(len(distill_x), dtype=torch.bool)
    for c in new_classes:
        own = z_train[train_y == c]
        if not len(own):
            continue
        centre = own.mean(0)
        centre = centre / centre.norm().clamp(min=1e-6)
        threshold = torch.quantile(own @ centre, quantile)
        old &= (z_distill @ centre) < threshold
    return old


def distillation(
    teacher: Teacher,
    distill_x: torch.Tensor,
    labels: Sequence[str],
    train_x,
    train_y,
    labelled: torch.Tensor,
    settings: KeepSettings,
) -> Distillation:
    """The Distillation term for fit_head: the teacher's softened scores on the stored photos.

    Args:
        labels: the new model's labels (every teacher label among them).
        labelled: (m,) bool: the stored photo also has a label to learn (then it is never `old_only`).
    """
    index = {label: i for i, label in enumerate(labels)}
    old_index = torch.tensor([index[label] for label in teacher.labels], dtype=torch.long)
    new_classes = [i for i, label in enumerate(labels) if label not in set(teacher.labels)]
    old_only = old_only_mask(distill_x, train_x, train_y, new_classes, settings.novelty_quantile) & ~labelled
    return Distillation(
        distill_x,
        teacher.probabilities(distill_x, settings.temperature),
        old_index,
        old_only,
        weight=settings.distill_weight,
        temperature=settings.temperature,
    )
