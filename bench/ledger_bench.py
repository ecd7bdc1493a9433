"""Ledger phase: postings per second (activities/ledger.py `Ledger.transfer`, one transaction each, with its
idempotency row, account locks and balance checks) against plain inserts of one row per transaction into the same
database with the same settings. SQLite in a scratch file; PostgreSQL in a scratch schema, if reachable."""

from __future__ import annotations

import os
import time
import uuid
from pathlib import Path
from urllib.parse import quote

import psycopg

from activities.db import Database
from activities.ledger import Ledger
from bench.harness import PhaseResult, interleaved

PG_DSN = os.environ.get("BENCH_PG_DSN", "postgresql://ledger:ledger@127.0.0.1:5432/ledger")
PLAIN_DDL = "CREATE TABLE IF NOT EXISTS bench_plain (key TEXT PRIMARY KEY, account TEXT NOT NULL, amount BIGINT)"


def _postings(ledger: Ledger, tag: str):  # type: ignore[no-untyped-def]
    async def measure(n: int) -> tuple[int, float]:
        prefix = f"{tag}-{uuid.uuid4().hex[:8]}"
        start = time.perf_counter()
        for i in range(n):
            # A deposit into one of 50 clients, then half of it frozen into a task escrow: the two kinds of
            # posting the money path makes most (checked balance on the second).
            if i % 2 == 0:
                ledger.transfer(f"{prefix}:d{i}", "world:deposits", f"client:b{i % 50}:available", 200, "deposit")
            else:
                ledger.transfer(f"{prefix}:f{i}", f"client:b{(i - 1) % 50}:available", f"task:{prefix}:escrow",
                                100, "freeze")
        return n, time.perf_counter() - start

    return measure


def _plain(db: Database, tag: str):  # type: ignore[no-untyped-def]
    async def measure(n: int) -> tuple[int, float]:
        prefix = f"{tag}-{uuid.uuid4().hex[:8]}"
        start = time.perf_counter()
        for i in range(n):
            with db.transaction() as tx:
                tx.execute("INSERT INTO bench_plain (key, account, amount) VALUES (?, ?, ?)",
                           (f"{prefix}:{i}", f"client:b{i % 50}:available", 200))
        return n, time.perf_counter() - start

    return measure


async def sqlite_phase(workdir: Path, size: int, rounds: int) -> PhaseResult:
    db = Database(str(workdir / "ledger-bench.db"))
    try:
        ledger = Ledger(db)
        db.ensure_schema(PLAIN_DDL, PLAIN_DDL)
        return await interleaved("ledger_sqlite", "postings", size, rounds, _postings(ledger, "s"),
                                 _plain(db, "s"),
                                 [("SQLite file, WAL, synchronous=FULL (activities/db.py); one transaction per"
                                  " posting; bare: one INSERT per transaction into the same file")])
    finally:
        db.close()


def pg_reachable() -> str | None:
    try:
        with psycopg.connect(PG_DSN, connect_timeout=3) as connection:
            connection.execute("SELECT 1")
        return None
    except psycopg.Error as err:
        return f"PostgreSQL not reachable at {PG_DSN}: {str(err).strip().splitlines()[0]}"


async def postgresql_phase(size: int, rounds: int) -> PhaseResult:
    schema = f"bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(PG_DSN, autocommit=True) as admin:
        admin.execute(f"CREATE SCHEMA {schema}")
        row = admin.execute("SHOW server_version").fetchone()
    server_version = row[0] if row else "?"
    separator = "&" if "?" in PG_DSN else "?"
    db = Database(f"{PG_DSN}{separator}options={quote(f'-csearch_path={schema}')}")
    try:
        ledger = Ledger(db)
        db.ensure_schema(PLAIN_DDL, PLAIN_DDL)
        return await interleaved("ledger_postgresql", "postings", size, rounds, _postings(ledger, "p"),
                                 _plain(db, "p"),
                                 [(f"PostgreSQL {server_version} at {PG_DSN.split('@')[-1]}, scratch schema dropped"
                                  " afterwards; one transaction per posting; bare: one INSERT per transaction, same"
                                  " server")])
    finally:
        db.close()
        with psycopg.connect(PG_DSN, autocommit=True) as admin:
            admin.execute(f"DROP SCHEMA {schema} CASCADE")
