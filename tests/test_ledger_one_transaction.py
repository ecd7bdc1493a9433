"""How many transactions and round trips the ledger's money operations take (issue 21 item 4; SPEC AM-12, R-4), on
SQLite and on PostgreSQL: a piece's settlement is one transaction, whatever it writes (its two postings, the task's
budget row with the R-4 cumulative platform fee, its closure and its recorded answer), so a crash between any two of
its writes leaves none of them; a PostgreSQL posting is one statement (the function `ledger_post`), and one of its
own is one round trip, with the refusals, the idempotency by business key and the conservation of every posting.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import psycopg
import pytest

from activities.db import Database, Tx
from activities.ledger import InsufficientFunds, Ledger, transfer_id
from activities.ledger_postings import LEDGER_POST
from tests.ledger_fixtures import (  # noqa: F401  (fixtures)
    CREATOR,
    frozen_task,
    in_threads,
    ledger_db_fixture,
    ledger_dsn_fixture,
    ledger_fixture,
    postgresql_schema_dsn_fixture,
)

TABLES = ("accounts", "transfers", "task_budgets", "content_closures", "operations")


class Crash(Exception):
    """Stands for the process dying at that point: the open transaction is not committed."""


@dataclass
class Seen:
    transactions: int = 0  # Database.transaction() entered
    begins: int = 0  # BEGINs sent (SQLite: traced on the connection; PostgreSQL: the pool's _begin)
    commits: int = 0  # COMMITs sent (SQLite only: PostgreSQL's go through psycopg's transaction)
    alone: int = 0  # statements run as a transaction of their own (PostgreSQL autocommit, one round trip each)
    statements: list[str] = field(default_factory=list)  # every statement of the ledger's, in order


@contextmanager
def counting(db: Database, monkeypatch: pytest.MonkeyPatch, crash_at: int | None = None) -> Iterator[Seen]:
    """Counts what `db` sends while the block runs; with `crash_at`, the statement of that index raises Crash
    instead of running."""
    seen = Seen()
    real_transaction, real_alone, real_begin, real_run = db.transaction, db.fetchone_alone, db._begin, Tx._run

    def statement(sql: str) -> None:
        if crash_at is not None and len(seen.statements) == crash_at:
            raise Crash(sql)
        seen.statements.append(sql)

    @contextmanager
    def transaction() -> Iterator[Tx]:
        seen.transactions += 1
        with real_transaction() as tx:
            yield tx

    def alone(sql: str, params: Sequence[Any] = ()) -> tuple[Any, ...] | None:
        seen.alone += 1
        statement(sql)
        return real_alone(sql, params)

    def begin() -> Any:
        seen.begins += 1
        return real_begin()

    def run(self: Tx, sql: str, params: Sequence[Any]) -> None:
        statement(sql)
        real_run(self, sql, params)

    def traced(sql: str) -> None:
        seen.begins += sql.startswith("BEGIN")
        seen.commits += sql.startswith("COMMIT")

    with monkeypatch.context() as patch:
        patch.setattr(db, "transaction", transaction)
        patch.setattr(db, "fetchone_alone", alone)
        patch.setattr(db, "_begin", begin)
        patch.setattr(Tx, "_run", run)
        if db._sqlite is not None:
            db._sqlite.set_trace_callback(traced)
        try:
            yield seen
        finally:
            if db._sqlite is not None:
                db._sqlite.set_trace_callback(None)


def everything(db: Database) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of the ledger's tables, to compare the whole database before and after."""
    with db.transaction() as tx:
        return {table: sorted(tx.fetchall(f"SELECT * FROM {table}"), key=repr) for table in TABLES}


def money(book: Ledger) -> tuple[int, int, int]:
    return (book.balance("task:t1:escrow").balance_fen, book.balance(CREATOR).balance_fen,
            book.balance("platform:revenue").balance_fen)


# ---- AM-12: a settlement is one transaction ---------------------------------------------------------------------

