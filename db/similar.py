"""Similar photos and near-duplicates: each photo's embedding (per model fingerprint) and perceptual hash.

The rows live in the database (embeddings, image_hashes: migration 0007); the search runs in this process,
over an index per database and fingerprint that loads the rows once and then only the rows added since
(the tables' ids grow with each insert), so every process (dashboard, API, CLI) sees new photos at once.

Why not pgvector or sqlite-vec: pgvector is a PostgreSQL server extension, and Debian 12's archive (what CI
installs from) has no postgresql-15-pgvector; a vector index in one backend only would leave two paths.
Why not an HNSW library: usearch built 100,000 1280-d vectors in 400 s on this 2-core machine, so a million
would take over an hour in every process that starts. Why not plain numpy over the full vectors: one scan
of 1,000,000 x 1280 float32 is 5 GB and ~650 ms here. So (bench/similar.py measures it):

1. count, for every photo, the sign bits of its sketch (a fixed random projection of its vector to SKETCH_DIM
   numbers) unlike the query's: SimHash, the share of unlike signs estimates the angle; 16 bytes a photo,
   a million in a few milliseconds; keep the SHORTLIST fewest (with any tied at the cut);
2. score those by the sketches themselves (float16 in memory, 256 MB at a million photos; Johnson-
   Lindenstrauss: normalised, they keep cosines to about (1 - cos^2) / sqrt(SKETCH_DIM));
3. re-rank the best RERANK by their full stored vectors, read from the database in one query: the scores
   returned are exact cosine similarities.

Measured at a million (bench/similar.py, bench/README.md): the float sketch scan of step 2 over every photo
was 50-100 ms of one core's memory bandwidth; the shortlist finds the same top RERANK (recall unchanged on the bench's
synthetic sets), and
the re-rank's fetch (256 x 2.5 KB) is then most of a query's time.
"""

from __future__ import annotations

import threading
from contextlib import contextmanager
from functools import lru_cache
from typing import Iterator, Mapping, Optional, Sequence

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session
from threadpoolctl import ThreadpoolController

from db.models import EmbeddingRow, ImageHashRow, utcnow
from db.records import insert_absent

VECTOR_DTYPE = "<f2"  # little-endian float16: 2.5 KB a photo at Lite0's 1280 features
SKETCH_DIM = 128  # numbers per sketch (a multiple of 64: their signs are packed in 64-bit words)
SKETCH_SEED = 20261127  # the projection is fixed per dimension: a sketch stored once stays valid
SHORTLIST = 4096  # photos nearest by the sketches' sign bits, then scored by the float sketches
# Candidates from the sketch scan re-ranked by their full vectors. 64 would fetch a quarter as much, but on the
# bench's 200,000 clustered vectors finds 43 % of the exact top 5 where 256 finds 90 %.
RERANK = 256
LOAD_PAGE = 50_000  # rows read per query when an index loads
# Most differing bits of two 64-bit pHashes for near-duplicates. Measured on the 300 shared Food-101 photos:
# a copy resized to 35-80 % and re-encoded at JPEG quality 50-90 differs in at most 4 bits; two different
# photos in at least 14 (1 % of pairs under 22).
NEAR_DUPLICATE_BITS = 8


# ---- writing ----------------------------------------------------------------------------------


@contextmanager
def one_blas_thread() -> Iterator[None]:
    """numpy's BLAS (OpenBLAS) on one thread for a small product. Its pool's idle workers spin for milliseconds
    after every call: beside the model's threads that spinning took most of a core, and ingest ran at 91 photos/s
    instead of 112-125 on the 2-core bench machine (bench/README.md). A lock, as the limit is process-wide."""
    with _BLAS_LOCK, _blas_pools().limit(limits=1, user_api="blas"):
        yield


@lru_cache(maxsize=1)
def _blas_pools() -> ThreadpoolController:
    return ThreadpoolController()  # finds the loaded BLAS libraries: once, it reads the process's shared objects


_BLAS_LOCK = threading.Lock()


@lru_cache(maxsize=8)
def projection(dim: int) -> np.ndarray:
    """The (dim, SKETCH_DIM) random projection for vectors of this dimension (the same in every process)."""
    rng = np.random.default_rng(SKETCH_SEED + dim)
    return (rng.standard_normal((dim, SKETCH_DIM)) / np.sqrt(SKETCH_DIM)).astype(np.float32)


