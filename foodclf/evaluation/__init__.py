"""Measuring a model on labelled photos (`python -m foodclf evaluate`)."""

from foodclf.evaluation.command import add_arguments, run
from foodclf.evaluation.metrics import Metrics, compute_metrics, match_labels
from foodclf.evaluation.report import Evaluation, evaluate_model, write_report

__all__ = [
    "Evaluation", "Metrics", "add_arguments", "compute_metrics", "evaluate_model", "match_labels", "run",
    "write_report",
]
