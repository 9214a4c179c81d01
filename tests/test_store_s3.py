"""Photos in an object store: FOODCLF_IMAGE_DIR=s3://bucket/prefix against a real S3 API (moto's server).

Every reader of stored photos goes through the store: ingest writes there, thumbnails, the
image-folder export and training read from there, and a missing object is a sentence, not a traceback.
"""

from __future__ import annotations

import io
import zipfile

import pytest
from sqlalchemy import select

from db.engine import open_database, session_scope
from db.export_rows import export_rows
from db.models import ImageRow
from db.reviews import submit_review
from factories import fake_result, photo
from foodclf.classifier import load_classifier
from foodclf.errors import FoodclfError
from foodclf.export import write_imagefolder
from foodclf.images import decode_image
from foodclf.ingest import ingest_folder, store_photo
from foodclf.store import ImageStore, ObjectStore, open_store
from foodclf.thumbnails import stored_thumbnail
from foodclf.training.data import read_reviews
from pages_support import run, seed_photo, texts


def test_open_store_picks_the_backend_from_the_setting(tmp_path):
    assert isinstance(open_store(str(tmp_path)), ImageStore)
    assert open_store(f"file://{tmp_path}").root == tmp_path
    assert isinstance(open_store("s3://bucket/photos"), ObjectStore)


def test_a_scheme_without_its_package_is_explained():
    with pytest.raises(FoodclfError, match="FOODCLF_IMAGE_DIR cannot be used: nosuchscheme://bucket/photos"):
        open_store("nosuchscheme://bucket/photos")


def test_save_puts_one_object_named_by_content_id_and_reads_it_back(s3_server, make_photo):
    url = s3_server.new_bucket()
    loaded = decode_image(make_photo(fmt="PNG"), name="dish.png")
    store = open_store(url)
    name = store.save(loaded)
    assert name == f"{loaded.content_id}.png"
    assert s3_server.keys(url) == [f"{url.removeprefix('s3://')}/{name}"]
    assert store.read(name) == loaded.data
    assert store.exists(name) and not store.exists("b" * 64 + ".jpg")
    assert open_store(url).save(loaded) == name  # again: a no-op
    assert len(s3_server.keys(url)) == 1


def test_paths_outside_the_prefix_are_refused(s3_server):
    with pytest.raises(ValueError, match="stored_path: expected '<content id>.<ext>'"):
        open_store(s3_server.new_bucket()).read("../other/" + "a" * 64 + ".jpg")


def test_a_missing_object_is_explained(s3_server):
    url = s3_server.new_bucket()
    with pytest.raises(FoodclfError, match=f"is missing from the image store {url}; check FOODCLF_IMAGE_DIR"):
        open_store(url).read("a" * 64 + ".jpg")
    assert stored_thumbnail(url, "a" * 64 + ".jpg") is None


def test_a_missing_bucket_is_explained(s3_server):
    with pytest.raises(FoodclfError, match="is missing from the image store s3://no-such-bucket/photos"):
        open_store("s3://no-such-bucket/photos").read("a" * 64 + ".jpg")


def test_thumbnails_read_from_the_object_store(s3_server, make_photo):
    url = s3_server.new_bucket()
    name = open_store(url).save(decode_image(make_photo(size=(80, 40))))
    thumb = stored_thumbnail(url, name, 32)
    assert thumb is not None and decode_image(thumb).image.size == (32, 32)


def test_an_unreadable_object_gives_no_thumbnail_and_a_clear_reason(s3_server, make_photo):
    url = s3_server.new_bucket()
    loaded = decode_image(make_photo())
    name = open_store(url).save(loaded)
    open_store(url).fs.pipe_file(open_store(url).key(name), b"not a photo any more")  # damaged in the bucket
    assert stored_thumbnail(url, name) is None
    with pytest.raises(FoodclfError, match="^This file is not an image we can open"):
        decode_image(open_store(url).read(name))


