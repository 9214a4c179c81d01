"""`python -m foodclf serve`: who may listen where, and a real server answering over HTTP."""

from __future__ import annotations

import hashlib
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from db.engine import close_database, open_database, session_scope
from db.records import find_image
from factories import photo
from foodclf.api.app import check_exposure
from foodclf.cli import main
from foodclf.errors import SettingsError
from foodclf.settings import is_loopback

ROOT = Path(__file__).resolve().parents[1]
TOKEN = "smoke-test-token"


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.2", "localhost", "::1", "[::1]"])
def test_loopback_hosts(host):
    assert is_loopback(host)


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.168.1.20", "example.org", "my-laptop"])
def test_exposed_hosts(host, settings):
    assert not is_loopback(host)
    with pytest.raises(SettingsError, match=f"Refusing to listen on {host} without API tokens"):
        check_exposure(host, settings)
    check_exposure(host, settings.replace(api_tokens=("t",)))  # with tokens it may


@pytest.fixture
def no_server(monkeypatch, settings):
    """Record uvicorn.run's arguments instead of serving (with the test's own database)."""
    import uvicorn

    calls = []
    monkeypatch.setattr(uvicorn, "run", lambda app, **options: calls.append(options))
    monkeypatch.delenv("FOODCLF_API_TOKENS", raising=False)
    monkeypatch.setenv("FOODCLF_DATABASE_URL", settings.database_url)
    return calls


def test_serve_refuses_an_open_public_address(no_server, capsys):
    assert main(["serve", "--host", "0.0.0.0"]) == 1
    assert no_server == []
    err = capsys.readouterr().err
    assert "foodclf serve: Refusing to listen on 0.0.0.0 without API tokens" in err
    assert "FOODCLF_API_TOKENS" in err


def test_serve_starts_on_a_public_address_with_tokens(no_server, monkeypatch):
    monkeypatch.setenv("FOODCLF_API_TOKENS", "abc,def")
    assert main(["serve", "--host", "0.0.0.0", "--port", "9000"]) == 0
    [options] = no_server
    assert (options["host"], options["port"]) == ("0.0.0.0", 9000)


def test_serve_defaults_to_loopback_port_8000(no_server):
    assert main(["serve"]) == 0
    assert (no_server[0]["host"], no_server[0]["port"]) == ("127.0.0.1", 8000)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until_ready(base: str, server: subprocess.Popen, log: Path, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            pytest.fail(f"the server exited with {server.returncode}:\n{log.read_text()}")
        try:
            if httpx.get(f"{base}/readyz", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass  # not listening yet
        time.sleep(0.1)
    pytest.fail(f"the server was not ready within {timeout} s:\n{log.read_text()}")


def test_real_server_classifies_a_photo_over_http(settings, tmp_path):
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = {
        **os.environ,
        "FOODCLF_MODEL": settings.model,
        "FOODCLF_DATABASE_URL": settings.database_url,
        "FOODCLF_IMAGE_DIR": settings.image_dir,
        "FOODCLF_API_TOKENS": TOKEN,
        "FOODCLF_DEVICE": "cpu",
        "FOODCLF_PRECISION": "fp32",
        "FOODCLF_WORKERS": "1",
    }
    log = tmp_path / "server.log"
    with log.open("wb") as out:
        server = subprocess.Popen(
            [sys.executable, "-m", "foodclf", "serve", "--port", str(port), "--log-level", "warning"],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_until_ready(base, server, log)
        data = photo((180, 120, 60))
        auth = {"Authorization": f"Bearer {TOKEN}"}
        response = httpx.post(
            f"{base}/v1/classify", files={"file": ("dinner.jpg", data, "image/jpeg")}, headers=auth, timeout=30
        )
        assert response.status_code == 200, response.text
        assert response.json()["id"] == hashlib.sha256(data).hexdigest()
        assert response.json()["known"] is False
        assert (
            httpx.post(
                f"{base}/v1/classify", content=data, headers={"Content-Type": "image/jpeg"}, timeout=30
            ).status_code
            == 401
        )
        assert oversized_request_status(port) == 413
    finally:
        server.terminate()
        try:
            server.wait(15)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
    # uvicorn shuts down cleanly on SIGTERM, then re-raises it: -15 is a clean stop.
    assert server.returncode in (0, -signal.SIGTERM), log.read_text()
    assert "Traceback" not in log.read_text()
    with session_scope(open_database(settings.database_url)) as session:
        image = find_image(session, response.json()["id"])
        assert (image.source, image.added_by, image.file_name) == ("api", "api-token-1", "dinner.jpg")
    close_database(settings.database_url)
    assert (Path(settings.image_dir) / image.stored_path).read_bytes() == data


def oversized_request_status(port: int) -> int:
    """Announce a 1 GB upload and send none of it: the answer must come from the headers alone."""
    head = (
        f"POST /v1/classify HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAuthorization: Bearer {TOKEN}\r\n"
        "Content-Type: image/jpeg\r\nContent-Length: 1000000000\r\n\r\n"
    )
    with socket.create_connection(("127.0.0.1", port), timeout=10) as conn:
        conn.sendall(head.encode())
        status_line = conn.makefile("rb").readline().decode()
    return int(status_line.split()[1])
