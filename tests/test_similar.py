"""Similar photos and near-duplicates: embeddings from the classifying pass, perceptual hashes, bulk decisions, API."""

from __future__ import annotations

import io

import numpy as np
import pytest
import threadpoolctl
from PIL import Image
from sqlalchemy import func, select

from bench.similar import dish_precision
from db import similar
from db.engine import session_scope
from db.models import EmbeddingRow, ImageHashRow, ReviewRow
from db.records import image_summary
from db.reviews import submit_review
from db.similar import (
    NEAR_DUPLICATE_BITS,
    RERANK,
    SKETCH_DIM,
    VECTOR_DTYPE,
    _SketchIndex,
    encode_embedding,
    encode_embeddings,
    record_embedding,
    similar_images,
)
from foodclf import moderation
from foodclf.classifier import load_classifier
from foodclf.images import decode_image, perceptual_hash
from foodclf.ingest import ingest_in_order
from foodclf.moderation import Decision
from shared_data import FOOD_PHOTOS


def textured(seed: int, size=(320, 240)) -> bytes:
    """A JPEG of coloured blocks, different for each seed (a solid colour has no structure to hash)."""
    blocks = np.random.default_rng(seed).integers(0, 256, (6, 8, 3), dtype=np.uint8)
    image = Image.fromarray(blocks).resize(size, Image.Resampling.BILINEAR)
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=92)
    return buffer.getvalue()


def resized_copy(data: bytes, scale=0.6, quality=60) -> bytes:
    image = Image.open(io.BytesIO(data))
    buffer = io.BytesIO()
    image.resize((int(image.width * scale), int(image.height * scale))).save(buffer, "JPEG", quality=quality)
    return buffer.getvalue()


def ingest(engine, settings, classifier, *photos):
    named = [(f"photo-{n}.jpg", data) for n, data in enumerate(photos)]
    return ingest_in_order(engine, settings, classifier, named, source="upload", added_by="tester")


def bits(a: bytes, b: bytes) -> int:
    return bin(int(perceptual_hash(decode_image(a).image), 16) ^ int(perceptual_hash(decode_image(b).image), 16)).count(
        "1"
    )


def test_ingest_keeps_each_photos_embedding_from_the_one_forward_pass_and_its_hash(settings, engine, monkeypatch):
    classifier = load_classifier(settings)
    runs, forward = [], classifier.run
    monkeypatch.setattr(classifier, "run", lambda pixels: runs.append(len(pixels)) or forward(pixels))
    photos = [textured(n) for n in range(3)]
    outcomes = ingest(engine, settings, classifier, *photos)
    assert [o.status for o in outcomes] == ["stored"] * 3
    assert runs == [3]  # one batch, one pass: the embeddings came with the scores

    with session_scope(engine) as session:
        rows = {r.image_id: r for r in session.scalars(select(EmbeddingRow))}
        hashes = {r.image_id: r.phash for r in session.scalars(select(ImageHashRow))}
        summaries = [image_summary(session, o.content_id) for o in outcomes]
    assert {r.fingerprint for r in rows.values()} == {classifier.fingerprint}
    hidden = classifier.model.config.hidden_size  # the tiny ViT's pooled features: what its head reads
    for outcome, summary, data in zip(outcomes, summaries, photos):
        vector = np.frombuffer(rows[summary.image_id].vector, dtype=VECTOR_DTYPE).astype(np.float32)
        assert vector.shape == (hidden,) and np.linalg.norm(vector) == pytest.approx(1.0, abs=1e-2)
        assert vector == pytest.approx(np.array(outcome.result.embedding), abs=2e-3)
        # From the one decode, at the model's scale (foodclf.pixels.decode_side), as every route decodes for it.
        assert hashes[summary.image_id] == perceptual_hash(decode_image(data, side=classifier.decode_side).image)


def test_a_resized_re_encoded_copy_is_a_near_duplicate_and_a_different_photo_is_not(settings, engine):
    classifier = load_classifier(settings)
    original = textured(1)
    [first] = ingest(engine, settings, classifier, original)
    assert first.near_duplicates == ()
    [copy, other] = ingest(engine, settings, classifier, resized_copy(original), textured(2))
    assert copy.content_id != first.content_id  # not the same bytes: the content id alone misses it
    assert copy.near_duplicates == (first.content_id,)
    assert other.near_duplicates == ()
    assert bits(original, resized_copy(original)) <= NEAR_DUPLICATE_BITS < bits(original, textured(2))
    [again] = ingest(engine, settings, classifier, original)  # known: answered from the store, copy listed
    assert again.status == "known" and again.near_duplicates == (copy.content_id,)


