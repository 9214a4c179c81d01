"""Shared fixtures: tiny models built here (no downloads), a fresh database per test.

Every test that reads or writes the database runs on SQLite and, when FOODCLF_TEST_DATABASE_URL
names a PostgreSQL server, on PostgreSQL too (the `database` fixture's parameter; see
tests/databases.py). With CI=true a run without PostgreSQL fails.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest

from databases import POSTGRES_ENV, PostgresServer, backends, fresh_databases, postgres_url, uses_database
from db.engine import close_database, open_database
from factories import image_factory, make_review_row, photo
from foodclf.settings import Settings, setting_fields
from foodclf.starter_model import ensure_starter_model
from object_store import MotoServer
from pages_support import GROUPS, Dashboard, clear_streamlit_caches
from tiny_models import build_tiny_clip, build_tiny_vit


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    return build_tiny_vit(tmp_path_factory.mktemp("tiny-vit"))


@pytest.fixture(scope="session")
def tiny_clip_dir(tmp_path_factory) -> Path:
    return build_tiny_clip(tmp_path_factory.mktemp("tiny-clip"))


@pytest.fixture(scope="session")
def starter_cache_dir(tmp_path_factory) -> Path:
    """A cache folder holding the starter model, built once per session with every network connection refused."""

    def refuse(*args, **kwargs):
        raise OSError("no network in this test")

    cache = tmp_path_factory.mktemp("starter-cache")
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(socket.socket, "connect", refuse)
        ensure_starter_model(Settings(cache_dir=str(cache)))
    return cache


# --- which database: SQLite always, PostgreSQL too where FOODCLF_TEST_DATABASE_URL is set ---

_SERVER = pytest.StashKey[PostgresServer]()
_VERSION = pytest.StashKey[str]()
_PASSED_ON_POSTGRES: list[str] = []


def pytest_configure(config):
    url = postgres_url()
    if url is None:
        return
    server = PostgresServer(url)
    try:
        version = server.check()
    except Exception as err:  # noqa: BLE001  (any failure to reach it stops the run with its reason)
        server.admin.dispose()
        raise pytest.UsageError(f"{POSTGRES_ENV} is set but the server cannot be used: {err}") from None
    config.stash[_SERVER] = server
    config.stash[_VERSION] = version


def pytest_unconfigure(config):
    server = config.stash.get(_SERVER, None)
    if server is not None:
        server.close()


def pytest_generate_tests(metafunc):
    """Database tests get a parameter per backend; the rest (and `sqlite_only` ones) keep SQLite, unparametrized."""
    if len(backends()) == 1 or metafunc.definition.get_closest_marker("sqlite_only"):
        return
    if not uses_database(metafunc.definition.path.name, metafunc.fixturenames):
        return
    chosen = backends()[-1:] if metafunc.definition.get_closest_marker("one_backend") else backends()
    for fixture, scope in (("database", "function"), ("module_database", "module")):
        if fixture in metafunc.fixturenames:
            metafunc.parametrize(fixture, chosen, indirect=True, scope=scope)


def pytest_report_header(config):
    return _database_line(config)


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    line = _database_line(config)
    if _SERVER in config.stash:
        line += f"; {len(_PASSED_ON_POSTGRES)} tests passed on PostgreSQL"
    required = _postgres_required(config)
    terminalreporter.write_sep("-", line, red=required, bold=required)


def pytest_runtest_logreport(report):
    if report.when == "call" and report.passed and "[postgresql" in report.nodeid:
        _PASSED_ON_POSTGRES.append(report.nodeid)


class PostgresNotTested(pytest.Item):
    """Stands in CI for the PostgreSQL runs that could not happen, and fails, so the closing line counts it."""

    def runtest(self):
        raise AssertionError(
            f"CI=true but {POSTGRES_ENV} is not set: the database tests ran on SQLite only."
            " .ci/run installs PostgreSQL and starts it with .ci/postgres.sh; see its output for why it could not."
        )

    def repr_failure(self, excinfo):
        return str(excinfo.value)

    def reportinfo(self):
        return self.path, None, "PostgreSQL in CI"


def pytest_collection_modifyitems(session, config, items):
    if _postgres_required(config):
        items.append(PostgresNotTested.from_parent(session, name="postgresql_tested_in_ci"))


def _postgres_required(config) -> bool:
    """CI must test PostgreSQL: a CI run without it fails, whatever else passed."""
    return os.environ.get("CI", "").lower() == "true" and _SERVER not in config.stash


def _database_line(config) -> str:
    if _SERVER in config.stash:
        server = config.stash[_SERVER]
        return f"databases: SQLite and {config.stash[_VERSION]} at {server.url.render_as_string()}"
    line = f"databases: SQLite only; PostgreSQL NOT TESTED ({POSTGRES_ENV} is not set; see .ci/postgres.sh)"
    return line + (": a failure with CI=true" if _postgres_required(config) else "")


@pytest.fixture
def database(request, tmp_path):
    """Fresh databases for one test on its backend (the parameter: sqlite, or postgresql where set)."""
    backend = getattr(request, "param", "sqlite")
    with fresh_databases(backend, tmp_path, request.config.stash.get(_SERVER, None)) as databases:
        yield databases


@pytest.fixture(scope="module")
def module_database(request, tmp_path_factory):
    """Fresh databases shared by one module's tests, on its backend (for read-only data made once)."""
    folder = tmp_path_factory.mktemp("module-db")
    backend = getattr(request, "param", "sqlite")
    with fresh_databases(backend, folder, request.config.stash.get(_SERVER, None)) as databases:
        yield databases


