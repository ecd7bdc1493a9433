"""A tiny database layer shared by the ledger and the directory: SQLite by default, PostgreSQL by DSN.

SQL is written once with `?` placeholders; `Tx` converts them for psycopg. Every write happens inside
`Database.transaction()`, which is one database transaction: committed on normal exit, rolled back on an exception.
"""

from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any, Literal

import psycopg
import psycopg.errors
import structlog

Dialect = Literal["sqlite", "postgresql"]

SQLITE_BUSY_TIMEOUT_MS = 30_000
# PostgreSQL pool (README "Restarts and recovery"): idle connections kept per process (the worker's activity
# threads borrow one per transaction), how long a new connection may take, and how many fresh connections a
# transaction tries when BEGIN fails on the ones it gets (the server restarted under them).
MAX_IDLE_CONNECTIONS = 32
CONNECT_TIMEOUT_S = 5
CONNECT_ATTEMPTS = 3


class IntegrityError(Exception):
    """The database refused a write: a CHECK, UNIQUE, FOREIGN KEY or NOT NULL constraint, or an immutability trigger."""


def default_dsn() -> str:
    return os.environ.get("LEDGER_DSN") or ".data/ledger.db"


def _is_postgresql(dsn: str) -> bool:
    return dsn.startswith(("postgresql://", "postgres://"))


def _sqlite_path(dsn: str) -> str:
    return dsn.removeprefix("sqlite:///")


def _to_psycopg(sql: str) -> str:
    # psycopg reads '%' as the start of a placeholder everywhere in a query that has parameters.
    return sql.replace("%", "%%").replace("?", "%s")


class Tx:
    """One open transaction. Only valid inside `Database.transaction()`."""

    def __init__(self, cursor: sqlite3.Cursor | psycopg.Cursor[Any], dialect: Dialect) -> None:
        self._cursor = cursor
        self.dialect: Dialect = dialect

    def _run(self, sql: str, params: Sequence[Any]) -> None:
        try:
            if self.dialect == "postgresql":
                self._cursor.execute(_to_psycopg(sql), tuple(params))
            else:
                self._cursor.execute(sql, tuple(params))
        except (sqlite3.IntegrityError, psycopg.errors.IntegrityError) as error:
            raise IntegrityError(str(error)) from error

    def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        """Runs one statement; returns the number of rows it changed (0 for an `ON CONFLICT DO NOTHING` skip)."""
        self._run(sql, params)
        return int(self._cursor.rowcount)

    def fetchone(self, sql: str, params: Sequence[Any] = (), *, for_update: bool = False) -> tuple[Any, ...] | None:
        """`for_update` locks the selected rows until the end of the transaction on PostgreSQL. SQLite needs no
        row locks: `BEGIN IMMEDIATE` already makes this the only writer."""
        self._run(self._locking(sql, for_update), params)
        row = self._cursor.fetchone()
        return None if row is None else tuple(row)

    def fetchall(self, sql: str, params: Sequence[Any] = (), *, for_update: bool = False) -> list[tuple[Any, ...]]:
        self._run(self._locking(sql, for_update), params)
        return [tuple(row) for row in self._cursor.fetchall()]

    def _locking(self, sql: str, for_update: bool) -> str:
        return f"{sql} FOR UPDATE" if for_update and self.dialect == "postgresql" else sql


