"""Bulk ingest throughput: the same photos through the local engine and through Ray with 1 and 2 actors.

    python bench/ingest_scale.py [--images DIR] [--model DIR] [--n N] [--actors 1,2]

Each engine ingests the same N photos into its own fresh SQLite file and image folder (so each run
classifies and stores every photo), and the script prints photos/s and the ratio to the local
engine. Ray's figures include starting the actor pool (each actor loads the model) but not
starting Ray itself, which a cluster has already done; its start time is printed apart. The
default model is a ViT-Base-sized random model with 101 labels (the cost of the default
nateraw/food), as bench/throughput.py uses.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import ray  # noqa: E402
import torch  # noqa: E402
from throughput import build_vit_base  # noqa: E402  (bench/throughput.py: the same ViT-Base)

from foodclf.bulk_ray import ingest_folder_ray  # noqa: E402
from foodclf.classifier import load_classifier  # noqa: E402
from foodclf.ingest import ingest_folder  # noqa: E402
from foodclf.settings import Settings  # noqa: E402

SEED = 0
ROOT = Path(__file__).resolve().parents[1]
PHOTOS = ROOT.parent / "shared" / "data" / "food-photos" / "pizza_steak_sushi"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", default=str(PHOTOS), help="folder of photos (default: the shared 300)")
    parser.add_argument("--model", help="model folder (default: a random ViT-Base with 101 labels)")
    parser.add_argument("--n", type=int, default=96, help="photos per run")
    parser.add_argument("--actors", default="1,2", help="Ray actor counts to measure")
    parser.add_argument("--batch-size", type=int, default=16)
    args = parser.parse_args()
    torch.manual_seed(SEED)
    work = Path(tempfile.mkdtemp(prefix="foodclf-ingest-scale-"))
    folder = work / "photos"
    folder.mkdir()
    photos = sorted(p for p in Path(args.images).rglob("*") if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
    for path in photos[: args.n]:
        shutil.copy(path, folder / f"{len(os.listdir(folder)):04d}{path.suffix}")
    n = len(os.listdir(folder))
    model = args.model or str(build_vit_base(work / "vit-base"))

    def settings(name: str) -> Settings:
        return Settings(
            model=model,
            database_url=f"sqlite:///{work / name / 'foodclf.db'}",
            image_dir=str(work / name / "images"),
            device="cpu",
            precision="fp32",
            batch_size=args.batch_size,
        )

    print(f"{n} photos, model {model}, fp32 batch {args.batch_size}, torch threads {torch.get_num_threads()}")
    local = settings("local")
    t0 = time.perf_counter()
    report = ingest_folder(local, folder, load_classifier(local))
    local_rate = report.stored / (time.perf_counter() - t0)
    print(f"{'local engine (model load included)':<40} {local_rate:8.2f} photos/s  1.00x")

    t0 = time.perf_counter()
    ray.init(num_cpus=os.cpu_count(), include_dashboard=False, log_to_driver=False)
    print(f"(Ray started in {time.perf_counter() - t0:.1f} s, not counted)")
    for actors in (int(a) for a in args.actors.split(",")):
        run = settings(f"ray-{actors}")
        t0 = time.perf_counter()
        report = ingest_folder_ray(run, str(folder), model, actors=actors)
        rate = report.stored / (time.perf_counter() - t0)
        print(f"{f'Ray, {actors} actor(s) (pool start included)':<40} {rate:8.2f} photos/s  {rate / local_rate:.2f}x")
    ray.shutdown()
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
