"""The body cap, driven at the ASGI level: TestClient reads a whole body first, real clients don't."""

from __future__ import annotations

import asyncio
import json

import pytest

from factories import photo
from foodclf.api.app import create_app
from foodclf.api.limits import BodyLimit
from foodclf.classifier import load_classifier

CHUNK = 64 * 1024
BOUNDARY = b"x-boundary"


@pytest.fixture
def app(settings):
    # A 0.1 MB photo limit keeps the bodies these tests stream small.
    small = settings.replace(max_upload_mb=0.1)
    app = create_app(small, load_classifier(small))
    yield app
    app.state.photos.close()  # no lifespan runs here to close the database


def call(app, path, chunks, headers=(), method="POST"):
    """Run one request through the ASGI app; returns (status, JSON body, bytes the app pulled)."""
    pulled = 0
    sent = []
    source = iter(chunks)

    async def receive():
        nonlocal pulled
        chunk = next(source, None)
        if chunk is None:
            return {"type": "http.request", "body": b"", "more_body": False}
        pulled += len(chunk)
        return {"type": "http.request", "body": chunk, "more_body": True}

    async def send(message):
        sent.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(k.lower().encode(), v.encode()) for k, v in headers],
        "client": ("127.0.0.1", 5000),
        "server": ("127.0.0.1", 8000),
    }
    asyncio.run(app(scope, receive, send))
    start = next(m for m in sent if m["type"] == "http.response.start")
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return start["status"], json.loads(body), pulled


def endless(chunk=b"\0" * CHUNK):
    while True:
        yield chunk


def multipart_head(name="file", filename="big.jpg") -> bytes:
    return (
        b"--"
        + BOUNDARY
        + b"\r\n"
        + f'Content-Disposition: form-data; name="{name}"; filename="{filename}"\r\n'.encode()
        + b"Content-Type: image/jpeg\r\n\r\n"
    )


def test_declared_length_over_the_cap_is_refused_before_reading(app):
    status, body, pulled = call(
        app, "/v1/classify", endless(), [("Content-Type", "image/jpeg"), ("Content-Length", str(10**9))]
    )
    assert status == 413 and pulled == 0
    assert body["error"] == {
        "code": "payload_too_large",
        "message": "The request is 953.7 MB; a photo may be at most 0.1 MB.",
    }


def test_endless_raw_body_without_length_is_cut_off(app):
    status, body, pulled = call(app, "/v1/classify", endless(), [("Content-Type", "image/jpeg")])
    assert status == 413 and body["error"]["code"] == "payload_too_large"
    assert "larger than allowed" in body["error"]["message"]
    cap = int(0.1 * 1024 * 1024) + 64 * 1024
    assert cap < pulled <= cap + CHUNK  # one chunk past the cap, then nothing more


def test_lying_content_length_is_cut_off(app):
    status, body, pulled = call(
        app, "/v1/classify", endless(), [("Content-Type", "image/jpeg"), ("Content-Length", "1000")]
    )
    assert status == 413 and pulled <= int(0.1 * 1024 * 1024) + 64 * 1024 + CHUNK


def test_endless_multipart_file_is_cut_off(app):
    chunks = iter([multipart_head()])
    status, body, pulled = call(
        app,
        "/v1/classify",
        (c for part in (chunks, endless()) for c in part),
        [("Content-Type", f"multipart/form-data; boundary={BOUNDARY.decode()}")],
    )
    # The form parser would call a cut body malformed (400); the client hears the real reason.
    assert status == 413 and body["error"]["code"] == "payload_too_large"
    assert pulled <= int(0.1 * 1024 * 1024) + 64 * 1024 + CHUNK + len(multipart_head())


def test_endless_batch_is_cut_off_at_its_own_cap(app):
    chunks = iter([multipart_head("files")])
    status, body, pulled = call(
        app,
        "/v1/classify/batch",
        (c for part in (chunks, endless()) for c in part),
        [("Content-Type", f"multipart/form-data; boundary={BOUNDARY.decode()}")],
    )
    assert status == 413
    assert "a batch may hold at most 16 photos of at most 0.1 MB each" in body["error"]["message"]
    assert pulled <= 16 * (int(0.1 * 1024 * 1024) + 64 * 1024) + 2 * CHUNK


def test_endpoints_without_a_body_take_none(app):
    status, body, pulled = call(app, "/v1/labels", endless(), [], method="GET")
    assert status == 200 and pulled == 0  # a GET never reads its body
    status, _, _ = call(app, "/healthz", [b""], [("Content-Length", str(10**6))], method="GET")
    assert status == 413


def test_token_is_checked_before_any_body_is_read(settings):
    guarded = create_app(settings.replace(api_tokens=("s3cret",)), load_classifier(settings))
    status, body, pulled = call(guarded, "/v1/classify", endless(), [("Content-Type", "image/jpeg")])
    assert status == 401 and pulled == 0
    status, body, pulled = call(
        guarded, "/v1/classify", [photo()], [("Content-Type", "image/jpeg"), ("Authorization", "Bearer s3cret")]
    )
    assert status == 200
    guarded.state.photos.close()


def test_body_within_the_cap_passes_through(app):
    data = photo()
    status, body, _ = call(app, "/v1/classify", [data], [("Content-Type", "image/jpeg")])
    assert status == 200 and body["known"] is False


def test_middleware_passes_other_scopes():
    seen = []

    async def inner(scope, receive, send):
        seen.append(scope["type"])

    asyncio.run(BodyLimit(inner, lambda path: (1, "tiny"))({"type": "lifespan"}, None, None))
    assert seen == ["lifespan"]
