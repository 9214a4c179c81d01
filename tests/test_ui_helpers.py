"""The dashboard's helpers outside streamlit: names, corrections, the queue without skipped photos, thumbnails."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from PIL import Image

from db.queue import QueueFilters
from foodclf import moderation, thumbnails
from foodclf.errors import UnknownCategory
from foodclf.export import ExportFilters, build_export, export_label_counts
from foodclf.labels import clean_reviewer_name
from foodclf.moderation import Decision
from pages_support import jpeg, seed_photo, seed_review


@pytest.mark.parametrize(
    "typed, stored",
    [
        ("  Sam   Lee ", "Sam Lee"),
        ("Zoë\u200b", "Zoë"),  # zero-width space dropped
        ("Ana\nEvil", "Ana Evil"),  # no control characters in a stored name: a line break separates words
        ("Ana\x07\x1b[31mEvil", "Ana[31mEvil"),  # bell and escape dropped
        ("e\u0301", "é"),  # NFC
        ("x" * 300, "x" * 100),
        ("", ""),
    ],
)
def test_reviewer_names(typed, stored):
    assert clean_reviewer_name(typed) == stored


@pytest.mark.parametrize(
    "chosen, typed, expected",
    [
        ("sushi", "", Decision("corrected", "sushi")),
        ("sushi", "Bao Buns", Decision("corrected", "bao_buns")),  # typed wins
        (None, "  Crème brûlée ", Decision("corrected", "crème_brûlée")),
        ("not_food", None, Decision("not_food", "not_food")),
        (None, "Not food", Decision("not_food", "not_food")),
    ],
)
def test_corrections(chosen, typed, expected):
    assert moderation.correction(chosen, typed) == expected


@pytest.mark.parametrize(
    "chosen, typed, message",
    [
        (None, "", "Pick a category"),
        (None, "   ", "Pick a category"),
        (None, "pizza/../../etc", "Use only letters"),
        (None, "🍕", "Use only letters"),
        (None, "a" * 101, "at most"),
    ],
)
def test_unusable_corrections_say_what_to_do(chosen, typed, message):
    with pytest.raises(UnknownCategory, match=message):
        moderation.correction(chosen, typed)


def test_the_queue_steps_over_photos_skipped_this_session(dashboard):
    ids = [seed_photo(dashboard, "pizza", score, (int(score * 200), 0, 0)) for score in (0.1, 0.2, 0.3, 0.4)]
    engine = dashboard.engine
    assert moderation.next_in_queue(engine, QueueFilters()).image_id == ids[0]
    assert moderation.next_in_queue(engine, QueueFilters(), exclude=frozenset(ids[:3])).image_id == ids[3]
    assert moderation.next_in_queue(engine, QueueFilters(), exclude=frozenset(ids)) is None
    page = moderation.queue_page(engine, QueueFilters(max_score=0.35), limit=5, exclude=frozenset([ids[1]]))
    assert [p.image_id for p in page] == [ids[0], ids[2]]
    assert moderation.queue_count(engine, QueueFilters(min_score=0.25)) == 2


def test_known_labels_join_the_model_and_the_store(dashboard):
    photo = seed_photo(dashboard, "pizza", 0.5, (1, 2, 3))
    seed_review(dashboard, photo, "corrected", "Ana", label="Bao buns")
    assert moderation.known_labels(dashboard.engine, ["waffles", "Apple_pie"]) == [
        "Apple_pie",
        "bao_buns",
        "pizza",
        "waffles",
        "not_food",
    ]


def test_thumbnails_are_square_jpegs_and_missing_files_are_none(tmp_path):
    thumb = thumbnails.thumbnail_bytes(jpeg(size=(300, 120)), 64)
    with Image.open(io.BytesIO(thumb)) as image:
        assert (image.format, image.size) == ("JPEG", (64, 64))
    assert thumbnails.stored_thumbnail(str(tmp_path), "0" * 64 + ".jpg") is None
    assert thumbnails.stored_thumbnail(str(tmp_path), "../../etc/passwd") is None
    assert thumbnails.data_url(None) is None


def test_an_image_folder_export_reports_missing_files(dashboard):
    photo = seed_photo(dashboard, "pizza", 0.5, (1, 2, 3))
    seed_review(dashboard, photo, "confirmed", "Ana")
    for path in Path(dashboard.settings.image_dir).glob("*"):  # the photo file is lost
        path.unlink()
    built = build_export(
        dashboard.engine,
        dashboard.settings.image_dir,
        "imagefolder",
        ExportFilters(),
        actor="test",
        total=1,
        folder=dashboard.settings.cache_dir,
    )
    assert built.rows == 0 and len(built.missing) == 1
    assert export_label_counts(dashboard.engine, ExportFilters()) == {"pizza": 1}


def test_a_background_job_reports_progress_result_and_errors():
    import threading
    import time

    from foodclf.errors import FoodclfError
    from foodclf.jobs import FAILED, BackgroundJob

    job = BackgroundJob()
    release = threading.Event()

    def work(n, *, progress):
        progress(0.5, "half way")
        release.wait(10)
        return n * 2

    assert job.start(work, 21, started_by="Ana")
    deadline = time.monotonic() + 10
    while job.state.message != "half way" and time.monotonic() < deadline:
        time.sleep(0.01)
    assert (job.state.running, job.state.fraction, job.state.started_by) == (True, 0.5, "Ana")
    assert not job.start(work, 1)  # one run at a time
    release.set()
    state = job.wait(10)
    assert (state.running, state.finished, state.result, state.error) == (False, True, 42, None)

    def refused(*, progress):
        raise FoodclfError("Review at least two categories first.")

    job.start(refused)
    assert job.wait(10).error == "Review at least two categories first."

    def broken(*, progress):
        raise RuntimeError("boom")

    job.start(broken)
    assert job.wait(10).error == FAILED
    job.clear()
    assert not job.state.finished
