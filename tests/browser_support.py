"""Whether the browser test may skip: on a developer's machine yes, under CI never."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from ui.decisions import REACTION_S

MISSING = "Debian's chromium is not installed at {path} (apt-get install chromium; .ci/run does this where it can)"


def in_ci(environ=os.environ) -> bool:
    """CI services set CI=true; so does .ci/run."""
    return environ.get("CI", "").strip().lower() in ("1", "true", "yes")


def require_chromium(path: Path, environ=os.environ) -> None:
    """Skip where Chromium is absent, except under CI, where its absence fails the run."""
    if path.exists():
        return
    if in_ci(environ):
        pytest.fail(f"CI=true but {MISSING.format(path=path)}; the browser test must run in CI.", pytrace=False)
    pytest.skip(MISSING.format(path=path))


CHROMIUM = Path("/usr/bin/chromium")
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
WAIT_MS = 120_000  # a cold server imports torch and loads the model, on 2 cores that CI may share


def look_at_photo(page) -> None:
    """Wait as a person would before deciding: the dashboard drops a click on a photo shown under
    ui.decisions.REACTION_S ago (the double-click guard), so a test clicking at once is dropped.

    Timed from when the browser's guard saw the photo's view appear, not from when the test saw the page: a
    photo drawn a moment after the heading (a slow first run) made a fixed wait from the heading too short."""
    page.wait_for_function(
        "ms => window.foodclfGuard && performance.now() - window.foodclfGuard.changed > ms",
        arg=int(REACTION_S * 1000) + 300,
    )


def launch(playwright):
    """A headless Chromium from Debian's package (never a downloaded one)."""
    return playwright.chromium.launch(executable_path=str(CHROMIUM), args=ARGS, headless=True)
