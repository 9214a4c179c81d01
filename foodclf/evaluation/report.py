"""`evaluate`: run a model over a labelled folder and write its figures, confusion matrix and mistakes."""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import numpy as np

from foodclf.classifier import load_classifier
from foodclf.errors import FoodclfError
from foodclf.labels import display_label, normalise_label
from foodclf.metrics import Metrics, compute_metrics, match_labels
from foodclf.training.data import label_folders
from foodclf.training.progress import Progress, ProgressCallback


@dataclass
class Evaluation:
    """A model's figures on one labelled folder, with the photos it got most confidently wrong."""

    model: str
    fingerprint: str
    data: str
    metrics: Metrics
    label_map: dict[str, Optional[str]]  # folder name -> model label (None: the model lacks it)
    mistakes: list[dict] = field(default_factory=list)  # file, true, predicted, score, true_score
    unreadable: list[str] = field(default_factory=list)  # "file: why"
    files: dict[str, str] = field(default_factory=dict)  # what write_report wrote: kind -> path

    def to_dict(self) -> dict:
        return {
            "model": self.model,
            "fingerprint": self.fingerprint,
            "data": self.data,
            **self.metrics.to_dict(),
            "label_map": dict(self.label_map),
            "mistakes": list(self.mistakes),
            "unreadable": list(self.unreadable),
            "files": dict(self.files),
        }

    def summary(self) -> str:
        """The figures as text for a terminal."""
        m = self.metrics
        lines = [
            f"model {self.model} ({self.fingerprint[:12]}) on {self.data}: {m.photos} photos",
            f"  accuracy       {m.accuracy:7.2%}",
            f"  top-{m.top_k} accuracy {m.top_k_accuracy:7.2%}",
            f"  macro F1       {m.macro_f1:7.2%}",
            "",
            f"  {'label':<28} {'precision':>9} {'recall':>7} {'F1':>7} {'photos':>7}",
        ]
        for row in m.per_class:
            flag = "" if row["known"] else "  (the model does not know this label)"
            lines.append(
                f"  {display_label(row['label'])[:28]:<28} {row['precision']:9.1%} {row['recall']:7.1%} "
                f"{row['f1']:7.1%} {row['support']:7d}{flag}"
            )
        if m.unknown:
            listed = ", ".join(f"{label} ({n})" for label, n in m.unknown.items())
            lines += [
                "",
                f"  {sum(m.unknown.values())} photos have labels the model does not know: {listed}; "
                f"they count as misses. On the other photos accuracy is "
                + (f"{m.known_accuracy:.2%}." if m.known_accuracy is not None else "undefined."),
            ]
        if self.mistakes:
            lines += ["", "  most confident mistakes:"]
            lines += [
                f"    {x['score']:6.1%}  {x['predicted']} (true: {x['true']})  {x['file']}" for x in self.mistakes[:10]
            ]
        if self.unreadable:
            lines += ["", f"  {len(self.unreadable)} files could not be read:"]
            lines += [f"    {line}" for line in self.unreadable[:10]]
        if self.files:
            lines += ["", f"  written: {', '.join(self.files.values())}"]
        return "\n".join(lines)


