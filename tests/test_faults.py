"""Faults while storing a photo: the database locked past the busy timeout, a full disk, a server killed
mid-request. After each: no partial photo file, no row without its file, a clear message, and the next
request works.
"""

from __future__ import annotations

import errno
import hashlib
import io
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient
from PIL import Image
from sqlalchemy import select

import db.engine
from db.engine import close_database, open_database, session_scope
from db.models import ImageRow
from factories import photo
from foodclf import store as store_module
from foodclf.api.app import create_app
from foodclf.classifier import load_classifier

ROOT = Path(__file__).resolve().parents[1]
TOKEN = "fault-token"


def check_store_and_rows(settings) -> set[str]:
    """Every stored file is whole (its name is its bytes' sha256), no temporaries, every row has its file.

    Returns:
        The content ids with a row.
    """
    root = Path(settings.image_dir)
    files = list(root.iterdir()) if root.exists() else []
    assert not [f.name for f in files if f.name.startswith(".")], "a half-written temporary was left behind"
    for file in files:
        assert hashlib.sha256(file.read_bytes()).hexdigest() == file.stem, f"{file.name} is not the whole photo"
    with session_scope(open_database(settings)) as session:
        rows = session.scalars(select(ImageRow)).all()
        for row in rows:
            assert (root / row.stored_path).is_file(), f"row {row.id} has no file"
        return {row.content_id for row in rows}


@pytest.fixture
def api(settings):
    with TestClient(create_app(settings, load_classifier(settings))) as client:
        yield client
    close_database(settings)


def post(client, data: bytes, name: str = "lunch.jpg"):
    return client.post("/v1/classify", files={"file": (name, data, "image/jpeg")})


def test_database_locked_by_another_writer_past_the_busy_timeout(settings, api, monkeypatch):
    monkeypatch.setattr(db.engine, "BUSY_TIMEOUT_MS", 300)  # instead of 30 s
    close_database(settings)  # reconnect with the short timeout
    assert post(api, photo((10, 20, 30))).status_code == 200  # the schema is there
    lunch = photo((200, 100, 50))
    locker = sqlite3.connect(settings.database_url.removeprefix("sqlite:///"), timeout=0)
    try:
        locker.execute("BEGIN IMMEDIATE")  # another program holds the write lock
        started = time.monotonic()
        response = post(api, lunch)
        waited = time.monotonic() - started
    finally:
        locker.rollback()
        locker.close()
    assert response.status_code == 503, response.text
    assert response.json()["error"]["code"] == "database_busy"
    assert "database is busy" in response.json()["error"]["message"]
    assert int(response.headers["Retry-After"]) >= 1
    assert waited < 10  # it waited for the busy timeout, not for ever
    assert hashlib.sha256(lunch).hexdigest() not in check_store_and_rows(settings)
    again = post(api, lunch)
    assert again.status_code == 200 and again.json()["known"] is False
    assert hashlib.sha256(lunch).hexdigest() in check_store_and_rows(settings)


