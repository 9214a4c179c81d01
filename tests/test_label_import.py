"""Importing labels from CSV or JSON Lines: good rows become reviews, bad rows are listed, re-importing adds nothing."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import func, select

from db.engine import open_database, session_scope
from db.models import ImageRow, ReviewRow
from factories import photo
from foodclf.cli import main
from foodclf.errors import FoodclfError
from foodclf.label_import import import_labels


def count(settings, model) -> int:
    with session_scope(open_database(settings)) as session:
        return session.scalar(select(func.count()).select_from(model))


def current_labels(settings) -> dict[str, str]:
    with session_scope(open_database(settings)) as session:
        return {row.file_name: row.current_label for row in session.scalars(select(ImageRow))}


@pytest.fixture
def photos(tmp_path):
    folder = tmp_path / "photos"
    folder.mkdir()
    for n, colour in enumerate([(220, 40, 30), (30, 200, 60), (40, 60, 220)]):
        (folder / f"p{n}.jpg").write_bytes(photo(color=colour))
    (folder / "notes.jpg").write_bytes(b"this is text, not a photo")
    return folder


def write(path, text: str):
    path.write_text(text, encoding="utf-8")
    return path


def test_good_rows_become_reviews_and_bad_rows_are_listed_by_line(settings, photos, tmp_path):
    csv_file = write(
        tmp_path / "labels.csv",
        (
            "path,label,note\n"
            "photos/p0.jpg,Pizza,from the old tool\n"  # line 2: a new photo, stored first
            "photos/p1.jpg,sushi,\n"  # 3
            "photos/p2.jpg,not food,\n"  # 4: not_food
            "photos/missing.jpg,pizza,\n"  # 5: no such file
            "photos/p1.jpg,,\n"  # 6: empty label
            "photos/p0.jpg,pizza!?,\n"  # 7: unusable label
            "photos/notes.jpg,pizza,\n"  # 8: not a photo
            "photos/p1.jpg,ramen,\n"  # 9: contradicts line 3
            "\n"
        ),
    )
    report = import_labels(settings, csv_file, reviewer="import: old tool")

    assert (report.rows, report.added, report.stored, report.already) == (8, 3, 3, 0)
    reasons = dict(report.refused)
    assert sorted(reasons) == [5, 6, 7, 8, 9]
    assert "no file at" in reasons[5] and reasons[6] == "no label"
    assert "unusable label 'pizza!?'" in reasons[7] and "not" in reasons[8].lower()
    assert "labelled sushi on line 3" in reasons[9]
    assert current_labels(settings) == {"p0.jpg": "pizza", "p1.jpg": "sushi", "p2.jpg": "not_food"}
    with session_scope(open_database(settings)) as session:
        rows = session.scalars(select(ReviewRow).order_by(ReviewRow.id)).all()
        assert [(r.action, r.reviewer) for r in rows] == [("corrected", "import: old tool")] * 2 + [
            ("not_food", "import: old tool")
        ]
        assert rows[0].note == "from the old tool"
        assert session.get(ImageRow, rows[0].image_id).top_label  # classified when stored

    again = import_labels(settings, csv_file, reviewer="import: old tool")
    assert (again.added, again.stored, again.already, len(again.refused)) == (0, 0, 3, 5)
    assert count(settings, ReviewRow) == 3 and count(settings, ImageRow) == 3


def test_content_ids_jsonl_and_a_moderators_later_change_is_kept(settings, photos, tmp_path):
    from db.reviews import submit_review

    first = write(tmp_path / "first.csv", "path,label\nphotos/p0.jpg,pizza\n")
    import_labels(settings, first, reviewer="importer")
    with session_scope(open_database(settings)) as session:
        image = session.scalars(select(ImageRow)).one()
        cid = image.content_id
        # A moderator corrects it afterwards; importing the old file again must not undo that.
        submit_review(
            session,
            image.id,
            action="corrected",
            final_label="flatbread",
            reviewer="ana",
            expected_review_id=image.current_review_id,
        )
    jsonl = write(
        tmp_path / "labels.jsonl",
        "\n".join(
            [
                json.dumps({"content_id": cid.upper(), "label": "pizza"}),  # what the importer said before
                json.dumps({"content_id": "0" * 64, "label": "pizza"}),
                "not json",
                json.dumps(["a", "list"]),
                "",
            ]
        ),
    )
    report = import_labels(settings, jsonl, reviewer="importer")
    assert (report.added, report.already) == (0, 1)
    assert [line for line, _ in report.refused] == [2, 3, 4]
    assert "no stored photo has the content id 0000" in report.refused[0][1]
    assert current_labels(settings) == {"p0.jpg": "flatbread"}


@pytest.mark.parametrize(
    "text, message",
    [
        ("file,category\nx.jpg,pizza\n", "needs a header with a `label` column"),
        ("", "needs a header"),
    ],
)
def test_a_file_without_the_columns_is_refused_whole(settings, tmp_path, text, message):
    with pytest.raises(FoodclfError, match=message):
        import_labels(settings, write(tmp_path / "bad.csv", text), reviewer="x")
    assert count(settings, ReviewRow) == 0


def test_a_reviewer_name_is_required(settings, tmp_path):
    with pytest.raises(FoodclfError, match="--reviewer"):
        import_labels(settings, write(tmp_path / "a.csv", "path,label\n"), reviewer="  ")


@pytest.fixture
def env(monkeypatch, settings):
    from foodclf.settings import setting_fields

    for f in setting_fields():
        value = getattr(settings, f.name)
        monkeypatch.setenv(f.metadata["env"], ",".join(value) if isinstance(value, tuple) else str(value))


def test_cli_labels_import(env, settings, photos, tmp_path, capsys):
    csv_file = write(tmp_path / "labels.csv", "path,label\nphotos/p0.jpg,pizza\nphotos/nope.jpg,pizza\n")
    assert main(["labels", "import", str(csv_file), "--reviewer", "sheet", "--json"]) == 1  # one row refused
    report = json.loads(capsys.readouterr().out)
    assert report["added"] == 1 and report["refused"][0]["line"] == 3
    assert main(["labels", "import", str(csv_file)]) == 2
    assert "--reviewer" in capsys.readouterr().err


def test_importing_again_neither_loads_the_model_nor_decodes_and_a_bad_file_is_refused_on_each_line(
    settings, photos, tmp_path, monkeypatch
):
    csv_file = write(
        tmp_path / "labels.csv",
        "path,label\nphotos/p0.jpg,pizza\nphotos/notes.jpg,pizza\nphotos/notes.jpg,pizza\n",
    )
    first = import_labels(settings, csv_file, reviewer="import")
    assert first.stored == 1 and [line for line, _ in first.refused] == [3, 4]

    def refuse(*args, **kwargs):
        raise AssertionError("loaded a model for photos already stored")

    monkeypatch.setattr("foodclf.label_import.load_classifier", refuse)
    monkeypatch.setattr("foodclf.label_import.decode_image", refuse)
    again = import_labels(
        settings, write(tmp_path / "again.csv", "path,label\nphotos/p0.jpg,pizza\n"), reviewer="import"
    )
    assert (again.added, again.stored, again.already, again.refused) == (0, 0, 1, [])
