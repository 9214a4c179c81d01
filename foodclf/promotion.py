"""The frozen evaluation slice and the promotion gate: a worse model is never switched on by accident.

About 15 % of the reviewed photos, chosen by a stable hash of their content id, are never trained on.
Every trained model is measured on them beside the model in use (the champion); activating a challenger
that is worse overall, or much worse on a label with enough photos, is refused with the comparison,
unless someone forces it with a written reason, which is kept with the model in the registry.
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Optional, Union

from db.engine import open_database, session_scope
from db.export_rows import export_rows
from db.models import utcnow
from db.trained_models import find_model, record_promotion, set_active_model
from foodclf.classifier import forget_classifiers, load_classifier
from foodclf.errors import FoodclfError, ModelUnavailable
from foodclf.labels import display_label, match_key
from foodclf.model_registry import active_model_name
from foodclf.settings import Settings, local_user
from foodclf.store import StoredObject, open_store

# Share of reviewed photos in the frozen evaluation slice (per label, in expectation: the hash ignores labels).
EVALUATION_SHARE = 0.15


def in_evaluation_slice(content_id: str, share: float = EVALUATION_SHARE) -> bool:
    """Whether a photo belongs to the frozen evaluation slice.

    A hash of the content id, so the choice is made once and for all: a photo never moves in or out
    as more photos are reviewed, and no training run can pick it.
    """
    digest = hashlib.sha256(f"foodclf-evaluation-slice:{content_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") < share * 2**64


@dataclass(frozen=True)
class EvaluationPhoto:
    """A reviewed photo of the slice with its current decision."""

    content_id: str
    label: str
    path: Union[Path, StoredObject]  # its file, or its object in an object store


@dataclass(frozen=True)
class GateSettings:
    """When a challenger counts as worse than the champion."""

    overall_tolerance: float = 0.01  # accuracy may fall by at most this (0.01: one point)
    label_drop: float = 0.10  # recall on one label may fall by at most this...
    label_min_photos: int = 10  # ...checked on labels with at least this many photos in the slice
    max_photos: int = 2000  # photos of the slice used at most (the same ones each time)


@dataclass
class ModelFigures:
    """One model's figures on the slice."""

    model: str
    fingerprint: str
    photos: int
    accuracy: float
    macro_f1: float
    recall: dict[str, float]  # per true label
    support: dict[str, int]
    correct: dict[str, bool] = field(default_factory=dict)  # content id -> whether the top label was right


@dataclass
class Comparison:
    """Champion against challenger on the frozen slice, and the gate's verdict."""

    photos: int
    challenger: Optional[ModelFigures]
    champion: Optional[ModelFigures]
    verdict: str  # better, no_worse, worse, no_photos (nothing to measure on), no_champion (unloadable)
    reasons: list[str] = field(default_factory=list)  # why worse, in words
    fixed: int = 0  # photos the champion got wrong and the challenger right
    broken: int = 0  # the other way round

    @property
    def refused(self) -> bool:
        return self.verdict == "worse"

    def table(self) -> list[dict]:
        """Rows for a side-by-side table: overall figures, then recall per label (shares 0..1)."""
        champion, challenger = self.champion, self.challenger
        rows = []

        def row(what, photos, old, new):
            change = None if old is None or new is None else new - old
            rows.append({"figure": what, "photos": photos, "in use": old, "challenger": new, "change": change})

        if challenger is None:
            return rows
        row("accuracy", self.photos, champion.accuracy if champion else None, challenger.accuracy)
        row("macro F1", self.photos, champion.macro_f1 if champion else None, challenger.macro_f1)
        for label in sorted(challenger.support):
            row(
                f"recall: {display_label(label)}",
                challenger.support[label],
                champion.recall.get(label) if champion else None,
                challenger.recall[label],
            )
        return rows

    def text(self) -> str:
        """The comparison as lines for a terminal or an error message."""
        lines = [
            f"On {self.photos} photos of the frozen evaluation slice: {self.verdict.replace('_', ' ')}"
            + (f" ({self.fixed} photos fixed, {self.broken} broken)" if self.champion else "")
        ]
        lines += [f"  - {reason}" for reason in self.reasons]
        lines.append(f"  {'figure':<32} {'photos':>6} {'in use':>8} {'challenger':>10} {'change':>8}")
        for r in self.table():

            def pct(v):
                return "-" if v is None else f"{v:.1%}"

            change = "-" if r["change"] is None else f"{r['change'] * 100:+.1f}"
            lines.append(
                f"  {r['figure'][:32]:<32} {r['photos']:>6} {pct(r['in use']):>8} "
                f"{pct(r['challenger']):>10} {change:>8}"
            )
        return "\n".join(lines)

    def to_dict(self, predictions: bool = False) -> dict:
        """Plain values for the registry (per-photo outcomes left out unless asked for)."""
        data = asdict(self)
        for side in ("challenger", "champion"):
            if data[side] is not None and not predictions:
                data[side].pop("correct")
        data["table"] = self.table()
        return data


