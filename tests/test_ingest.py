"""Folder ingest with the tiny model: exact counts, refusals reported, resumable after a kill."""

from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from sqlalchemy import event, func, select

from db.engine import close_database, open_database, session_scope
from db.models import ImageHashRow, ImageRow, PredictionRow
from factories import photo
from foodclf import ingest, store
from foodclf.classifier import load_classifier
from foodclf.cli import main
from foodclf.errors import FoodclfError
from foodclf.images import content_id, decode_image
from foodclf.ingest import STORE_AHEAD, ingest_folder, store_photo, store_photos
from shared_data import FOOD_PHOTOS, HOSTILE_IMAGES

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def classifier(settings):
    return load_classifier(settings)


@pytest.fixture(autouse=True)
def _close_engine(settings):
    yield
    close_database(settings)


def make_folder(folder: Path, count: int, start: int = 0) -> list[Path]:
    """`count` distinct photos, spread over two sub-folders."""
    paths = []
    for i in range(start, start + count):
        path = folder / ("a" if i % 2 else "b/c") / f"dish {i}.jpg"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(photo(color=(i * 7 % 256, 255 - i, 60), size=(40 + i % 5, 36)))
        paths.append(path)
    return paths


def db_counts(settings) -> tuple[int, int, int]:
    """(images, predictions, files in the image store)."""
    with session_scope(open_database(settings)) as session:
        images = session.scalar(select(func.count()).select_from(ImageRow))
        predictions = session.scalar(select(func.count()).select_from(PredictionRow))
        duplicates = session.execute(
            select(PredictionRow.image_id)
            .group_by(PredictionRow.image_id, PredictionRow.fingerprint)
            .having(func.count() > 1)
        ).all()
    assert duplicates == []
    store = Path(settings.image_dir)
    files = len([p for p in store.iterdir() if not p.name.startswith(".")]) if store.exists() else 0
    return images, predictions, files


