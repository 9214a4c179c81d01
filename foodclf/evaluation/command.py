"""`foodclf evaluate --model M --data DIR`: accuracy, top-5, macro F1, per-label table, confusion, mistakes."""

from __future__ import annotations

import argparse
import json
import sys

from foodclf.labels import display_label
from foodclf.settings import Settings


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", help="model folder or hub id (default: FOODCLF_MODEL)")
    parser.add_argument("--data", required=True, help="folder of photos laid out as <label>/<file>")
    parser.add_argument("--out", help="folder for metrics.json, per_class.csv, confusion.csv/.png, mistakes.csv")
    parser.add_argument("--top-k", type=int, default=5, help="k of top-k accuracy (default: 5)")
    parser.add_argument("--mistakes", type=int, default=20, help="confident mistakes to list (default: 20)")
    parser.add_argument("--json", action="store_true", help="print every figure as one JSON object")


def run(args: argparse.Namespace, settings: Settings) -> int:
    from foodclf.evaluation.report import evaluate_model

    if args.top_k < 1:
        print("foodclf evaluate: --top-k must be 1 or more.", file=sys.stderr)
        return 2
    evaluation = evaluate_model(settings, args.model, args.data, out=args.out, top_k=args.top_k,
                                mistakes=args.mistakes, bars=not args.json)
    if args.json:
        print(json.dumps(evaluation.to_dict(), ensure_ascii=False))
    else:
        print(summary(evaluation))
    return 0


def summary(evaluation) -> str:
    """The figures as text for a terminal."""
    m = evaluation.metrics
    lines = [
        f"model {evaluation.model} ({evaluation.fingerprint[:12]}) on {evaluation.data}: {m.photos} photos",
        f"  accuracy       {m.accuracy:7.2%}",
        f"  top-{m.top_k} accuracy {m.top_k_accuracy:7.2%}",
        f"  macro F1       {m.macro_f1:7.2%}",
        "",
        f"  {'label':<28} {'precision':>9} {'recall':>7} {'F1':>7} {'photos':>7}",
    ]
    for row in m.per_class:
        flag = "" if row["known"] else "  (the model does not know this label)"
        lines.append(f"  {display_label(row['label'])[:28]:<28} {row['precision']:9.1%} {row['recall']:7.1%} "
                     f"{row['f1']:7.1%} {row['support']:7d}{flag}")
    if m.unknown:
        listed = ", ".join(f"{label} ({n})" for label, n in m.unknown.items())
        lines += ["", f"  {sum(m.unknown.values())} photos have labels the model does not know: {listed}; "
                      f"they count as misses. On the other photos accuracy is "
                      + (f"{m.known_accuracy:.2%}." if m.known_accuracy is not None else "undefined.")]
    if evaluation.mistakes:
        lines += ["", "  most confident mistakes:"]
        lines += [f"    {x['score']:6.1%}  {x['predicted']} (true: {x['true']})  {x['file']}"
                  for x in evaluation.mistakes[:10]]
    if evaluation.unreadable:
        lines += ["", f"  {len(evaluation.unreadable)} files could not be read:"]
        lines += [f"    {line}" for line in evaluation.unreadable[:10]]
    if evaluation.files:
        lines += ["", f"  written: {', '.join(evaluation.files.values())}"]
    return "\n".join(lines)