class Database:
    def __init__(self, dsn: str) -> None:
        self.dsn = dsn
        self.dialect: Dialect = "postgresql" if _is_postgresql(dsn) else "sqlite"
        # SQLite: one connection shared by the threads of this process, one transaction at a time.
        # PostgreSQL: a small pool; each transaction borrows a connection, so threads run in parallel. Connections
        # are health-checked when borrowed (BEGIN) and the pool is emptied when one is found dead.
        self._lock = threading.Lock()
        self._in_transaction = threading.local()
        self._idle: list[psycopg.Connection[Any]] = []
        self._sqlite: sqlite3.Connection | None = None
        if self.dialect == "sqlite":
            self._sqlite = self._open_sqlite(_sqlite_path(dsn))

    @staticmethod
    def _open_sqlite(path: str) -> sqlite3.Connection:
        if path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        connection = sqlite3.connect(
            path, isolation_level=None, check_same_thread=False, timeout=SQLITE_BUSY_TIMEOUT_MS / 1000
        )
        connection.execute("PRAGMA journal_mode=WAL")
        connection.execute("PRAGMA synchronous=FULL")
        connection.execute("PRAGMA foreign_keys=ON")
        # Freed row space is overwritten with zeros: a destroyed subject key (activities/subject_keys.py) must not
        # stay readable in the file's free space.
        connection.execute("PRAGMA secure_delete=ON")
        connection.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        return connection

    @contextmanager
    def transaction(self) -> Iterator[Tx]:
        if getattr(self._in_transaction, "active", False):
            raise RuntimeError("nested Database.transaction() in one thread: pass the open Tx down instead")
        self._in_transaction.active = True
        try:
            if self.dialect == "sqlite":
                with self._sqlite_transaction() as tx:
                    yield tx
            else:
                with self._postgresql_transaction() as tx:
                    yield tx
        finally:
            self._in_transaction.active = False

    @contextmanager
    def _sqlite_transaction(self) -> Iterator[Tx]:
        with self._lock:
            connection = self._sqlite
            if connection is None:
                raise RuntimeError("database is closed")
            if connection.in_transaction:
                # Nothing may own a transaction while the lock is free. One left open (seen in the crash test, cause
                # not found) would make every later BEGIN of this process fail: drop it, and say so.
                structlog.get_logger().warning("database connection found inside a transaction: rolled back",
                                               database=self.dsn)
                connection.rollback()
            cursor = connection.cursor()
            # IMMEDIATE takes the write lock now, so two writers (threads or processes) queue instead of
            # deadlocking on a read-to-write upgrade; busy_timeout bounds the wait.
            try:
                cursor.execute("BEGIN IMMEDIATE")
                yield Tx(cursor, "sqlite")
                try:
                    cursor.execute("COMMIT")
                except sqlite3.IntegrityError as error:  # a deferred constraint fails at commit
                    raise IntegrityError(str(error)) from error
            finally:
                # Whatever failed (the body, or COMMIT itself: SQLite keeps a transaction open when its COMMIT
                # fails), the shared connection must leave here outside a transaction, or every later BEGIN of
                # this process fails with "cannot start a transaction within a transaction".
                if connection.in_transaction:
                    connection.rollback()
                cursor.close()

    @contextmanager
    def _postgresql_transaction(self) -> Iterator[Tx]:
        try:
            with self._pg_cursor() as cursor:
                yield Tx(cursor, "postgresql")
        except psycopg.errors.IntegrityError as error:  # raised at COMMIT
            raise IntegrityError(str(error)) from error

    @contextmanager
    def _pg_cursor(self) -> Iterator[psycopg.Cursor[Any]]:
        """A cursor in one transaction on a pooled connection: committed on normal exit, rolled back on an error."""
        connection, transaction = self._begin()
        healthy = False
        try:
            try:
                with connection.cursor() as cursor:
                    yield cursor
            except BaseException as error:
                if not transaction.__exit__(type(error), error, error.__traceback__):
                    raise
            else:
                transaction.__exit__(None, None, None)
            healthy = True
        except psycopg.OperationalError:
            # The server went away (restart, failover, a killed backend): every idle connection of the pool is as
            # dead as this one. The error propagates: an activity fails retryably and its retry, idempotent by its
            # business key, runs on a fresh connection (whether this COMMIT landed or not).
            self._discard_idle()
            raise
        finally:
            idle = connection.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
            self._give_back(connection, healthy or idle)

    def fetchone_alone(self, sql: str, params: Sequence[Any] = ()) -> tuple[Any, ...] | None:
        """PostgreSQL only: runs one statement as a transaction of its own (autocommit: one round trip, no BEGIN
        and COMMIT of their own; the statement, a function call included, commits or rolls back whole) and returns
        its first row. For a statement that is safe to run twice (idempotent by a business key): a pooled
        connection found dead (the server restarted since it was last used) drops the idle pool and the statement
        runs again on a fresh connection, which only such a statement allows. A refusal of a constraint raises
        IntegrityError; a server still unreachable raises psycopg.OperationalError (retryable)."""
        if self.dialect != "postgresql":
            raise RuntimeError("fetchone_alone is for PostgreSQL; SQLite writers take the lock with BEGIN IMMEDIATE")
        if getattr(self._in_transaction, "active", False):
            raise RuntimeError("fetchone_alone inside Database.transaction() in one thread: use the open Tx")
        for attempt in range(CONNECT_ATTEMPTS):
            connection = self._borrow()
            healthy = False
            try:
                with connection.cursor() as cursor:
                    cursor.execute(_to_psycopg(sql), tuple(params))
                    row = cursor.fetchone()
                healthy = True
                return None if row is None else tuple(row)
            except psycopg.errors.IntegrityError as error:
                healthy = True
                raise IntegrityError(str(error)) from error
            except psycopg.OperationalError:
                self._discard_idle()
                if attempt == CONNECT_ATTEMPTS - 1:
                    raise
            finally:
                idle = connection.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
                self._give_back(connection, healthy and idle)
        raise AssertionError("unreachable")

    def _begin(self) -> tuple[psycopg.Connection[Any], AbstractContextManager[psycopg.Transaction]]:
        """A pooled connection with a transaction begun on it. BEGIN is the health check: a connection that fails
        it (its server restarted since it was last used) is dropped with the rest of the idle pool and a fresh one
        is tried; nothing of the caller's has run yet, so this retry is safe. A server that refuses new connections
        raises psycopg.OperationalError (retryable) after CONNECT_ATTEMPTS."""
        for attempt in range(CONNECT_ATTEMPTS):
            connection = self._borrow()
            transaction = connection.transaction()
            try:
                transaction.__enter__()
            except psycopg.OperationalError:
                connection.close()
                self._discard_idle()
                if attempt == CONNECT_ATTEMPTS - 1:
                    raise
                continue
            return connection, transaction
        raise AssertionError("unreachable")

    def _borrow(self) -> psycopg.Connection[Any]:
        with self._lock:
            while self._idle:
                connection = self._idle.pop()
                if not connection.closed and not connection.broken:
                    return connection
                connection.close()
        return psycopg.connect(self.dsn, autocommit=True, connect_timeout=CONNECT_TIMEOUT_S)

    def _give_back(self, connection: psycopg.Connection[Any], reusable: bool) -> None:
        if reusable and not connection.closed and not connection.broken:
            with self._lock:
                if len(self._idle) < MAX_IDLE_CONNECTIONS:
                    self._idle.append(connection)
                    return
        connection.close()

    def _discard_idle(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
        for connection in idle:
            connection.close()

    def ensure_schema(self, ddl_sqlite: str, ddl_postgresql: str) -> None:
        """Runs idempotent DDL (CREATE ... IF NOT EXISTS) in one transaction."""
        if self.dialect == "sqlite":
            with self.transaction() as tx:
                for statement in _split_sql(ddl_sqlite):
                    tx.execute(statement)
            return
        with self._pg_cursor() as cursor:
            # Two workers starting at once would race on the catalog; one schema change at a time.
            cursor.execute("SELECT pg_advisory_xact_lock(7316001)")
            cursor.execute(ddl_postgresql.encode())  # bytes: no placeholder parsing, several statements

    def checkpoint(self) -> None:
        """SQLite: copies the write-ahead log into the database file and truncates it, so that page images of
        overwritten rows (a destroyed subject key) leave the log as well. A reader in another process can keep the
        log from being emptied: logged, and the next checkpoint finishes it. PostgreSQL: nothing to do here."""
        if self.dialect != "sqlite":
            return
        with self._lock:
            if self._sqlite is None:
                return
            busy, _, _ = self._sqlite.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
        if busy:
            structlog.get_logger().warning("write-ahead log not emptied: a reader holds it", database=self.dsn)

    def close(self) -> None:
        with self._lock:
            if self._sqlite is not None:
                self._sqlite.close()
                self._sqlite = None
            idle, self._idle = self._idle, []
        for connection in idle:
            connection.close()


def _split_sql(script: str) -> list[str]:
    """Splits a script into statements at the semicolons that end one (a trigger body keeps its own)."""
    statements: list[str] = []
    current = ""
    for line in script.splitlines(keepends=True):
        current += line
        if sqlite3.complete_statement(current):
            if current.strip():
                statements.append(current.strip())
            current = ""
    if current.strip():
        statements.append(current.strip())
    return statements