def hostile_files(folder: Path) -> dict[str, str]:
    """Refused files made here (name -> part of the reason), so the test runs without shared data."""
    jpeg = photo(size=(64, 64))
    noise = np.random.default_rng(0).integers(0, 255, (400, 400, 3), dtype=np.uint8)
    cases = {
        "empty.jpg": (b"", "The file is empty."),
        "truncated.jpg": (jpeg[: len(jpeg) // 2], "truncated or corrupt"),
        "notes.jpg": ("I am not a photo. ☃".encode(), "not an image we can open"),
        "header-only.png": (b"\x89PNG\r\n\x1a\n", "PNG file is corrupt"),
        "scan.tif": (photo(fmt="TIFF"), "This is a TIFF image"),
        "paint.bmp": (photo(fmt="BMP"), "This is a BMP image"),
        "huge.png": (_png(noise), "the limit is 256 KB"),
    }
    for name, (data, _) in cases.items():
        (folder / name).write_bytes(data)
    return {name: reason for name, (_, reason) in cases.items()}


def _png(pixels) -> bytes:
    import io

    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, "PNG")
    return buffer.getvalue()


def test_ingesting_twice_stores_each_photo_once(settings, classifier, tmp_path):
    folder = tmp_path / "photos"
    paths = make_folder(folder, 10)
    (folder / "a" / "copy.jpg").write_bytes(paths[0].read_bytes())  # same photo under another name
    (folder / "README.txt").write_text("not a photo")
    (folder / ".hidden.jpg").write_bytes(photo(color=(1, 2, 3)))
    first = ingest_folder(settings, folder, classifier, added_by="tester")
    assert (first.files, first.stored, first.already, first.refused) == (11, 10, 1, [])
    assert db_counts(settings) == (10, 10, 10)
    second = ingest_folder(settings, folder, classifier, added_by="tester")
    assert (second.files, second.stored, second.already, second.refused) == (11, 0, 11, [])
    assert db_counts(settings) == (10, 10, 10)
    with session_scope(open_database(settings)) as session:
        image = session.scalars(select(ImageRow).where(ImageRow.file_name == "dish 3.jpg")).one()
        assert (image.source, image.added_by, image.top_label in classifier.labels) == ("folder", "tester", True)
        assert image.stored_path == f"{image.content_id}.jpg"


def test_a_new_model_adds_its_predictions_to_the_same_images(settings, classifier, tmp_path):
    from tiny_models import build_tiny_vit

    folder = tmp_path / "photos"
    make_folder(folder, 6)
    ingest_folder(settings, folder, classifier)
    other = load_classifier(settings, str(build_tiny_vit(tmp_path / "other-model", seed=1)))
    assert other.fingerprint != classifier.fingerprint
    report = ingest_folder(settings, folder, other)
    assert (report.stored, report.already) == (6, 0)
    assert db_counts(settings) == (6, 12, 6)


def test_refused_files_are_each_reported_and_nothing_is_stored_for_them(settings, tmp_path):
    settings = settings.replace(max_upload_mb=0.25)
    classifier = load_classifier(settings)
    folder = tmp_path / "mixed"
    make_folder(folder, 2)
    reasons = hostile_files(folder)
    heard = []
    report = ingest_folder(
        settings,
        folder,
        classifier,
        on_outcome=lambda outcome, path: outcome.ok or heard.append((path, str(outcome.error))),
    )
    assert (report.stored, report.already) == (2, 0)
    assert heard == report.refused
    assert sorted(Path(path).name for path, _ in report.refused) == sorted(reasons)
    for path, reason in report.refused:
        assert reasons[Path(path).name] in reason, (path, reason)
    assert db_counts(settings) == (2, 2, 2)
    assert not [p for p in Path(settings.image_dir).iterdir() if p.name.startswith(".")]  # no temporaries


@pytest.mark.skipif(not HOSTILE_IMAGES.is_dir(), reason="shared hostile images not present")
def test_shared_hostile_folder(settings, classifier):
    report = ingest_folder(settings, HOSTILE_IMAGES, classifier)
    refused = {Path(path).name: reason for path, reason in report.refused}
    assert report.stored + len(refused) == report.files == len(list(HOSTILE_IMAGES.iterdir()))
    for name in (
        "pillow__truncated_jpeg.jpg",
        "pillow__truncated_image.png",
        "pillow__broken.png",
        "pillow__decompression_bomb.gif",
        "pillow__hopper.tif",
        "pillow__hopper.bmp",
    ):
        if (HOSTILE_IMAGES / name).exists():
            assert refused[name], name
    assert all(reason.endswith((".", "upload again.")) for reason in refused.values()), refused
    assert db_counts(settings) == (report.stored,) * 3


class Interrupted:
    """The real classifier, stopped like Ctrl-C after `after` photos have come out of the model."""

    def __init__(self, classifier, after: int):
        self.classifier, self.after = classifier, after
        self.fingerprint = classifier.fingerprint

    def classify_many(self, sources, **options):
        for n, item in enumerate(self.classifier.classify_many(sources, **options)):
            if n == self.after:
                raise KeyboardInterrupt
            yield item


def test_interrupted_then_resumed_finishes_with_no_duplicate_and_no_loss(settings, classifier, tmp_path):
    folder = tmp_path / "photos"
    make_folder(folder, 12)
    with pytest.raises(KeyboardInterrupt):
        ingest_folder(settings, folder, Interrupted(classifier, after=5))
    assert db_counts(settings) == (5, 5, 5)
    report = ingest_folder(settings, folder, classifier)
    assert (report.stored, report.already) == (7, 5)
    assert db_counts(settings) == (12, 12, 12)


KILLABLE = """
import sys, time
import foodclf.ingest as ingest
store = ingest.store_photos
def slow(*args, **kwargs):
    time.sleep(0.15)  # time for the test to kill us between groups of photos, or in the middle of one
    return store(*args, **kwargs)
ingest.store_photos = slow
from foodclf import ingest
from foodclf.cli import main
sys.exit(main(["ingest", sys.argv[1], "--no-progress"]))
"""


def environment(settings) -> dict[str, str]:
    return os.environ | {
        "FOODCLF_MODEL": settings.model,
        "FOODCLF_DATABASE_URL": settings.database_url,
        "FOODCLF_IMAGE_DIR": settings.image_dir,
        "FOODCLF_DEVICE": "cpu",
        "FOODCLF_PRECISION": "fp32",
        "FOODCLF_ENGINE": "torch",
        "FOODCLF_WORKERS": "1",
        "FOODCLF_BATCH_SIZE": "4",
        "FOODCLF_REVIEWER": "ingest-test",
    }


def test_killed_process_then_rerun_finishes_the_rest(settings, classifier, tmp_path):
    folder = tmp_path / "photos"
    make_folder(folder, 40)
    open_database(settings)  # the schema exists before we start polling it
    run = subprocess.Popen(
        [sys.executable, "-c", KILLABLE, str(folder)],
        cwd=ROOT,
        env=environment(settings),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 120
    while db_counts(settings)[0] < 5 and run.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    run.send_signal(signal.SIGKILL)
    _, stderr = run.communicate(timeout=30)
    assert run.returncode == -signal.SIGKILL, stderr.decode()
    images, predictions, files = db_counts(settings)
    assert 5 <= images == predictions < 40
    # A group's bytes are stored before its rows, so a kill can leave a group's files without rows: harmless.
    assert images <= files <= images + STORE_AHEAD
    report = ingest_folder(settings, folder, classifier)
    assert (report.stored, report.already) == (40 - images, images)
    assert db_counts(settings) == (40, 40, 40)


def test_command_line_exit_status_and_output(settings, classifier, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(os, "environ", environment(settings))
    folder = tmp_path / "photos"
    make_folder(folder, 3)
    assert main(["ingest", str(folder)]) == 0
    captured = capsys.readouterr()
    assert captured.out == "foodclf ingest: stored 3, already there 0, refused 0.\n"
    (folder / "notes.jpg").write_text("not a photo")
    assert main(["ingest", str(folder), "--json"]) == 1
    captured = capsys.readouterr()
    assert json.loads(captured.out) == {
        "files": 4,
        "stored": 0,
        "already": 3,
        "refused": [
            {
                "path": str(folder / "notes.jpg"),
                "reason": "This file is not an image we can open; please upload a JPEG, PNG, WebP or GIF photo.",
            }
        ],
    }
    assert f"{folder / 'notes.jpg'}: This file is not an image we can open" in captured.err
    with session_scope(open_database(settings)) as session:
        assert set(session.scalars(select(ImageRow.added_by))) == {"ingest-test"}


def test_a_missing_folder_is_explained(settings, classifier, tmp_path):
    with pytest.raises(FoodclfError, match="There is no folder or file at"):
        ingest_folder(settings, tmp_path / "nowhere", classifier)


def test_store_photo_keeps_bytes_and_rows_once(settings, classifier):
    loaded = decode_image(photo(color=(9, 9, 9)), name="upload.jpg")
    result = classifier.classify_image(loaded.image)
    engine = open_database(settings)
    for _ in range(2):
        with session_scope(engine) as session:
            image = store_photo(session, settings, loaded, result, source="upload", added_by="alice")
    assert (image.source, image.prediction_id is not None) == ("upload", True)
    assert (Path(settings.image_dir) / image.stored_path).read_bytes() == loaded.data
    assert db_counts(settings) == (1, 1, 1)


def test_photos_are_stored_together_with_one_insert_per_table(settings, classifier):
    loaded = [decode_image(photo(color=(i * 30, 90, 200 - i)), name=f"dish {i}.jpg", phash=True) for i in range(8)]
    photos = [(one, classifier.classify_image(one.image)) for one in loaded]
    engine = open_database(settings)
    inserts: list[str] = []

    def count(conn, cursor, statement, parameters, context, executemany):
        if statement.lstrip().upper().startswith("INSERT INTO"):
            inserts.append(statement.split()[2].strip('"'))

    event.listen(engine, "before_cursor_execute", count)
    try:
        with session_scope(engine) as session:
            images = store_photos(session, settings, photos, source="folder", added_by="alice")
    finally:
        event.remove(engine, "before_cursor_execute", count)
    # score_layouts: the model's label order, once; daily counts are kept by triggers inside the database.
    assert sorted(inserts) == ["embeddings", "image_hashes", "images", "predictions", "score_layouts"]
    assert sorted(images) == sorted(one.content_id for one in loaded)
    assert db_counts(settings) == (8, 8, 8)
    with session_scope(engine) as session:
        latest = dict(session.execute(select(ImageRow.content_id, ImageRow.prediction_id)).all())
    assert None not in latest.values() and len(set(latest.values())) == 8


def test_a_photo_whose_file_cannot_be_written_costs_only_itself(settings, classifier, tmp_path, monkeypatch):
    folder = tmp_path / "photos"
    paths = make_folder(folder, 9)
    unlucky = paths[4].name
    unlucky_id = content_id(paths[4].read_bytes())
    write = store.write_atomically

    def full_for_one(path, *args, **kwargs):
        if Path(path).name.startswith(unlucky_id):
            raise OSError(errno.ENOSPC, "No space left on device")
        return write(path, *args, **kwargs)

    monkeypatch.setattr(store, "write_atomically", full_for_one)
    report = ingest_folder(settings, folder, classifier)
    assert (report.stored, report.already) == (8, 0)
    assert [(Path(path).name, "disk holding the photos" in reason) for path, reason in report.refused] == [
        (unlucky, True)
    ]
    assert db_counts(settings) == (8, 8, 8)
    monkeypatch.setattr(store, "write_atomically", write)  # the disk has room again: the rerun stores the last one
    assert ingest_folder(settings, folder, classifier).stored == 1
    assert db_counts(settings) == (9, 9, 9)


def test_a_photo_whose_rows_fail_costs_only_itself_and_leaves_no_half_group(
    settings, classifier, tmp_path, monkeypatch
):
    folder = tmp_path / "photos"
    paths = make_folder(folder, 9)
    unlucky = paths[6].name
    record = ingest.record_hashes

    def fails_with_the_unlucky_one(session, hashes):
        record(session, hashes)  # written, then rolled back with the rest of its transaction
        names = session.scalars(select(ImageRow.file_name).where(ImageRow.id.in_(list(hashes))))
        if unlucky in set(names):
            raise RuntimeError("database went away")

    monkeypatch.setattr(ingest, "record_hashes", fails_with_the_unlucky_one)
    report = ingest_folder(settings, folder, classifier)
    assert report.stored == 8
    assert [(Path(path).name, reason) for path, reason in report.refused] == [(unlucky, ingest.STORE_FAILED)]
    images, predictions, _ = db_counts(settings)
    assert (images, predictions) == (8, 8)
    with session_scope(open_database(settings)) as session:
        assert session.scalar(select(func.count()).select_from(ImageHashRow)) == 8
        assert unlucky not in set(session.scalars(select(ImageRow.file_name)))


@pytest.mark.skipif(not FOOD_PHOTOS.is_dir(), reason="shared food photos not present")
def test_pizza_steak_sushi_twice_leaves_exactly_300(settings, classifier):
    # Correctness only: how fast is bench/ingest_scale.py's business (a time bound here failed under load).
    first = ingest_folder(settings, FOOD_PHOTOS, classifier)
    second = ingest_folder(settings, FOOD_PHOTOS, classifier)
    assert (first.stored, first.refused, second.stored, second.already) == (300, [], 0, 300)
    assert db_counts(settings) == (300, 300, 300)


def test_command_line_ingests_with_the_active_model(settings, tmp_path, monkeypatch, capsys):
    from db.trained_models import register_model
    from tiny_models import build_tiny_vit

    other = build_tiny_vit(tmp_path / "trained", seed=3)
    with session_scope(open_database(settings)) as session:
        register_model(
            session,
            name="trained",
            path=str(other),
            base_model=settings.model,
            labels=["pizza"],
            metrics={},
            train_size=1,
            created_by="test",
            activate=True,
        )
    monkeypatch.setattr(os, "environ", environment(settings))
    make_folder(tmp_path / "photos", 2)
    assert main(["ingest", str(tmp_path / "photos")]) == 0
    capsys.readouterr()
    with session_scope(open_database(settings)) as session:
        assert set(session.scalars(select(PredictionRow.model_id))) == {str(other)}


def test_refusals_are_whole_lines_above_the_progress_bar(settings, classifier, tmp_path, monkeypatch, capsys):
    """With the bar drawn, each refusal is a line of its own: never glued to the bar's text."""
    monkeypatch.setattr(os, "environ", environment(settings))
    folder = tmp_path / "photos"
    make_folder(folder, 4)
    (folder / "notes.jpg").write_text("not a photo")
    (folder / "empty.png").write_bytes(b"")
    assert main(["ingest", str(folder)]) == 1
    err = capsys.readouterr().err
    assert "ingest" in err and "photo" in err  # the bar was drawn
    # What a terminal shows on each line: the text after the line's last carriage return.
    shown = [line.rsplit("\r", 1)[-1].rstrip() for line in err.split("\n")]
    for name in ("notes.jpg", "empty.png"):
        [line] = [text for text in err.split("\n") if name in text]
        assert line.rsplit("\r", 1)[-1].startswith(f"{folder / name}: "), repr(line)
        assert any(text.startswith(f"{folder / name}: ") and text.endswith(".") for text in shown)
