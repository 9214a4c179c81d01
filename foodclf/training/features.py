"""Pooled features of training photos, cached on disk by content id and backbone fingerprint."""

from __future__ import annotations

import hashlib
import math
import random
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional, Sequence

import numpy as np
import torch
from PIL import Image, ImageOps

from foodclf.errors import FoodclfError
from foodclf.files import write_atomically
from foodclf.images import DECODE_VERSION, load_image
from foodclf.pixels import PIXELS_VERSION
from foodclf.training.data import LabelledPhoto

# Part of the cache key of augmented views: bump it when augmented_view changes.
AUGMENT_VERSION = "rrc35-flip-1"


class FeatureCache:
    """One small .npy per photo (and per augmented view) under <cache_dir>/features/<key>/.

    The key is the backbone fingerprint and the decode version: a new backbone (other weights,
    preprocessing or precision) or a new way of decoding photos (foodclf.images.DECODE_VERSION)
    gets a new folder, so a stale feature is never read; a photo seen before costs a file read
    instead of a forward pass.
    """

    def __init__(self, cache_dir, fingerprint: str):
        key = hashlib.sha256(f"{fingerprint}:{DECODE_VERSION}:{PIXELS_VERSION}".encode()).hexdigest()[:32]
        self.root = Path(cache_dir).expanduser() / "features" / key
        self.hits = 0
        self.misses = 0

    def _path(self, key: str) -> Path:
        return self.root / key[:2] / f"{key}.npy"

    def get(self, key: str) -> Optional[np.ndarray]:
        """The cached features, or None."""
        try:
            vector = np.load(self._path(key), allow_pickle=False)
        except (FileNotFoundError, ValueError, OSError):  # absent, or a half-written file from a kill
            self.misses += 1
            return None
        self.hits += 1
        return vector

    def put(self, key: str, vector: np.ndarray) -> None:
        """Keep features; written beside the target and renamed, so readers never see half a file."""
        array = np.ascontiguousarray(vector, dtype=np.float32)
        write_atomically(self._path(key), lambda f: np.save(f, array, allow_pickle=False))


@dataclass
class Features:
    """Features of the photos that could be read, in their order, and the ones that could not."""

    vectors: torch.Tensor  # (photos, feature_dim), float32: the photo as the model will see it
    photos: list[LabelledPhoto]
    views: Optional[torch.Tensor] = None  # (photos, views, feature_dim): augmented views, for training
    unreadable: list[str] = field(default_factory=list)
    computed: int = 0  # photos run through the network (the rest came from the cache)


def view_key(photo_id: str, view: int, seed: int = 0) -> str:
    """The cache key of a photo's view: view 0 is the photo itself, the others are augmented."""
    return photo_id if view == 0 else f"{photo_id}-{AUGMENT_VERSION}-s{seed}-v{view}"


def augmented_view(image: Image.Image, photo_id: str, view: int, seed: int = 0) -> Image.Image:
    """A random crop (35-100 % of the area) of the photo, flipped half the time, the same every run.

    Seeded by the photo and view, so a view's features can be cached like the photo's own.
    """
    rng = random.Random(hashlib.sha256(f"{photo_id}:{seed}:{view}".encode()).digest())
    width, height = image.size
    for _ in range(10):
        area = width * height * rng.uniform(0.35, 1.0)
        ratio = math.exp(rng.uniform(math.log(3 / 4), math.log(4 / 3)))
        w, h = round(math.sqrt(area * ratio)), round(math.sqrt(area / ratio))
        if 0 < w <= width and 0 < h <= height:
            left, top = rng.randint(0, width - w), rng.randint(0, height - h)
            break
    else:  # an extreme aspect ratio: the centred square
        w = h = min(width, height)
        left, top = (width - w) // 2, (height - h) // 2
    crop = image.crop((left, top, left + w, top + h))
    return ImageOps.mirror(crop) if rng.random() < 0.5 else crop


def extract_features(
    backbone,
    photos: Sequence[LabelledPhoto],
    cache: Optional[FeatureCache],
    *,
    views: int = 0,
    view_seed: int = 0,
    batch_size: int = 16,
    workers: int = 2,
    max_bytes: int = 10 * 1024 * 1024,
    max_pixels: int = 40_000_000,
    stage=None,
) -> Features:
    """Pooled features of each photo (and of `views` augmented views of it), from the cache where there.

    Args:
        backbone: a foodclf.training.backbone.Backbone.
        views: augmented views per photo besides the photo itself (0: none).
        stage: a progress Stage, advanced by one per photo.
    """
    keys = {p.content_id: [view_key(p.content_id, v, view_seed) for v in range(views + 1)] for p in photos}
    found: dict[str, np.ndarray] = {}
    todo = []
    for photo in photos:
        for key in keys[photo.content_id]:
            vector = cache.get(key) if cache is not None else None
            if vector is not None and vector.shape == (backbone.feature_dim,):
                found[key] = vector
        if all(key in found for key in keys[photo.content_id]):
            _advance(stage)
        else:
            todo.append(photo)
    unreadable: dict[str, str] = {}

    def prepare(photo: LabelledPhoto):
        try:
            image = load_image(photo.path, max_bytes=max_bytes, max_pixels=max_pixels, side=backbone.decode_side).image
        except FoodclfError as err:
            return photo, [], str(err)
        missing = [(v, key) for v, key in enumerate(keys[photo.content_id]) if key not in found]
        images = [image if v == 0 else augmented_view(image, photo.content_id, v, view_seed) for v, _ in missing]
        return photo, list(zip([key for _, key in missing], backbone.preprocess(images))), None

    per_chunk = max(1, batch_size // (views + 1))  # about one forward batch of pixels in memory at a time
    with ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="foodclf-features") as pool:
        for start in range(0, len(todo), per_chunk):
            prepared = list(pool.map(prepare, todo[start : start + per_chunk]))
            unreadable.update({photo.content_id: f"{photo.name}: {error}" for photo, _, error in prepared if error})
            pending = [item for _, items, _ in prepared for item in items]
            for first in range(0, len(pending), batch_size):
                batch = pending[first : first + batch_size]
                vectors = backbone.features(torch.stack([pixels for _, pixels in batch])).numpy()
                for (key, _), vector in zip(batch, vectors):
                    found[key] = vector
                    if cache is not None:
                        cache.put(key, vector)
            _advance(stage, len(prepared))
    kept = [photo for photo in photos if photo.content_id not in unreadable]
    dim = backbone.feature_dim
    stacked = (
        np.stack([[found[key] for key in keys[p.content_id]] for p in kept])
        if kept
        else np.zeros((0, views + 1, dim), np.float32)
    )
    tensor = torch.from_numpy(stacked).float()
    return Features(
        tensor[:, 0],
        kept,
        tensor[:, 1:] if views else None,
        list(unreadable.values()),
        computed=len(todo) - len(unreadable),
    )


def _advance(stage, n: int = 1) -> None:
    if stage is not None and n:
        stage.update(n)
