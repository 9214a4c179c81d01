"""`python -m foodclf COMMAND ...`: every command in one place, each a thin call into the library.

Each command is a pair: `_<name>_arguments(parser)` declares its options, `<name>(args, settings)`
runs it and returns the exit code. COMMANDS lists them, with their one-line help.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from datetime import date

from tqdm import tqdm

from db.engine import open_database
from db.export_rows import ExportFilters
from db.models import SOURCES
from foodclf import audit, tokens
from foodclf.api.app import check_exposure, create_app, log_config
from foodclf.bulk_ray import ingest_folder_ray, reclassify_ray
from foodclf.classifier import ClassificationResult, load_classifier
from foodclf.errors import FoodclfError
from foodclf.evaluation.report import evaluate_model
from foodclf.images import configure_decode_budget, find_images
from foodclf.ingest import IngestOutcome, ingest_folder
from foodclf.label_import import import_labels
from foodclf.labels import display_label, normalise_label
from foodclf.model_registry import active_model_name, trained_models
from foodclf.promotion import PromotionRefused, activate_model, compare_models
from foodclf.reclassify import count_photos
from foodclf.reclassify import reclassify as reclassify_photos
from foodclf.settings import Settings, is_loopback, load_settings, local_user
from foodclf.training.backbone import CURRENT, EFFICIENTNET_LITE0
from foodclf.training.train import train_model

# ---- classify ---------------------------------------------------------------------------------


def _classify_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("paths", nargs="+", metavar="PATH", help="photos, or folders to search for photos")
    parser.add_argument("--model", help="hub id or model folder (default: FOODCLF_MODEL)")
    parser.add_argument("--top-k", type=int, default=None, help="categories per photo (0: all; default: FOODCLF_TOP_K)")
    parser.add_argument("--labels", help="comma-separated categories for a CLIP model (zero-shot)")
    parser.add_argument("--json", action="store_true", help="one JSON object per line instead of text")
    parser.add_argument("--batch-size", type=int, default=None, help="photos per forward pass")


def classify(args: argparse.Namespace, settings: Settings) -> int:
    """Print what each photo shows; bad files are reported on stderr, not fatal."""
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
        elif args.json:
            record = {"path": str(item.source), "id": item.loaded.content_id, **item.result.to_dict()}
            print(json.dumps(record, ensure_ascii=False), flush=True)
        else:
            print(_result_text(str(item.source), item.result), flush=True)
    if refused:
        print(f"foodclf classify: {refused} of {len(paths)} files could not be classified.", file=sys.stderr)
    return 1 if refused else 0


def _result_text(path: str, result: ClassificationResult) -> str:
    flag = "  (uncertain)" if result.uncertain else ""
    lines = [f"{path}: {display_label(result.highest_probability_class)} {result.top_score:.1%}{flag}"]
    lines += [f"    {s['score']:6.1%}  {display_label(s['label'])}" for s in result.class_scores]
    return "\n".join(lines)


# ---- ingest -----------------------------------------------------------------------------------


def _ingest_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("folder", metavar="DIR", help="folder to search for photos (recursively)")
    parser.add_argument("--model", help="hub id or model folder (default: the model in use)")
    parser.add_argument("--source", choices=SOURCES, default="folder", help="recorded as where photos came from")
    parser.add_argument("--json", action="store_true", help="print the report as JSON instead of a summary line")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    _engine_arguments(parser, "ray: Ray Data with a pool of model actors (DIR may be an s3:// URL)")


def _engine_arguments(parser: argparse.ArgumentParser, ray_help: str) -> None:
    """--engine, --ray-address and --actors: the bulk commands' choice of engine."""
    parser.add_argument(
        "--engine", choices=("local", "ray"), default="local", help=f"local: this process (default); {ray_help}"
    )
    parser.add_argument("--ray-address", help="with --engine ray: a Ray cluster to join (default: start Ray here)")
    parser.add_argument("--actors", type=int, default=2, help="with --engine ray: model actors (default: 2)")


def _engine_misused(args: argparse.Namespace, command: str) -> bool:
    """Ray's options without --engine ray: said on stderr."""
    if args.engine != "ray" and (args.ray_address or args.actors != 2):
        print(f"foodclf {command}: --ray-address and --actors go with --engine ray.", file=sys.stderr)
        return True
    return False


