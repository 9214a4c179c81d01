"""The registry of fine-tuned models: which exist, and which one classifies new photos."""

from __future__ import annotations

from typing import Any, Optional

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from db.audit import record_event
from db.models import TrainedModel, utcnow
from foodclf.errors import FoodclfError
from foodclf.labels import NAME_LENGTH


def register_model(
    session: Session,
    *,
    name: str,
    path: str,
    base_model: str,
    labels: list[str],
    metrics: dict[str, Any],
    train_size: int,
    created_by: str,
    activate: bool = False,
    training_source: Optional[dict[str, Any]] = None,
) -> TrainedModel:
    """Record a trained model; with activate=True it becomes the only active one.

    Args:
        training_source: {"folders": [...], "database": [filters...]}: what a retrain from it replays.

    Raises:
        FoodclfError: a model with this name is already registered.
    """
    name = name.strip()
    if not name or len(name) > NAME_LENGTH:
        raise ValueError(f"name: expected 1 to {NAME_LENGTH} characters, not {name!r}")
    if session.scalars(select(TrainedModel).where(TrainedModel.name == name)).first() is not None:
        raise FoodclfError(f"A model named {name!r} is already registered; choose another name.")
    model = TrainedModel(
        name=name,
        path=str(path),
        base_model=base_model,
        labels=list(labels),
        metrics=dict(metrics),
        train_size=int(train_size),
        created_by=created_by[:NAME_LENGTH] or "unknown",
        created_at=utcnow(),
        active=False,
        training_source=dict(training_source) if training_source is not None else None,
    )
    session.add(model)
    session.flush()
    if activate:
        set_active_model(session, model.id, actor=model.created_by)
    return model


def list_models(session: Session) -> list[TrainedModel]:
    """Every registered model, newest first."""
    return list(session.scalars(select(TrainedModel).order_by(TrainedModel.id.desc())))


def set_active_model(session: Session, model: Optional[int | str], *, actor: str) -> Optional[TrainedModel]:
    """Make the model with this id or name the active one (None: none active, back to FOODCLF_MODEL).

    Every activation goes through here and is recorded in the audit trail, under `actor`, in the
    same transaction.

    Raises:
        FoodclfError: there is no such model.
    """
    chosen = None
    if model is not None:
        chosen = find_model(session, model)
        if chosen is None:
            raise FoodclfError(f"There is no trained model {model!r}; pick one from the list.")
    # Deactivate everything, then activate one, in the caller's transaction: never two active.
    session.execute(update(TrainedModel).values(active=False).execution_options(synchronize_session="fetch"))
    if chosen is not None:
        chosen.active = True
        session.flush()
    record_event(
        session,
        actor,
        "model_activated",
        model_id=chosen.id if chosen else None,
        model=chosen.name if chosen else None,
        path=chosen.path if chosen else None,
    )
    return chosen


def find_model(session: Session, model: int | str) -> Optional[TrainedModel]:
    """The registered model with this id or name, or None."""
    where = TrainedModel.id == model if isinstance(model, int) else TrainedModel.name == model
    return session.scalars(select(TrainedModel).where(where)).first()


def record_promotion(session: Session, model: TrainedModel, entry: dict[str, Any]) -> None:
    """Append an activation record (verdict, table, forced by whom and why) to the model's promotions."""
    # A new list, so the JSON column is seen as changed.
    model.promotions = [*(model.promotions or []), dict(entry)]
    session.flush()


def active_model(session: Session) -> Optional[TrainedModel]:
    """The active trained model, or None (then FOODCLF_MODEL is used)."""
    return session.scalars(
        select(TrainedModel).where(TrainedModel.active.is_(True)).order_by(TrainedModel.id.desc()).limit(1)
    ).first()
