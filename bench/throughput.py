"""Classification throughput: foodclf's batch path against the plain way and the model's own limit.

    python bench/throughput.py [--model DIR] [--images DIR] [--n N] [--batch-size B]

Runs, in one process and on the same photos:
  0. the machine's own limit: large square matmuls in fp32 and bf16 (a roofline's compute ceiling)
  1. plain:  transformers.pipeline("image-classification") called once per photo, fp32
  2. limit:  the raw model forward on pre-made tensors, fp32, at the batch size (no decoding)
  3. foodclf batch path, fp32
  4. the raw model forward on pre-made tensors, fast arithmetic (bf16 where native)
  5. foodclf batch path, fast arithmetic (FOODCLF_PRECISION=auto: bf16 where native)
  6. end to end: foodclf's ingest (decode, classify, store photo and prediction) into a fresh database
and prints photos/second, the ratios, each stage's share of the matmul peak of its arithmetic (the
model's FLOPs per photo counted with torch's FlopCounterMode), and how often 5's top-1 label differs
from 3's.
Without --model it builds a randomly initialised ViT-Base with 101 labels: exactly the cost of
the default nateraw/food model, which cannot be downloaded here.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from db.engine import close_database, open_database  # noqa: E402
from foodclf.classifier import cpu_has_native_bf16, load_classifier, pick_device  # noqa: E402
from foodclf.images import find_images, load_image  # noqa: E402
from foodclf.ingest import ingest_photos  # noqa: E402
from foodclf.labels import FOOD101_LABELS  # noqa: E402
from foodclf.settings import Settings  # noqa: E402

DEFAULT_IMAGES = Path(__file__).resolve().parents[2] / "shared" / "data" / "food-photos" / "pizza_steak_sushi"
SEED = 1337
BURN_IN = 2  # batches run before timing: allocator and oneDNN kernels warm up


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", help="model folder (default: a random ViT-Base with 101 labels)")
    parser.add_argument("--images", default=str(DEFAULT_IMAGES), help="folder of photos")
    parser.add_argument("--n", type=int, default=96, help="photos to classify in each stage")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()

    torch.manual_seed(SEED)
    paths = find_images([args.images])[: args.n]
    if not paths:
        sys.exit(f"no photos under {args.images}; pass --images DIR")
    model_dir = args.model or build_vit_base(Path(tempfile.mkdtemp(prefix="foodclf-bench-")))
    device = pick_device(args.device)
    base = Settings(model=str(model_dir), device=args.device, batch_size=args.batch_size, workers=args.workers, top_k=0)

    print(
        f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, device {device}, "
        f"native bf16 on CPU: {cpu_has_native_bf16()}"
    )
    print(f"model: {model_dir}   photos: {len(paths)} from {args.images}   batch size: {args.batch_size}")

    peaks = {"fp32": matmul_peak(torch.float32, device), "bf16": matmul_peak(torch.bfloat16, device)}
    print(f"matmul peak: fp32 {peaks['fp32']:.0f} GFLOP/s, bf16 {peaks['bf16']:.0f} GFLOP/s (2048² squares)")
    plain = time_plain_pipeline(model_dir, paths, device)
    fp32 = load_classifier(base.replace(precision="fp32"))
    print(f"model load: {fp32.load_seconds:.1f} s (once per process; weights fingerprint included)")
    flops = flops_per_photo(fp32, paths)
    print(f"model: {flops / 1e9:.2f} GFLOP per photo (FlopCounterMode, one forward at the batch size)")
    limit = time_raw_forward(fp32, paths, args.batch_size)
    ours32, labels32 = time_batch_path(fp32, paths)
    fast = load_classifier(base.replace(precision="auto"))
    limit_fast = time_raw_forward(fast, paths, args.batch_size)
    ours_fast, labels_fast = time_batch_path(fast, paths)
    stored = time_ingest(fast, base, paths)

    agreement = sum(a == b for a, b in zip(labels32, labels_fast)) / len(paths)
    fast_peak = peaks["bf16"] if fast.precision == "bf16" else peaks["fp32"]
    rows = [
        ("1 plain pipeline, per photo, fp32", plain, peaks["fp32"]),
        ("2 raw forward on tensors, fp32", limit, peaks["fp32"]),
        ("3 foodclf batch path, fp32", ours32, peaks["fp32"]),
        (f"4 raw forward on tensors, {fast.precision}", limit_fast, fast_peak),
        (f"5 foodclf batch path, {fast.precision}", ours_fast, fast_peak),
        (f"6 ingest end to end, {fast.precision}", stored, fast_peak),
    ]
    print()
    print(f"{'stage':<40} {'photos/s':>9} {'ms/photo':>9} {'GFLOP/s':>8} {'of peak':>8}")
    for name, rate, peak in rows:
        achieved = rate * flops / 1e9
        print(f"{name:<40} {rate:9.2f} {1000 / rate:9.1f} {achieved:8.0f} {achieved / peak:8.1%}")
    print()
    print(
        f"3/1 = {ours32 / plain:5.2f}   3/2 = {ours32 / limit:5.2f}   "
        f"5/1 = {ours_fast / plain:5.2f}   5/4 = {ours_fast / limit_fast:5.2f}   6/5 = {stored / ours_fast:5.2f}"
    )
    print(f"top-1 agreement of 5 ({fast.precision}) with 3 (fp32): {agreement:.1%} of {len(paths)} photos")


def matmul_peak(dtype, device, n: int = 2048, repeats: int = 8) -> float:
    """GFLOP/s of n×n matmuls in `dtype`: the most this machine's matrix units give a model, measured."""
    a = torch.randn(n, n, device=device).to(dtype)
    b = torch.randn(n, n, device=device).to(dtype)
    for _ in range(2):  # warm-up: oneDNN picks and caches its kernel
        torch.mm(a, b)
    synchronize(device)
    best = float("inf")
    for _ in range(repeats):  # the best of several: the ceiling, not the average under other load
        started = time.perf_counter()
        torch.mm(a, b)
        synchronize(device)
        best = min(best, time.perf_counter() - started)
    return 2 * n**3 / best / 1e9