def ingest(args: argparse.Namespace, settings: Settings) -> int:
    """Classify every photo under a folder into the database and the image store (resumable)."""
    from tqdm import tqdm

    if _engine_misused(args, "ingest"):
        return 2
    # Without --model, ingest with the model the dashboard and the API use.
    model = args.model or active_model_name(settings)
    bar = tqdm(unit="photo", desc="ingest", file=sys.stderr, disable=args.no_progress or args.json, dynamic_ncols=True)

    def step(outcome: IngestOutcome, path: str) -> None:
        ray_step(path, outcome.status, None if outcome.ok else str(outcome.error))

    def ray_step(path: str, status: str, error: str | None) -> None:
        if error:
            bar.write(f"{path}: {error}", file=sys.stderr)  # above the bar, not through it
        bar.update(1)

    try:
        if args.engine == "ray":
            report = ingest_folder_ray(
                settings,
                args.folder,
                model,
                actors=args.actors,
                ray_address=args.ray_address,
                source=args.source,
                on_outcome=ray_step,
            )
        else:
            classifier = load_classifier(settings, model)
            report = ingest_folder(settings, args.folder, classifier, source=args.source, on_outcome=step)
    finally:
        bar.close()
    if args.json:
        print(json.dumps(report.to_dict(), ensure_ascii=False))
    else:
        print(f"foodclf ingest: {report.summary()}.")
    return 1 if report.refused else 0


# ---- train ------------------------------------------------------------------------------------


def _train_arguments(parser: argparse.ArgumentParser) -> None:
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--data", help="folder of photos laid out as <label>/<file> (as the image-folder export)")
    source.add_argument("--from-db", action="store_true", help="the moderators' current decisions in the database")
    parser.add_argument(
        "--only-corrected", action="store_true", help="with --from-db: only decisions that changed the model's label"
    )
    parser.add_argument("--since", type=date.fromisoformat, help="with --from-db: decided on or after YYYY-MM-DD")
    parser.add_argument("--until", type=date.fromisoformat, help="with --from-db: decided on or before YYYY-MM-DD")
    parser.add_argument("--labels", help="with --from-db: only these labels (comma-separated)")
    parser.add_argument("--val", help="folder of validation photos (default: a stratified 20%% of the data)")
    parser.add_argument(
        "--base",
        default=EFFICIENTNET_LITE0,
        help=f"{EFFICIENTNET_LITE0} (default, offline), {CURRENT} (the model in use), or a model folder / hub id",
    )
    parser.add_argument(
        "--mode",
        choices=("head", "full"),
        default="head",
        help="head: a new last layer on cached features (CPU, default); full: every layer (GPU)",
    )
    parser.add_argument("--out", help="folder for the new model (default: FOODCLF_MODEL_DIR/<base>-<mode>-<time>)")
    parser.add_argument("--epochs", type=int, help="most epochs (default: 300 for head, 10 for full)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the split and the training (default: 0)")
    parser.add_argument(
        "--no-refit", action="store_true", help="head mode: keep the head fitted without the validation photos"
    )
    parser.add_argument(
        "--activate",
        action="store_true",
        help="make the new model the one in use, unless it is worse on the frozen evaluation photos",
    )
    parser.add_argument("--force-reason", help="with --activate: switch even if it is worse; the reason is kept")
    parser.add_argument(
        "--no-keep",
        action="store_true",
        help="with --base current: learn only the photos' labels (default: keep the model's labels, replay its "
        "training photos and distil its scores)",
    )
    parser.add_argument("--no-register", action="store_true", help="do not record the model in the database")
    parser.add_argument("--json", action="store_true", help="print the training report as JSON")


