"""Bulk ingest on Ray Data: the same folder through the Ray engine and the local engine gives the same rows.

Ray runs on this machine with 2 CPUs, started once per session (`ray_local`). Each Ray run starts
its actor pool (each actor loads the model), so the runs are few and each checks several things.
The photos go to an S3 store (moto's server) and, where it is tested, PostgreSQL: the deployment
the Ray engine is for.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import select

from db.engine import close_database, open_database, session_scope
from db.models import ImageRow, PredictionRow
from factories import photo
from foodclf.bulk_ray import ingest_folder_ray, list_photos
from foodclf.classifier import load_classifier
from foodclf.cli import main
from foodclf.errors import FoodclfError
from foodclf.ingest import ingest_folder
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