def test_the_queue_offers_a_near_duplicates_earlier_decision(settings, engine):
    classifier = load_classifier(settings)
    [first] = ingest(engine, settings, classifier, textured(3))
    with session_scope(engine) as session:
        submit_review(
            session,
            first.photo.image_id,
            action="corrected",
            final_label="sushi",
            reviewer="bob",
            expected_review_id=None,
        )
    [copy] = ingest(engine, settings, classifier, resized_copy(textured(3), scale=0.5))
    [twin] = moderation.near_duplicates(engine, copy.photo)
    decision = moderation.decision_in_force(twin)
    assert twin.content_id == first.content_id and decision == Decision("corrected", "sushi")
    saved = moderation.save_decision(engine, copy.photo, decision, reviewer="alice")
    assert (saved.summary.final_label, saved.summary.reviewed_by) == ("sushi", "alice")


def test_similar_images_are_exact_cosine_best_first_and_new_photos_count_at_once(session, make_image):
    images = [make_image(session) for _ in range(5)]
    base = np.eye(16, dtype=np.float32)
    vectors = [base[0], base[0] + 0.2 * base[1], base[0] + 0.9 * base[2], base[3], base[0] + 0.5 * base[4]]
    for image, vector in zip(images[:4], vectors):
        record_embedding(session, image.id, "m" * 64, vector.tolist())
    session.commit()

    def cosine(a, b):
        return float(a @ b / np.linalg.norm(a) / np.linalg.norm(b))

    found = similar_images(session, images[0].id, "m" * 64, 2)
    assert [i for i, _ in found] == [images[1].id, images[2].id]
    assert [s for _, s in found] == pytest.approx([cosine(vectors[0], v) for v in vectors[1:3]], abs=2e-3)
    record_embedding(session, images[4].id, "m" * 64, vectors[4].tolist())  # added after the index loaded
    session.commit()
    assert [i for i, _ in similar_images(session, images[0].id, "m" * 64, 3)] == [
        images[1].id,
        images[4].id,
        images[2].id,
    ]
    assert similar_images(session, images[0].id, "x" * 64, 3) is None  # no embedding by that model


def test_the_sketch_scan_finds_the_exact_nearest_neighbours():
    # 4,000 vectors of 1280 numbers in 40 tight-ish clusters, as a model's features of dishes are.
    rng = np.random.default_rng(0)
    centres = rng.standard_normal((40, 1280)).astype(np.float32)
    vectors = centres[rng.integers(0, 40, 4000)] + 0.6 * rng.standard_normal((4000, 1280)).astype(np.float32)
    encoded = [encode_embedding(v) for v in vectors]
    full = np.stack([np.frombuffer(v, dtype=VECTOR_DTYPE) for v, _ in encoded]).astype(np.float32)
    index = _SketchIndex("m" * 64)
    index._append(np.arange(4000), np.stack([np.frombuffer(s, dtype=VECTOR_DTYPE) for _, s in encoded]))
    assert index.values.shape[1] == SKETCH_DIM
    hits = 0
    for query in range(0, 4000, 100):
        exact = set(np.argsort(-(full @ full[query]))[1:6].tolist())
        sketch = index.values[query].copy()
        found = index.candidates(sketch, RERANK, leave_out=query)
        reranked = found[np.argsort(-(full[found] @ full[query]), kind="stable")][:5]
        hits += len(exact & set(reranked.tolist()))
    assert hits / (40 * 5) >= 0.95


def test_the_shortlist_is_every_sketch_within_the_fewest_differing_sign_bits_that_take_in_enough():
    rng = np.random.default_rng(1)
    sketches = rng.standard_normal((3000, SKETCH_DIM)).astype(np.float16)
    index = _SketchIndex("m" * 64)
    for start in range(0, 3000, 700):  # in pages, as an index loads: the bit columns grow with the rest
        index._append(np.arange(start, min(start + 700, 3000)) + 10, sketches[start : start + 700])
    signs = sketches > 0
    for query, count in ((5, 50), (1234, 300), (2999, 1)):
        differing = (signs != signs[query]).sum(axis=1)  # the sign bits, counted the slow way
        cut = next(c for c in range(SKETCH_DIM + 1) if (differing <= c).sum() >= count + 1)
        expected = [row for row in np.flatnonzero(differing <= cut) if row != query]
        found = index.shortlist(sketches[query].astype(np.float32), count, leave_out=query + 10)
        assert found.tolist() == expected and len(found) >= count
    assert len(index.shortlist(sketches[0].astype(np.float32), 5000, leave_out=10)) == 2999  # all but the query


def test_encoding_many_embeddings_at_once_is_encoding_each():
    features = np.random.default_rng(2).standard_normal((20, 1280)).astype(np.float32)
    for (vector, sketch), (one_vector, one_sketch) in zip(
        encode_embeddings(features), [encode_embedding(f) for f in features]
    ):
        for many, one in ((vector, one_vector), (sketch, one_sketch)):
            many, one = np.frombuffer(many, dtype=VECTOR_DTYPE), np.frombuffer(one, dtype=VECTOR_DTYPE)
            assert many.astype(np.float32) == pytest.approx(one.astype(np.float32), abs=1e-3)