class PromotionRefused(FoodclfError):
    """The model is worse than the one in use on the frozen evaluation slice; not switched."""

    def __init__(self, comparison: Comparison):
        super().__init__(
            "This model is worse than the one in use on the frozen evaluation photos, so it was not switched "
            "on. Keep the current model, or force the switch with a written reason.\n" + comparison.text()
        )
        self.comparison = comparison


def frozen_evaluation_set(settings: Settings, *, limit: int = GateSettings.max_photos) -> list[EvaluationPhoto]:
    """The reviewed photos of the slice whose file is in the image store (at most `limit`, lowest hashes)."""
    store = open_store(settings.image_dir)
    photos = []
    with session_scope(open_database(settings)) as session:
        for row in export_rows(session):
            if in_evaluation_slice(row.content_id):
                if store.exists(row.stored_path):
                    photos.append(EvaluationPhoto(row.content_id, row.final_label, store.source(row.stored_path)))
    photos.sort(key=lambda p: hashlib.sha256(p.content_id.encode()).digest())
    return sorted(photos[:limit], key=lambda p: p.content_id)


def frozen_content_ids(settings: Settings) -> set[str]:
    """Content ids of every reviewed photo in the slice: what no training run may learn from."""
    with session_scope(open_database(settings)) as session:
        return {row.content_id for row in export_rows(session) if in_evaluation_slice(row.content_id)}


def score_model(settings: Settings, model: str, photos: list[EvaluationPhoto]) -> ModelFigures:
    """Classify the photos with a model (folder or hub id) and score it.

    Raises:
        ModelUnavailable: the model cannot be loaded.
    """
    classifier = load_classifier(settings, model)
    predictions = {}
    for photo, item in zip(photos, classifier.classify_many([p.path for p in photos], top_k=1)):
        # An unreadable photo counts as a miss for every model alike.
        predictions[photo.content_id] = item.result.highest_probability_class if item.ok else ""
    return figures(model, classifier.fingerprint, {p.content_id: p.label for p in photos}, predictions)


def figures(model: str, fingerprint: str, truths: dict[str, str], predictions: dict[str, str]) -> ModelFigures:
    """Accuracy, macro F1 and per-label recall from stored labels and a model's top labels (by content id).

    A model's label matches a stored one ignoring case, spaces and underscores ("Apple Pie" = apple_pie).
    """
    labels = sorted(set(truths.values()))
    by_key = {match_key(label): label for label in labels}
    support = dict.fromkeys(labels, 0)
    hits = dict.fromkeys(labels, 0)
    predicted = dict.fromkeys(labels, 0)
    for cid, truth in truths.items():
        support[truth] += 1
        guess = by_key.get(match_key(predictions.get(cid) or ""))
        hits[truth] += guess == truth
        if guess is not None:
            predicted[guess] += 1
    recall = {label: hits[label] / support[label] for label in labels}
    f1s = []
    for label in labels:
        precision = hits[label] / predicted[label] if predicted[label] else 0.0
        f1s.append(2 * precision * recall[label] / (precision + recall[label]) if precision + recall[label] else 0.0)
    n = len(truths)
    correct = {cid: by_key.get(match_key(predictions.get(cid) or "")) == truth for cid, truth in truths.items()}
    return ModelFigures(
        model=model,
        fingerprint=fingerprint,
        photos=n,
        accuracy=sum(hits.values()) / n if n else 0.0,
        macro_f1=sum(f1s) / len(f1s) if f1s else 0.0,
        recall=recall,
        support=support,
        correct=correct,
    )


