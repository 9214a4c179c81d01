"""`evaluate`: the figures are scikit-learn's, unknown labels are reported, the report files are written."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
from sklearn.metrics import (
    accuracy_score,
    confusion_matrix,
    f1_score,
    precision_recall_fscore_support,
    top_k_accuracy_score,
)

from factories import photo
from foodclf.cli import main
from foodclf.evaluation.report import evaluate_model
from foodclf.labels import FOOD101_LABELS
from foodclf.metrics import compute_metrics, match_labels

MODEL_LABELS = ["pizza", "steak", "sushi", "ramen", "tacos", "waffles", "hot_dog"]


def fixed_predictions(seed=0, n=60):
    rng = np.random.default_rng(seed)
    true = [MODEL_LABELS[i] for i in rng.integers(0, 4, n)]  # the data has 4 of the 7 labels
    scores = rng.random((n, len(MODEL_LABELS)))
    for row, label in zip(scores, true):
        row[MODEL_LABELS.index(label)] += rng.random() * 0.8  # right more often than chance
    return true, scores / scores.sum(1, keepdims=True)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_figures_equal_scikit_learns(seed):
    true, scores = fixed_predictions(seed)
    predicted = [MODEL_LABELS[i] for i in scores.argmax(1)]
    data_labels = sorted(set(true))

    m = compute_metrics(true, scores, MODEL_LABELS, top_k=5)

    assert m.photos == 60 and m.unknown == {}
    assert m.accuracy == accuracy_score(true, predicted) == m.known_accuracy
    assert m.macro_f1 == pytest.approx(f1_score(true, predicted, labels=data_labels, average="macro", zero_division=0))
    true_idx = [MODEL_LABELS.index(label) for label in true]
    assert m.top_k_accuracy == pytest.approx(top_k_accuracy_score(true_idx, scores, k=5, labels=range(7)))
    precision, recall, f1, support = precision_recall_fscore_support(
        true, predicted, labels=data_labels, zero_division=0
    )
    assert [r["label"] for r in m.per_class] == data_labels
    assert [r["precision"] for r in m.per_class] == pytest.approx(precision)
    assert [r["recall"] for r in m.per_class] == pytest.approx(recall)
    assert [r["f1"] for r in m.per_class] == pytest.approx(f1)
    assert [r["support"] for r in m.per_class] == list(support)
    assert (m.confusion == confusion_matrix(true, predicted, labels=m.confusion_labels)).all()
    assert m.confusion_labels[:4] == data_labels and m.confusion.sum() == 60


def test_labels_the_model_does_not_know_are_counted_as_misses_and_reported():
    true, scores = fixed_predictions(3)
    true[:5] = ["creme_brulee"] * 3 + ["not_food"] * 2
    m = compute_metrics(true, scores, MODEL_LABELS)
    predicted = [MODEL_LABELS[i] for i in scores.argmax(1)]
    assert m.unknown == {"creme_brulee": 3, "not_food": 2}
    assert m.photos == 60
    assert m.accuracy == accuracy_score(true, predicted)
    assert m.known_accuracy == accuracy_score(true[5:], predicted[5:])
    known_idx = [MODEL_LABELS.index(label) for label in true[5:]]
    hits = top_k_accuracy_score(known_idx, scores[5:], k=5, labels=range(7), normalize=False)
    assert m.top_k_accuracy == pytest.approx(hits / 60)
    rows = {r["label"]: r for r in m.per_class}
    assert rows["not_food"]["known"] is False and rows["not_food"]["recall"] == 0.0
    assert rows["not_food"]["support"] == 2


def test_top_k_of_a_model_with_few_labels_is_every_known_photo():
    scores = np.array([[0.9, 0.1], [0.8, 0.2], [0.3, 0.7]])
    m = compute_metrics(["a", "b", "z"], scores, ["a", "b"], top_k=5)
    assert m.top_k_accuracy == pytest.approx(2 / 3)  # "z" is unknown, the others are in the top 2
    assert m.accuracy == pytest.approx(1 / 3)


def test_folder_names_match_labels_ignoring_case_spaces_and_underscores():
    assert match_labels(["Apple Pie", "applepie", "ICE_CREAM", "hot-dog", "Not food", "steak "], FOOD101_LABELS) == {
        "Apple Pie": "apple_pie",
        "applepie": "apple_pie",
        "ICE_CREAM": "ice_cream",
        "hot-dog": "hot_dog",
        "Not food": None,
        "steak ": "steak",
    }


def test_shape_mismatch_is_refused():
    with pytest.raises(ValueError, match="scores"):
        compute_metrics(["a"], np.zeros((1, 3)), ["a", "b"])


@pytest.fixture
def labelled(tmp_path):
    """A folder the tiny model is scored on: two known labels (odd spellings), one it lacks, one bad file."""
    root = tmp_path / "data"
    for folder, colour in (("Apple Pie", (200, 150, 60)), ("SUSHI", (20, 180, 60)), ("Not Food", (10, 10, 200))):
        (root / folder).mkdir(parents=True)
        for n in range(3):
            (root / folder / f"{n}.jpg").write_bytes(photo(color=(colour[0] - 5 * n, *colour[1:])))
    (root / "SUSHI" / "broken.jpg").write_bytes(b"not a photo")
    return root


def test_evaluate_model_scores_a_folder_and_writes_the_report(settings, labelled, tmp_path):
    evaluation = evaluate_model(settings, None, labelled, out=tmp_path / "report")
    m = evaluation.metrics
    assert m.photos == 9
    assert evaluation.label_map == {"Apple Pie": "apple_pie", "Not Food": None, "SUSHI": "sushi"}
    assert m.unknown == {"not_food": 3}
    assert [r["label"] for r in m.per_class][:3] == ["apple_pie", "not_food", "sushi"]
    assert len(evaluation.unreadable) == 1 and "broken.jpg" in evaluation.unreadable[0]
    assert all(x["score"] >= y["score"] for x, y in zip(evaluation.mistakes, evaluation.mistakes[1:]))
    assert len(evaluation.mistakes) == round(9 * (1 - m.accuracy))

    report = tmp_path / "report"
    assert sorted(p.name for p in report.iterdir()) == [
        "confusion.csv",
        "confusion.png",
        "metrics.json",
        "mistakes.csv",
        "per_class.csv",
    ]
    assert (report / "confusion.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    saved = json.loads((report / "metrics.json").read_text())
    assert saved["accuracy"] == m.accuracy and saved["unknown_labels"] == {"not_food": 3}
    with open(report / "confusion.csv", newline="") as f:
        rows = list(csv.reader(f))
    assert rows[0][1:] == m.confusion_labels and len(rows) == len(m.confusion_labels) + 1
    assert sum(int(v) for row in rows[1:] for v in row[1:]) == 9


def test_evaluate_command_prints_json(settings, labelled, monkeypatch, capsys, tmp_path):
    monkeypatch.setenv("FOODCLF_MODEL", settings.model)
    monkeypatch.setenv("FOODCLF_PRECISION", "fp32")
    monkeypatch.setenv("FOODCLF_ENGINE", "torch")
    assert main(["evaluate", "--data", str(labelled), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["photos"] == 9 and "top5_accuracy" in result and result["unknown_labels"] == {"not_food": 3}

    assert main(["evaluate", "--data", str(labelled), "--out", str(tmp_path / "r")]) == 0
    text = capsys.readouterr().out
    assert "3 photos have labels the model does not know: not_food (3)" in text
    assert "(the model does not know this label)" in text
