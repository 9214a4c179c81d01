"""Bulk work on Ray Data: the same folder (ingest) or database (reclassify) through the Ray engine and the
local engine gives the same rows.

Ray runs on this machine with 2 CPUs, started once per session (`ray_local`). Each Ray run starts
its actor pool (each actor loads the model), so the runs are few and each checks several things.
The photos go to an S3 store (moto's server) and, where it is tested, PostgreSQL: the deployment
the Ray engine is for.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import select

from db.engine import close_database, open_database, session_scope
from db.models import ImageRow, PredictionRow
from db.photos import page_starts
from factories import fake_result, photo
from foodclf.bulk_ray import ingest_folder_ray, list_photos, reclassify_ray
from foodclf.classifier import load_classifier
from foodclf.cli import main
from foodclf.errors import FoodclfError
from foodclf.images import decode_image
from foodclf.ingest import ingest_folder, store_photo
from foodclf.reclassify import reclassify
from foodclf.store import open_store

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def ray_local(s3_server):
    """Ray on this machine with 2 CPUs; workers import this checkout and reach the S3 server."""
    import ray

    ray.init(
        num_cpus=2,
        include_dashboard=False,
        log_to_driver=False,
        runtime_env={"env_vars": {"PYTHONPATH": str(ROOT), **s3_server.environment()}},
    )
    yield ray
    ray.shutdown()


def make_folder(folder: Path) -> None:
    """Nine distinct photos in two sub-folders, one of them twice, and a text file named .jpg."""
    for i in range(9):
        path = folder / ("a" if i % 2 else "b/c") / f"dish {i}.jpg"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(photo(color=(i * 27 % 256, 255 - i * 20, 60), size=(40 + i % 5, 36)))
    (folder / "a" / "copy of dish 2.jpg").write_bytes((folder / "b/c" / "dish 2.jpg").read_bytes())
    (folder / "a" / "notes.jpg").write_text("not a photo")


def rows(settings) -> list[tuple]:
    """Every stored photo with its prediction, as comparable values (no row ids or times)."""
    with session_scope(open_database(settings)) as session:
        found = session.execute(
            select(ImageRow, PredictionRow)
            .join(PredictionRow, PredictionRow.image_id == ImageRow.id)
            .order_by(ImageRow.content_id)
        ).all()
        return [
            (
                image.content_id,
                image.stored_path,
                image.width,
                image.height,
                image.format,
                image.size_bytes,
                image.source,
                image.top_label,
                round(image.top_score, 4),
                prediction.fingerprint,
                prediction.top_label,
                [s["label"] for s in prediction.scores],
            )
            for image, prediction in found
        ]


def objects(url: str) -> list[bytes]:
    """The bytes of every object in an image store, by name."""
    store = open_store(url)
    return sorted((key.rsplit("/", 1)[-1], store.fs.cat_file(key)) for key in store.fs.find(store.root))


@pytest.mark.one_backend
def test_ray_ingest_into_s3_resumes_and_matches_the_local_engine_row_for_row(
    ray_local, s3_settings, s3_server, database, tmp_path, monkeypatch, capsys
):
    folder = tmp_path / "photos"
    make_folder(folder)
    model = s3_settings.model
    # A run killed halfway: only some photos were committed (here: a run over part of the folder).
    first = ingest_folder_ray(s3_settings, str(folder / "a"), model, actors=2, added_by="ray")
    assert (first.files, first.stored, first.already, len(first.refused)) == (6, 5, 0, 1)
    assert first.refused[0][1] == "This file is not an image we can open; please upload a JPEG, PNG, WebP or GIF photo."

    # The rerun, through the command line: it finishes the rest and adds nothing twice.
    env = {
        "FOODCLF_MODEL": model,
        "FOODCLF_DATABASE_URL": s3_settings.database_url,
        "FOODCLF_IMAGE_DIR": s3_settings.image_dir,
        "FOODCLF_DEVICE": "cpu",
        "FOODCLF_PRECISION": "fp32",
        "FOODCLF_ENGINE": "torch",
        "FOODCLF_WORKERS": "1",
        "FOODCLF_BATCH_SIZE": "4",
        "FOODCLF_REVIEWER": "ray",
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert main(["ingest", str(folder), "--engine", "ray", "--actors", "1", "--json", "--model", model]) == 1
    report = capsys.readouterr().out
    assert '"files": 11, "stored": 4, "already": 6' in report  # 5 from the first run, and the copy of dish 2

    # The same folder through the local engine, into another database and another bucket.
    local = s3_settings.replace(database_url=database.url("local"), image_dir=s3_server.new_bucket())
    reference = ingest_folder(local, folder, load_classifier(local), added_by="ray")
    assert (reference.stored, reference.already, len(reference.refused)) == (9, 1, 1)
    assert rows(s3_settings) == rows(local)
    assert len(rows(s3_settings)) == 9
    assert objects(s3_settings.image_dir) == objects(local.image_dir)
    close_database(local)


def store_old_predictions(settings) -> None:
    """Twelve photos stored with an old model's prediction (a fake fingerprint), as before a better model."""
    with session_scope(open_database(settings)) as session:
        for n in range(12):
            loaded = decode_image(photo(color=(20 * n, 100, 255 - 20 * n), size=(36 + n, 40)), name=f"{n}.jpg")
            store_photo(session, settings, loaded, fake_result("pizza", 0.6), source="folder", added_by="t")


