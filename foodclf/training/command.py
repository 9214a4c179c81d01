"""`foodclf train --data DIR | --from-db`: train a model from labelled photos and record it in the registry."""

from __future__ import annotations

import argparse
import json
import sys
from datetime import date

from foodclf.labels import display_label, normalise_label
from foodclf.settings import Settings
from foodclf.training.backbone import CURRENT, EFFICIENTNET_LITE0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--data", help="folder of photos laid out as <label>/<file> (as the image-folder export)")
    source.add_argument("--from-db", action="store_true", help="the moderators' current decisions in the database")
    parser.add_argument("--only-corrected", action="store_true",
                        help="with --from-db: only decisions that changed the model's label")
    parser.add_argument("--since", type=date.fromisoformat, help="with --from-db: decided on or after YYYY-MM-DD")
    parser.add_argument("--until", type=date.fromisoformat, help="with --from-db: decided on or before YYYY-MM-DD")
    parser.add_argument("--labels", help="with --from-db: only these labels (comma-separated)")
    parser.add_argument("--val", help="folder of validation photos (default: a stratified 20%% of the data)")
    parser.add_argument("--base", default=EFFICIENTNET_LITE0,
                        help=f"{EFFICIENTNET_LITE0} (default, offline), {CURRENT} (the model in use), "
                             "or a model folder / hub id")
    parser.add_argument("--mode", choices=("head", "full"), default="head",
                        help="head: a new last layer on cached features (CPU, default); full: every layer (GPU)")
    parser.add_argument("--out", help="folder for the new model (default: FOODCLF_MODEL_DIR/<base>-<mode>-<time>)")
    parser.add_argument("--epochs", type=int, help="most epochs (default: 300 for head, 10 for full)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the split and the training (default: 0)")
    parser.add_argument("--no-refit", action="store_true",
                        help="head mode: keep the head fitted without the validation photos")
    parser.add_argument("--activate", action="store_true", help="make the new model the one in use")
    parser.add_argument("--no-register", action="store_true", help="do not record the model in the database")
    parser.add_argument("--json", action="store_true", help="print the training report as JSON")


def run(args: argparse.Namespace, settings: Settings) -> int:
    from foodclf.training.train import train_model

    error = None
    db_only = args.only_corrected or args.since or args.until or args.labels
    if db_only and not args.from_db:
        error = "--only-corrected, --since, --until and --labels go with --from-db."
    elif args.epochs is not None and args.epochs < 1:
        error = "--epochs must be 1 or more."
    elif args.since and args.until and args.until < args.since:
        error = "--until is before --since."
    if error:
        print(f"foodclf train: {error}", file=sys.stderr)
        return 2
    source = args.data
    if args.from_db:
        from foodclf.reports import ExportFilters

        labels = tuple(normalise_label(x) for x in (args.labels or "").split(",") if x.strip())
        source = ExportFilters(only_corrected=args.only_corrected, since=args.since, until=args.until, labels=labels)
    report = train_model(
        settings, source, base=args.base, mode=args.mode, out=args.out, val=args.val, epochs=args.epochs,
        seed=args.seed, refit=not args.no_refit, register=not args.no_register, activate=args.activate,
        bars=not args.json,
    )
    print(json.dumps(report.to_dict(), default=str) if args.json else summary(report))
    return 0


def summary(report) -> str:
    """The report as text for a terminal."""
    lines = [f"trained {report.name} ({report.mode} on {report.base}) in {report.seconds:.0f} s: {report.folder}"]
    if report.validation:
        v = report.validation
        lines.append(f"  validation ({v['photos']} photos): accuracy {v['accuracy']:.1%}, "
                     f"top-5 {v['top5_accuracy']:.1%}, macro F1 {v['macro_f1']:.1%}")
    else:
        lines.append("  no validation photos (too few per label); measure it with `python -m foodclf evaluate`")
    lines.append(f"  {len(report.labels)} labels: " + ", ".join(
        f"{display_label(label)} ({report.counts['train'].get(label, 0)}+{report.counts['validation'].get(label, 0)})"
        for label in report.labels))
    if report.new_labels:
        lines.append("  new to the base model: " + ", ".join(report.new_labels))
    lines.append(f"  features: {report.cache_hits} from the cache, {report.computed} computed")
    if report.left_out:
        lines.append(f"  {len(report.left_out)} photos left out:")
        lines += [f"    {line}" for line in report.left_out[:10]]
    if report.registry_id is not None:
        lines.append(f"  registered as model #{report.registry_id}; switch to it on the dashboard's Models page")
    return "\n".join(lines)
