"""The audit trail: append-only in the database, every export / activation / training / undo recorded, the CLI."""

from __future__ import annotations

import json
from datetime import date, datetime, timedelta, timezone

import pytest
from sqlalchemy import delete, text, update
from sqlalchemy.exc import DatabaseError

from db.audit import list_events, record_event
from db.engine import close_database, open_database, session_scope
from db.models import AuditEvent
from db.reviews import submit_review
from db.trained_models import register_model
from factories import photo
from foodclf import model_registry, moderation
from foodclf.cli import main
from foodclf.errors import FoodclfError
from foodclf.export import ExportFilters, build_export
from foodclf.training.train import train_model


def events(engine) -> list[tuple[str, str, dict]]:
    """(actor, action, detail) of every event, oldest first."""
    with session_scope(engine) as session:
        return [(e.actor, e.action, dict(e.detail)) for e in reversed(list_events(session))]


def register(engine, name: str, **options):
    with session_scope(engine) as session:
        return register_model(
            session,
            name=name,
            path=f"/models/{name}",
            base_model="tiny",
            labels=["pizza"],
            metrics={},
            train_size=1,
            created_by="trainer",
            **options,
        ).id


@pytest.mark.parametrize(
    "statement",
    [
        update(AuditEvent).values(actor="someone else"),
        delete(AuditEvent),
        text("UPDATE audit_events SET action = 'export'"),
        text("DELETE FROM audit_events"),
    ],
    ids=["orm-update", "orm-delete", "sql-update", "sql-delete"],
)
def test_the_trail_is_append_only_in_the_database(engine, statement):
    with session_scope(engine) as session:
        record_event(session, "ana", "export", format="csv", rows=3)
    with pytest.raises(DatabaseError, match="audit_events is append-only"):
        with session_scope(engine) as session:
            session.execute(statement)
    assert events(engine) == [("ana", "export", {"format": "csv", "rows": 3})]


def test_an_unknown_action_is_a_mistake(engine):
    with pytest.raises(ValueError, match="action: expected one of"):
        with session_scope(engine) as session:
            record_event(session, "ana", "coffee_break")


def test_every_export_is_recorded_with_who_format_filters_and_rows(engine, settings, make_image, make_review, tmp_path):
    with session_scope(engine) as session:
        for label in ["pizza", "sushi", "pizza"]:
            image = make_image(session, label="steak")
            make_review(session, image, action="corrected", label=label, reviewer="mod")
    filters = ExportFilters(only_corrected=True, since=date(2020, 1, 1), labels=("pizza",))
    folder = tmp_path / "exports"
    built = build_export(engine, settings.image_dir, "jsonl", filters, actor="lee@acme.com", stamp="x", folder=folder)
    build_export(engine, settings.image_dir, "csv", ExportFilters(), actor="kim@acme.com", folder=folder)
    assert built.rows == 2
    assert events(engine) == [
        (
            "lee@acme.com",
            "export",
            {
                "format": "jsonl",
                "filters": {"only_corrected": True, "since": "2020-01-01", "until": None, "labels": ["pizza"]},
                "rows": 2,
                "file": "foodclf-labels-x.jsonl",
            },
        ),
        (
            "kim@acme.com",
            "export",
            {
                "format": "csv",
                "filters": {"only_corrected": False, "since": None, "until": None, "labels": []},
                "rows": 3,
                "file": "foodclf-labels.csv",
            },
        ),
    ]


def test_every_model_activation_is_recorded(engine):
    first = register(engine, "v1", activate=True)  # as `train --activate` does
    second = register(engine, "v2")
    model_registry.activate(engine, second, actor="lee@acme.com")
    model_registry.activate(engine, None, actor="kim@acme.com")  # back to FOODCLF_MODEL
    with pytest.raises(FoodclfError):
        model_registry.activate(engine, 999, actor="eve")  # nothing switched, nothing recorded
    assert events(engine) == [
        ("trainer", "model_activated", {"model_id": first, "model": "v1", "path": "/models/v1"}),
        ("lee@acme.com", "model_activated", {"model_id": second, "model": "v2", "path": "/models/v2"}),
        ("kim@acme.com", "model_activated", {"model_id": None, "model": None, "path": None}),
    ]


