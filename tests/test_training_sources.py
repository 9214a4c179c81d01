"""Training from the moderators' decisions in the database, and the `train` command line."""

from __future__ import annotations

import json
from datetime import date

import pytest

from db.export_rows import ExportFilters
from factories import fake_result, photo
from foodclf.cli import main
from foodclf.images import decode_image
from foodclf.settings import setting_fields
from foodclf.training.train import train_model
from test_training import COLOURS, write_folder

# Decisions per colour: the model said pizza every time; moderators confirmed, corrected or said not food.
ACTIONS = {"pizza": ("confirmed", None), "Sushi": ("corrected", "sushi"), "not_food": ("not_food", None)}


@pytest.fixture
def reviewed(session, settings):
    """Eight photos per colour stored and decided on; returns the content ids by final label."""
    from db.reviews import submit_review
    from foodclf.ingest import store_photo

    ids = {}
    for label, (r, g, b) in COLOURS.items():
        action, typed = ACTIONS[label]
        for n in range(8):
            loaded = decode_image(photo(color=(r - 3 * n, g + n, b), size=(40 + n, 36)), name=f"{label}-{n}.jpg")
            image = store_photo(
                session, settings, loaded, fake_result("pizza", 0.6), source="upload", added_by="tester"
            )
            review = submit_review(
                session, image.id, action=action, final_label=typed, reviewer="bob", expected_review_id=None
            )
            ids.setdefault(review.final_label, []).append(loaded.content_id)
    session.commit()
    return ids


def test_trains_on_the_current_decisions(settings, reviewed, tiny_model_dir, tmp_path):
    report = train_model(settings, ExportFilters(), base=str(tiny_model_dir), out=tmp_path / "model")
    assert report.labels == ["not_food", "pizza", "sushi"]
    assert report.validation["accuracy"] == 1.0
    record = json.loads((report.folder / "training.json").read_text())
    assert record["data"]["source"] == "database (all decisions)"


def test_filters_are_the_export_filters(settings, reviewed, tiny_model_dir, tmp_path):
    report = train_model(
        settings, ExportFilters(only_corrected=True), base=str(tiny_model_dir), out=tmp_path / "model", register=False
    )
    assert report.labels == ["not_food", "sushi"]  # confirmed pizzas are not corrections
    with pytest.raises(Exception, match="at least 2 labels"):
        train_model(settings, ExportFilters(labels=("pizza",)), base=str(tiny_model_dir), out=tmp_path / "x")


def test_photos_missing_from_the_image_store_are_left_out(settings, reviewed, tiny_model_dir, tmp_path):
    from pathlib import Path

    lost = next(Path(settings.image_dir).glob(f"{reviewed['sushi'][0]}.*"))
    lost.unlink()
    report = train_model(settings, ExportFilters(), base=str(tiny_model_dir), out=tmp_path / "m", register=False)
    assert any("missing from" in line for line in report.left_out)
    frozen = len(set(report.evaluation) & set(reviewed["sushi"]))  # the evaluation slice is never trained on
    assert report.counts["train"]["sushi"] + report.counts["validation"]["sushi"] + frozen == 7


@pytest.fixture
def env(monkeypatch, settings, tiny_model_dir):
    """The environment a user would set, pointing at this test's settings."""
    for f in setting_fields():
        value = getattr(settings, f.name)
        if isinstance(value, tuple):
            value = ",".join(value)
        monkeypatch.setenv(f.metadata["env"], str(value))
    monkeypatch.setenv("FOODCLF_REVIEWER", "cli-user")


def test_cli_trains_from_the_database_and_registers(env, settings, reviewed, tiny_model_dir, tmp_path, capsys):
    from db.engine import open_database, session_scope
    from db.trained_models import list_models

    status = main(
        [
            "train",
            "--from-db",
            "--only-corrected",
            "--until",
            date.today().isoformat(),
            "--base",
            str(tiny_model_dir),
            "--out",
            str(tmp_path / "cli-model"),
            "--json",
        ]
    )
    assert status == 0
    report = json.loads(capsys.readouterr().out)
    assert report["labels"] == ["not_food", "sushi"] and report["registry_id"] == 1
    with session_scope(open_database(settings)) as session:
        (row,) = list_models(session)
        assert (row.name, row.created_by) == ("cli-model", "cli-user")


def test_cli_default_output_folder_is_under_the_model_dir(env, settings, tiny_model_dir, tmp_path, capsys):
    data = write_folder(tmp_path / "photos")
    assert main(["train", "--data", str(data), "--base", str(tiny_model_dir), "--no-register"]) == 0
    text = capsys.readouterr().out
    (folder,) = (tmp_path / "models").iterdir()
    assert folder.name.startswith("tiny-vit0-head-")
    assert f"trained {folder.name}" in text and "validation (6 photos): accuracy 100.0%" in text
    assert "new to the base model: not_food" in text


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--data", "x", "--only-corrected"], "go with --from-db"),
        (["--from-db", "--since", "2024-05-02", "--until", "2024-05-01"], "--until is before --since"),
        (["--data", "x", "--epochs", "0"], "--epochs must be 1 or more"),
    ],
)
def test_cli_refuses_contradictory_options(env, argv, message, capsys):
    assert main(["train", *argv]) == 2
    assert message in capsys.readouterr().err


def test_cli_reports_a_missing_folder_plainly(env, tmp_path, capsys):
    assert main(["train", "--data", str(tmp_path / "nowhere")]) == 1
    assert "There is no folder at" in capsys.readouterr().err
