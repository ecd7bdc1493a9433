"""The ledger's record of how each piece closed (AM-12, AM-13, AM-16), which a mount task reads instead of a
message from every piece (docs/bench.md, "Limits found" 2b). On SQLite and on PostgreSQL."""

from __future__ import annotations

import re
import sqlite3
from pathlib import Path

import pytest
from pydantic import ValidationError
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from activities import ledger_schema
from activities.db import Database, IntegrityError
from activities.ledger import (
    Ledger,
    LedgerActivities,
    PendingAlreadyResolved,
    SettleRequest,
    TaskClosuresRequest,
)
from tests.ledger_fixtures import (  # noqa: F401  (fixtures)
    CREATOR,
    frozen_task,
    in_threads,
    ledger_db_fixture,
    ledger_dsn_fixture,
    ledger_fixture,
    postgresql_schema_dsn_fixture,
)


def closures(ledger: Ledger, task: str, after: int = 0, limit: int = 1000) -> list[tuple[int, str, str, int, int]]:
    return [(c.seq, c.content_id, c.outcome, c.fee_fen, c.platform_fee_fen)
            for c in ledger.task_closures(task, after, limit)]


def test_am_13_closures_are_numbered_per_task_in_settlement_order(ledger: Ledger) -> None:
    frozen_task(ledger, "t1")
    frozen_task(ledger, "t2")
    first = ledger.settle("t1", "k1", CREATOR, 3_000, 300)
    ledger.settle("t2", "k1", CREATOR, 500, 50)
    ledger.settle("t1", "k2", CREATOR, 1_000, 100)
    assert first["closure_seq"] == 1 and first["outcome"] == "settled"
    assert closures(ledger, "t1") == [(1, "k1", "settled", 3_000, 300), (2, "k2", "settled", 1_000, 100)]
    assert closures(ledger, "t2") == [(1, "k1", "settled", 500, 50)]
    assert closures(ledger, "t1", after=1) == [(2, "k2", "settled", 1_000, 100)]
    assert closures(ledger, "t1", after=2) == []
    assert closures(ledger, "t1", limit=1) == [(1, "k1", "settled", 3_000, 300)]


def test_am_12_a_repeated_settlement_records_its_closure_once(ledger: Ledger) -> None:
    frozen_task(ledger)
    ledger.settle("t1", "k1", CREATOR, 3_000, 300)
    again = ledger.settle("t1", "k1", CREATOR, 3_000, 300)
    assert (again["duplicate"], again["closure_seq"]) == (True, 1)
    assert closures(ledger, "t1") == [(1, "k1", "settled", 3_000, 300)]


def test_am_16_a_disposed_piece_closes_as_closed_with_the_platform_fee_actually_charged(ledger: Ledger) -> None:
    frozen_task(ledger, budget=10_000, fee=100)
    ledger.settle("t1", "k1", CREATOR, 2_000, 200, outcome="settled")  # charges the whole 100 of platform fee
    ledger.settle("t1", "k2", CREATOR, 0, 0, outcome="closed")
    assert closures(ledger, "t1") == [(1, "k1", "settled", 2_000, 100), (2, "k2", "closed", 0, 0)]
    with pytest.raises(ValueError, match="outcome"):
        ledger.settle("t1", "k3", CREATOR, 0, 0, outcome="paid")  # type: ignore[arg-type]
    assert len(closures(ledger, "t1")) == 2


def test_am_13_concurrent_settlements_of_one_task_are_numbered_without_gaps(ledger: Ledger) -> None:
    frozen_task(ledger, budget=100_000, fee=10_000)
    in_threads(8, lambda i: ledger.settle("t1", f"k{i}", CREATOR, 100 * (i + 1), 10 * (i + 1)))
    read = closures(ledger, "t1")
    assert [seq for seq, *_ in read] == list(range(1, 9))
    assert sorted(content for _, content, *_ in read) == [f"k{i}" for i in range(8)]
    assert sum(fee for *_, fee, _ in read) == ledger.balance(CREATOR).balance_fen == 3_600