def encode_embedding(features: Sequence[float]) -> tuple[bytes, bytes]:
    """(vector, sketch) bytes of a photo's features: both L2-normalised, float16."""
    [encoded] = encode_embeddings(np.asarray(features, dtype=np.float32).reshape(1, -1))
    return encoded


def encode_embeddings(features: np.ndarray) -> list[tuple[bytes, bytes]]:
    """encode_embedding of each row of a (photos, dim) matrix (to float rounding), in one matrix product."""
    vectors = np.asarray(features, dtype=np.float32)
    vectors = vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
    with one_blas_thread():
        sketches = vectors @ projection(vectors.shape[1])
    sketches = sketches / np.maximum(np.linalg.norm(sketches, axis=1, keepdims=True), 1e-12)
    vectors, sketches = vectors.astype(VECTOR_DTYPE), sketches.astype(VECTOR_DTYPE)
    return [(vector.tobytes(), sketch.tobytes()) for vector, sketch in zip(vectors, sketches)]


def record_embeddings(session: Session, embeddings: Sequence[tuple[int, str, Sequence[float]]]) -> None:
    """Keep photos' embeddings, (image id, model fingerprint, features) each, in one INSERT per model; once per photo
    and fingerprint (a second write is ignored)."""
    by_model: dict[str, list[tuple[int, Sequence[float]]]] = {}
    for image_id, fingerprint, features in embeddings:
        if len(features):  # empty: a model whose classification layer was not found, so no similar photos by it
            by_model.setdefault(fingerprint, []).append((image_id, features))
    for fingerprint, rows in by_model.items():
        encoded = encode_embeddings(np.asarray([features for _, features in rows], dtype=np.float32))
        now = utcnow()
        values = [
            dict(image_id=image_id, fingerprint=fingerprint, vector=vector, sketch=sketch, created_at=now)
            for (image_id, _), (vector, sketch) in zip(rows, encoded)
        ]
        insert_absent(session, EmbeddingRow, ["fingerprint", "image_id"], values)


def record_embedding(session: Session, image_id: int, fingerprint: str, features: Sequence[float]) -> None:
    """Keep a photo's embedding by one model (once per photo and fingerprint; a second write is ignored)."""
    record_embeddings(session, [(image_id, fingerprint, features)])


def record_hashes(session: Session, hashes: Mapping[int, str]) -> None:
    """Keep photos' perceptual hashes (image id -> 16 hex digits; once per photo), in one INSERT."""
    insert_absent(session, ImageHashRow, ["image_id"], [dict(image_id=i, phash=h) for i, h in hashes.items()])


def record_hash(session: Session, image_id: int, phash: str) -> None:
    """Keep a photo's perceptual hash (16 hex digits; once per photo)."""
    record_hashes(session, {image_id: phash})


def embedded_images(session: Session, image_ids: list[int], fingerprint: str) -> set[int]:
    """Which of these photos have an embedding by the model with this fingerprint."""
    return set(
        session.scalars(
            select(EmbeddingRow.image_id).where(
                EmbeddingRow.fingerprint == fingerprint, EmbeddingRow.image_id.in_(image_ids)
            )
        )
    )


def hashed_images(session: Session, image_ids: list[int]) -> set[int]:
    """Which of these photos have a perceptual hash."""
    return set(session.scalars(select(ImageHashRow.image_id).where(ImageHashRow.image_id.in_(image_ids))))


# ---- the in-memory indexes ----------------------------------------------------------------------


class _Index:
    """Rows of one table (filtered), loaded once and then only those added since (by row id)."""

    table = None

    def __init__(self, width: int, dtype):
        self.lock = threading.Lock()
        self.width, self.dtype = width, dtype
        self.reset()

    def reset(self) -> None:
        self.image_ids = np.zeros(0, dtype=np.int64)
        self.values = np.zeros((0, self.width), dtype=self.dtype)
        self.size = 0
        self.last_id = 0  # the table's row id of the newest row loaded

    def where(self):
        return ()

    def decode(self, rows) -> np.ndarray:
        raise NotImplementedError

    def columns(self):
        raise NotImplementedError

    def refresh(self, session: Session) -> None:
        """Load the rows added since the last call (all of them the first time, or after the table was remade)."""
        if self.size:
            newest = session.scalar(select(self.table.image_id).where(self.table.id == self.last_id))
            if newest != int(self.image_ids[self.size - 1]):
                self.reset()  # a different database at the same URL (a test's, or one restored from a backup)
        while True:
            rows = session.execute(
                select(self.table.id, self.table.image_id, *self.columns())
                .where(self.table.id > self.last_id, *self.where())
                .order_by(self.table.id)
                .limit(LOAD_PAGE)
            ).all()
            if not rows:
                return
            self._append(np.array([r[1] for r in rows], dtype=np.int64), self.decode(rows))
            self.last_id = rows[-1][0]

    def _append(self, image_ids: np.ndarray, values: np.ndarray) -> None:
        needed = self.size + len(image_ids)
        if needed > len(self.image_ids):  # grow by doubling: a million rows load in ~20 pages, not 20 copies
            capacity = max(needed, 2 * len(self.image_ids), 1024)
            self.image_ids = np.resize(self.image_ids, capacity)
            grown = np.zeros((capacity, self.values.shape[1]), dtype=self.values.dtype)
            grown[: self.size] = self.values[: self.size]
            self.values = grown
        self.image_ids[self.size : needed] = image_ids
        self.values[self.size : needed] = values
        self.size = needed


