"""The shared SQLite connection of a worker process (activities/db.py) must never be left inside a transaction: one
left open made every later BEGIN of the crash test's worker fail ("cannot start a transaction within a
transaction"), and its mount task waited out 48 s workflow tasks of retried local activities (AM-12: a crash or
retry must not stall settlement)."""

from __future__ import annotations

from pathlib import Path

import pytest

from activities.db import Database, IntegrityError

DDL = """
CREATE TABLE IF NOT EXISTS parent (id TEXT PRIMARY KEY);
CREATE TABLE IF NOT EXISTS child (id TEXT PRIMARY KEY,
    parent_id TEXT NOT NULL REFERENCES parent (id) DEFERRABLE INITIALLY DEFERRED);
"""


@pytest.fixture
def db(tmp_path: Path) -> Database:
    opened = Database(str(tmp_path / "db.sqlite"))
    opened.ensure_schema(DDL, DDL)
    return opened


def count(db: Database, table: str) -> int:
    with db.transaction() as tx:
        row = tx.fetchone(f"SELECT COUNT(*) FROM {table}")
    assert row is not None
    return int(row[0])


def test_am_12_a_commit_refused_at_the_end_leaves_no_transaction_open(db: Database) -> None:
    with pytest.raises(IntegrityError), db.transaction() as tx:
        tx.execute("INSERT INTO child (id, parent_id) VALUES ('c1', 'nobody')")  # checked at COMMIT only
    assert db._sqlite is not None and not db._sqlite.in_transaction
    with db.transaction() as tx:
        tx.execute("INSERT INTO parent (id) VALUES ('p1')")
    assert (count(db, "parent"), count(db, "child")) == (1, 0)


def test_am_12_a_failing_body_rolls_back_and_the_next_transaction_runs(db: Database) -> None:
    with pytest.raises(RuntimeError, match="boom"), db.transaction() as tx:
        tx.execute("INSERT INTO parent (id) VALUES ('p1')")
        raise RuntimeError("boom")
    assert count(db, "parent") == 0


def test_am_12_a_transaction_left_open_on_the_connection_is_dropped_before_the_next_begin(db: Database) -> None:
    assert db._sqlite is not None
    db._sqlite.execute("BEGIN")  # what the crash test's worker found: nobody owned it
    db._sqlite.execute("INSERT INTO parent (id) VALUES ('orphan')")
    with db.transaction() as tx:
        tx.execute("INSERT INTO parent (id) VALUES ('p1')")
    with db.transaction() as tx:
        assert tx.fetchall("SELECT id FROM parent") == [("p1",)]