def test_ingest_into_the_object_store_then_export_and_train_from_it(s3_settings, s3_server, tmp_path):
    folder = tmp_path / "photos"
    folder.mkdir()
    for i in range(3):
        (folder / f"dish{i}.jpg").write_bytes(photo(color=(60 * i, 90, 30), size=(40 + i, 36)))
    classifier = load_classifier(s3_settings)
    first = ingest_folder(s3_settings, folder, classifier)
    again = ingest_folder(s3_settings, folder, classifier)
    assert (first.stored, first.refused, again.stored, again.already) == (3, [], 0, 3)
    with session_scope(open_database(s3_settings)) as session:
        rows = session.scalars(select(ImageRow).order_by(ImageRow.id)).all()
        prefix = s3_settings.image_dir.removeprefix("s3://")
        assert s3_server.keys(s3_settings.image_dir) == sorted(f"{prefix}/{row.stored_path}" for row in rows)
        for row in rows:
            submit_review(session, row.id, action="confirmed", reviewer="alice", expected_review_id=None)
        stored = {row.content_id: (folder / f"dish{i}.jpg").read_bytes() for i, row in enumerate(rows)}

    buffer = io.BytesIO()
    with session_scope(open_database(s3_settings)) as session, zipfile.ZipFile(buffer, "w") as archive:
        report = write_imagefolder(export_rows(session), archive, image_dir=s3_settings.image_dir)
    assert (report.written, report.missing) == (3, [])
    with zipfile.ZipFile(buffer) as archive:
        members = {name.split("/")[-1].split(".")[0]: archive.read(name) for name in archive.namelist() if "/" in name}
    assert members == {cid: data for cid, data in stored.items()}

    photo_set = read_reviews(s3_settings)
    every = photo_set.photos + photo_set.evaluation  # the frozen evaluation slice is kept apart
    assert sorted(p.content_id for p in every) == sorted(stored)
    assert all(p.path.read_bytes() == stored[p.content_id] for p in every)  # local copies
    assert all(str(p.path).startswith(s3_settings.cache_dir) for p in every)


def test_an_export_lists_objects_missing_from_the_store(session, s3_settings, s3_server):
    kept = []
    for i in range(2):
        loaded = decode_image(photo(color=(i * 90, 10, 10)))
        image = store_photo(session, s3_settings, loaded, fake_result(), source="upload", added_by="t")
        submit_review(session, image.id, action="confirmed", reviewer="alice", expected_review_id=None)
        kept.append(loaded.content_id)
    session.commit()
    store = open_store(s3_settings.image_dir)
    store.fs.rm_file(store.key(f"{kept[0]}.jpg"))
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        report = write_imagefolder(export_rows(session), archive, image_dir=s3_settings.image_dir)
    assert (report.written, report.missing) == (1, [kept[0]])


def test_the_review_page_shows_a_photo_from_the_object_store_and_explains_a_missing_one(
    dashboard, s3_server, monkeypatch
):
    url = s3_server.new_bucket()
    monkeypatch.setenv("FOODCLF_IMAGE_DIR", url)
    dashboard.settings = dashboard.settings.replace(image_dir=url)
    first = seed_photo(dashboard, "sushi", 0.3, (40, 200, 40))
    second = seed_photo(dashboard, "pizza", 0.9, (200, 40, 40))
    at = dashboard.app("review_queue.py")
    at.session_state["reviewer"] = "Bob"
    run(at)
    assert len(at.image) == 1 and not at.warning  # the least confident photo, read from S3
    with session_scope(dashboard.engine) as session:
        stored = {row.id: row.stored_path for row in session.scalars(select(ImageRow))}
    store = open_store(url)
    store.fs.rm_file(store.key(stored[second]))
    at.button(key=f"q_{first}_confirm").click()
    run(at)
    assert not at.image
    assert texts(at.warning) == [
        f"The photo {stored[second]} is missing from the image store {url}; check FOODCLF_IMAGE_DIR."
    ]
