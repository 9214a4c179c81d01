"""Command modules of `python -m foodclf`: each has add_arguments(parser) and run(args, settings)."""