def train(args: argparse.Namespace, settings: Settings) -> int:
    """Train a model from labelled photos or the moderators' decisions and record it in the registry."""
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
        labels = tuple(normalise_label(x) for x in (args.labels or "").split(",") if x.strip())
        source = ExportFilters(only_corrected=args.only_corrected, since=args.since, until=args.until, labels=labels)
    report = train_model(
        settings,
        source,
        base=args.base,
        mode=args.mode,
        out=args.out,
        val=args.val,
        epochs=args.epochs,
        seed=args.seed,
        refit=not args.no_refit,
        register=not args.no_register,
        activate=args.activate,
        bars=not args.json,
        force_reason=args.force_reason,
        keep_labels=False if args.no_keep else None,
    )
    print(json.dumps(report.to_dict(), default=str) if args.json else report.summary())
    if report.refused:
        print(f"foodclf train: not switched on: {report.refused}", file=sys.stderr)
        return 1
    return 0


# ---- labels import ----------------------------------------------------------------------------


def _labels_arguments(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="action", required=True, metavar="import")
    importing = actions.add_parser(
        "import", help="add the labels of a CSV (columns path or content_id, label, note) or JSONL file"
    )
    importing.add_argument("file", metavar="FILE", help="a .csv with a header, or a .jsonl / .ndjson file")
    importing.add_argument("--reviewer", help="who the labels are recorded as decided by (default: FOODCLF_REVIEWER)")
    importing.add_argument("--json", action="store_true", help="print the report as JSON")
    importing.add_argument("--no-progress", action="store_true", help="no progress bar")


def labels(args: argparse.Namespace, settings: Settings) -> int:
    """Import labels as reviews; bad rows are listed with their line number and reason."""
    reviewer = args.reviewer or settings.reviewer
    if not (reviewer or "").strip():
        print(
            "foodclf labels import: give --reviewer NAME (who the labels are recorded as decided by).", file=sys.stderr
        )
        return 2
    bar = tqdm(unit="row", desc="labels", file=sys.stderr, disable=args.json or args.no_progress)

    def row_done(line: int, refusal) -> None:
        if refusal:
            tqdm.write(f"line {line}: {refusal}", file=sys.stderr)
        bar.update(1)

    try:
        report = import_labels(settings, args.file, reviewer=reviewer, on_row=row_done)
    finally:
        bar.close()
    print(json.dumps(report.to_dict(), ensure_ascii=False) if args.json else f"foodclf labels: {report.summary()}.")
    return 1 if report.refused else 0


# ---- reclassify -------------------------------------------------------------------------------


def _reclassify_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", help="model folder or hub id (default: the model in use)")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    _engine_arguments(parser, "ray: Ray Data, pages of stored photos spread over a pool of model actors")


def reclassify(args: argparse.Namespace, settings: Settings) -> int:
    """Classify every stored photo with the model in use; resumable."""
    if _engine_misused(args, "reclassify"):
        return 2
    bar = tqdm(
        total=count_photos(settings),
        unit="photo",
        desc="reclassify",
        file=sys.stderr,
        disable=args.json or args.no_progress,
        dynamic_ncols=True,
    )
    try:
        if args.engine == "ray":
            model = args.model or active_model_name(settings)
            report = reclassify_ray(
                settings, model, actors=args.actors, ray_address=args.ray_address, on_photo=bar.update
            )
        else:
            report = reclassify_photos(settings, model=args.model, on_photo=bar.update)
    finally:
        bar.close()
    print(json.dumps(report.to_dict()) if args.json else f"foodclf reclassify: {report.summary()}.")
    return 1 if report.failed else 0


# ---- activate ---------------------------------------------------------------------------------


def _activate_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", help="registered model: id or name; 'base' for FOODCLF_MODEL")
    parser.add_argument(
        "--force",
        metavar="REASON",
        help="switch even if it is worse on the frozen evaluation photos; the reason is kept",
    )
    parser.add_argument("--compare", action="store_true", help="only compare it with the model in use")
    parser.add_argument("--json", action="store_true", help="print the comparison as JSON")


