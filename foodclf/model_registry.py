"""The trained-model registry as the dashboard shows it: plain rows, and switching the active model."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Optional

from sqlalchemy import Engine

from db.engine import open_database, session_scope
from db.trained_models import active_model, list_models, set_active_model
from foodclf.settings import Settings

# Metrics shown side by side, in this order, when a model's metrics have them.
HEADLINE_METRICS = ("accuracy", "top5_accuracy", "macro_f1")


@dataclass(frozen=True)
class TrainedModelInfo:
    """One registered model, safe to keep after the session ends."""

    id: int
    name: str
    path: str
    base_model: str
    labels: list[str]
    metrics: dict[str, Any]
    train_size: int
    created_at: datetime
    created_by: str
    active: bool
    training_source: Optional[dict[str, Any]] = None  # what a retrain from it replays (see db.models)
    promotions: tuple = ()  # activations through the promotion gate, oldest first


def trained_models(engine: Engine) -> list[TrainedModelInfo]:
    """Every registered model, newest first."""
    with session_scope(engine) as session:
        return [model_info(m) for m in list_models(session)]


def model_info(m) -> TrainedModelInfo:
    """A db.models.TrainedModel as plain values."""
    return TrainedModelInfo(
        m.id,
        m.name,
        m.path,
        m.base_model,
        list(m.labels),
        dict(m.metrics),
        m.train_size,
        m.created_at,
        m.created_by,
        bool(m.active),
        m.training_source,
        tuple(m.promotions or ()),
    )


def model_by_path(settings: Settings, path: str) -> Optional[TrainedModelInfo]:
    """The registered model kept in this folder (the newest, if registered twice), or None."""
    wanted = str(Path(path).expanduser().resolve()) if path else ""
    with session_scope(open_database(settings.database_url)) as session:
        for model in list_models(session):
            if str(Path(model.path).expanduser().resolve()) == wanted:
                return model_info(model)
    return None


def active_model_name(settings: Settings) -> str:
    """The model new photos are classified with: the active trained model's folder, else FOODCLF_MODEL.

    The dashboard and the API both ask this, so they always classify with the same model.
    """
    with session_scope(open_database(settings.database_url)) as session:
        model = active_model(session)
        return model.path if model is not None else settings.model


def activate(engine: Engine, model_id: Optional[int], *, actor: str) -> None:
    """Make a registered model the one that classifies new photos (None: back to FOODCLF_MODEL).

    Args:
        actor: who switched (recorded in the audit trail with the switch).

    Raises:
        FoodclfError: there is no such model.
    """
    with session_scope(engine) as session:
        set_active_model(session, model_id, actor=actor)


def metrics_table(models: list[TrainedModelInfo]) -> list[dict[str, Any]]:
    """One row per model with its headline figures, for a side-by-side table."""
    rows = []
    for model in models:
        metrics = model.metrics.get("validation", model.metrics)  # figures may be nested under the split
        row = {"active": model.active, "name": model.name, "labels": len(model.labels), "trained on": model.train_size}
        for key in HEADLINE_METRICS:
            value = metrics.get(key)
            row[key.replace("_", " ")] = float(value) if isinstance(value, (int, float)) else None
        calibration = model.metrics.get("calibration") or {}
        row["calibration error"] = calibration.get("ece_after")  # after temperature scaling, 0 is perfect
        row.update({"base": model.base_model, "created": model.created_at, "by": model.created_by})
        rows.append(row)
    return rows


def reliability_chart(model: TrainedModelInfo) -> list[dict[str, Any]]:
    """The reliability chart's points: per confidence bin, the share right before and after temperature scaling.

    Perfectly calibrated scores lie on the diagonal (`perfect`); rows are empty without validation photos.
    """
    calibration = model.metrics.get("calibration") or {}
    rows = []
    for before, after in zip(calibration.get("reliability_before", []), calibration.get("reliability_after", [])):
        middle = round((before["low"] + before["high"]) / 2, 3)
        rows.append(
            {
                "confidence": middle,
                "perfect": middle,
                "accuracy before": before["accuracy"],
                "accuracy after": after["accuracy"],
                "photos before": before["photos"],
                "photos after": after["photos"],
            }
        )
    return rows
