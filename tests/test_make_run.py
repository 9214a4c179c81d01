"""`make run` serves on the loopback address only: read from the Makefile, then checked on a real listening socket."""

from __future__ import annotations

import shlex
import subprocess
import time
import tomllib
from pathlib import Path

from server_support import ROOT, dashboard_env, free_port, get

LOOPBACK_V4 = "0100007F"  # 127.0.0.1 as /proc/net/tcp writes it


def make_run_command() -> list[str]:
    """The command `make run` starts (make -n prints it without running anything)."""
    printed = subprocess.run(["make", "-n", "run"], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    [line] = [line for line in printed.splitlines() if "streamlit run dashboard.py" in line]
    return shlex.split(line)


def listening_addresses(port: int) -> set[str]:
    """The local addresses of every socket listening on `port` (IPv4 and IPv6), as /proc/net writes them."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for row in Path(table).read_text().splitlines()[1:]:
            local, state = row.split()[1], row.split()[3]
            address, hex_port = local.rsplit(":", 1)
            if state == "0A" and int(hex_port, 16) == port:  # 0A: LISTEN
                found.add(address)
    return found


def test_make_run_passes_the_loopback_address():
    command = make_run_command()
    assert command[-2:] == ["--server.address", "127.0.0.1"]


def test_the_streamlit_config_says_loopback_too():
    config = tomllib.loads((ROOT / ".streamlit" / "config.toml").read_text())
    assert config["server"]["address"] == "127.0.0.1"  # a bare `streamlit run dashboard.py` as well


def test_make_runs_server_listens_on_127_0_0_1_only(settings, tmp_path):
    command = make_run_command()
    port = free_port()
    log = tmp_path / "streamlit.log"
    with log.open("wb") as out:
        server = subprocess.Popen(
            [*command, "--server.port", str(port), "--server.headless", "true"],
            cwd=ROOT,
            env=dashboard_env(settings),
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 60
        while not listening_addresses(port):
            assert server.poll() is None, log.read_text()
            assert time.monotonic() < deadline, f"nothing listened on {port}:\n{log.read_text()}"
            time.sleep(0.2)
        assert listening_addresses(port) == {LOOPBACK_V4}
        deadline = time.monotonic() + 60
        while True:
            try:
                assert get(f"http://127.0.0.1:{port}/_stcore/health", timeout=2) == (200, "ok")
                break
            except OSError:
                assert time.monotonic() < deadline, log.read_text()
                time.sleep(0.2)
    finally:
        server.terminate()
        try:
            server.wait(15)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
