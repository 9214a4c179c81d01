"""API tokens stored hashed: `foodclf tokens create|list|revoke`, their roles on the API, and no token in any log."""

from __future__ import annotations

import hashlib
import logging
import os
import signal
import subprocess
import sys

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from db.engine import close_database, open_database, session_scope
from db.models import ApiToken, AuditEvent
from db.records import find_image
from factories import photo
from foodclf.api.app import create_app
from foodclf.classifier import load_classifier
from foodclf.cli import main
from test_api_serve import ROOT, free_port, wait_until_ready


@pytest.fixture
def cli(monkeypatch, settings, capsys):
    """Run `python -m foodclf ...` in-process against the test's database, as the CLI user "ops"."""
    monkeypatch.setenv("FOODCLF_DATABASE_URL", settings.database_url)
    monkeypatch.setenv("FOODCLF_REVIEWER", "ops")
    monkeypatch.delenv("FOODCLF_API_TOKENS", raising=False)

    def run(*argv, expect=0):
        capsys.readouterr()
        assert main(list(argv)) == expect
        return capsys.readouterr()

    yield run
    close_database(settings)


def create(cli, name="uploader", role="tagger") -> str:
    out = cli("tokens", "create", "--name", name, "--role", role).out
    lines = out.splitlines()
    token = lines[-1]
    assert token == token.strip() and token.startswith("fct_") and len(token) >= 40  # 32 random bytes
    assert all(token not in line for line in lines[:-1])  # printed once, alone on the last line
    return token


def rows(settings, model):
    with session_scope(open_database(settings)) as session:
        return list(session.scalars(select(model).order_by(model.id)))


@pytest.fixture
def api(settings):
    """A TestClient of the API with no FOODCLF_API_TOKENS (stored tokens only)."""
    with TestClient(create_app(settings, load_classifier(settings))) as client:
        yield client


def bearer(token: str) -> dict:
    return {"Authorization": f"Bearer {token}"}


def test_create_prints_the_token_once_and_stores_only_its_hash(cli, settings):
    token = create(cli)
    [row] = rows(settings, ApiToken)
    assert (row.name, row.role, row.created_by, row.last_used_at) == ("uploader", "tagger", "ops", None)
    assert row.token_sha256 == hashlib.sha256(token.encode()).hexdigest()
    stored = " ".join(str(value) for value in vars(row).values())
    assert token not in stored
    [event] = rows(settings, AuditEvent)
    assert (event.actor, event.action, event.detail) == ("ops", "token_created", {"name": "uploader", "role": "tagger"})
    assert create(cli, "uploader-2") != token  # random each time


def test_list_shows_names_roles_and_use_never_a_token(cli, settings, api):
    tagger, reader = create(cli, "uploader", "tagger"), create(cli, "analytics", "reader")
    listing = cli("tokens", "list").out
    assert tagger not in listing and reader not in listing
    assert hashlib.sha256(tagger.encode()).hexdigest() not in listing
    lines = listing.splitlines()
    assert [line.split("\t")[:2] for line in lines] == [["analytics", "reader"], ["uploader", "tagger"]]
    assert all("by ops" in line and "last used never" in line for line in lines)
    assert api.get("/v1/labels", headers=bearer(reader)).status_code == 200
    assert "last used 20" in cli("tokens", "list").out.splitlines()[0]


def test_a_tagger_token_classifies_and_stores_then_revoked_it_is_refused_at_once(cli, settings, api):
    token = create(cli)
    data = photo((10, 200, 30))
    response = api.post("/v1/classify", files={"file": ("a.jpg", data, "image/jpeg")}, headers=bearer(token))
    assert response.status_code == 200, response.text
    with session_scope(open_database(settings)) as session:
        assert find_image(session, response.json()["id"]).added_by == "token:uploader"
    assert cli("tokens", "revoke", "uploader").out.startswith("Revoked the token 'uploader'")
    refused = api.post("/v1/classify", files={"file": ("b.jpg", photo((1, 2, 3)), "image/jpeg")}, headers=bearer(token))
    assert refused.status_code == 401 and refused.json()["error"]["code"] == "unauthorized"
    assert api.get("/v1/labels", headers=bearer(token)).status_code == 401
    assert [e.action for e in rows(settings, AuditEvent)] == ["token_created", "token_revoked"]
    assert cli("tokens", "revoke", "uploader", expect=1).err.startswith("foodclf tokens: There is no token named")


def test_each_role_calls_only_its_endpoints(cli, api):
    tagger, reader = create(cli, "uploader", "tagger"), create(cli, "analytics", "reader")
    data = photo((90, 90, 200))
    cid = hashlib.sha256(data).hexdigest()
    classify = {"files": {"file": ("c.jpg", data, "image/jpeg")}}
    batch = {"files": {"files": ("c.jpg", data, "image/jpeg")}}

    assert api.post("/v1/classify", **classify, headers=bearer(tagger)).status_code == 200
    assert api.post("/v1/classify/batch", **batch, headers=bearer(tagger)).status_code == 200
    assert api.get("/v1/labels", headers=bearer(tagger)).status_code == 200
    denied = api.get(f"/v1/images/{cid}", headers=bearer(tagger))
    assert denied.status_code == 403 and denied.json()["error"]["code"] == "forbidden"
    assert "a reader token can read stored images and labels" in denied.json()["error"]["message"]

    assert api.get(f"/v1/images/{cid}", headers=bearer(reader)).status_code == 200
    assert api.get("/v1/labels", headers=bearer(reader)).status_code == 200
    for call in (
        api.post("/v1/classify", **classify, headers=bearer(reader)),
        api.post("/v1/classify/batch", **batch, headers=bearer(reader)),
    ):
        assert call.status_code == 403


