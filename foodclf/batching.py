"""The streaming batch path: decode in worker threads while the model runs.

Sources come in as an iterator and results go out in the same order, with at most
a few batches in flight, counted in photos and in bytes held (file bytes, decoded pixels,
model input), so memory stays flat however many photos a folder holds and however large they are.
Decoding itself draws on the process's decode budget (foodclf.images.DECODE_BUDGET).
"""

from __future__ import annotations

import time
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Iterable, Iterator

import torch

from foodclf.errors import FoodclfError
from foodclf.images import LoadedImage, load_image

# Bytes the look-ahead may hold beyond the batch being classified: enough for two batches of
# phone photos (a few MB of file each), far below what 2 x batch_size 10 MB files would hold.
AHEAD_BYTES = 128 * 1024 * 1024


@dataclass
class BatchItem:
    """One source's outcome: a result, or the error that refused it."""

    source: Any
    loaded: LoadedImage | None = None
    result: Any = None  # ClassificationResult
    error: FoodclfError | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


@dataclass
class _Prepared:
    source: Any
    loaded: LoadedImage | None
    pixels: torch.Tensor | None
    error: FoodclfError | None

    @property
    def nbytes(self) -> int:
        """What this item holds in memory: the file's bytes, the decoded image and the model input."""
        held = self.pixels.nbytes if self.pixels is not None else 0
        if self.loaded is not None:
            width, height = self.loaded.image.size
            held += len(self.loaded.data) + 3 * width * height
        return held


def classify_stream(
    classifier,
    sources: Iterable,
    *,
    top_k: int | None = None,
    batch_size: int | None = None,
    workers: int | None = None,
    max_pixels: int | None = None,
    ahead_bytes: int = AHEAD_BYTES,
    phash: bool = False,
) -> Iterator[BatchItem]:
    """Classify a stream of photos in batches, yielding one BatchItem per source, in input order.

    Args:
        classifier: a foodclf Classifier.
        sources: paths, bytes, binary files, (name, bytes) pairs or LoadedImage objects.
        top_k: classes per result (None: the classifier's setting; 0: all).
        batch_size: images per forward pass (None: the classifier's setting).
        workers: decoding threads (None: the classifier's setting; 0: decode inline).
        max_pixels: largest image accepted (None: the classifier's setting), e.g. a server's own limit.
        ahead_bytes: most bytes decoded ahead of the model (at least one photo is always let through).
        phash: the decoding threads also compute each photo's perceptual hash (LoadedImage.phash), so whoever
            stores the photos does not (2 ms a photo on this project's CPU, in ingest's one storing thread).

    Returns:
        An iterator of BatchItem; a refused file carries its error and the stream goes on.
    """
    batch_size = batch_size or classifier.batch_size
    workers = classifier.workers if workers is None else workers

    def prepare(source) -> _Prepared:
        try:
            loaded = _load(source, classifier, max_pixels or classifier.max_pixels, phash)
            return _Prepared(source, loaded, classifier.preprocess([loaded.image]), None)
        except FoodclfError as err:
            return _Prepared(source, None, None, err)

    if workers == 0:
        prepared = (prepare(source) for source in sources)
        yield from _batches(classifier, prepared, batch_size, top_k)
        return
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="foodclf-decode") as pool:
        ordered = _ordered(pool, prepare, sources, ahead=2 * batch_size, ahead_bytes=ahead_bytes)
        yield from _batches(classifier, ordered, batch_size, top_k)


def _ordered(
    pool: ThreadPoolExecutor, prepare, sources: Iterable, ahead: int, ahead_bytes: int = AHEAD_BYTES
) -> Iterator[_Prepared]:
    """Map prepare over sources in the pool, yielding in order.

    At most `ahead` are in flight, and no new one starts while those in flight hold `ahead_bytes`
    or more (a source's own bytes count from the start; its decoded pixels once decoded).
    """
    pending: deque[tuple[Future, int]] = deque()
    iterator = iter(sources)

    def held() -> int:
        return sum(future.result().nbytes if future.done() else size for future, size in pending)

    try:
        for source in iterator:
            while pending and (len(pending) >= ahead or held() >= ahead_bytes):
                yield pending.popleft()[0].result()
            pending.append((pool.submit(prepare, source), _source_bytes(source)))
        while pending:
            yield pending.popleft()[0].result()
    finally:
        for future, _ in pending:  # the consumer stopped early: don't decode the rest
            future.cancel()


def _batches(classifier, prepared: Iterable[_Prepared], batch_size: int, top_k) -> Iterator[BatchItem]:
    waiting: list[_Prepared] = []
    count = 0
    for item in prepared:
        waiting.append(item)
        count += item.pixels is not None
        if count >= batch_size:
            yield from _run(classifier, waiting, top_k)
            waiting, count = [], 0
    if waiting:
        yield from _run(classifier, waiting, top_k)


def _run(classifier, waiting: list[_Prepared], top_k) -> Iterator[BatchItem]:
    """One forward pass over the decodable items; refused ones pass through in place."""
    good = [item for item in waiting if item.pixels is not None]
    results = iter(())
    if good:
        started = time.perf_counter()
        output = classifier.run(torch.cat([item.pixels for item in good]))
        latency_ms = (time.perf_counter() - started) * 1000 / len(good)
        results = iter(classifier.postprocess(output.logits, top_k, latency_ms, output.features))
    for item in waiting:
        if item.pixels is None:
            yield BatchItem(item.source, error=item.error)
        else:
            yield BatchItem(item.source, loaded=item.loaded, result=next(results))


def _load(source, classifier, max_pixels: int, phash: bool) -> LoadedImage:
    if isinstance(source, LoadedImage):
        return source
    name = None
    if isinstance(source, tuple) and len(source) == 2:
        name, source = source
    return load_image(
        source,
        max_bytes=classifier.max_bytes,
        max_pixels=max_pixels,
        name=name,
        side=classifier.decode_side,
        phash=phash,
    )


def _source_bytes(source) -> int:
    """What a source holds before it is decoded: its bytes when it carries them."""
    if isinstance(source, tuple) and len(source) == 2:
        source = source[1]
    if isinstance(source, (bytes, bytearray, memoryview)):
        return len(source)
    if isinstance(source, LoadedImage):
        return len(source.data)
    return 0