@pytest.fixture
def settings(tmp_path, tiny_model_dir, database) -> Settings:
    """Settings for one test: its own database and folders, the tiny model, fp32 on CPU in PyTorch."""
    return Settings(
        model=str(tiny_model_dir),
        database_url=database.url(),
        image_dir=str(tmp_path / "images"),
        model_dir=str(tmp_path / "models"),
        cache_dir=str(tmp_path / "cache"),
        device="cpu",
        precision="fp32",
        engine="torch",  # OpenVINO converts each model once per process (seconds): its tests are test_engines.py
        workers=1,
        batch_size=4,
    )


@pytest.fixture(scope="session")
def s3_server():
    """A real S3 API (moto's server) on loopback, with the AWS variables pointing S3 clients at it."""
    server = MotoServer()
    with pytest.MonkeyPatch.context() as patch:
        for name, value in server.environment().items():
            patch.setenv(name, value)
        yield server
    server.stop()


@pytest.fixture
def s3_settings(settings, s3_server) -> Settings:
    """The test's settings with photos in a fresh S3 bucket (FOODCLF_IMAGE_DIR=s3://bucket/photos)."""
    return settings.replace(image_dir=s3_server.new_bucket())


@pytest.fixture
def make_photo():
    return photo


# --- database fixtures (db/) ---


@pytest.fixture
def engine(settings):
    """The test's database, migrated to head; disposed afterwards."""
    from db.engine import close_database, open_database

    yield open_database(settings)
    close_database(settings)


@pytest.fixture
def session(engine):
    """A Session on the test's database; tests commit (or not) themselves."""
    from sqlalchemy.orm import Session

    with Session(engine, expire_on_commit=False) as session:
        yield session


@pytest.fixture
def make_image():
    """Factory: make_image(session, **overrides) -> ImageRow (see image_factory)."""
    return image_factory()


@pytest.fixture
def make_review():
    """Factory: make_review(session, image, action=, label=, reviewer=, at=) -> ReviewRow."""
    return make_review_row


# --- dashboard fixtures (pages/) ---


@pytest.fixture
def dashboard(settings, monkeypatch) -> Dashboard:
    """The page's environment: the tiny model, a fresh SQLite file and image folder for this test."""
    for f in setting_fields():
        monkeypatch.delenv(f.metadata["env"], raising=False)
    env = {
        "FOODCLF_MODEL": settings.model,
        "FOODCLF_DATABASE_URL": settings.database_url,
        "FOODCLF_IMAGE_DIR": settings.image_dir,
        "FOODCLF_MODEL_DIR": settings.model_dir,
        "FOODCLF_CACHE_DIR": settings.cache_dir,
        "FOODCLF_DEVICE": "cpu",
        "FOODCLF_PRECISION": "fp32",
        "FOODCLF_ENGINE": "torch",
        "FOODCLF_WORKERS": "1",
        "FOODCLF_BATCH_SIZE": "4",
        # Sign-in roles for tests that sign someone in (pages_support.sign_in); without sign-in: local admin.
        "FOODCLF_ADMIN_GROUPS": GROUPS["admin"],
        "FOODCLF_MODERATOR_GROUPS": GROUPS["moderator"],
        "FOODCLF_VIEWER_GROUPS": GROUPS["viewer"],
        "FOODCLF_REVIEWER": "local-admin",
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    # AppTest clicks right after a run; the reaction-time guard has its own tests (test_pages_review.py).
    monkeypatch.setattr("ui.decisions.REACTION_S", 0.0)
    # Each AppTest click is its own run, never two callbacks of one browser message; but a quick run put a
    # click within SAME_INPUT_S of the one before, and it was dropped as the same key press (the browser
    # tests keep the guard).
    monkeypatch.setattr("ui.decisions.SAME_INPUT_S", 0.0)
    clear_streamlit_caches()
    engine = open_database(settings)
    yield Dashboard(settings, engine)
    clear_streamlit_caches()
    close_database(settings)