def blas_threads() -> int:
    """The most threads any loaded BLAS library (numpy's, scipy's) would use."""
    return max(pool["num_threads"] for pool in threadpoolctl.threadpool_info() if pool["user_api"] == "blas")


def test_the_sketch_product_runs_on_one_blas_thread_and_leaves_the_pool_as_it_was(monkeypatch):
    # OpenBLAS's idle workers spin after each call, taking a core from the model (bench/README.md).
    real, during = similar.projection, []

    def watched(dim):
        during.append(blas_threads())
        return real(dim)

    monkeypatch.setattr(similar, "projection", watched)
    with threadpoolctl.threadpool_limits(2, user_api="blas"):
        before = blas_threads()
        encode_embeddings(np.random.default_rng(3).standard_normal((16, 1280)).astype(np.float32))
        assert (before, during, blas_threads()) == (2, [1], 2)


def test_bulk_apply_writes_one_review_per_photo_and_reports_conflicts(engine, session, make_image):
    images = [make_image(session, label="pizza") for _ in range(3)]
    session.commit()
    shown = [moderation.refresh(engine, image.id) for image in images]
    # Someone else decides on the second photo while the moderator looks at the list.
    moderation.save_decision(engine, shown[1], Decision("not_food", "not_food"), reviewer="bob")

    result = moderation.save_decisions(engine, shown, Decision("corrected", "sushi"), reviewer="alice")
    assert [s.summary.image_id for s in result.saved] == [images[0].id, images[2].id]
    assert [(p.image_id, "bob" in why) for p, why in result.refused] == [(images[1].id, True)]  # who, per photo
    with session_scope(engine) as session:
        per_photo = dict(session.execute(select(ReviewRow.image_id, func.count()).group_by(ReviewRow.image_id)).all())
        labels = {i.id: image_summary(session, i.id).final_label for i in images}
    assert per_photo == {images[0].id: 1, images[1].id: 1, images[2].id: 1}
    assert labels == {images[0].id: "sushi", images[1].id: "not_food", images[2].id: "sushi"}
    # The same click again (from the same stale view) writes nothing more and refuses only the conflict.
    again = moderation.save_decisions(engine, shown, Decision("corrected", "sushi"), reviewer="alice")
    assert [s.repeat for s in again.saved] == [True, True] and len(again.refused) == 1


def test_the_similar_endpoint(settings, engine):
    from fastapi.testclient import TestClient

    from foodclf.api.app import create_app

    classifier = load_classifier(settings)
    with TestClient(create_app(settings, classifier)) as client:
        ids = []
        for n in range(4):
            response = client.post("/v1/classify", files={"file": (f"{n}.jpg", textured(10 + n), "image/jpeg")})
            assert response.status_code == 200 and response.json()["near_duplicates"] == []
            ids.append(response.json()["id"])
        copy = client.post("/v1/classify", files={"file": ("copy.jpg", resized_copy(textured(10)), "image/jpeg")})
        assert copy.json()["near_duplicates"] == [ids[0]]

        body = client.get(f"/v1/images/{ids[1]}/similar", params={"k": 3}).json()
        assert body["id"] == ids[1] and body["indexed"] and body["fingerprint"] == classifier.fingerprint
        found = body["similar"]
        assert len(found) == 3 and ids[1] not in [f["id"] for f in found]
        assert [f["score"] for f in found] == sorted((f["score"] for f in found), reverse=True)
        assert all(f["label"] == f["predicted_label"] and f["review"] is None for f in found)
        assert client.get(f"/v1/images/{'0' * 64}/similar").status_code == 404
        assert client.get(f"/v1/images/{ids[1]}/similar", params={"k": 0}).status_code == 422
    with TestClient(create_app(settings.replace(api_tokens=("secret",)), classifier)) as guarded:
        assert guarded.get(f"/v1/images/{ids[1]}/similar").status_code == 401
        answer = guarded.get(f"/v1/images/{ids[1]}/similar", headers={"Authorization": "Bearer secret"})
        assert answer.status_code == 200


@pytest.mark.slow
@pytest.mark.skipif(not FOOD_PHOTOS.is_dir(), reason="the shared food photos are not on this machine")
def test_neighbours_of_shared_photos_are_mostly_the_same_dish(settings, tmp_path):
    # A Lite0 model trained on 4 shared photos of each dish; 12 test photos of each, their 5 neighbours each
    # (bench/similar.py reports the same precision@5).
    shares = dish_precision(settings, FOOD_PHOTOS, tmp_path)
    assert sorted(shares) == ["pizza", "steak", "sushi"] and all(len(found) == 12 for found in shares.values())
    assert shares["pizza"][0] >= 0.6  # the first shared pizza photo: at least 3 of its 5 neighbours are pizzas
    assert np.mean(shares["pizza"]) >= 0.7  # and over every pizza photo, most neighbours are
    assert np.mean([share for found in shares.values() for share in found]) >= 0.6
