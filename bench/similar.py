"""Similar photos at scale: how long does `/v1/images/{id}/similar` wait on the search, at 100k and 1M photos?

    python bench/similar.py [--sizes 100000 1000000] [--dim 1280] [--queries 200] [--url postgresql+psycopg://...]

For each size, fills a fresh database (a temp SQLite file, and the PostgreSQL database --url names, which must
be EMPTY) with synthetic embeddings at Lite0's dimension, clustered as a model's features of dishes are
(500 centres), through db.similar's own encoding. Then times db.similar.similar_images (k=5): the first
query (the process loads its index), and `--queries` more: median and p99, the ratio 1M/100k, and recall@5
of the sketch scan + exact re-rank against an exact scan of the full vectors. Target: under 100 ms at 1M.

First (unless --no-precision), precision@5 on real photos: a Lite0 model trained on 4 shared photos of each
dish (--photos, the shared pizza_steak_sushi set; skipped when absent), 12 test photos of each stored, and
the share of each one's 5 similar photos showing the same dish (tests/test_similar.py asserts on it too).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sqlalchemy import insert, text  # noqa: E402
from sqlalchemy.orm import Session  # noqa: E402

import db.similar  # noqa: E402
from db.engine import close_database, open_database  # noqa: E402
from db.models import EmbeddingRow, utcnow  # noqa: E402
from db.similar import VECTOR_DTYPE, encode_embeddings, forget_indexes, similar_images  # noqa: E402
from foodclf.classifier import forget_classifiers, load_classifier  # noqa: E402
from foodclf.ingest import ingest_in_order  # noqa: E402
from foodclf.moderation import similar_photos  # noqa: E402
from foodclf.settings import Settings  # noqa: E402
from foodclf.training.train import train_model  # noqa: E402

# The shared photos (../shared/data beside the checkout, as the tests find them): precision@5 needs them.
FOOD_PHOTOS = Path(__file__).resolve().parents[2] / "shared" / "data" / "food-photos" / "pizza_steak_sushi"
SEED = 17
CHUNK = 20_000
CENTRES = 500
FINGERPRINT = "b" * 64
K = 5


def synthetic(n: int, dim: int, rng: np.random.Generator, centres: np.ndarray) -> np.ndarray:
    return centres[rng.integers(0, len(centres), n)] + 0.7 * rng.standard_normal((n, dim), dtype=np.float32)


def fill(engine, size: int, dim: int) -> tuple[float, np.ndarray]:
    """Insert `size` embeddings (image ids 1..size); returns (seconds, the query vectors' full float32 rows)."""
    rng = np.random.default_rng(SEED)
    centres = rng.standard_normal((CENTRES, dim), dtype=np.float32)
    started = time.perf_counter()
    with engine.begin() as connection:
        if engine.dialect.name == "sqlite":  # no image rows behind these: the bench times the search only
            connection.exec_driver_sql("PRAGMA foreign_keys=OFF")
        else:
            connection.execute(text("ALTER TABLE embeddings DROP CONSTRAINT fk_embeddings_image_id_images"))
    now = utcnow()
    for start in range(0, size, CHUNK):
        vectors = synthetic(min(CHUNK, size - start), dim, rng, centres)
        rows = [
            dict(image_id=start + offset + 1, fingerprint=FINGERPRINT, vector=full, sketch=sketch, created_at=now)
            for offset, (full, sketch) in enumerate(encode_embeddings(vectors))
        ]
        with engine.begin() as connection:
            if engine.dialect.name == "sqlite":
                connection.exec_driver_sql("PRAGMA foreign_keys=OFF")
            connection.execute(insert(EmbeddingRow), rows)
        print(f"  {start + len(rows):,} rows", end="\r", flush=True)
    return time.perf_counter() - started


def exact_top(matrix: np.ndarray, ids: np.ndarray, query_id: int) -> set[int]:
    scores = matrix @ matrix[query_id - 1]
    scores[query_id - 1] = -np.inf
    return set(ids[np.argpartition(-scores, K)[:K]].tolist())


def measure(url: str, size: int, dim: int, queries: int, recall_queries: int) -> dict:
    engine = open_database(url)
    fill_s = fill(engine, size, dim)
    forget_indexes()
    rng = np.random.default_rng(SEED + 1)
    picks = rng.integers(1, size + 1, queries + 1).tolist()
    with Session(engine) as session:
        started = time.perf_counter()
        similar_images(session, picks[0], FINGERPRINT, K)
        first_s = time.perf_counter() - started
        times, found = [], {}
        for image_id in picks[1:]:
            started = time.perf_counter()
            found[image_id] = [i for i, _ in similar_images(session, image_id, FINGERPRINT, K)]
            times.append(time.perf_counter() - started)
        recall = None
        if recall_queries:
            # Exact neighbours from the full stored vectors, scanned in float32 (what the sketch saves us from).
            rows = session.execute(
                text("SELECT image_id, vector FROM embeddings WHERE fingerprint = :f ORDER BY image_id"),
                {"f": FINGERPRINT},
            )
            matrix = np.empty((size, dim), dtype=np.float32)
            for image_id, vector in rows:
                matrix[image_id - 1] = np.frombuffer(vector, dtype=VECTOR_DTYPE)
            ids = np.arange(1, size + 1)
            checked = picks[1 : recall_queries + 1]
            recall = sum(len(exact_top(matrix, ids, q) & set(found[q])) for q in checked) / (K * len(checked))
            del matrix
    close_database(url)
    times_ms = sorted(1000 * t for t in times)
    return {
        "fill_s": fill_s,
        "first_s": first_s,
        "median_ms": statistics.median(times_ms),
        "p99_ms": times_ms[min(len(times_ms) - 1, int(0.99 * len(times_ms)))],
        "recall": recall,
    }


def dish_precision(settings, photos: Path, work: Path, train_per_dish: int = 4, test_per_dish: int = 12) -> dict:
    """Precision@5 of same-dish neighbours on real photos: the share of each test photo's 5 similar photos that
    show the same dish, by a Lite0 model trained (head only: the pooled features are Lite0's own) on a few
    photos of each dish of `photos` (a folder of train/DISH and test/DISH photos).

    `settings` names an empty database; `work` a folder for the trained model. Returns {dish: [the share for
    each of its test photos, in file-name order]}.
    """
    dishes = sorted(path.name for path in (photos / "train").iterdir() if path.is_dir())
    train = work / "train"
    for dish in dishes:
        (train / dish).mkdir(parents=True)
        for path in sorted((photos / "train" / dish).glob("*.jpg"))[:train_per_dish]:
            (train / dish / path.name).symlink_to(path)
    report = train_model(settings, train, out=work / "lite0", register=False)
    forget_classifiers()
    try:
        classifier = load_classifier(settings.replace(model=str(report.folder)))
        engine = open_database(settings)
        test = [path for dish in dishes for path in sorted((photos / "test" / dish).glob("*.jpg"))[:test_per_dish]]
        named = [(path.name, path.read_bytes()) for path in test]
        outcomes = ingest_in_order(engine, settings, classifier, named, source="upload", added_by="bench")
        dish_of = {outcome.content_id: path.parent.name for outcome, path in zip(outcomes, test)}
        shares: dict[str, list[float]] = {dish: [] for dish in dishes}
        for outcome, path in zip(outcomes, test):
            neighbours = similar_photos(engine, outcome.photo, K)
            same = sum(dish_of[n.photo.content_id] == path.parent.name for n in neighbours)
            shares[path.parent.name].append(same / K)
        return shares
    finally:
        forget_classifiers()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="*", default=[100_000, 1_000_000], help="none: precision only")
    parser.add_argument("--dim", type=int, default=1280, help="features per photo (EfficientNet-Lite0: 1280)")
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--recall-queries", type=int, default=50, help="queries checked against an exact scan")
    parser.add_argument(
        "--sketch-dim", type=int, default=db.similar.SKETCH_DIM, help="another sketch size (a multiple of 64)"
    )
    parser.add_argument("--url", help="an EMPTY PostgreSQL database to run on as well (fresh per size: see below)")
    parser.add_argument("--photos", default=str(FOOD_PHOTOS), help="train/DISH and test/DISH photos for precision@5")
    parser.add_argument("--no-precision", action="store_true", help="skip precision@5 on the real photos")
    args = parser.parse_args()
    if not args.no_precision:
        report_precision(Path(args.photos))
    db.similar.SKETCH_DIM = args.sketch_dim  # read by encode_embedding and the index at each call
    print(f"sketch of {args.sketch_dim} numbers, shortlist of {db.similar.SHORTLIST}, re-rank of {db.similar.RERANK}")

    results: dict[tuple[str, int], dict] = {}
    for size in args.sizes:
        backends = [("sqlite", f"sqlite:///{Path(tempfile.mkdtemp(prefix='foodclf-similar-')) / 'similar.db'}")]
        if args.url:
            backends.append(("postgresql", args.url))
        for backend, url in backends:
            if backend == "postgresql":
                reset_postgres(url)
            print(f"{backend}, {size:,} embeddings of {args.dim}:")
            result = measure(url, size, args.dim, args.queries, args.recall_queries if size <= 1_000_000 else 0)
            results[(backend, size)] = result
            recall = "" if result["recall"] is None else f", recall@{K} {result['recall']:.3f}"
            print(
                f"  filled in {result['fill_s']:.0f} s; first query (loads the index) {result['first_s']:.1f} s; "
                f"then median {result['median_ms']:.1f} ms, p99 {result['p99_ms']:.1f} ms{recall}"
            )
    sizes = sorted(args.sizes)
    for backend in ("sqlite", "postgresql"):
        if len(sizes) > 1 and (backend, sizes[0]) in results and (backend, sizes[-1]) in results:
            small, large = results[(backend, sizes[0])], results[(backend, sizes[-1])]
            median, p99 = large["median_ms"] / small["median_ms"], large["p99_ms"] / small["p99_ms"]
            print(f"{backend}: {sizes[-1]:,} / {sizes[0]:,} photos: median x{median:.1f}, p99 x{p99:.1f}")
    for size in sizes:
        if ("sqlite", size) in results and ("postgresql", size) in results:
            ratio = results[("postgresql", size)]["median_ms"] / results[("sqlite", size)]["median_ms"]
            print(f"{size:,} photos: PostgreSQL / SQLite median x{ratio:.2f}")