def test_stored_tokens_close_the_open_api_and_env_tokens_still_work(cli, settings):
    create(cli)
    with TestClient(create_app(settings, load_classifier(settings))) as open_before:
        assert open_before.get("/v1/labels").status_code == 401  # a stored token exists: no more open access
    with TestClient(create_app(settings.replace(api_tokens=("env-token",)), load_classifier(settings))) as both:
        assert both.get("/v1/labels", headers=bearer("env-token")).status_code == 200
        data = photo((5, 5, 5))
        ok = both.post("/v1/classify", files={"file": ("e.jpg", data, "image/jpeg")}, headers=bearer("env-token"))
        assert ok.status_code == 200  # FOODCLF_API_TOKENS have every role
        assert both.get(f"/v1/images/{ok.json()['id']}", headers=bearer("env-token")).status_code == 200


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--name", "", "--role", "tagger"], "Give the token a name of visible characters"),
        (["--name", " padded ", "--role", "tagger"], "Give the token a name of visible characters"),
        (["--name", "x" * 101, "--role", "tagger"], "at most 100 characters"),
    ],
)
def test_bad_names_are_refused(cli, settings, argv, message):
    assert message in cli("tokens", "create", *argv, expect=1).err
    assert rows(settings, ApiToken) == []


def test_a_taken_name_or_an_unknown_role_is_refused(cli, settings):
    create(cli)
    assert (
        "already a token named 'uploader'"
        in cli("tokens", "create", "--name", "uploader", "--role", "reader", expect=1).err
    )
    with pytest.raises(SystemExit):
        main(["tokens", "create", "--name", "x", "--role", "admin"])
    assert len(rows(settings, ApiToken)) == 1


def test_serve_on_a_public_address_is_allowed_with_a_stored_token(cli, monkeypatch):
    import uvicorn

    calls = []
    monkeypatch.setattr(uvicorn, "run", lambda app, **options: calls.append(options))
    assert "Refusing to listen on 0.0.0.0" in cli("serve", "--host", "0.0.0.0", expect=1).err
    create(cli)
    cli("serve", "--host", "0.0.0.0", "--port", "9001")
    assert calls[0]["host"] == "0.0.0.0"


def test_tokens_are_in_no_log_in_process(cli, api, caplog):
    token = create(cli)
    caplog.set_level(logging.DEBUG)  # every logger, every level: FastAPI, httpx, ours, SQLAlchemy's
    logging.getLogger("sqlalchemy.engine").setLevel(logging.INFO)  # the SQL and its parameters too
    try:
        api.post("/v1/classify", files={"file": ("a.jpg", photo(), "image/jpeg")}, headers=bearer(token))
        api.get("/v1/labels", headers=bearer(token + "x"))  # a wrong one
        api.get("/v1/images/" + "0" * 64, headers=bearer(token))  # a refused role
        cli("tokens", "revoke", "uploader")
        api.get("/v1/labels", headers=bearer(token))  # a revoked one
    finally:
        logging.getLogger("sqlalchemy.engine").setLevel(logging.WARNING)
    assert caplog.records  # the logs were captured...
    assert token not in caplog.text and token[4:20] not in caplog.text  # ...and hold no part of the token


@pytest.mark.slow
def test_tokens_are_in_no_log_of_a_real_server(cli, settings, tmp_path):
    """uvicorn's access and debug logs on a real port, with a good, a wrong and a revoked token."""
    token = create(cli)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = {
        **os.environ,
        "FOODCLF_MODEL": settings.model,
        "FOODCLF_DATABASE_URL": settings.database_url,
        "FOODCLF_IMAGE_DIR": settings.image_dir,
        "FOODCLF_DEVICE": "cpu",
        "FOODCLF_PRECISION": "fp32",
        "FOODCLF_ENGINE": "torch",
        "FOODCLF_WORKERS": "1",
    }
    env.pop("FOODCLF_API_TOKENS", None)
    log = tmp_path / "server.log"
    with log.open("wb") as out:
        server = subprocess.Popen(
            [sys.executable, "-m", "foodclf", "serve", "--port", str(port), "--log-level", "debug"],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_until_ready(base, server, log)
        sent = httpx.post(
            f"{base}/v1/classify?token={token}",  # even a token misplaced in the URL must not be logged...
            files={"file": ("a.jpg", photo(), "image/jpeg")},
            headers=bearer(token),
            timeout=30,
        )
        assert sent.status_code == 200, sent.text
        assert httpx.get(f"{base}/v1/labels", headers=bearer(token + "x"), timeout=10).status_code == 401
        cli("tokens", "revoke", "uploader")
        assert httpx.get(f"{base}/v1/labels", headers=bearer(token), timeout=10).status_code == 401
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(15)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
    text = log.read_text()
    assert '"GET /v1/labels HTTP/1.1" 401' in text  # the access log is on
    assert token not in text, "a token reached the server log"