def activate(args: argparse.Namespace, settings: Settings) -> int:
    """Switch the model in use through the promotion gate."""
    model = None if args.model == "base" else int(args.model) if args.model.isdigit() else args.model
    if args.compare:
        chosen = next((m for m in trained_models(open_database(settings)) if model in (m.id, m.name)), None)
        if model is not None and chosen is None:
            print(f"foodclf activate: there is no trained model {args.model!r}.", file=sys.stderr)
            return 2
        comparison = compare_models(settings, chosen.path if chosen else settings.model)
        print(json.dumps(comparison.to_dict()) if args.json else comparison.text())
        return 0
    if args.force is not None and not args.force.strip():
        print(
            'foodclf activate: --force needs a reason (e.g. --force "the slice lacks the new dish").', file=sys.stderr
        )
        return 2
    try:
        comparison = activate_model(settings, model, force_reason=args.force, by=settings.reviewer)
    except PromotionRefused as err:
        print(json.dumps(err.comparison.to_dict()) if args.json else f"foodclf activate: {err}", file=sys.stderr)
        return 1
    print(json.dumps(comparison.to_dict()) if args.json else f"Switched to {args.model}.\n{comparison.text()}")
    return 0


# ---- evaluate ---------------------------------------------------------------------------------


def _evaluate_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", help="model folder or hub id (default: FOODCLF_MODEL)")
    parser.add_argument("--data", required=True, help="folder of photos laid out as <label>/<file>")
    parser.add_argument("--out", help="folder for metrics.json, per_class.csv, confusion.csv/.png, mistakes.csv")
    parser.add_argument("--top-k", type=int, default=5, help="k of top-k accuracy (default: 5)")
    parser.add_argument("--mistakes", type=int, default=20, help="confident mistakes to list (default: 20)")
    parser.add_argument("--json", action="store_true", help="print every figure as one JSON object")


def evaluate(args: argparse.Namespace, settings: Settings) -> int:
    """Accuracy, top-k, macro F1, per-label table, confusion and confident mistakes on a labelled folder."""
    if args.top_k < 1:
        print("foodclf evaluate: --top-k must be 1 or more.", file=sys.stderr)
        return 2
    evaluation = evaluate_model(
        settings, args.model, args.data, out=args.out, top_k=args.top_k, mistakes=args.mistakes, bars=not args.json
    )
    print(json.dumps(evaluation.to_dict(), ensure_ascii=False) if args.json else evaluation.summary())
    return 0


# ---- serve ------------------------------------------------------------------------------------


def _serve_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1; others need FOODCLF_API_TOKENS)"
    )
    parser.add_argument("--port", type=int, default=8000, help="port to listen on (default 8000)")
    parser.add_argument(
        "--log-level",
        default="info",
        choices=("critical", "error", "warning", "info", "debug"),
        help="uvicorn's log level (default info)",
    )


def serve(args: argparse.Namespace, settings: Settings) -> int:
    """Run the HTTP API with uvicorn: one process, so the model is loaded once."""
    import uvicorn  # only this command serves: the others start without it

    # The database is only asked when it matters: an exposed address and no FOODCLF_API_TOKENS.
    exposed = not is_loopback(args.host) and not settings.api_tokens
    check_exposure(args.host, settings, stored_tokens=exposed and tokens.stored_tokens_exist(open_database(settings)))
    uvicorn.run(
        create_app(settings),
        host=args.host,
        port=args.port,
        log_level=args.log_level,
        log_config=log_config(),
        server_header=False,
    )
    return 0


# ---- audit ------------------------------------------------------------------------------------


def _audit_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--since", type=date.fromisoformat, help="only acts on or after YYYY-MM-DD (UTC)")
    parser.add_argument("--until", type=date.fromisoformat, help="only acts on or before YYYY-MM-DD (UTC)")
    parser.add_argument("--actor", help="only this person, token (token:NAME) or CLI user")
    parser.add_argument("--action", choices=audit.ACTIONS, help="only this kind of act")
    parser.add_argument("--limit", type=int, help="at most this many, newest first")
    parser.add_argument("--json", action="store_true", help="one JSON object per line")


def audit_log(args: argparse.Namespace, settings: Settings) -> int:
    """Print the audit trail of sensitive acts, newest first."""
    events = audit.audit_events(
        open_database(settings),
        since=args.since,
        until=args.until,
        actor=args.actor,
        action=args.action,
        limit=args.limit,
    )
    for event in events:
        print(audit.event_json(event) if args.json else audit.event_line(event))
    if not events and not args.json:
        print("foodclf audit: nothing recorded" + (" in that range." if args.since or args.until else " yet."))
    return 0


