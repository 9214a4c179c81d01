"""CI cannot pass without the browser test: a missing Chromium fails under CI=true, in pytest and in .ci/run."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from browser_support import require_chromium

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize(
    "environ, outcome",
    [
        ({"CI": "true"}, pytest.fail.Exception),
        ({"CI": "1"}, pytest.fail.Exception),
        ({}, pytest.skip.Exception),
        ({"CI": "false"}, pytest.skip.Exception),
    ],
)
def test_a_missing_browser_fails_under_ci_and_skips_elsewhere(tmp_path, environ, outcome):
    with pytest.raises(outcome):
        require_chromium(tmp_path / "no-chromium", environ)


def test_a_present_browser_runs(tmp_path):
    browser = tmp_path / "chromium"
    browser.write_text("")
    require_chromium(browser, {"CI": "true"})  # neither skips nor fails


def fake_bin(tmp_path: Path, apt_get_exit: int) -> Path:
    """A PATH with no chromium, an apt-get that exits as told, and a make that only says it ran."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("bash", "dirname", "env", "mktemp", "rm", "ls"):
        (bin_dir / tool).symlink_to(shutil.which(tool))
    (bin_dir / "apt-get").write_text(f"#!/bin/sh\nexit {apt_get_exit}\n")
    (bin_dir / "make").write_text('#!/bin/sh\necho make ran "$@"\n')
    for script in bin_dir.iterdir():
        script.chmod(0o755)
    return bin_dir


@pytest.mark.parametrize("ci", ["true", ""])
def test_ci_run_stops_when_chromium_cannot_be_installed(tmp_path, ci):
    bin_dir = fake_bin(tmp_path, apt_get_exit=100)
    env = {"PATH": str(bin_dir), "HOME": str(tmp_path), **({"CI": ci} if ci else {})}
    done = subprocess.run(
        [shutil.which("bash"), str(ROOT / ".ci" / "run")], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode != 0
    assert "could not install chromium" in done.stderr
    assert "make ran" not in done.stdout  # the suite never ran without its browser test


def test_ci_run_runs_the_tests_when_chromium_is_there(tmp_path):
    bin_dir = fake_bin(tmp_path, apt_get_exit=100)
    (bin_dir / "chromium").write_text("#!/bin/sh\n")
    (bin_dir / "chromium").chmod(0o755)
    done = subprocess.run(
        [shutil.which("bash"), str(ROOT / ".ci" / "run")],
        env={"PATH": str(bin_dir), "HOME": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert "make ran test" in done.stdout