def evaluate_model(
    settings,
    model: Optional[str],
    data,
    *,
    out=None,
    top_k: int = 5,
    mistakes: int = 20,
    progress_callback: Optional[ProgressCallback] = None,
    bars: bool = False,
) -> Evaluation:
    """Classify every photo of a `<label>/<file>` folder and score the model.

    Args:
        settings: device, precision, batch size and upload limits.
        model: a model folder or hub id (None: FOODCLF_MODEL).
        data: the labelled folder; folder names match model labels ignoring case, spaces, underscores.
        out: a folder for metrics.json, per_class.csv, confusion.csv, confusion.png, mistakes.csv.
        mistakes: how many of the most confident mistakes to keep.
        progress_callback: called with (fraction done, message).

    Raises:
        FoodclfError: the folder has no photos, or the model cannot be loaded.
    """
    progress = Progress(progress_callback, bars)
    folders = label_folders(data)
    classifier = load_classifier(settings, model)
    label_map = match_labels(list(folders), classifier.labels)
    sources = [(path, name) for name, paths in folders.items() for path in paths]
    index = {label: i for i, label in enumerate(classifier.labels)}
    true_labels, rows, files, unreadable = [], [], [], []
    with progress.stage(0.95, len(sources), "Classifying") as stage:
        items = classifier.classify_many([path for path, _ in sources], top_k=0)
        for (path, name), item in zip(sources, items):
            stage.update(1)
            if not item.ok:
                unreadable.append(f"{path}: {item.error}")
                continue
            row = np.zeros(len(classifier.labels))
            for score in item.result.class_scores:
                row[index[score["label"]]] = score["score"]
            rows.append(row)
            true_labels.append(label_map[name] or normalise_label(name))
            files.append(str(path))
    if not rows:
        raise FoodclfError(f"None of the photos in {data} could be read, so there is nothing to evaluate.")
    scores = np.stack(rows)
    metrics = compute_metrics(true_labels, scores, classifier.labels, top_k=top_k)
    evaluation = Evaluation(
        model=classifier.model_id,
        fingerprint=classifier.fingerprint,
        data=str(data),
        metrics=metrics,
        label_map=label_map,
        mistakes=confident_mistakes(files, true_labels, scores, classifier.labels, mistakes),
        unreadable=unreadable,
    )
    if out is not None:
        write_report(evaluation, out)
    progress.note(1.0, "Done")
    return evaluation


def confident_mistakes(files, true_labels, scores: np.ndarray, labels, n: int = 20) -> list[dict]:
    """The n wrong predictions with the highest scores: where the model is sure and wrong."""
    index = {label: i for i, label in enumerate(labels)}
    found = []
    for file, true, row in zip(files, true_labels, scores):
        top = int(row.argmax())
        if labels[top] != true:
            true_score = float(row[index[true]]) if true in index else None
            found.append(
                {
                    "file": file,
                    "true": true,
                    "predicted": labels[top],
                    "score": float(row[top]),
                    "true_score": true_score,
                }
            )
    return sorted(found, key=lambda m: -m["score"])[:n]


def write_report(evaluation: Evaluation, out) -> dict[str, str]:
    """Write the figures into `out`; returns kind -> path (also kept on evaluation.files)."""
    folder = Path(out).expanduser()
    folder.mkdir(parents=True, exist_ok=True)
    metrics = evaluation.metrics
    files = {
        name: str(folder / name)
        for name in ("metrics.json", "per_class.csv", "confusion.csv", "confusion.png", "mistakes.csv")
    }
    evaluation.files = files
    with open(files["per_class.csv"], "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, ["label", "precision", "recall", "f1", "support", "known"], lineterminator="\n")
        writer.writeheader()
        writer.writerows(metrics.per_class)
    with open(files["confusion.csv"], "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(["true \\ predicted", *metrics.confusion_labels])
        for label, row in zip(metrics.confusion_labels, metrics.confusion.tolist()):
            writer.writerow([label, *row])
    with open(files["mistakes.csv"], "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, ["file", "true", "predicted", "score", "true_score"], lineterminator="\n")
        writer.writeheader()
        writer.writerows(evaluation.mistakes)
    plot_confusion(metrics.confusion_labels, metrics.confusion, files["confusion.png"])
    Path(files["metrics.json"]).write_text(json.dumps(evaluation.to_dict(), indent=2) + "\n", encoding="utf-8")
    return files


def plot_confusion(labels, matrix: np.ndarray, path) -> None:
    """A heat map of the confusion matrix, rows normalised so each true label reads as shares."""
    import matplotlib

    matplotlib.use("Agg")  # no display: a server or a test
    import matplotlib.pyplot as plt

    totals = matrix.sum(1, keepdims=True)
    shares = np.divide(matrix, totals, out=np.zeros(matrix.shape, dtype=float), where=totals > 0)
    side = min(4 + 0.35 * len(labels), 40)
    fig, ax = plt.subplots(figsize=(side, side * 0.85))
    image = ax.imshow(shares, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(len(labels)), labels, rotation=90)
    ax.set_yticks(range(len(labels)), labels)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    if len(labels) <= 30:  # counts stay readable up to about 30 labels
        for i, j in zip(*np.nonzero(matrix)):
            ax.text(
                j,
                i,
                int(matrix[i, j]),
                ha="center",
                va="center",
                color="white" if shares[i, j] > 0.5 else "black",
                fontsize=8,
            )
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label="share of the true label")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