def report_precision(photos: Path) -> None:
    """Print precision@5 of same-dish neighbours on the real photos (skipped when they are absent)."""
    if not (photos / "train").is_dir():
        print(f"precision@{K}: skipped, no photos at {photos}")
        return
    work = Path(tempfile.mkdtemp(prefix="foodclf-similar-precision-"))
    settings = Settings(
        database_url=f"sqlite:///{work / 'photos.db'}",
        image_dir=str(work / "images"),
        model_dir=str(work / "models"),
        cache_dir=str(work / "cache"),
        device="cpu",
        precision="fp32",
        workers=1,
    )
    shares = dish_precision(settings, photos, work)
    close_database(settings.database_url)
    every = [share for dish in shares.values() for share in dish]
    per_dish = ", ".join(f"{dish} {np.mean(found):.2f}" for dish, found in shares.items())
    print(f"precision@{K} of same-dish neighbours, {len(every)} real photos: {np.mean(every):.3f} ({per_dish})")


def reset_postgres(url: str) -> None:
    """Empty the PostgreSQL database the bench was given (its tables are remade by the migrations)."""
    from sqlalchemy import create_engine

    engine = create_engine(url)
    with engine.begin() as connection:
        connection.execute(text("DROP SCHEMA public CASCADE"))
        connection.execute(text("CREATE SCHEMA public"))
    engine.dispose()
    close_database(url)


if __name__ == "__main__":
    main()