def flops_per_photo(classifier, paths) -> float:
    """The model's floating-point operations per photo (multiply-adds count two), counted by torch."""
    from torch.utils.flop_counter import FlopCounterMode

    images = [load_image(p).image for p in paths[: classifier.batch_size]]
    batch = classifier.preprocess(images)
    counter = FlopCounterMode(display=False)
    with counter, torch.inference_mode():
        classifier._forward(batch)
    return counter.get_total_flops() / len(images)


def time_ingest(classifier, base: Settings, paths) -> float:
    """foodclf's ingest, the whole way: read, decode, classify, store the file and the rows (a temp SQLite)."""
    work = Path(tempfile.mkdtemp(prefix="foodclf-bench-ingest-"))
    settings = base.replace(database_url=f"sqlite:///{work / 'bench.db'}", image_dir=str(work / "images"))
    engine = open_database(settings)
    started = time.perf_counter()
    outcomes = list(
        ingest_photos(engine, settings, classifier, [(None, p) for p in paths], source="folder", added_by="bench")
    )
    seconds = time.perf_counter() - started
    close_database(settings)
    failed = [o for o in outcomes if not o.ok]
    if failed:
        print(f"ingest: {len(failed)} of {len(outcomes)} photos not stored")
    return len(paths) / seconds


def build_vit_base(folder: Path) -> Path:
    """A randomly initialised ViT-Base/16 at 224 px with the 101 Food-101 labels (nateraw/food's shape)."""
    from transformers import ViTConfig, ViTForImageClassification, ViTImageProcessor

    config = ViTConfig(
        id2label=dict(enumerate(FOOD101_LABELS)), label2id={label: i for i, label in enumerate(FOOD101_LABELS)}
    )
    ViTForImageClassification(config).save_pretrained(folder)
    ViTImageProcessor(
        size={"height": 224, "width": 224}, image_mean=[0.5] * 3, image_std=[0.5] * 3, resample=2
    ).save_pretrained(folder)
    return folder


def synchronize(device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def time_plain_pipeline(model_dir, paths, device) -> float:
    """What a user writes first: the transformers pipeline, one photo per call."""
    from transformers import pipeline

    classify = pipeline("image-classification", model=str(model_dir), device=device)
    for path in paths[:BURN_IN]:
        classify(str(path))
    synchronize(device)
    started = time.perf_counter()
    for path in paths:
        classify(str(path), top_k=len(FOOD101_LABELS))
    synchronize(device)
    return len(paths) / (time.perf_counter() - started)


def time_raw_forward(classifier, paths, batch_size) -> float:
    """The model alone: fp32 forward passes over tensors made beforehand."""
    images = [load_image(p).image for p in paths]
    batches = [classifier.preprocess(images[i : i + batch_size]) for i in range(0, len(images), batch_size)]
    for batch in batches[:BURN_IN]:
        classifier._forward(batch)
    synchronize(classifier.device)
    started = time.perf_counter()
    for batch in batches:
        classifier._forward(batch)
    synchronize(classifier.device)
    return len(images) / (time.perf_counter() - started)


def time_batch_path(classifier, paths) -> tuple[float, list[str]]:
    """foodclf's streaming path: files in, sorted scores out, decoding overlapped with the model."""
    for _ in classifier.classify_many(paths[: BURN_IN * classifier.batch_size]):
        pass
    synchronize(classifier.device)
    started = time.perf_counter()
    labels = [item.result.highest_probability_class for item in classifier.classify_many(paths)]
    synchronize(classifier.device)
    return len(paths) / (time.perf_counter() - started), labels


if __name__ == "__main__":
    main()
