"""Scores that mean probabilities: temperature scaling (Guo et al., 2017) and the calibration error.

A network trained with cross-entropy is usually over- or under-confident: of the photos it scores 0.9,
far fewer or more than 90 % are right, so "uncertain below 0.5" does not mean what it says. One number,
the temperature T, divides the logits before the softmax; it is fitted on the validation photos by
minimising their negative log-likelihood, which changes no prediction, only how sure each one is.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

BINS = 10  # confidence bins of the calibration error and the reliability chart
T_RANGE = (0.05, 20.0)  # temperatures searched; outside this the validation set is too small to say


@dataclass
class Calibration:
    """A fitted temperature and the calibration error before and after it, on the validation photos."""

    temperature: float
    ece_before: float
    ece_after: float
    photos: int
    reliability_before: list[dict] = field(default_factory=list)  # see reliability()
    reliability_after: list[dict] = field(default_factory=list)

    def to_dict(self) -> dict:
        return dict(self.__dict__)


def reliability(probabilities: torch.Tensor, targets: torch.Tensor, bins: int = BINS) -> list[dict]:
    """Per confidence bin: its range, photos, mean confidence and accuracy (the reliability chart's points)."""
    confidence, predicted = probabilities.max(1)
    correct = (predicted == targets).float()
    rows = []
    for i in range(bins):
        low, high = i / bins, (i + 1) / bins
        inside = (confidence > low) & (confidence <= high) if i else (confidence >= low) & (confidence <= high)
        n = int(inside.sum())
        rows.append(
            {
                "low": low,
                "high": high,
                "photos": n,
                "confidence": float(confidence[inside].mean()) if n else None,
                "accuracy": float(correct[inside].mean()) if n else None,
            }
        )
    return rows


def expected_calibration_error(probabilities: torch.Tensor, targets: torch.Tensor, bins: int = BINS) -> float:
    """ECE: the photo-weighted mean gap between confidence and accuracy over equal-width confidence bins."""
    total = len(targets)
    if not total:
        return 0.0
    return sum(
        row["photos"] / total * abs(row["confidence"] - row["accuracy"])
        for row in reliability(probabilities, targets, bins)
        if row["photos"]
    )


def fit_temperature(logits: torch.Tensor, targets: torch.Tensor) -> float:
    """The temperature minimising the negative log-likelihood of the targets (a 1-D convex search in log T)."""
    logits, targets = logits.detach().float(), targets.detach().long()
    low, high = (torch.log(torch.tensor(t)).item() for t in T_RANGE)

    def nll(log_t: float) -> float:
        return float(F.cross_entropy(logits / torch.exp(torch.tensor(log_t)), targets))

    # Golden-section search: the NLL is convex in log T, and 60 steps pin it to well under 1e-6.
    ratio = (5**0.5 - 1) / 2
    a, b = low, high
    c, d = b - ratio * (b - a), a + ratio * (b - a)
    fc, fd = nll(c), nll(d)
    for _ in range(60):
        if fc < fd:
            b, d, fd = d, c, fc
            c = b - ratio * (b - a)
            fc = nll(c)
        else:
            a, c, fc = c, d, fd
            d = a + ratio * (b - a)
            fd = nll(d)
    return float(torch.exp(torch.tensor((a + b) / 2)))


def calibrate(logits: torch.Tensor, targets: torch.Tensor) -> Calibration:
    """Fit the temperature on validation logits and measure the calibration error before and after."""
    temperature = fit_temperature(logits, targets)
    before, after = logits.float().softmax(1), (logits.float() / temperature).softmax(1)
    return Calibration(
        temperature=temperature,
        ece_before=expected_calibration_error(before, targets),
        ece_after=expected_calibration_error(after, targets),
        photos=len(targets),
        reliability_before=reliability(before, targets),
        reliability_after=reliability(after, targets),
    )
