"""Start the real dashboard (`streamlit run dashboard.py`) on a free loopback port, for the smoke and browser tests."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Iterator

from foodclf.settings import Settings, setting_fields

ROOT = Path(__file__).resolve().parents[1]
START_TIMEOUT = 90  # seconds: a cold start imports torch and transformers


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def dashboard_env(settings: Settings) -> dict[str, str]:
    """This process's environment with every FOODCLF_ variable taken from `settings` (for the server)."""
    env = {
        name: value for name, value in os.environ.items() if name not in {f.metadata["env"] for f in setting_fields()}
    }
    env.update(
        {
            "FOODCLF_MODEL": settings.model,
            "FOODCLF_DATABASE_URL": settings.database_url,
            "FOODCLF_IMAGE_DIR": settings.image_dir,
            "FOODCLF_MODEL_DIR": settings.model_dir,
            "FOODCLF_CACHE_DIR": settings.cache_dir,
            "FOODCLF_DEVICE": "cpu",
            "FOODCLF_PRECISION": "fp32",
            "FOODCLF_ENGINE": "torch",
            "FOODCLF_WORKERS": "1",
        }
    )
    return env


def get(url: str, timeout: float = 5.0) -> tuple[int, str]:
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return response.status, response.read().decode("utf-8", "replace")


@contextlib.contextmanager
def running_dashboard(
    settings: Settings, log_path: Path, *, port: int | None = None, args: tuple = (), env: dict | None = None
) -> Iterator[str]:
    """Serve dashboard.py until the block ends; yields the base URL. The server's output goes to log_path.

    Args:
        port: the port (default: a free one); args: more `streamlit run` options; env: more variables.
    """
    port = port or free_port()
    command = [
        sys.executable,
        "-m",
        "streamlit",
        "run",
        "dashboard.py",
        "--server.headless",
        "true",
        "--server.port",
        str(port),
        "--server.address",
        "127.0.0.1",
        "--browser.gatherUsageStats",
        "false",
        *args,
    ]
    base = f"http://127.0.0.1:{port}"
    with (
        open(log_path, "wb") as log,
        subprocess.Popen(
            command,
            cwd=ROOT,
            env={**dashboard_env(settings), **(env or {})},
            stdout=log,
            stderr=subprocess.STDOUT,
        ) as server,
    ):
        try:
            _wait_healthy(base, server, log_path)
            yield base
        finally:
            server.terminate()
            try:
                server.wait(timeout=15)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait()


def _wait_healthy(base: str, server: subprocess.Popen, log_path: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise AssertionError(f"the dashboard exited with {server.returncode}:\n{log_path.read_text()[-3000:]}")
        try:
            if get(f"{base}/_stcore/health", timeout=2) == (200, "ok"):
                return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.25)
    raise AssertionError(f"the dashboard did not answer within {START_TIMEOUT} s:\n{log_path.read_text()[-3000:]}")
