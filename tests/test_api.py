"""The HTTP API through FastAPI's TestClient: every endpoint, what it stores, how it refuses."""

from __future__ import annotations

import hashlib
import struct
import time
import zlib
from concurrent.futures import ThreadPoolExecutor
from types import SimpleNamespace
from unittest.mock import ANY

import pytest
from fastapi.testclient import TestClient

from db.engine import open_database, session_scope
from db.records import find_image, image_history
from db.reviews import submit_review
from factories import photo
from foodclf.api.app import create_app
from foodclf.classifier import load_classifier
from foodclf.images import decode_image
from shared_data import HOSTILE_IMAGES

TOKENS = ("first-secret-token", "second-secret-token")


def bomb_png(side: int = 100_000) -> bytes:
    """A 60-byte PNG whose header claims side x side pixels (10 gigapixels by default)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b"")


def hostile_uploads():
    """(name, bytes, status, code, message fragment) for files made here, so they run without shared data."""
    jpeg = photo(size=(64, 64))
    cases = [
        ("empty.jpg", b"", 400, "image_rejected", "The file is empty."),
        ("truncated.jpg", jpeg[: len(jpeg) // 2], 400, "image_rejected", "truncated or corrupt"),
        ("notes.jpg", "I am not a photo. ☃".encode(), 400, "image_rejected", "not an image we can open"),
        ("header-only.png", b"\x89PNG\r\n\x1a\n", 400, "image_rejected", "PNG file is corrupt"),
        ("scan.tif", photo(fmt="TIFF"), 415, "unsupported_image_type", "This is a TIFF image"),
        ("paint.bmp", photo(fmt="BMP"), 415, "unsupported_image_type", "This is a BMP image"),
        ("bomb.png", bomb_png(), 413, "image_too_large", "claims 10,000,000,000 pixels"),
    ]
    return [pytest.param(*case, id=case[0]) for case in cases]


@pytest.fixture
def classifier(settings):
    return load_classifier(settings)


@pytest.fixture
def make_client(settings, classifier):
    """A started TestClient for these settings with changes (e.g. api_tokens=...); closed after the test."""
    clients = []

    def make(raise_server_exceptions=True, **changes):
        app = create_app(settings.replace(**changes), classifier)
        client = TestClient(app, raise_server_exceptions=raise_server_exceptions)
        clients.append(client.__enter__())
        return client

    yield make
    for client in clients:
        client.__exit__(None, None, None)


@pytest.fixture
def client(make_client):
    return make_client()


@pytest.fixture
def model_runs(monkeypatch, classifier):
    """How many forward passes the model has made since the test began."""
    runs = {"count": 0}
    forward = classifier.run

    def counting(pixel_values):
        runs["count"] += 1
        return forward(pixel_values)

    monkeypatch.setattr(classifier, "run", counting)
    return runs


def classify(client, data, name="dish.jpg", **params):
    return client.post("/v1/classify", params=params, files={"file": (name, data, "image/jpeg")})


def stored(settings, content_id):
    """(image row, history) of a stored photo, or (None, None)."""
    with session_scope(open_database(settings.database_url)) as session:
        image = find_image(session, content_id)
        return image, image_history(session, content_id) if image is not None else None


def assert_classification(body, content_id, top_k=5):
    assert body == {
        "id": content_id,
        "class_scores": [{"label": ANY, "score": ANY}] * top_k,
        "highest_probability_class": body["class_scores"][0]["label"],
        "uncertain": ANY,
        "model": {"id": ANY, "fingerprint": ANY},
        "known": ANY,
        "review": ANY,
        "near_duplicates": ANY,
    }
    scores = [s["score"] for s in body["class_scores"]]
    assert scores == sorted(scores, reverse=True) and all(0 <= s <= 1 for s in scores)
    assert isinstance(body["uncertain"], bool) and len(body["model"]["fingerprint"]) == 64


# ---- health ---------------------------------------------------------------------------------


def test_healthz_and_readyz(client, classifier):
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json() == {"status": "ready", "model": classifier.describe()}


def test_readyz_is_503_until_the_background_load_finishes(settings, monkeypatch, classifier):
    import threading

    from foodclf.api import loader

    release = threading.Event()

    def slow_load(settings, model=None):
        release.wait(10)
        return classifier

    monkeypatch.setattr(loader, "load_classifier", slow_load)
    app = create_app(settings)
    with TestClient(app) as client:
        assert client.get("/healthz").status_code == 200  # answers while the model loads
        loading = client.get("/readyz")
        assert loading.status_code == 503 and loading.headers["retry-after"] == "5"
        assert loading.json()["error"]["code"] == "not_ready"
        assert classify(client, photo()).status_code == 503
        release.set()
        assert app.state.model.wait(10)
        assert client.get("/readyz").status_code == 200


def test_readyz_explains_a_model_that_cannot_load(settings, tmp_path):
    app = create_app(settings.replace(model=str(tmp_path / "no-such-model")))
    with TestClient(app) as client:
        assert not app.state.model.wait(30)
        response = client.get("/readyz")
        assert response.status_code == 503
        assert response.json()["error"]["code"] == "model_unavailable"
        assert "There is no model folder" in response.json()["error"]["message"]


def test_the_active_trained_model_is_used(settings, tiny_model_dir, tmp_path):
    from db.trained_models import register_model

    with session_scope(open_database(settings.database_url)) as session:
        register_model(
            session,
            name="fine-tuned",
            path=str(tiny_model_dir),
            base_model="vit",
            labels=["x"],
            metrics={},
            train_size=1,
            created_by="test",
            activate=True,
        )
    # FOODCLF_MODEL points nowhere: only the registry's active model can make the API ready.
    app = create_app(settings.replace(model=str(tmp_path / "nowhere")))
    with TestClient(app) as client:
        assert app.state.model.wait(30)
        assert client.get("/readyz").json()["model"]["id"] == str(tiny_model_dir)


def test_a_newly_activated_model_replaces_the_old_one(monkeypatch):
    import threading

    from foodclf.api import loader

    names = iter(["first", "first", "broken", "second"])
    checked = threading.Semaphore(0)

    def resolve():
        name = next(names, "second")
        checked.release()
        return name

    def fake_load(settings, model=None):
        if model == "broken":
            raise loader.FoodclfError("cannot load")
        return SimpleNamespace(name=model, short_fingerprint=model)

    monkeypatch.setattr(loader, "load_classifier", fake_load)
    monkeypatch.setattr(loader, "REFRESH_SECONDS", 0.01)
    slot = loader.ModelSlot()
    slot.start_loading(None, resolve)
    assert slot.wait(5) and slot.get().name == "first"
    for _ in range(5):
        assert checked.acquire(timeout=5)
    slot.stop()
    assert slot.get().name == "second" and slot.error is None  # the broken one never replaced it


# ---- classify -------------------------------------------------------------------------------


def test_classify_multipart_answers_and_stores_for_review(client, settings):
    data = photo((210, 90, 30))
    response = classify(client, data, name="lunch.jpg")
    assert response.status_code == 200
    body = response.json()
    content_id = hashlib.sha256(data).hexdigest()
    assert_classification(body, content_id)
    assert body["known"] is False and body["review"] is None

    image, history = stored(settings, content_id)
    assert (image.source, image.added_by, image.file_name) == ("api", "api", "lunch.jpg")
    assert image.top_label == body["highest_probability_class"]
    assert (settings_path := (image_dir(settings) / image.stored_path)).read_bytes() == data, settings_path
    [prediction] = history
    assert prediction["kind"] == "prediction"
    assert prediction["fingerprint"] == body["model"]["fingerprint"]
    assert prediction["scores"][:5] == body["class_scores"]


def image_dir(settings):
    from pathlib import Path

    return Path(settings.image_dir)


def test_classify_raw_body(client, settings):
    data = photo((20, 160, 60), fmt="PNG")
    response = client.post("/v1/classify", content=data, headers={"Content-Type": "image/png"})
    assert response.status_code == 200
    assert_classification(response.json(), hashlib.sha256(data).hexdigest())
    image, _ = stored(settings, response.json()["id"])
    assert image.format == "PNG" and image.file_name == "photo"


def test_raw_body_keeps_the_content_disposition_name(client, settings):
    headers = {"Content-Type": "application/octet-stream", "Content-Disposition": 'inline; filename="../x/soup.jpg"'}
    response = client.post("/v1/classify", content=photo((1, 2, 3)), headers=headers)
    assert response.status_code == 200
    assert stored(settings, response.json()["id"])[0].file_name == "soup.jpg"


@pytest.mark.parametrize("top_k, expected", [(1, 1), (3, 3), (0, 101)])
def test_top_k(client, top_k, expected):
    response = classify(client, photo(), top_k=top_k)
    assert len(response.json()["class_scores"]) == expected


def test_known_photo_is_answered_from_the_database(client, settings, model_runs):
    data = photo((90, 30, 200))
    first = classify(client, data).json()
    assert model_runs["count"] == 1
    again = classify(client, data, name="renamed.jpg")
    assert model_runs["count"] == 1  # not run again
    assert again.status_code == 200
    assert again.json() == {**first, "known": True}
    raw = client.post("/v1/classify", content=data, headers={"Content-Type": "image/jpeg"})
    assert raw.json()["known"] is True and model_runs["count"] == 1
    image, history = stored(settings, first["id"])
    assert image.file_name == "dish.jpg" and len(history) == 1  # first name kept, one prediction


def test_known_photo_carries_its_review(client, settings, model_runs):
    data = photo((5, 200, 5))
    first = classify(client, data).json()
    with session_scope(open_database(settings.database_url)) as session:
        image = find_image(session, first["id"])
        submit_review(
            session, image.id, action="corrected", final_label="Green Curry", reviewer="Ana", expected_review_id=None
        )
    again = classify(client, data, top_k=2).json()
    assert again["known"] is True and model_runs["count"] == 1
    assert len(again["class_scores"]) == 2
    assert again["review"] == {"label": "green_curry", "action": "corrected", "reviewer": "Ana", "at": ANY}


def test_known_photo_is_classified_again_by_a_new_model(client, settings, classifier, model_runs, monkeypatch):
    data = photo((130, 130, 0))
    classify(client, data)
    monkeypatch.setattr(classifier, "fingerprint", "f" * 64)  # as if the active model had changed
    again = classify(client, data).json()
    assert again["known"] is False and model_runs["count"] == 2
    assert again["model"]["fingerprint"] == "f" * 64
    _, history = stored(settings, again["id"])
    assert [e["fingerprint"] for e in history] == [ANY, "f" * 64]


# ---- batch ----------------------------------------------------------------------------------


def test_batch_answers_each_file_in_order(client, settings, model_runs):
    known = photo((1, 1, 1))
    classify(client, known)
    files = [
        ("files", ("a.jpg", photo((255, 0, 0)), "image/jpeg")),
        ("files", ("notes.jpg", b"I am not a photo", "image/jpeg")),
        ("files", ("known.jpg", known, "image/jpeg")),
        ("files", ("b.png", photo((0, 0, 255), fmt="PNG"), "image/png")),
        ("files", ("scan.tif", photo(fmt="TIFF"), "image/tiff")),
    ]
    response = client.post("/v1/classify/batch", files=files, params={"top_k": 2})
    assert response.status_code == 200
    body = response.json()
    assert (body["classified"], body["refused"]) == (3, 2)
    items = body["items"]
    assert [item["index"] for item in items] == [0, 1, 2, 3, 4]
    assert [item["file_name"] for item in items] == ["a.jpg", "notes.jpg", "known.jpg", "b.png", "scan.tif"]
    assert [item["status"] for item in items] == [200, 400, 200, 200, 415]
    for item, (_, (_, data, _)) in zip(items, files):
        if item["status"] == 200:
            assert_classification(item["result"], hashlib.sha256(data).hexdigest(), top_k=2)
            assert item["error"] is None
        else:
            assert item["result"] is None and stored(settings, hashlib.sha256(data).hexdigest())[0] is None
    assert [item["result"]["known"] for item in items if item["result"]] == [False, True, False]
    assert items[1]["error"]["code"] == "image_rejected"
    assert "TIFF" in items[4]["error"]["message"]
    assert model_runs["count"] == 2  # the known photo skipped the model; the other two in one batch or two
    assert stored(settings, items[3]["result"]["id"])[0].source == "api"


def test_batch_with_the_same_photo_twice_stores_it_once(client, settings):
    data = photo((44, 55, 66))
    files = [("files", ("one.jpg", data, "image/jpeg")), ("files", ("two.jpg", data, "image/jpeg"))]
    items = client.post("/v1/classify/batch", files=files).json()["items"]
    assert [item["status"] for item in items] == [200, 200]
    first, second = (item["result"]["class_scores"] for item in items)
    assert [s["label"] for s in first] == [s["label"] for s in second]
    assert [s["score"] for s in first] == pytest.approx([s["score"] for s in second], abs=1e-6)
    image, history = stored(settings, items[0]["result"]["id"])
    assert image.file_name == "one.jpg" and len(history) == 1


def test_batch_refuses_an_oversized_file_alone(make_client, settings):
    client = make_client(max_upload_mb=1)
    big = photo((9, 9, 9), size=(700, 700), fmt="PNG", compress_level=0)
    files = [("files", ("big.png", big, "image/png")), ("files", ("small.jpg", photo(size=(8, 8)), "image/jpeg"))]
    items = client.post("/v1/classify/batch", files=files).json()["items"]
    assert [item["status"] for item in items] == [413, 200]
    assert items[0]["error"]["code"] == "image_too_large" and "the limit is 1.0 MB" in items[0]["error"]["message"]
    assert stored(settings, hashlib.sha256(big).hexdigest())[0] is None


def test_batch_refuses_too_many_files(client):
    files = [("files", (f"{i}.jpg", photo((i, i, i)), "image/jpeg")) for i in range(17)]
    response = client.post("/v1/classify/batch", files=files)
    assert response.status_code == 400
    assert "Too many files" in response.json()["error"]["message"]


def test_batch_needs_files(client):
    response = client.post("/v1/classify/batch", files={"photo": ("a.jpg", photo(), "image/jpeg")})
    assert response.status_code == 422
    assert "'files'" in response.json()["error"]["message"]
    raw = client.post("/v1/classify/batch", content=photo(), headers={"Content-Type": "image/jpeg"})
    assert raw.status_code == 415


# ---- images and labels ----------------------------------------------------------------------


def test_image_history(client, settings):
    data = photo((12, 34, 56))
    first = classify(client, data).json()
    with session_scope(open_database(settings.database_url)) as session:
        image = find_image(session, first["id"])
        submit_review(session, image.id, action="confirmed", reviewer="Bo", expected_review_id=None)
    response = client.get(f"/v1/images/{first['id']}")
    assert response.status_code == 200
    body = response.json()
    assert body == {
        "id": first["id"],
        "file_name": "dish.jpg",
        "source": "api",
        "added_by": "api",
        "added_at": ANY,
        "width": 48,
        "height": 40,
        "format": "JPEG",
        "review": {"label": first["highest_probability_class"], "action": "confirmed", "reviewer": "Bo", "at": ANY},
        "predictions": [
            {
                "class_scores": ANY,
                "highest_probability_class": first["highest_probability_class"],
                "uncertain": first["uncertain"],
                "model": first["model"],
                "at": ANY,
            }
        ],
        "reviews": [
            {
                "label": first["highest_probability_class"],
                "action": "confirmed",
                "reviewer": "Bo",
                "at": ANY,
                "note": None,
                "current": True,
            }
        ],
    }


def test_unknown_image_is_a_json_404(client):
    response = client.get("/v1/images/" + "0" * 64)
    assert response.status_code == 404
    assert response.json() == {"error": {"code": "not_found", "message": f"No stored photo has the id {'0' * 64}."}}


def test_malformed_image_id_is_a_422(client):
    response = client.get("/v1/images/../../etc/passwd")
    assert response.status_code in (404, 422)
    assert client.get("/v1/images/xyz").status_code == 422


def test_labels(client, classifier):
    body = client.get("/v1/labels").json()
    assert body["model"] == {"id": classifier.model_id, "fingerprint": classifier.fingerprint}
    assert len(body["labels"]) == 101
    assert body["labels"][0] == {"label": "apple_pie", "display": "Apple pie"}


def test_openapi_docs(client):
    assert client.get("/docs").status_code == 200
    spec = client.get("/openapi.json").json()
    assert {
        "/v1/classify",
        "/v1/classify/batch",
        "/v1/images/{content_id}",
        "/v1/labels",
        "/healthz",
        "/readyz",
    } <= set(spec["paths"])
    body = spec["paths"]["/v1/classify"]["post"]["requestBody"]["content"]
    assert set(body) == {"multipart/form-data", "image/*"}
    assert "HTTPBearer" in spec["components"]["securitySchemes"]


# ---- refusals -------------------------------------------------------------------------------


@pytest.mark.parametrize("name, data, status, code, message", hostile_uploads())
def test_hostile_upload_is_refused_and_nothing_stored(client, settings, name, data, status, code, message):
    response = classify(client, data, name=name)
    assert response.status_code == status
    assert response.json()["error"]["code"] == code
    assert message in response.json()["error"]["message"]
    assert stored(settings, hashlib.sha256(data).hexdigest())[0] is None
    assert not image_dir(settings).exists() or not any(image_dir(settings).iterdir())


# What each shared hostile file must get: the rest are odd but valid photos.
HOSTILE_EXPECTED = {
    "pillow__broken.png": 400,
    "pillow__truncated_image.png": 400,
    "pillow__truncated_jpeg.jpg": 400,
    "pillow__zero_width.gif": 400,
    "pillow__decompression_bomb.gif": 413,
    "pillow__hopper.tif": 415,
    "pillow__hopper.bmp": 415,
}


@pytest.mark.parametrize(
    "path", sorted(HOSTILE_IMAGES.glob("*")) if HOSTILE_IMAGES.is_dir() else [], ids=lambda p: p.name
)
def test_shared_hostile_images(client, settings, path):
    data = path.read_bytes()
    response = classify(client, data, name=path.name)
    expected = HOSTILE_EXPECTED.get(path.name, 200)
    assert response.status_code == expected, response.json()
    image, _ = stored(settings, hashlib.sha256(data).hexdigest())
    if expected == 200:
        assert_classification(response.json(), image.content_id)
    else:
        assert set(response.json()) == {"error"} and response.json()["error"]["message"]
        assert image is None


def test_shared_hostile_images_as_one_batch(client):
    if not HOSTILE_IMAGES.is_dir():
        pytest.skip(f"{HOSTILE_IMAGES} is absent")
    paths = sorted(HOSTILE_IMAGES.glob("*"))[:16]
    files = [("files", (p.name, p.read_bytes(), "application/octet-stream")) for p in paths]
    items = client.post("/v1/classify/batch", files=files).json()["items"]
    assert [item["status"] for item in items] == [HOSTILE_EXPECTED.get(p.name, 200) for p in paths]


def test_oversized_photo_is_413(make_client, settings):
    client = make_client(max_upload_mb=0.01)  # about 10 KB
    big = photo((9, 9, 9), size=(400, 400), fmt="PNG", compress_level=0)
    assert len(big) > 200_000
    response = classify(client, big)
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "payload_too_large"
    assert "at most 0.01 MB" in response.json()["error"]["message"]
    # Just over the photo limit but inside the multipart allowance: the file itself is refused.
    nearly = big[: settings.replace(max_upload_mb=0.01).max_upload_bytes + 100]
    response = classify(client, nearly)
    assert response.status_code == 413 and response.json()["error"]["code"] == "image_too_large"
    assert stored(settings, hashlib.sha256(nearly).hexdigest())[0] is None


def test_bomb_inside_the_pixel_limit_setting(make_client):
    client = make_client(max_pixels=1000)
    response = classify(client, photo(size=(100, 100)))
    assert response.status_code == 413
    assert "the limit is 1,000 pixels" in response.json()["error"]["message"]
    assert classify(client, bomb_png()).status_code == 413


@pytest.mark.parametrize("content_type", ["text/plain", "application/json", "application/x-www-form-urlencoded", None])
def test_raw_body_needs_an_image_content_type(client, content_type):
    headers = {"Content-Type": content_type} if content_type else {}
    response = client.post("/v1/classify", content=photo(), headers=headers)
    assert response.status_code == 415
    assert response.json()["error"]["code"] == "unsupported_media_type"
    assert "multipart field named 'file'" in response.json()["error"]["message"]


@pytest.mark.parametrize(
    "content_type, body",
    [
        ("multipart/form-data", b"abc"),
        ("multipart/form-data; boundary=zz", b"garbage"),
    ],
)
def test_malformed_multipart_is_400(client, content_type, body):
    response = client.post("/v1/classify", content=body, headers={"Content-Type": content_type})
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "bad_request" and "multipart" in response.json()["error"]["message"]


def test_missing_file_field_is_422(client):
    response = client.post("/v1/classify", files={"image": ("a.jpg", photo(), "image/jpeg")})
    assert response.status_code == 422
    assert response.json()["error"]["message"] == "Send the photo in a multipart field named 'file'."


@pytest.mark.parametrize("top_k, message", [("-1", "greater than or equal to 0"), ("many", "valid integer")])
def test_bad_top_k_is_422(client, top_k, message):
    response = classify(client, photo(), top_k=top_k)
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "invalid_request"
    assert response.json()["error"]["message"].startswith("top_k: ") and message in response.json()["error"]["message"]


def test_unknown_endpoint_and_method(client):
    assert client.get("/v2/nothing").json()["error"]["code"] == "not_found"
    response = client.get("/v1/classify")
    assert response.status_code == 405 and response.json()["error"]["code"] == "method_not_allowed"


def test_unexpected_error_is_a_generic_500(make_client, monkeypatch, caplog):
    client = make_client(raise_server_exceptions=False)

    def broken(*args):
        raise RuntimeError("secret internals")

    monkeypatch.setattr(client.app.state.photos, "classify_one", broken)
    response = classify(client, photo())
    assert response.status_code == 500
    assert response.json()["error"]["code"] == "internal_error"
    assert "secret" not in response.text
    assert "secret internals" in caplog.text


# ---- tokens ---------------------------------------------------------------------------------


@pytest.fixture
def guarded(make_client):
    return make_client(api_tokens=TOKENS)


@pytest.mark.parametrize(
    "header", [None, "Bearer nope", "Bearer first-secret-toke", "Basic Zm9vOmJhcg==", "first-secret-token", "Bearer "]
)
def test_missing_or_wrong_token_is_401(guarded, settings, header):
    headers = {"Authorization": header} if header else {}
    for response in (
        guarded.post("/v1/classify", files={"file": ("a.jpg", photo(), "image/jpeg")}, headers=headers),
        guarded.post("/v1/classify/batch", files={"files": ("a.jpg", photo(), "image/jpeg")}, headers=headers),
        guarded.get("/v1/labels", headers=headers),
        guarded.get("/v1/images/" + "0" * 64, headers=headers),
    ):
        assert response.status_code == 401
        assert response.headers["www-authenticate"] == "Bearer"
        assert response.json()["error"]["code"] == "unauthorized"
    assert stored(settings, hashlib.sha256(photo()).hexdigest())[0] is None


def test_right_token_is_accepted_and_named_not_stored(guarded, settings):
    response = guarded.post(
        "/v1/classify",
        files={"file": ("a.jpg", photo(), "image/jpeg")},
        headers={"Authorization": "Bearer second-secret-token"},
    )
    assert response.status_code == 200
    image, _ = stored(settings, response.json()["id"])
    assert image.added_by == "api-token-2"
    assert guarded.get("/v1/labels", headers={"Authorization": "bearer first-secret-token"}).status_code == 200


def test_health_needs_no_token(guarded):
    assert guarded.get("/healthz").status_code == 200
    assert guarded.get("/readyz").status_code == 200


def test_token_is_checked_before_the_body_is_read(guarded):
    response = guarded.post("/v1/classify", content=b"junk", headers={"Content-Type": "text/plain"})
    assert response.status_code == 401


# ---- concurrency ----------------------------------------------------------------------------


def test_health_answers_while_the_model_is_busy(client, classifier, monkeypatch):
    import threading

    busy, release = threading.Event(), threading.Event()
    forward = classifier.run

    def slow(pixel_values):
        busy.set()
        release.wait(10)
        return forward(pixel_values)

    monkeypatch.setattr(classifier, "run", slow)
    with ThreadPoolExecutor(max_workers=1) as pool:
        pending = pool.submit(classify, client, photo((3, 3, 3)))
        assert busy.wait(10)
        started = time.perf_counter()
        assert client.get("/healthz").status_code == 200  # the event loop is not blocked by the model
        assert client.get("/v1/labels").status_code == 200
        assert time.perf_counter() - started < 2
        release.set()
        assert pending.result().status_code == 200


def test_twenty_concurrent_requests_are_all_answered_correctly(client, classifier, settings):
    photos = [photo((12 * i, 255 - 12 * i, (37 * i) % 256)) for i in range(15)]
    photos += photos[:5]  # some photos arrive twice at once
    expected = [classifier.classify_image(decode_image(data).image, top_k=5) for data in photos]

    def send(data):
        return classify(client, data)

    with ThreadPoolExecutor(max_workers=20) as pool:
        responses = list(pool.map(send, photos))
    assert [r.status_code for r in responses] == [200] * 20
    for data, response, result in zip(photos, responses, expected):
        body = response.json()
        assert body["id"] == hashlib.sha256(data).hexdigest()
        assert [s["label"] for s in body["class_scores"]] == [s["label"] for s in result.class_scores]
        assert [s["score"] for s in body["class_scores"]] == pytest.approx(
            [s["score"] for s in result.class_scores], abs=1e-5
        )
    for data in photos:
        image, history = stored(settings, hashlib.sha256(data).hexdigest())
        assert image is not None and len(history) == 1