class _SketchIndex(_Index):
    """The sketches of one model's embeddings (float16), and their signs packed as bits, a column per 64 bits.

    A search first counts differing sign bits against every photo (SimHash: the share of differing signs of
    random projections estimates the angle between two vectors): 16 bytes a photo at 128 numbers, so a million
    photos are scanned in a few milliseconds. The SHORTLIST nearest by bits (all those tied at the cut as well)
    are then scored by their float sketches, and the best of those re-ranked by the full vectors.
    """

    table = EmbeddingRow

    def __init__(self, fingerprint: str):
        self.fingerprint = fingerprint
        super().__init__(SKETCH_DIM, np.float16)

    def reset(self) -> None:
        super().reset()
        self.words = np.zeros((self.width // 64, 0), dtype=np.uint64)

    def where(self):
        return (EmbeddingRow.fingerprint == self.fingerprint,)

    def columns(self):
        return (EmbeddingRow.sketch,)

    def decode(self, rows) -> np.ndarray:
        return np.frombuffer(b"".join(r[2] for r in rows), dtype=VECTOR_DTYPE).reshape(len(rows), SKETCH_DIM)

    def _append(self, image_ids: np.ndarray, values: np.ndarray) -> None:
        start = self.size
        super()._append(image_ids, values)
        if self.words.shape[1] < len(self.image_ids):  # grown with the other arrays
            grown = np.zeros((self.words.shape[0], len(self.image_ids)), dtype=np.uint64)
            grown[:, :start] = self.words[:, :start]
            self.words = grown
        self.words[:, start : self.size] = sign_words(values).T

    def candidates(self, sketch: np.ndarray, count: int, leave_out: int) -> np.ndarray:
        """Image ids of the `count` sketches nearest to `sketch`, best first, without `leave_out`."""
        shortlist = self.shortlist(sketch, max(SHORTLIST, count), leave_out)
        scores = self.values[shortlist].astype(np.float32) @ np.asarray(sketch, dtype=np.float32)
        if count < len(shortlist):
            best = np.argpartition(-scores, count - 1)[:count]
            shortlist, scores = shortlist[best], scores[best]
        return self.image_ids[shortlist[np.argsort(-scores, kind="stable")]]

    def shortlist(self, sketch: np.ndarray, count: int, leave_out: int) -> np.ndarray:
        """Rows of the `count` sketches with the fewest sign bits unlike `sketch`'s (and any tied with the last),
        without `leave_out`'s, in row order."""
        size = self.size
        query = sign_words(np.asarray(sketch).reshape(1, -1))[0]
        differing = np.zeros(size, dtype=np.uint8)
        scratch = np.empty(size, dtype=np.uint64)
        for column, word in zip(self.words, query):
            np.bitwise_xor(column[:size], word, out=scratch)
            differing += np.bitwise_count(scratch)
        # The cut: the fewest differing bits that take in count + 1 rows (the query's own may be one of them),
        # guessed from every 16th row (a count of all of them is slower than the scan), then checked.
        wanted = min(count + 1, size)
        sample = np.cumsum(np.bincount(differing[::16], minlength=self.width + 1))
        within = int(np.searchsorted(sample, wanted / 16))  # an int: a numpy one would widen `differing`
        while within > 0 and np.count_nonzero(differing <= within - 1) >= wanted:
            within -= 1
        while within < self.width and np.count_nonzero(differing <= within) < wanted:
            within += 1
        rows = np.flatnonzero(differing <= within)
        return rows[self.image_ids[rows] != leave_out]


def sign_words(sketches: np.ndarray) -> np.ndarray:
    """The signs of each row's numbers as bits, packed into 64-bit words: (rows, SKETCH_DIM / 64) uint64."""
    return np.packbits(sketches > 0, axis=1).view(np.uint64)


class _HashIndex(_Index):
    table = ImageHashRow

    def __init__(self):
        super().__init__(1, np.uint64)

    def columns(self):
        return (ImageHashRow.phash,)

    def decode(self, rows) -> np.ndarray:
        return np.array([int(r[2], 16) for r in rows], dtype=np.uint64).reshape(-1, 1)

    def near(self, phash: str, bits: int) -> list[tuple[int, int]]:
        """(image id, differing bits) of every hash within `bits` of this one, nearest first."""
        distance = np.bitwise_count(self.values[: self.size, 0] ^ np.uint64(int(phash, 16)))
        found = np.flatnonzero(distance <= bits)
        found = found[np.argsort(distance[found], kind="stable")]
        return [(int(self.image_ids[i]), int(distance[i])) for i in found]


_INDEXES: dict[tuple, _Index] = {}
_INDEXES_LOCK = threading.Lock()


def _index(session: Session, key: tuple, make) -> _Index:
    key = (session.get_bind().url.render_as_string(hide_password=True),) + key
    with _INDEXES_LOCK:
        if key not in _INDEXES:
            _INDEXES[key] = make()
        return _INDEXES[key]


def forget_indexes() -> None:
    """Drop every in-memory index (tests; the next search loads afresh)."""
    with _INDEXES_LOCK:
        _INDEXES.clear()


# ---- searching ----------------------------------------------------------------------------------


def similar_images(session: Session, image_id: int, fingerprint: str, k: int) -> Optional[list[tuple[int, float]]]:
    """The k photos whose embeddings by this model are nearest to this photo's: (image id, cosine), best first.

    Returns:
        None when the photo has no embedding by this model (not classified by it yet: see reclassify).
    """
    query = session.execute(
        select(EmbeddingRow.vector, EmbeddingRow.sketch).where(
            EmbeddingRow.fingerprint == fingerprint, EmbeddingRow.image_id == image_id
        )
    ).one_or_none()
    if query is None:
        return None
    if k <= 0:
        return []
    index = _index(session, ("sketch", fingerprint), lambda: _SketchIndex(fingerprint))
    with index.lock:
        index.refresh(session)
        sketch = np.frombuffer(query.sketch, dtype=VECTOR_DTYPE).astype(np.float32)
        candidates = index.candidates(sketch, max(RERANK, 4 * k), leave_out=image_id).tolist()
    if not candidates:
        return []
    rows = session.execute(
        select(EmbeddingRow.image_id, EmbeddingRow.vector).where(
            EmbeddingRow.fingerprint == fingerprint, EmbeddingRow.image_id.in_(candidates)
        )
    ).all()
    vectors = np.frombuffer(b"".join(r[1] for r in rows), dtype=VECTOR_DTYPE).reshape(len(rows), -1)
    scores = vectors.astype(np.float32) @ np.frombuffer(query.vector, dtype=VECTOR_DTYPE).astype(np.float32)
    order = np.argsort(-scores, kind="stable")[:k]
    return [(int(rows[i][0]), float(scores[i])) for i in order]


def photo_hash(session: Session, image_id: int) -> Optional[str]:
    """A photo's perceptual hash, or None (stored before 0007 and not yet backfilled by reclassify)."""
    return session.scalar(select(ImageHashRow.phash).where(ImageHashRow.image_id == image_id))


def near_duplicate_images(
    session: Session, image_id: int, bits: int = NEAR_DUPLICATE_BITS
) -> Optional[list[tuple[int, int]]]:
    """Other photos whose perceptual hash is within `bits` of this photo's: (image id, differing bits), nearest
    first (then oldest first). None when the photo has no hash."""
    phash = photo_hash(session, image_id)
    if phash is None:
        return None
    return near_duplicates_of(session, {image_id: phash}, bits)[image_id]


def near_duplicates_of(
    session: Session, hashes: Mapping[int, str], bits: int = NEAR_DUPLICATE_BITS
) -> dict[int, list[tuple[int, int]]]:
    """near_duplicate_images of several photos whose hashes are known (image id -> hash): the index is brought
    up to date once for them all."""
    index = _index(session, ("phash",), _HashIndex)
    with index.lock:
        index.refresh(session)
        return {
            image_id: [(other, distance) for other, distance in index.near(phash, bits) if other != image_id]
            for image_id, phash in hashes.items()
        }
