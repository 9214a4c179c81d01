"""`python -m foodclf COMMAND ...`: dispatches to one command module, imported only when chosen."""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

from foodclf.errors import FoodclfError
from foodclf.settings import load_settings

# command -> (module with add_arguments(parser) and run(args, settings) -> int, one-line help)
COMMANDS = {
    "classify": ("foodclf.commands.classify", "Classify photos or folders and print the top categories."),
    "ingest": ("foodclf.ingest", "Classify every photo in a folder into the database and image store."),
    "train": ("foodclf.training.command", "Train a new model from labelled photos or the moderators' reviews."),
    "evaluate": ("foodclf.evaluation", "Measure a model on a folder of labelled photos."),
    "serve": ("foodclf.api.command", "Start the HTTP API."),
}


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
    module_name, help_text = COMMANDS[name]
    module = importlib.import_module(module_name)
    parser = argparse.ArgumentParser(prog=f"python -m foodclf {name}", description=help_text)
    module.add_arguments(parser)
    args = parser.parse_args(argv[1:])
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        return module.run(args, load_settings())
    except FoodclfError as err:
        print(f"foodclf {name}: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"foodclf {name}: interrupted; what was saved is kept.", file=sys.stderr)
        return 130


def _usage() -> str:
    lines = ["usage: python -m foodclf COMMAND [options]", "", "commands:"]
    lines += [f"  {name:<10} {help_text}" for name, (_, help_text) in COMMANDS.items()]
    lines += ["", "Run `python -m foodclf COMMAND --help` for a command's options."]
    return "\n".join(lines)