def test_am_12_settlement_is_one_transaction(ledger: Ledger, monkeypatch: pytest.MonkeyPatch) -> None:
    frozen_task(ledger, budget=10_000, fee=1_000)
    ledger.settle("t1", "k0", CREATOR, 1_005, 100)  # the accounts exist: the settlement below is the usual one
    with counting(ledger.db, monkeypatch) as seen:
        result = ledger.settle("t1", "k1", CREATOR, 2_000, 200)
    assert (seen.transactions, seen.begins, seen.alone) == (1, 1, 0)
    if ledger.db.dialect == "sqlite":
        assert seen.commits == 1
    else:  # every posting one statement (31 statements before the ledger_post function)
        assert sum("ledger_post" in s for s in seen.statements) == 2
        assert len(seen.statements) <= 9, seen.statements
    # 10% half-up of the task's cumulative fees: 101 fen on 1,005, then 301 on 3,005, so 200 for this piece
    assert (result["fee_fen"], result["platform_fee_fen"], result["closure_seq"]) == (2_000, 200, 2)
    assert money(ledger) == (11_000 - 3_005 - 301, 3_005, 301)
    ledger.check_conservation()


def test_am_12_a_crash_between_any_two_writes_of_a_settlement_leaves_nothing_written(
        ledger: Ledger, monkeypatch: pytest.MonkeyPatch) -> None:
    frozen_task(ledger, budget=10_000, fee=1_000)
    before = everything(ledger.db)
    crashes = 0
    for point in itertools.count():
        try:
            with counting(ledger.db, monkeypatch, crash_at=point):
                result = ledger.settle("t1", "k1", CREATOR, 3_000, 300)
        except Crash:
            crashes += 1
            assert everything(ledger.db) == before, f"crash before statement {point}"
            continue
        break
    # the operation key, the budget row, 2 postings, the budget counters, the closure, the recorded answer at least
    assert crashes >= 7, crashes
    assert (result["fee_fen"], result["platform_fee_fen"], result["closure_seq"], result["duplicate"]) == (
        3_000, 300, 1, False)
    assert money(ledger) == (11_000 - 3_300, 3_000, 300)
    assert [t.business_key for t in ledger.transfers(business_key_prefix="settle:")] in (
        ["settle:t1:k1:fee", "settle:t1:k1:platform"], ["settle:t1:k1:platform", "settle:t1:k1:fee"])
    assert ledger.settle("t1", "k1", CREATOR, 3_000, 300)["duplicate"] is True
    assert money(ledger) == (11_000 - 3_300, 3_000, 300)
    ledger.check_conservation()


def test_am_12_concurrent_settlements_of_one_task_charge_the_r4_platform_fee_on_the_cumulative_fees(
        ledger: Ledger) -> None:
    frozen_task(ledger, budget=10_000, fee=1_000)
    results = in_threads(6, lambda i: ledger.settle("t1", f"k{i}", CREATOR, 1_005, 101))
    # the task's budget row serializes them: 6 x 1,005 = 6,030 fen of fees, 603 fen of platform fee in all
    assert sum(r["platform_fee_fen"] for r in results) == 603
    assert sorted(r["closure_seq"] for r in results) == [1, 2, 3, 4, 5, 6]
    assert money(ledger) == (11_000 - 6_030 - 603, 6_030, 603)


# ---- postings, one statement each on PostgreSQL --------------------------------------------------------------

def test_r4_concurrent_debits_of_one_account_never_overdraw_it(ledger: Ledger) -> None:
    ledger.deposit("d1", "c1", 100)
    ledger.deposit("d2", "c2", 1)  # creator:u1:payable and the accounts exist: every posting below is the usual one
    ledger.transfer("x0", "client:c2:available", CREATOR, 1, "test")

    def debit(i: int) -> str:
        try:
            ledger.transfer(f"x{i + 1}", "client:c1:available", CREATOR, 30, "test")
        except InsufficientFunds as refused:
            assert (refused.account, refused.available_fen, refused.needed_fen) == ("client:c1:available", 10, 30)
            return "refused"
        return "posted"

    outcomes = in_threads(8, debit)
    assert sorted(outcomes) == ["posted"] * 3 + ["refused"] * 5
    assert ledger.balance("client:c1:available").balance_fen == 10
    assert ledger.balance(CREATOR).balance_fen == 91
    assert len(ledger.transfers(business_key_prefix="x")) == 4


