"""`foodclf classify PATH...`: print what each photo shows; bad files are reported, not fatal."""

from __future__ import annotations

import argparse
import json
import sys

from foodclf.classifier import load_classifier
from foodclf.images import find_images
from foodclf.labels import display_label
from foodclf.settings import Settings


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("paths", nargs="+", metavar="PATH", help="photos, or folders to search for photos")
    parser.add_argument("--model", help="hub id or model folder (default: FOODCLF_MODEL)")
    parser.add_argument("--top-k", type=int, default=None, help="categories per photo (0: all; default: FOODCLF_TOP_K)")
    parser.add_argument("--labels", help="comma-separated categories for a CLIP model (zero-shot)")
    parser.add_argument("--json", action="store_true", help="one JSON object per line instead of text")
    parser.add_argument("--batch-size", type=int, default=None, help="photos per forward pass")


def run(args: argparse.Namespace, settings: Settings) -> int:
    if args.top_k is not None and args.top_k < 0:
        print("foodclf classify: --top-k must be 0 (all) or more.", file=sys.stderr)
        return 2
    paths = find_images(args.paths)
    if not paths:
        print("foodclf classify: no photos found in " + ", ".join(args.paths), file=sys.stderr)
        return 1
    if args.labels:
        settings = settings.replace(zero_shot_labels=tuple(x.strip() for x in args.labels.split(",") if x.strip()))
    classifier = load_classifier(settings, args.model)
    refused = 0
    for item in classifier.classify_many(paths, top_k=args.top_k, batch_size=args.batch_size):
        if not item.ok:
            refused += 1
            print(f"{item.source}: {item.error}", file=sys.stderr)
            continue
        result = item.result
        if args.json:
            record = {"path": str(item.source), "id": item.loaded.content_id, **result.to_dict()}
            print(json.dumps(record, ensure_ascii=False), flush=True)
        else:
            print(_text(str(item.source), result), flush=True)
    if refused:
        print(f"foodclf classify: {refused} of {len(paths)} files could not be classified.", file=sys.stderr)
    return 1 if refused else 0


def _text(path: str, result) -> str:
    flag = "  (uncertain)" if result.uncertain else ""
    lines = [f"{path}: {display_label(result.highest_probability_class)} {result.top_score:.1%}{flag}"]
    lines += [f"    {s['score']:6.1%}  {display_label(s['label'])}" for s in result.class_scores]
    return "\n".join(lines)