def test_am_13_the_activity_reads_closures_from_a_number_and_refuses_an_unknown_task(ledger: Ledger) -> None:
    activities, env = LedgerActivities(ledger), ActivityEnvironment()
    frozen_task(ledger)
    env.run(activities.settle, SettleRequest(task_id="t1", content_id="k1", payee_account=CREATOR, fee_fen=700,
                                             platform_fee_fen=70, outcome="settled"))
    env.run(activities.settle, SettleRequest(task_id="t1", content_id="k2", payee_account=CREATOR, fee_fen=0,
                                             platform_fee_fen=0, outcome="closed"))
    page = env.run(activities.task_closures, TaskClosuresRequest(task_id="t1", after_seq=0, limit=1))
    assert ([(c.content_id, c.outcome, c.fee_fen) for c in page.closures], page.last_seq) == ([("k1", "settled", 700)],
                                                                                               1)
    rest = env.run(activities.task_closures, TaskClosuresRequest(task_id="t1", after_seq=page.last_seq))
    assert ([(c.content_id, c.outcome) for c in rest.closures], rest.last_seq) == ([("k2", "closed")], 2)
    nothing = env.run(activities.task_closures, TaskClosuresRequest(task_id="t1", after_seq=2))
    assert (nothing.closures, nothing.last_seq) == ([], 2)
    with pytest.raises(ApplicationError) as refused:
        env.run(activities.task_closures, TaskClosuresRequest(task_id="t-unknown"))
    assert (refused.value.type, refused.value.non_retryable) == ("UnknownTask", True)


@pytest.mark.parametrize("field, value", [("after_seq", -1), ("limit", 0), ("limit", 5_001), ("after_seq", 1.5)])
def test_am_13_closure_reads_refuse_bad_cursors(field: str, value: object) -> None:
    with pytest.raises(ValidationError):
        TaskClosuresRequest(**{"task_id": "t1", field: value})  # type: ignore[arg-type]


def test_r4_a_ledger_file_made_before_the_partial_indexes_opens_and_still_resolves_a_hold_once(
        tmp_path: Path) -> None:
    """Schema of 2026-11 (inline UNIQUE on pending_id, full correction index, no content_closures): opening it
    adds what is missing, and the database still refuses a second resolution of a hold."""
    path = str(tmp_path / "old.db")
    old_schema = ledger_schema.TABLES.replace(
        "pending_id TEXT REFERENCES transfers (id),", "pending_id TEXT UNIQUE REFERENCES transfers (id),")
    old_schema = old_schema.replace("ON transfers (corrects_id) WHERE corrects_id IS NOT NULL",
                                    "ON transfers (corrects_id)")
    old_schema = re.sub(r"CREATE UNIQUE INDEX IF NOT EXISTS transfers_resolve_once[^;]*;", "", old_schema)
    old_schema = re.sub(r"CREATE TABLE IF NOT EXISTS content_closures \([^;]*;", "", old_schema)
    assert "INDEX IF NOT EXISTS transfers_resolve_once" not in old_schema
    assert "CREATE TABLE IF NOT EXISTS content_closures" not in old_schema
    with sqlite3.connect(path) as raw:
        raw.executescript(old_schema)
    book = Ledger(Database(path))
    try:
        frozen_task(book)
        book.settle("t1", "k1", CREATOR, 100, 10)
        assert closures(book, "t1") == [(1, "k1", "settled", 100, 10)]
        book.deposit("d-extra", "c1", 1_000)
        hold = book.hold("h1", "client:c1:available", CREATOR, 60)
        book.void_pending("v1", "h1")
        with pytest.raises(PendingAlreadyResolved):
            book.post_pending("p1", "h1")
        with pytest.raises(IntegrityError), book.db.transaction() as tx:
            tx.execute("INSERT INTO transfers (id, business_key, debit_account, credit_account, amount_fen, kind,"
                       " created_at, pending_id, status) VALUES ('x', 'x', ?, ?, 60, 'post', 'now', ?,"
                       " 'posted_pending')", (hold.debit_account, hold.credit_account, hold.id))
        book.check_conservation()
    finally:
        book.db.close()