def predictions(settings) -> list[tuple]:
    """Every prediction with its photo's latest top label, as comparable values (no row ids or times)."""
    with session_scope(open_database(settings)) as session:
        found = session.execute(
            select(ImageRow.content_id, ImageRow.top_label, PredictionRow)
            .join(PredictionRow, PredictionRow.image_id == ImageRow.id)
            .order_by(ImageRow.content_id, PredictionRow.fingerprint)
        ).all()
        return [
            (
                cid,
                latest,
                p.model_id,
                p.fingerprint,
                p.top_label,
                [(s["label"], round(s["score"], 4)) for s in p.scores],
            )
            for cid, latest, p in found
        ]


@pytest.mark.one_backend
def test_ray_reclassify_resumes_matches_the_local_engine_and_a_rerun_adds_nothing(
    ray_local, settings, database, tmp_path, monkeypatch, capsys
):
    local = settings.replace(database_url=database.url("local"), image_dir=str(tmp_path / "local-images"))
    for each in (settings, local):
        store_old_predictions(each)
        with session_scope(open_database(each)) as session:  # the last photo's file is gone: reported, not fatal
            last = session.scalars(select(ImageRow.stored_path).order_by(ImageRow.id.desc())).first()
        (Path(each.image_dir) / last).unlink()
    classifier = load_classifier(settings)
    reference = reclassify(local, classifier=classifier, page=5)
    assert (reference.photos, reference.already, reference.classified, len(reference.failed)) == (12, 0, 11, 1)

    # A killed run keeps the pages it committed (here: a local run stopped in its second page).
    walked = []

    def stop_in_the_second_page(n):
        walked.append(n)
        if sum(walked) == 6:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        reclassify(settings, classifier=classifier, page=5, on_photo=stop_in_the_second_page)
    walked = []
    report = reclassify_ray(settings, settings.model, actors=2, page=4, on_photo=walked.append)
    assert (report.photos, report.already, report.classified) == (12, 5, 6)
    assert report.failed == [(cid, why.replace(local.image_dir, settings.image_dir)) for cid, why in reference.failed]
    assert report.failed[0][1].startswith("There is no file at") and report.fingerprint == classifier.fingerprint
    assert sum(walked) == 12 and len(walked) == 3  # a progress update per page
    assert predictions(settings) == predictions(local)
    assert len(predictions(settings)) == 12 + 11  # the old prediction of each photo and the new one, once

    # The rerun through the command line reads no photo and adds nothing.
    for f in ("model", "database_url", "image_dir", "device", "precision", "workers", "batch_size"):
        monkeypatch.setenv(f"FOODCLF_{f.upper()}", str(getattr(settings, f)))
    assert main(["reclassify", "--engine", "ray", "--actors", "1", "--json"]) == 1  # 1: one photo failed
    rerun = json.loads(capsys.readouterr().out)
    assert (rerun["photos"], rerun["already"], rerun["classified"], len(rerun["failed"])) == (12, 11, 0, 1)
    assert predictions(settings) == predictions(local)
    close_database(local)


def test_pages_of_stored_photos(settings, session, make_image):
    assert page_starts(session, page=3) == []
    ids = [make_image(session).id for _ in range(7)]
    session.commit()
    assert page_starts(session, page=3) == [0, ids[2], ids[5]]
    assert page_starts(session, page=7) == [0]
    assert page_starts(session, page=1) == [0, *ids[:-1]]
    with pytest.raises(ValueError, match="page"):
        page_starts(session, page=0)


def test_listing_a_folder_or_a_bucket(s3_server, tmp_path):
    make_folder(tmp_path / "photos")
    local = list_photos(str(tmp_path / "photos"))
    assert len(local) == 11 and local == sorted(local)
    url = s3_server.new_bucket("backlog")
    store = open_store(url)
    for path in local:
        store.fs.pipe_file(f"{store.root}/{Path(path).relative_to(tmp_path / 'photos').as_posix()}", b"x")
    store.fs.pipe_file(f"{store.root}/readme.txt", b"x")
    listed = list_photos(url)
    assert len(listed) == 11 and all(p.startswith(url + "/") for p in listed)
    with pytest.raises(FoodclfError, match="There is no folder or file at"):
        list_photos(str(tmp_path / "nowhere"))


def test_the_dashboard_and_the_api_never_import_ray():
    code = (
        "import sys, foodclf.cli, foodclf.api.app, ui.cache, ui.photo_card, ui.sidebar;"
        "print(sorted(m for m in sys.modules if m == 'ray' or m.startswith('ray.')))"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