def test_an_undo_is_recorded(engine, make_image):
    with session_scope(engine) as session:
        image = make_image(session)
        submit_review(
            session, image.id, action="corrected", final_label="sushi", reviewer="mod@acme.com", expected_review_id=None
        )
        image_id = image.id
    undone = moderation.undo_last(engine, "mod@acme.com")
    assert undone is not None
    [(actor, action, detail)] = events(engine)
    assert (actor, action) == ("mod@acme.com", "undo")
    assert detail["image_id"] == image_id and (detail["action"], detail["label"]) == ("corrected", "sushi")
    assert moderation.undo_last(engine, "someone-else") is None and len(events(engine)) == 1


def test_training_started_and_finished_or_failed_are_recorded(engine, settings, tiny_model_dir, tmp_path):
    one_label = tmp_path / "one"
    (one_label / "pizza").mkdir(parents=True)
    for n in range(3):
        (one_label / "pizza" / f"{n}.jpg").write_bytes(photo((200, 10 * n, 10)))
    who = settings.replace(reviewer="lee@acme.com")
    with pytest.raises(FoodclfError):
        train_model(who, one_label, base=str(tiny_model_dir), out=tmp_path / "m1")
    two_labels = tmp_path / "two"
    for label, colour in {"pizza": (220, 40, 30), "sushi": (30, 200, 60)}.items():
        (two_labels / label).mkdir(parents=True)
        for n in range(5):
            (two_labels / label / f"{n}.jpg").write_bytes(photo((colour[0] - n, colour[1], colour[2])))
    report = train_model(who, two_labels, base=str(tiny_model_dir), out=tmp_path / "m2", activate=True)
    recorded = events(engine)
    assert [(actor, action) for actor, action, _ in recorded] == [
        ("lee@acme.com", "training_started"),
        ("lee@acme.com", "training_failed"),
        ("lee@acme.com", "training_started"),
        ("lee@acme.com", "model_activated"),
        ("lee@acme.com", "training_finished"),
    ]
    assert recorded[1][2]["error"] == "FoodclfError"
    assert recorded[0][2]["source"] == {"folder": str(one_label)}
    finished = recorded[4][2]
    assert (finished["model"], finished["model_id"], finished["activate"]) == (report.name, report.registry_id, True)
    # A model kept out of the database (--no-register) leaves nothing to record there.
    train_model(who, two_labels, base=str(tiny_model_dir), out=tmp_path / "m3", register=False)
    assert len(events(engine)) == 5


@pytest.fixture
def cli_db(monkeypatch, settings):
    monkeypatch.setenv("FOODCLF_DATABASE_URL", settings.database_url)
    monkeypatch.setenv("FOODCLF_REVIEWER", "ops")
    engine = open_database(settings)
    yield engine
    close_database(settings)


def test_the_cli_prints_the_trail_filtered_as_text_or_json(cli_db, capsys):
    with session_scope(cli_db) as session:
        at = datetime(2026, 1, 5, 9, 30, tzinfo=timezone.utc)  # an older act (rows are inserted, never changed)
        session.add(AuditEvent(at=at, actor="lee@acme.com", action="export", detail={"format": "csv", "rows": 10}))
        record_event(session, "kim@acme.com", "model_activated", model="v2")
    assert main(["audit"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2
    assert 'kim@acme.com  model_activated  model="v2"' in lines[0]  # newest first
    assert lines[1] == '2026-01-05 09:30:00Z  lee@acme.com  export  format="csv" rows=10'

    today = datetime.now(timezone.utc).date()
    assert main(["audit", "--since", today.isoformat(), "--json"]) == 0
    [only] = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert (only["actor"], only["action"], only["detail"]) == ("kim@acme.com", "model_activated", {"model": "v2"})
    assert datetime.fromisoformat(only["at"]).date() == today

    assert main(["audit", "--action", "export", "--until", "2026-01-05"]) == 0
    assert capsys.readouterr().out.count("\n") == 1
    assert main(["audit", "--since", (today + timedelta(days=1)).isoformat()]) == 0
    assert capsys.readouterr().out == "foodclf audit: nothing recorded in that range.\n"
