"""The trained-model registry as the dashboard shows it: plain rows, and switching the active model."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
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


def trained_models(engine: Engine) -> list[TrainedModelInfo]:
    """Every registered model, newest first."""
    with session_scope(engine) as session:
        return [
            TrainedModelInfo(
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
            )
            for m in list_models(session)
        ]


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
        row.update({"base": model.base_model, "created": model.created_at, "by": model.created_by})
        rows.append(row)
    return rows