class HalfWritten:
    """A file object that writes half of what it is given, then finds the disk full."""

    def __init__(self, f):
        self.f = f

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.f.close()

    def write(self, data):
        self.f.write(data[: len(data) // 2])
        raise OSError(errno.ENOSPC, "No space left on device")

    def __getattr__(self, name):
        return getattr(self.f, name)


@pytest.mark.parametrize("fault", ["write", "fsync"])
def test_disk_full_while_storing_a_photo(settings, api, monkeypatch, fault):
    lunch = photo((90, 160, 40))
    real_fdopen, real_fsync = os.fdopen, os.fsync
    if fault == "write":
        monkeypatch.setattr(store_module.os, "fdopen", lambda fd, mode: HalfWritten(real_fdopen(fd, mode)))
    else:

        def full(fd):
            raise OSError(errno.ENOSPC, "No space left on device")

        monkeypatch.setattr(store_module.os, "fsync", full)
    response = post(api, lunch)
    assert response.status_code == 507, response.text
    assert response.json()["error"]["code"] == "storage_full"
    assert "is full, so this photo was not saved" in response.json()["error"]["message"]
    assert check_store_and_rows(settings) == set()  # no half file, no temporary, no row
    monkeypatch.setattr(store_module.os, "fdopen", real_fdopen)  # room again
    monkeypatch.setattr(store_module.os, "fsync", real_fsync)
    again = post(api, lunch)
    assert again.status_code == 200
    assert check_store_and_rows(settings) == {hashlib.sha256(lunch).hexdigest()}


def test_the_dashboard_path_says_the_disk_is_full(settings, monkeypatch):
    from ui.uploads import classify_uploads

    def full(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(store_module.os, "fsync", full)
    [outcome] = classify_uploads(
        load_classifier(settings),
        open_database(settings),
        settings,
        [("lunch.jpg", photo((1, 2, 3)))],
        added_by="Robin",
    )
    assert "is full, so this photo was not saved" in outcome.error
    assert check_store_and_rows(settings) == set()
    close_database(settings)


# ---- a real server, killed mid-request ----


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_server(settings, port: int, log: Path) -> subprocess.Popen:
    env = {name: value for name, value in os.environ.items() if not name.startswith("FOODCLF_")}
    env.update(
        {
            "FOODCLF_MODEL": settings.model,
            "FOODCLF_DATABASE_URL": settings.database_url,
            "FOODCLF_IMAGE_DIR": settings.image_dir,
            "FOODCLF_API_TOKENS": TOKEN,
            "FOODCLF_DEVICE": "cpu",
            "FOODCLF_PRECISION": "fp32",
            "FOODCLF_ENGINE": "torch",
            "FOODCLF_WORKERS": "1",
        }
    )
    with log.open("ab") as out:
        server = subprocess.Popen(
            [sys.executable, "-m", "foodclf", "serve", "--port", str(port), "--log-level", "warning"],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        assert server.poll() is None, log.read_text()
        try:
            if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2).status_code == 200:
                return server
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    server.kill()
    pytest.fail(f"the server was not ready:\n{log.read_text()}")


def big_png(shade: int) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (3000, 3000), (shade, 80, 160)).save(buffer, "PNG", compress_level=1)
    return buffer.getvalue()


def test_server_killed_mid_request_leaves_no_half_photo_and_the_next_request_works(settings, tmp_path):
    port, log = free_port(), tmp_path / "server.log"
    base, auth = f"http://127.0.0.1:{port}", {"Authorization": f"Bearer {TOKEN}"}
    server = start_server(settings, port, log)
    answers: list = []

    def send(data: bytes) -> None:
        try:
            answers.append(
                httpx.post(
                    f"{base}/v1/classify", content=data, timeout=60, headers={**auth, "Content-Type": "image/png"}
                ).status_code
            )
        except httpx.TransportError as err:
            answers.append(type(err).__name__)

    try:
        assert (
            httpx.post(
                f"{base}/v1/classify", content=photo(), timeout=30, headers={**auth, "Content-Type": "image/jpeg"}
            ).status_code
            == 200
        )
        uploads = [big_png(shade) for shade in range(0, 240, 30)]
        senders = [threading.Thread(target=send, args=(data,)) for data in uploads]
        # Closely staggered, and killed as the first answer comes: later uploads are then being received,
        # decoded, classified or stored (a fixed sleep let all eight finish first on a quick run, and so did
        # 0.15 s between uploads once one upload took less than that).
        for sender in senders:
            sender.start()
            time.sleep(0.02)
            if answers:
                break
        deadline = time.monotonic() + 60
        while not answers and time.monotonic() < deadline:
            time.sleep(0.01)
        os.kill(server.pid, signal.SIGKILL)
        server.wait(10)
        for sender in senders:
            if sender.ident is not None:  # started
                sender.join(30)
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()
    assert any(not isinstance(answer, int) for answer in answers), f"nothing was cut off: {answers}"
    close_database(settings)

    server = start_server(settings, port, log)  # a restart clears what the killed one left half-done
    try:
        stored_before = check_store_and_rows(settings)
        dinner = photo((30, 60, 90))
        response = httpx.post(
            f"{base}/v1/classify", content=dinner, timeout=30, headers={**auth, "Content-Type": "image/jpeg"}
        )
        assert response.status_code == 200, response.text
        cut_off = uploads[[isinstance(a, int) for a in answers].index(False)]  # one whose answer never came
        retried = httpx.post(
            f"{base}/v1/classify", content=cut_off, timeout=60, headers={**auth, "Content-Type": "image/png"}
        )
        assert retried.status_code == 200
    finally:
        server.terminate()
        server.wait(15)
    stored = check_store_and_rows(settings)
    assert stored >= stored_before | {hashlib.sha256(dinner).hexdigest(), hashlib.sha256(cut_off).hexdigest()}
    with sqlite3.connect(settings.database_url.removeprefix("sqlite:///")) as check:
        assert check.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    assert "Traceback" not in log.read_text()
    close_database(settings)
