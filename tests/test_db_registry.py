"""The trained-model registry: register, list, one active at a time."""

from __future__ import annotations

import pytest

from db.trained_models import active_model, list_models, register_model, set_active_model
from foodclf.errors import FoodclfError


def register(session, name, **overrides):
    fields = dict(
        path=f"/models/{name}",
        base_model="tiny",
        labels=["pizza", "calzone"],
        metrics={"accuracy": 0.9, "per_class": {"pizza": 0.95}},
        train_size=120,
        created_by="erin",
    )
    return register_model(session, name=name, **(fields | overrides))


def test_register_and_list_newest_first(session):
    first = register(session, "v1")
    second = register(session, "v2")
    assert [m.name for m in list_models(session)] == ["v2", "v1"]
    assert (second.labels, second.metrics["per_class"], second.train_size) == (
        ["pizza", "calzone"],
        {"pizza": 0.95},
        120,
    )
    assert second.created_at.tzinfo is not None
    assert not first.active and active_model(session) is None


def test_only_one_model_is_active(session):
    v1 = register(session, "v1", activate=True)
    assert active_model(session) is v1
    v2 = register(session, "v2")
    set_active_model(session, "v2", actor="alice")
    assert active_model(session) is v2 and not v1.active
    set_active_model(session, v1.id, actor="alice")
    assert active_model(session) is v1 and not v2.active
    assert set_active_model(session, None, actor="alice") is None
    assert active_model(session) is None


def test_mistakes_are_explained(session):
    register(session, "v1")
    with pytest.raises(FoodclfError, match="A model named 'v1' is already registered"):
        register(session, "v1")
    with pytest.raises(FoodclfError, match="There is no trained model 'v9'"):
        set_active_model(session, "v9", actor="alice")
    with pytest.raises(ValueError, match="name: expected 1 to 100 characters"):
        register(session, "  ")
