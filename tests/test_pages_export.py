"""The Export page: filters, the preview and counts, and each format's file."""

from __future__ import annotations

import csv
import io
import json
import zipfile

from db.engine import session_scope
from db.export_rows import EXPORT_COLUMNS
from db.models import ImageRow
from foodclf.store import ImageStore
from pages_support import clear_streamlit_caches, run, seed_photo, seed_review, texts

PAGE = "export.py"


def _seed(dashboard) -> dict[str, int]:
    ids = {
        name: seed_photo(dashboard, label, score, color)
        for name, label, score, color in [
            ("a", "pizza", 0.9, (200, 40, 40)),
            ("b", "pizza", 0.5, (180, 60, 40)),
            ("c", "sushi", 0.4, (40, 200, 40)),
            ("d", "steak", 0.7, (40, 40, 200)),
        ]
    }
    seed_review(dashboard, ids["a"], "confirmed", "Alice")
    seed_review(dashboard, ids["b"], "corrected", "Bob", label="Flat bread")
    seed_review(dashboard, ids["c"], "not_food", "Bob")
    return ids  # d is unreviewed: never exported


def _build(at):
    at.button(key="e_build").click()
    run(at)
    (_, built) = at.session_state["export_ready"]
    assert at.download_button(key="e_download").label.startswith(f"Download {built.file_name}")
    return built


def test_preview_counts_and_csv(dashboard):
    _seed(dashboard)
    at = run(dashboard.app(PAGE))
    assert {m.label: m.value for m in at.metric}["Rows"] == "3"
    preview = at.dataframe[0].value
    assert list(preview["final_label"]) == ["pizza", "flat_bread", "not_food"]
    built = _build(at)
    assert built.file_name.endswith(".csv") and built.mime == "text/csv"
    rows = list(csv.DictReader(io.StringIO(built.data.decode("utf-8"))))
    assert [(r["final_label"], r["action"], r["reviewer"]) for r in rows] == [
        ("pizza", "confirmed", "Alice"),
        ("flat_bread", "corrected", "Bob"),
        ("not_food", "not_food", "Bob"),
    ]


def test_only_corrections_as_jsonl(dashboard):
    _seed(dashboard)
    at = run(dashboard.app(PAGE))
    at.radio(key="e_format").set_value("jsonl")
    at.toggle(key="e_corrected").set_value(True)
    run(at)
    assert {m.label: m.value for m in at.metric}["Rows"] == "2"
    built = _build(at)
    records = [json.loads(line) for line in built.data.decode("utf-8").splitlines()]
    assert [r["final_label"] for r in records] == ["flat_bread", "not_food"]
    assert records[0]["predicted_label"] == "pizza" and records[0]["predicted_score"] == 0.5


def test_image_folder_zip_for_chosen_labels(dashboard):
    ids = _seed(dashboard)
    at = run(dashboard.app(PAGE))
    at.radio(key="e_format").set_value("imagefolder")
    at.multiselect(key="e_labels").set_value(["pizza", "flat_bread"])
    run(at)
    built = _build(at)
    assert built.mime == "application/zip" and built.rows == 2 and not built.missing
    with zipfile.ZipFile(io.BytesIO(built.data)) as archive:
        names = sorted(archive.namelist())
        metadata = list(csv.DictReader(io.StringIO(archive.read("metadata.csv").decode("utf-8"))))
        exported = {r["label"]: archive.read(r["file_name"]) for r in metadata}
    assert len(names) == 3 and names[-1] == "pizza/" + names[-1].split("/")[1]
    assert sorted(r["label"] for r in metadata) == ["flat_bread", "pizza"]
    assert all(r["file_name"] in names for r in metadata)
    # Every exported photo is byte for byte the one stored for its decision.
    store = ImageStore(dashboard.settings.image_dir)
    with session_scope(dashboard.engine) as session:
        stored = {
            label: store.read(session.get(ImageRow, ids[key]).stored_path)
            for key, label in (("a", "pizza"), ("b", "flat_bread"))
        }
    assert exported == stored and stored["pizza"] != stored["flat_bread"]


def test_changing_the_choice_drops_the_built_file(dashboard):
    _seed(dashboard)
    at = run(dashboard.app(PAGE))
    _build(at)
    at.toggle(key="e_corrected").set_value(True)
    run(at)
    assert not at.download_button


def test_nothing_to_export(dashboard):
    at = run(dashboard.app(PAGE))
    assert any("No reviews yet" in text for text in texts(at.info))
    _seed(dashboard)
    clear_streamlit_caches()  # counts are cached for a minute; decisions made elsewhere show after that
    at = run(dashboard.app(PAGE))
    at.multiselect(key="e_labels").set_value(["not_food"])
    at.toggle(key="e_corrected").set_value(True)
    run(at)
    assert {m.label: m.value for m in at.metric}["Rows"] == "1"


def test_the_preview_shows_who_decided_what_first(dashboard):
    """Action and reviewer were hidden behind a horizontal scroll, after the content id and scores."""
    _seed(dashboard)
    at = run(dashboard.app(PAGE))
    shown = list(at.dataframe[0].proto.column_order)
    assert shown[:4] == ["file_name", "final_label", "action", "reviewer"]
    assert sorted(shown) == sorted(EXPORT_COLUMNS)  # every column still there, the long id last
    assert shown[-1] == "content_id"
