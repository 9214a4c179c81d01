"""Every score of a prediction, kept compactly: float16 bytes in the model's label order (its "layout").

A model with 101 labels costs 202 bytes a prediction. The label order is stored once per model
fingerprint in score_layouts. NaN marks a score that is not known: predictions stored before
migration 0010 kept only their top k.
"""

from __future__ import annotations

import math
from typing import Optional, Sequence

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session

from db.models import PredictionRow, ScoreLayout

DTYPE = "<f2"  # little-endian float16: 3 significant digits, enough to rank, calibrate and distil


def encode_scores(scores: Sequence[float]) -> bytes:
    """Scores (in layout order) as compact bytes."""
    return np.asarray(scores, dtype=DTYPE).tobytes()


def decode_scores(data: bytes) -> list[float]:
    """The scores of encode_scores, as floats (NaN where unknown)."""
    return np.frombuffer(data, dtype=DTYPE).astype(float).tolist()


def margin_and_entropy(scores: Sequence[float]) -> tuple[Optional[float], Optional[float]]:
    """(top-1 minus top-2, entropy in nats) of probabilities; NaN entries skipped.

    With only a top k known, the rest of the probability mass counts as one more outcome, so the
    entropy is a lower bound.
    """
    known = sorted((s for s in scores if not math.isnan(s)), reverse=True)
    if not known:
        return None, None
    margin = known[0] - (known[1] if len(known) > 1 else 0.0)
    rest = max(0.0, 1.0 - sum(known))
    entropy = -sum(p * math.log(p) for p in known + [rest] if p > 0)
    return float(margin), float(max(entropy, 0.0))


def prediction_scores(session: Session, prediction: PredictionRow) -> dict[str, float]:
    """Label -> score of every known score of a prediction (the stored top k if there is no full vector)."""
    if prediction.all_scores:
        layout = session.scalars(select(ScoreLayout).where(ScoreLayout.fingerprint == prediction.fingerprint)).first()
        if layout is not None:
            return {
                label: score
                for label, score in zip(layout.labels, decode_scores(prediction.all_scores))
                if not math.isnan(score)
            }
    return {s["label"]: float(s["score"]) for s in prediction.scores}
