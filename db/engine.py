"""Opening the database: one engine per URL, SQLite set up for a few writers, schema migrated to head."""

from __future__ import annotations

import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, OperationalError
from sqlalchemy.orm import Session
from sqlalchemy.pool import NullPool, StaticPool

from foodclf.errors import DatabaseBusy, FoodclfError, StorageFull

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
# How long a writer waits for another's transaction (ingest, a moderator) before giving up.
BUSY_TIMEOUT_MS = 30_000
# PostgreSQL advisory lock key held while migrating (any constant; "foodclf" in ASCII).
MIGRATION_LOCK = 0x666F6F64636C66

_engines: dict[str, Engine] = {}
_lock = threading.Lock()


def open_database(url) -> Engine:
    """The engine for a database URL or Settings (cached per process), upgraded to the latest schema.

    Args:
        url: a SQLAlchemy URL such as ``sqlite:///data/foodclf.db``, or a Settings (its database_url).

    Returns:
        An Engine; for SQLite the file's folder is created, WAL, foreign keys and a busy timeout are on.

    Raises:
        FoodclfError: the database cannot be opened or migrated.
    """
    url = str(getattr(url, "database_url", url))
    with _lock:
        engine = _engines.get(url)
        if engine is None:
            try:
                engine = _create_engine(url)
            except (ImportError, ArgumentError) as err:  # a mistyped URL, or a driver not installed
                raise FoodclfError(f"FOODCLF_DATABASE_URL cannot be used: {err}") from None
            try:
                upgrade_database(engine)
            except Exception:
                engine.dispose()
                raise
            _engines[url] = engine
        return engine


def close_database(url) -> None:
    """Dispose of the cached engine for a URL or Settings (tests, shutdown)."""
    url = str(getattr(url, "database_url", url))
    with _lock:
        engine = _engines.pop(url, None)
    if engine is not None:
        engine.dispose()


@contextmanager
def session_scope(engine: Engine) -> Iterator[Session]:
    """A Session in one transaction: committed when the block ends, rolled back on an exception.

    Raises:
        DatabaseBusy: another writer held the lock longer than the busy timeout; nothing was written.
        StorageFull: the database's disk is full; nothing was written.
    """
    # expire_on_commit=False: rows returned by query functions stay readable after the block.
    try:
        with Session(engine, expire_on_commit=False) as session, session.begin():
            yield session
    except OperationalError as err:
        message = str(err.orig).lower()
        if "locked" in message or "busy" in message:
            raise DatabaseBusy(
                "The database is busy with another writer, so nothing was saved; please try again in a few seconds."
            ) from err
        if "disk is full" in message or "no space" in message:
            raise StorageFull(
                "The database's disk is full, so nothing was saved; please tell the administrator."
            ) from err
        raise


def upgrade_database(engine: Engine, revision: str = "head") -> None:
    """Apply the Alembic migrations up to `revision`, keeping every row."""
    migrate = engine if _is_memory(engine) else _migration_engine(engine)
    try:
        # One transaction for every pending migration, begun here: Alembic then runs them all inside
        # it. Left to itself on SQLite (no transactional DDL) it commits after each one, releasing the
        # write lock, so a second process starting at once read the half-way version and ran the next
        # migration too ("duplicate column name").
        with migrate.connect() as connection, connection.begin():
            if connection.dialect.name == "postgresql":
                # Replicas starting at once migrate one after the other: the first takes this lock and
                # upgrades, the rest wait for its commit and then find the schema already at head.
                connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK})
            config = alembic_config()
            config.attributes["connection"] = connection
            command.upgrade(config, revision)
    except Exception as err:
        raise FoodclfError(
            f"The database at {engine.url.render_as_string(hide_password=True)} could not be brought "
            f"up to date ({type(err).__name__}: {err}). Check FOODCLF_DATABASE_URL."
        ) from err
    finally:
        if migrate is not engine:
            migrate.dispose()


def alembic_config() -> Config:
    """Alembic's configuration, built in code (there is no alembic.ini)."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS).replace("%", "%%"))
    return config


def _create_engine(url: str) -> Engine:
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        return create_engine(url, pool_pre_ping=True)
    if _is_memory_url(parsed):
        # One shared connection, or each checkout would see its own empty database.
        engine = create_engine(url, poolclass=StaticPool, connect_args={"check_same_thread": False})
    else:
        folder = Path(parsed.database).expanduser().parent
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise FoodclfError(
                f"Cannot create the folder {folder} for the database ({err.strerror}); check FOODCLF_DATABASE_URL."
            ) from None
        engine = create_engine(url)
    event.listen(engine, "connect", _sqlite_pragmas)
    return engine


def _sqlite_pragmas(dbapi_connection, connection_record) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys = ON")
    cursor.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    # WAL: moderators read while ingest writes; NORMAL sync is safe in WAL (a crash loses no committed
    # transaction's consistency, only possibly the last ones on power loss) and much faster per commit.
    cursor.execute("PRAGMA journal_mode = WAL")
    cursor.execute("PRAGMA synchronous = NORMAL")
    cursor.close()


def _migration_engine(engine: Engine) -> Engine:
    """A throwaway engine whose SQLite transactions really are transactions, taken with the write lock."""
    if engine.dialect.name != "sqlite":
        return engine
    migrate = create_engine(engine.url, poolclass=NullPool)

    # pysqlite defers BEGIN until the first INSERT/UPDATE, leaving DDL outside any transaction.
    # Taking over BEGIN makes a migration all-or-nothing, and IMMEDIATE makes two processes
    # starting at once (dashboard and CLI) migrate one after the other.
    @event.listens_for(migrate, "connect")
    def _connect(dbapi_connection, connection_record):
        dbapi_connection.isolation_level = None
        dbapi_connection.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")

    @event.listens_for(migrate, "begin")
    def _begin(connection):
        connection.exec_driver_sql("BEGIN IMMEDIATE")

    return migrate


def _is_memory(engine: Engine) -> bool:
    return engine.dialect.name == "sqlite" and _is_memory_url(engine.url)


def _is_memory_url(url) -> bool:
    return url.database in (None, "", ":memory:") or "mode=memory" in str(url)
