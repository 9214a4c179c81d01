"""Training new models from labelled photos (`python -m foodclf train`); see docs/training.md."""

from foodclf.training.train import MODES, TrainingReport, train_model

__all__ = ["MODES", "TrainingReport", "train_model"]