def judge(
    challenger: ModelFigures, champion: Optional[ModelFigures], gate: GateSettings = GateSettings()
) -> Comparison:
    """The gate's verdict on two models' figures over the same photos."""
    if challenger.photos == 0:
        return Comparison(0, challenger, champion, "no_photos")
    if champion is None:
        return Comparison(challenger.photos, challenger, None, "no_champion")
    reasons = []
    drop = champion.accuracy - challenger.accuracy
    if drop > gate.overall_tolerance:
        reasons.append(f"accuracy falls from {champion.accuracy:.1%} to {challenger.accuracy:.1%}")
    for label, n in sorted(challenger.support.items()):
        old, new = champion.recall.get(label, 0.0), challenger.recall[label]
        if n >= gate.label_min_photos and old - new > gate.label_drop:
            reasons.append(f"{display_label(label)}: recall falls from {old:.0%} to {new:.0%} ({n} photos)")
    fixed = broken = 0
    for cid, after in challenger.correct.items():
        before = champion.correct.get(cid, False)
        fixed += after and not before
        broken += before and not after
    better = challenger.accuracy > champion.accuracy or (
        challenger.accuracy == champion.accuracy and challenger.macro_f1 > champion.macro_f1
    )
    verdict = "worse" if reasons else "better" if better else "no_worse"
    return Comparison(challenger.photos, challenger, champion, verdict, reasons, fixed, broken)


def compare_models(
    settings: Settings, challenger: str, champion: Optional[str] = None, *, gate: GateSettings = GateSettings()
) -> Comparison:
    """Measure a challenger (a model folder or hub id) beside the champion (default: the model in use).

    A champion that cannot be loaded (a hub model offline) gives the verdict no_champion: nothing to beat.
    """
    photos = frozen_evaluation_set(settings, limit=gate.max_photos)
    if not photos:
        return Comparison(0, None, None, "no_photos")
    new = score_model(settings, challenger, photos)
    champion = champion or active_model_name(settings)
    try:
        old = score_model(settings, champion, photos)
    except ModelUnavailable:
        old = None
    return judge(new, old, gate)


def activate_model(
    settings: Settings,
    model: Optional[int | str],
    *,
    force_reason: Optional[str] = None,
    by: str = "",
    gate: GateSettings = GateSettings(),
    comparison: Optional[Comparison] = None,
) -> Comparison:
    """Make a registered model the one in use, through the gate (None: back to FOODCLF_MODEL).

    Args:
        model: the registered model's id or name.
        force_reason: switch even if the gate refuses; kept with the model in the registry.
        by: who switches (recorded).
        comparison: the model's comparison with the one in use, if just measured (else measured here).

    Raises:
        PromotionRefused: the model is worse on the frozen slice and no reason was given.
        FoodclfError: there is no such model, or a forced switch without a reason.
    """
    force_reason = (force_reason or "").strip() or None
    engine = open_database(settings)
    with session_scope(engine) as session:
        row = find_model(session, model) if model is not None else None
        if model is not None and row is None:
            raise FoodclfError(f"There is no trained model {model!r}; pick one from the list.")
        path = row.path if row is not None else settings.model
        if row is not None and row.active:
            return Comparison(0, None, None, "no_worse", ["already in use"])
    if comparison is None:
        comparison = compare_models(settings, path, gate=gate)
    if comparison.refused and force_reason is None:
        raise PromotionRefused(comparison)
    by = by or local_user(settings)
    with session_scope(engine) as session:
        chosen = set_active_model(session, row.id if row is not None else None, actor=by)
        if chosen is not None:
            record_promotion(
                session,
                chosen,
                {
                    "at": utcnow().isoformat(timespec="seconds"),
                    "by": by,
                    "verdict": comparison.verdict,
                    "forced": comparison.refused,
                    "reason": force_reason,
                    "comparison": comparison.to_dict(),
                },
            )
    forget_classifiers()
    return comparison
