"""Ledger fixtures, on a fresh SQLite file and, when LEDGER_TEST_PG_DSN is set, on a fresh PostgreSQL schema.

Import the `*_fixture` functions a module uses into it (or into a conftest); pytest knows them by their short names. Without LEDGER_TEST_PG_DSN the PostgreSQL variant is
skipped, except under CI=true, where it fails: CI must test the database production runs on.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

import psycopg
import pytest

from activities.db import Database
from activities.ledger import Ledger

PG_DSN_ENV = "LEDGER_TEST_PG_DSN"
BACKENDS = ["sqlite", "postgresql"]


def running_in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in {"true", "1", "yes"}


def postgresql_base_dsn() -> str:
    """The DSN of the test server, or a skip (a failure under CI) saying how to get one."""
    dsn = os.environ.get(PG_DSN_ENV, "").strip()
    if not dsn:
        reason = (f"{PG_DSN_ENV} is not set: the PostgreSQL variant of the ledger tests needs a server "
                  f"(run `bash .ci/postgres.sh` and export {PG_DSN_ENV}=postgresql://ledger:ledger@127.0.0.1:5432/ledger)")
        if running_in_ci():
            pytest.fail(f"CI=true and {reason}", pytrace=False)
        pytest.skip(reason)
    return dsn


def with_search_path(dsn: str, schema: str) -> str:
    """The same DSN, with every connection's search_path set to `schema` (libpq's `options` parameter)."""
    parts = urlsplit(dsn)
    query = [(k, v) for k, v in parse_qsl(parts.query) if k != "options"]
    query.append(("options", f"-c search_path={schema}"))
    return urlunsplit(parts._replace(query=urlencode(query, quote_via=quote)))  # libpq wants %20, not +


@pytest.fixture(name="postgresql_schema_dsn")
def postgresql_schema_dsn_fixture() -> Iterator[str]:
    """A DSN on a brand-new schema of the test server, dropped afterwards."""
    base = postgresql_base_dsn()
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