# ---- tokens -----------------------------------------------------------------------------------


def _tokens_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", required=True, metavar="{create,list,revoke}")
    create = sub.add_parser("create", help="make a token; it is printed once, alone on the last line")
    create.add_argument("--name", required=True, help="what the token is for, e.g. photo-uploader")
    create.add_argument(
        "--role", required=True, choices=tokens.ROLES, help="tagger: classify and store; reader: read images, labels"
    )
    sub.add_parser("list", help="names, roles, created, last used (never the tokens)")
    revoke = sub.add_parser("revoke", help="make a token fail at once")
    revoke.add_argument("name", metavar="NAME")


def tokens_command(args: argparse.Namespace, settings: Settings) -> int:
    """Create, list or revoke the HTTP API's tokens stored in the database."""
    engine, actor = open_database(settings), local_user(settings)
    if args.action == "create":
        token = tokens.create_token(engine, name=args.name, role=args.role, actor=actor)
        print(f"Created the {args.role} token {args.name!r}. Copy it now; it is not shown again:")
        print(token)
    elif args.action == "revoke":
        tokens.revoke_token(engine, args.name, actor=actor)
        print(f"Revoked the token {args.name!r}: requests with it now get 401.")
    else:
        rows = tokens.list_tokens(engine)
        if not rows:
            print("No stored tokens. Create one with `python -m foodclf tokens create --name NAME --role ROLE`.")
        for row in rows:
            used = f"{row.last_used_at:%Y-%m-%d %H:%M}Z" if row.last_used_at else "never"
            print(
                f"{row.name}\t{row.role}\tcreated {row.created_at:%Y-%m-%d %H:%M}Z by {row.created_by}\t"
                f"last used {used}"
            )
    return 0


# name -> (one-line help, declares the options, runs the command)
COMMANDS = {
    "classify": ("Classify photos or folders and print the top categories.", _classify_arguments, classify),
    "ingest": ("Classify every photo in a folder into the database and image store.", _ingest_arguments, ingest),
    "train": ("Train a new model from labelled photos or the moderators' reviews.", _train_arguments, train),
    "evaluate": ("Measure a model on a folder of labelled photos.", _evaluate_arguments, evaluate),
    "labels": ("Import labels from a CSV or JSON Lines file as moderators' reviews.", _labels_arguments, labels),
    "reclassify": (
        "Classify every stored photo again with the model in use (resumable).",
        _reclassify_arguments,
        reclassify,
    ),
    "activate": (
        "Switch the model in use, unless the promotion gate refuses it.",
        _activate_arguments,
        activate,
    ),
    "serve": ("Start the HTTP API.", _serve_arguments, serve),
    "audit": (
        "Print the audit trail: exports, training, model switches, denials, tokens.",
        _audit_arguments,
        audit_log,
    ),
    "tokens": ("Create, list or revoke HTTP API tokens stored in the database.", _tokens_arguments, tokens_command),
}


def parser_for(name: str) -> argparse.ArgumentParser:
    """The argument parser of one command."""
    help_text, arguments, _ = COMMANDS[name]
    parser = argparse.ArgumentParser(prog=f"python -m foodclf {name}", description=help_text)
    arguments(parser)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] in ("-h", "--help"):
        print(_usage())
        return 0
    if not argv or argv[0] not in COMMANDS:
        if argv:
            print(f"foodclf: unknown command {argv[0]!r}.", file=sys.stderr)
        print(_usage(), file=sys.stderr)
        return 2
    name = argv[0]
    args = parser_for(name).parse_args(argv[1:])
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        settings = load_settings()
        configure_decode_budget(settings)  # one budget for every decode of this process
        return COMMANDS[name][2](args, settings)
    except FoodclfError as err:
        print(f"foodclf {name}: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"foodclf {name}: interrupted; what was saved is kept.", file=sys.stderr)
        return 130


def _usage() -> str:
    lines = ["usage: python -m foodclf COMMAND [options]", "", "commands:"]
    lines += [f"  {name:<10} {help_text}" for name, (help_text, _, _) in COMMANDS.items()]
    lines += ["", "Run `python -m foodclf COMMAND --help` for a command's options."]
    return "\n".join(lines)
