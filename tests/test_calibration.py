"""Scores that mean probabilities: temperature scaling fitted at the end of training, applied when loading."""

from __future__ import annotations

import json

import torch

from foodclf.training.calibration import calibrate, expected_calibration_error, fit_temperature, reliability


def overconfident(n=3000, classes=4, scale=4.0, seed=0):
    """Labels drawn from softmax(z); the model reports scale * z: right as often, far surer."""
    generator = torch.Generator().manual_seed(seed)
    z = torch.randn(n, classes, generator=generator)
    targets = torch.multinomial(z.softmax(1), 1, generator=generator).squeeze(1)
    return z * scale, targets


def test_temperature_scaling_lowers_the_calibration_error_of_an_overconfident_model():
    logits, targets = overconfident()
    calibration = calibrate(logits, targets)
    assert 3.4 < calibration.temperature < 4.6  # it finds the over-confidence it was given
    assert calibration.ece_before > 0.15 and calibration.ece_after < 0.04
    # Predictions do not change, only how sure they are.
    assert torch.equal(logits.argmax(1), (logits / calibration.temperature).argmax(1))
    rows = calibration.reliability_after
    assert len(rows) == 10 and sum(r["photos"] for r in rows) == 3000


def test_a_calibrated_model_keeps_a_temperature_near_one_and_ece_is_a_weighted_gap():
    logits, targets = overconfident(scale=1.0, seed=1)
    assert 0.85 < fit_temperature(logits, targets) < 1.15
    probabilities = torch.tensor([[0.9, 0.1], [0.9, 0.1], [0.6, 0.4], [0.6, 0.4]])
    targets = torch.tensor([0, 1, 0, 0])  # 90 % bin: half right (gap 0.4); 60 % bin: all right (gap 0.4)
    assert abs(expected_calibration_error(probabilities, targets) - 0.4) < 1e-6
    assert [r["photos"] for r in reliability(probabilities, targets) if r["photos"]] == [2, 2]


def test_training_saves_the_temperature_and_the_classifier_applies_it(settings, tmp_path):
    from foodclf.classifier import forget_classifiers, load_classifier
    from foodclf.training.train import train_model
    from test_training import write_folder

    report = train_model(settings, write_folder(tmp_path / "photos"), base=settings.model, out=tmp_path / "m")
    record = json.loads((report.folder / "training.json").read_text())
    temperature = record["calibration"]["temperature"]
    assert temperature > 0 and record["calibration"]["photos"] == 6
    assert json.loads((report.folder / "config.json").read_text())["foodclf_temperature"] == temperature
    forget_classifiers()
    classifier = load_classifier(settings, str(report.folder))
    assert classifier.temperature == temperature
    logits = torch.tensor([[2.0, 0.5, -1.0]])
    [result] = classifier.postprocess(logits, top_k=0)
    assert abs(result.top_score - float((logits / temperature).softmax(1).max())) < 1e-6