def test_r4_postings_between_two_accounts_in_both_directions_at_once_all_land(ledger: Ledger) -> None:
    ledger.deposit("d1", "c1", 1_000)
    ledger.deposit("d2", "c2", 1_000)
    a, b = "client:c1:available", "client:c2:available"

    def post(i: int) -> None:
        for n in range(10):
            debit, credit = (a, b) if (i + n) % 2 else (b, a)
            ledger.transfer(f"x{i}-{n}", debit, credit, 1 + i, "test")

    in_threads(6, post)
    # thread i moves 1 + i fen 5 times each way
    assert ledger.balance(a).balance_fen == ledger.balance(b).balance_fen == 1_000
    assert len(ledger.transfers(business_key_prefix="x")) == 60


def test_r4_postgresql_posting_of_its_own_is_one_round_trip_and_a_repeat_moves_nothing(
        postgresql_schema_dsn: str, monkeypatch: pytest.MonkeyPatch) -> None:
    book = Ledger(Database(postgresql_schema_dsn))
    try:
        book.deposit("d0", "c1", 1_000)  # the accounts exist
        with counting(book.db, monkeypatch) as seen:
            first = book.deposit("d1", "c1", 500)
            again = book.deposit("d1", "c1", 700)
        assert (seen.alone, seen.begins, seen.transactions, len(seen.statements)) == (2, 0, 0, 2)
        assert (first.duplicate, again.duplicate, again.mismatch, again.amount_fen) == (False, True, True, 500)
        assert again.id == first.id == transfer_id("deposit:d1")
        assert book.balance("client:c1:available").balance_fen == 1_500
        assert book.balance("world:deposits").balance_fen == -1_500
        book.check_conservation()
    finally:
        book.db.close()


def test_r4_postgresql_posting_function_refuses_an_overdraft_and_a_missing_account_and_writes_nothing(
        postgresql_schema_dsn: str, monkeypatch: pytest.MonkeyPatch) -> None:
    book = Ledger(Database(postgresql_schema_dsn))
    try:
        book.deposit("d0", "c1", 100)
        book.transfer("x0", "client:c1:available", CREATOR, 1, "test")
        before = everything(book.db)
        # the function alone, in one statement: the debit account cannot pay, then the credit account is missing
        for credit, amount, outcome in ((CREATOR, 100, "insufficient"), ("creator:u9:payable", 1, "missing")):
            asked = book._new("x1", "client:c1:available", credit, amount, "test", "", "posted")
            row = book.db.fetchone_alone(LEDGER_POST, (*asked.row(), 0))
            assert row is not None and row[:3] == (outcome, None, None)
        assert everything(book.db) == before
        # through the ledger: the same refusal as on SQLite, with the balance, and still nothing written
        with counting(book.db, monkeypatch) as seen, pytest.raises(InsufficientFunds) as refused:
            book.transfer("x1", "client:c1:available", "creator:u9:payable", 100, "test")
        assert (refused.value.account, refused.value.available_fen, refused.value.needed_fen) == (
            "client:c1:available", 99, 100)
        assert (seen.alone, seen.transactions) == (1, 1)
        assert everything(book.db) == before
        book.check_conservation()
    finally:
        book.db.close()


def test_r4_postgresql_posting_of_its_own_runs_again_on_a_fresh_connection_when_its_pooled_one_died(
        postgresql_schema_dsn: str) -> None:
    book = Ledger(Database(postgresql_schema_dsn))
    try:
        book.deposit("d0", "c1", 100)
        pids = [connection.info.backend_pid for connection in book.db._idle]
        assert pids
        with psycopg.connect(postgresql_schema_dsn, autocommit=True) as admin:  # as a server restart would
            for pid in pids:
                admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
        moved = book.deposit("d1", "c1", 50)
        assert (moved.duplicate, moved.amount_fen) == (False, 50)
        assert book.balance("client:c1:available").balance_fen == 150
        book.check_conservation()
    finally:
        book.db.close()
