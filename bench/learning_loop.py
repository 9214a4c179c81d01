"""The learning loop on the shared food photos: a new dish taught only through imported labels.

    python bench/learning_loop.py [--data DIR] [--work DIR] [--no-replay]

1. A model trained on pizza and steak (train/) is in use.
2. Sushi is taught only through reviews: a CSV of the sushi photos of train/ is imported with
   `labels import` (each photo stored and classified by the model in use, then labelled).
3. `train --from-db --base current --activate`: the new model keeps pizza and steak (their training
   photos replayed from the folder the registry recorded, the old model's scores distilled) and learns
   sushi; the promotion gate compares it with the model in use on the frozen evaluation slice.
Prints, in one run: old dishes' accuracy before and after (on test/), the new dish's accuracy, the gate's
verdict, the calibration error before and after temperature scaling, and seconds per step.
--no-replay removes the recorded folder first, so only distillation keeps the old dishes.
"""

from __future__ import annotations

import argparse
import csv
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from db.export_rows import ExportFilters  # noqa: E402
from foodclf.classifier import forget_classifiers  # noqa: E402
from foodclf.evaluation.report import evaluate_model  # noqa: E402
from foodclf.label_import import import_labels  # noqa: E402
from foodclf.settings import Settings  # noqa: E402
from foodclf.training.train import train_model  # noqa: E402

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "food-photos" / "pizza_steak_sushi"
OLD, NEW = ("pizza", "steak"), "sushi"


def subset(root: Path, labels, into: Path) -> Path:
    """A <label>/ folder of links to some labels of root."""
    into.mkdir(parents=True)
    for label in labels:
        (into / label).symlink_to((root / label).resolve())
    return into


def accuracy(settings, model: str, folder: Path) -> float:
    forget_classifiers()
    return evaluate_model(settings, model, folder).metrics.accuracy


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default=str(DEFAULT_DATA))
    parser.add_argument("--work", help="folder for the database, images and models (default: a temporary one)")
    parser.add_argument("--cache", default="data/cache", help="feature cache (reused between runs)")
    parser.add_argument("--no-replay", action="store_true", help="forget the old training folder: distillation only")
    args = parser.parse_args()
    data = Path(args.data)
    work = Path(args.work or tempfile.mkdtemp(prefix="learning-loop-"))
    settings = Settings(
        model="efficientnet-lite0-unused",
        database_url=f"sqlite:///{work / 'foodclf.db'}",
        image_dir=str(work / "images"),
        model_dir=str(work / "models"),
        cache_dir=args.cache,
        device="cpu",
        precision="auto",
        reviewer="bench",
    )
    seconds = {}

    started = time.perf_counter()
    old_train = subset(data / "train", OLD, work / "old-train")
    first = train_model(settings, old_train, out=work / "models" / "pizza-steak", activate=True)
    seconds["1 train pizza+steak (head, Lite0)"] = time.perf_counter() - started
    assert first.activated, first.refused
    old_test, new_test = subset(data / "test", OLD, work / "old-test"), subset(data / "test", (NEW,), work / "new-test")
    old_before = accuracy(settings, str(first.folder), old_test)

    started = time.perf_counter()
    sheet = work / "sushi.csv"
    with open(sheet, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["path", "label", "note"])
        for path in sorted((data / "train" / NEW).iterdir()):
            writer.writerow([str(path.resolve()), "Sushi", "from the spreadsheet"])
    imported = import_labels(settings, sheet, reviewer="sheet import")
    seconds["2 labels import (store, classify, review)"] = time.perf_counter() - started
    again = import_labels(settings, sheet, reviewer="sheet import")

    if args.no_replay:
        shutil.rmtree(old_train)
    started = time.perf_counter()
    second = train_model(settings, ExportFilters(), base="current", out=work / "models" / "with-sushi", activate=True)
    seconds["3 train --from-db --base current --activate"] = time.perf_counter() - started

    started = time.perf_counter()
    old_after = accuracy(settings, str(second.folder), old_test)
    new_after = accuracy(settings, str(second.folder), new_test)
    all_after = accuracy(settings, str(second.folder), data / "test")
    seconds["4 evaluate on test/ (3 runs)"] = time.perf_counter() - started

    cal = json.loads((second.folder / "training.json").read_text()).get("calibration") or {}
    comparison = second.comparison
    print(f"work folder: {work}  (replay: {'off' if args.no_replay else 'on'})")
    print(f"import: {imported.summary()}; again: {again.summary()}")
    print(
        f"retrain: labels {second.labels}, kept {second.kept_labels}, new {second.new_labels}; "
        f"{second.replayed} photos replayed, {second.distilled} stored photos distilled; "
        f"{len(second.evaluation)} reviewed photos in the frozen evaluation slice"
    )
    print(
        f"old dishes (pizza+steak, test/, {sum(len(list((old_test / label).iterdir())) for label in OLD)} photos): "
        f"before {old_before:.1%}, after {old_after:.1%} ({(old_after - old_before) * 100:+.1f} points)"
    )
    print(f"new dish (sushi, test/): {new_after:.1%};  all 3 dishes (test/): {all_after:.1%}")
    print(
        f"gate: {comparison.get('verdict')} on {comparison.get('photos')} frozen photos "
        f"(challenger {(comparison.get('challenger') or {}).get('accuracy', 0):.1%}, in use "
        f"{(comparison.get('champion') or {}).get('accuracy', 0):.1%}); activated: {second.activated}"
    )
    if cal:
        print(
            f"calibration (validation, {cal['photos']} photos): ECE {cal['ece_before']:.1%} before, "
            f"{cal['ece_after']:.1%} after temperature scaling (T = {cal['temperature']:.2f})"
        )
    for step, value in seconds.items():
        print(f"  {step:<45} {value:6.1f} s")
    print("old dishes within 3 points:", "yes" if old_after >= old_before - 0.03 else "NO")


if __name__ == "__main__":
    main()
