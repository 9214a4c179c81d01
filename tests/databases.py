"""The databases the tests run on: a SQLite file per test, and a fresh PostgreSQL database per test when
FOODCLF_TEST_DATABASE_URL names a server (`.ci/postgres.sh start DIR` starts a throwaway one).

Each PostgreSQL database is copied from a template migrated once per session (CREATE DATABASE ...
TEMPLATE takes tens of milliseconds, running the migrations again hundreds), and dropped afterwards.
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Optional

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool

from db.engine import close_database, open_database

POSTGRES_ENV = "FOODCLF_TEST_DATABASE_URL"
# Test modules whose tests all read or write the database: they run on every backend.
DATABASE_MODULES = (
    "test_db_",
    "test_ingest",
    "test_api",
    "test_pages_",
    "test_dashboard_smoke",
    "test_store",
    "test_bulk",
)
# Fixtures that give a test a database: any test using one runs on every backend.
DATABASE_FIXTURES = frozenset({"engine", "session", "dashboard", "make_image"})


def postgres_url(environ=os.environ) -> Optional[str]:
    """The PostgreSQL server to test against, or None."""
    return environ.get(POSTGRES_ENV) or None


def backends(environ=os.environ) -> list[str]:
    """The backends a database test runs on."""
    return ["sqlite", "postgresql"] if postgres_url(environ) else ["sqlite"]


def uses_database(module_name: str, fixturenames) -> bool:
    """Whether a test reads or writes the database (so it runs on PostgreSQL too)."""
    return module_name.startswith(DATABASE_MODULES) or bool(DATABASE_FIXTURES & set(fixturenames))


class PostgresServer:
    """Makes and drops the tests' databases on one PostgreSQL server."""

    def __init__(self, url: str):
        self.url = make_url(url)
        if self.url.get_backend_name() != "postgresql":
            raise ValueError(f"{POSTGRES_ENV}: expected a postgresql+psycopg:// URL, not {url!r}")
        self.admin = create_engine(self.url, isolation_level="AUTOCOMMIT", poolclass=NullPool)
        self.prefix = f"foodclf_test_{os.getpid()}"
        self.template: Optional[str] = None
        self.made = 0

    def __repr__(self) -> str:
        return f"PostgresServer({self.url.render_as_string(hide_password=True)!r})"

    def check(self) -> str:
        """The server's version line; raises if it cannot be reached or databases cannot be created."""
        with self.admin.connect() as connection:
            version = connection.execute(text("SHOW server_version")).scalar()
            can_create = connection.execute(
                text("SELECT rolcreatedb OR rolsuper FROM pg_roles WHERE rolname = current_user")
            ).scalar()
        if not can_create:
            raise RuntimeError(f"the role {self.url.username!r} may not create databases (CREATEDB)")
        return f"PostgreSQL {version}"

    def database_url(self, name: str) -> str:
        return self.url.set(database=name).render_as_string(hide_password=False)

    def create(self, *, migrated: bool = True) -> str:
        """A new, empty database's URL; migrated: already at the latest schema."""
        if migrated and self.template is None:
            template = f"{self.prefix}_template"
            self._execute(f'DROP DATABASE IF EXISTS "{template}" WITH (FORCE)')
            self._execute(f'CREATE DATABASE "{template}"')
            open_database(self.database_url(template))
            close_database(self.database_url(template))  # a template must have no connections
            self.template = template
        self.made += 1
        name = f"{self.prefix}_{self.made}"
        self._execute(f'CREATE DATABASE "{name}" TEMPLATE "{self.template if migrated else "template0"}"')
        return self.database_url(name)

    def drop(self, url: str) -> None:
        close_database(url)
        self._execute(f'DROP DATABASE IF EXISTS "{make_url(url).database}" WITH (FORCE)')

    def close(self) -> None:
        if self.template is not None:
            self._execute(f'DROP DATABASE IF EXISTS "{self.template}" WITH (FORCE)')
        self.admin.dispose()

    def _execute(self, sql: str) -> None:
        with self.admin.connect() as connection:
            connection.exec_driver_sql(sql)


class Databases:
    """Fresh databases on one backend for one test (or module); all dropped when it ends."""

    def __init__(self, backend: str, folder: Path, server: Optional[PostgresServer]):
        if backend == "postgresql" and server is None:
            raise ValueError(f"backend: postgresql needs {POSTGRES_ENV}")
        self.backend = backend
        self.folder = folder
        self.server = server
        self.urls: list[str] = []

    def __repr__(self) -> str:
        return f"Databases({self.backend!r})"

    def url(self, name: str = "foodclf", *, migrated: bool = True) -> str:
        """A new database's URL (SQLite: a file `name`.db in the folder); migrated=False: no tables at all."""
        if self.backend == "sqlite":
            url = f"sqlite:///{self.folder / f'{name}.db'}"
        else:
            url = self.server.create(migrated=migrated)
        self.urls.append(url)
        return url

    def close(self) -> None:
        for url in self.urls:
            if self.backend == "sqlite":
                close_database(url)
            else:
                self.server.drop(url)


@contextmanager
def fresh_databases(backend: str, folder: Path, server: Optional[PostgresServer]) -> Iterator[Databases]:
    databases = Databases(backend, folder, server)
    try:
        yield databases
    finally:
        databases.close()
