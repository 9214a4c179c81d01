"""Figures of a model on labelled photos, computed by scikit-learn: accuracy, top-k, F1, confusion."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional, Sequence

import numpy as np

from foodclf.labels import match_key


@dataclass
class Metrics:
    """What a model got right on labelled photos; photos whose label it does not know count as misses."""

    photos: int
    accuracy: float
    top_k_accuracy: float
    top_k: int
    macro_f1: float  # over the labels present in the data
    per_class: list[dict]  # label, precision, recall, f1, support, known (to the model)
    confusion_labels: list[str]  # rows: true label; columns: predicted label
    confusion: np.ndarray
    unknown: dict[str, int] = field(default_factory=dict)  # true labels the model lacks -> photos
    known_accuracy: Optional[float] = None  # on the photos whose label the model knows

    def to_dict(self) -> dict:
        """Plain numbers for JSON and the registry (keys: accuracy, top5_accuracy, macro_f1, ...)."""
        return {
            "photos": self.photos,
            "accuracy": self.accuracy,
            f"top{self.top_k}_accuracy": self.top_k_accuracy,
            "macro_f1": self.macro_f1,
            "known_accuracy": self.known_accuracy,
            "unknown_labels": dict(self.unknown),
            "per_class": [dict(row) for row in self.per_class],
            "confusion": {"labels": list(self.confusion_labels), "matrix": self.confusion.tolist()},
        }

    def headline(self) -> dict:
        """The figures shown side by side for models: accuracy, top-k accuracy, macro F1, photos."""
        return {
            "accuracy": self.accuracy,
            f"top{self.top_k}_accuracy": self.top_k_accuracy,
            "macro_f1": self.macro_f1,
            "photos": self.photos,
        }


def match_labels(names: Sequence[str], model_labels: Sequence[str]) -> dict[str, Optional[str]]:
    """Each folder name -> the model label equal to it ignoring case, spaces and underscores, or None."""
    by_key: dict[str, str] = {}
    for label in model_labels:
        by_key.setdefault(match_key(label), label)
    return {name: by_key.get(match_key(name)) for name in names}


def compute_metrics(
    true_labels: Sequence[str], scores: np.ndarray, model_labels: Sequence[str], *, top_k: int = 5
) -> Metrics:
    """Score predictions against true labels.

    Args:
        true_labels: one per photo, spelled as the model spells them where it knows them.
        scores: (photos, model labels) probabilities or logits, columns in model_labels order.
        model_labels: the model's labels.
        top_k: a photo counts for top-k accuracy when its label is among the k highest scores.
    """
    from sklearn.metrics import (
        accuracy_score,
        confusion_matrix,
        f1_score,
        precision_recall_fscore_support,
        top_k_accuracy_score,
    )

    scores = np.asarray(scores, dtype=np.float64)
    if scores.ndim != 2 or scores.shape != (len(true_labels), len(model_labels)):
        raise ValueError(f"scores: expected shape ({len(true_labels)}, {len(model_labels)}), not {scores.shape}")
    if not len(true_labels):
        raise ValueError("true_labels: need at least one photo")
    model_labels = list(model_labels)
    index = {label: i for i, label in enumerate(model_labels)}
    y_true = np.array(true_labels, dtype=object)
    y_pred = np.array([model_labels[i] for i in scores.argmax(1)], dtype=object)
    data_labels = sorted(set(true_labels))
    known = np.array([label in index for label in true_labels])
    extra = sorted(set(y_pred) - set(data_labels))  # predicted labels no photo has

    precision, recall, f1, support = precision_recall_fscore_support(
        y_true, y_pred, labels=data_labels, zero_division=0
    )
    per_class = [
        {
            "label": label,
            "precision": float(p),
            "recall": float(r),
            "f1": float(f),
            "support": int(s),
            "known": label in index,
        }
        for label, p, r, f, s in zip(data_labels, precision, recall, f1, support)
    ]
    confusion_labels = data_labels + extra
    if known.any():
        known_idx = np.array([index[label] for label in y_true[known]])
        if top_k >= len(model_labels):
            known_hits = int(known.sum())  # every label is in the top k
        else:
            known_hits = int(
                round(
                    top_k_accuracy_score(
                        known_idx, scores[known], k=top_k, labels=np.arange(len(model_labels)), normalize=False
                    )
                )
            )
        known_accuracy = float(accuracy_score(y_true[known], y_pred[known]))
    else:
        known_hits, known_accuracy = 0, None
    unknown = {label: int(n) for label, n in zip(*np.unique(y_true[~known].astype(str), return_counts=True))}
    return Metrics(
        photos=len(y_true),
        accuracy=float(accuracy_score(y_true, y_pred)),
        top_k_accuracy=known_hits / len(y_true),
        top_k=top_k,
        macro_f1=float(f1_score(y_true, y_pred, labels=data_labels, average="macro", zero_division=0)),
        per_class=per_class,
        confusion_labels=confusion_labels,
        confusion=confusion_matrix(y_true, y_pred, labels=confusion_labels),
        unknown=unknown,
        known_accuracy=known_accuracy,
    )
