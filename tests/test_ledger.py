"""The ledger (SPEC R-4, AM-3, AM-9, AM-10, AM-12, AM-13, R-1, R-3), on SQLite and on PostgreSQL.

Every test runs on both backends; the `ledger` fixture checks conservation after each scenario.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from activities.db import Database, IntegrityError
from activities.ledger import (
    AccrualItem,
    AccrueRequest,
    BudgetExceeded,
    FreezeRequest,
    InsufficientFunds,
    Ledger,
    LedgerActivities,
    PendingAlreadyResolved,
    RefundRequest,
    ReleaseRequest,
    SettleRequest,
    TaskClosed,
    TaskMoneyRequest,
    transfer_id,
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

CST = timezone(timedelta(hours=8))
T0 = datetime(2026, 12, 1, 10, 0, tzinfo=CST)


def row_counts(db: Database) -> dict[str, int]:
    tables = ["accounts", "transfers", "task_budgets", "budget_accruals", "operations"]
    with db.transaction() as tx:
        return {t: int(tx.fetchone(f"SELECT COUNT(*) FROM {t}")[0]) for t in tables}  # type: ignore[index]



# ---- postings are idempotent, immutable, and never overdraw ---------------------------------------------

def test_r4_repeated_key_moves_money_once_and_returns_the_first(ledger: Ledger) -> None:
    first = ledger.deposit("d1", "c1", 5_000)
    again = ledger.deposit("d1", "c1", 7_000)
    assert (first.duplicate, again.duplicate, again.mismatch) == (False, True, True)
    assert again.id == first.id == transfer_id("deposit:d1") and again.amount_fen == 5_000
    assert ledger.balance("client:c1:available").balance_fen == 5_000
    assert ledger.balance("world:deposits").balance_fen == -5_000


def test_r4_transfer_id_is_a_stable_uuid5_of_the_business_key() -> None:
    assert transfer_id("freeze:t1") == transfer_id("freeze:t1") != transfer_id("freeze:t2")
    assert transfer_id("freeze:t1")[14] == "5"  # UUID version 5


def test_r4_overdraft_is_refused_by_the_database_not_only_the_code(ledger: Ledger) -> None:
    ledger.deposit("d1", "c1", 100)
    with pytest.raises(IntegrityError), ledger.db.transaction() as tx:
        tx.execute("UPDATE accounts SET debits_posted = debits_posted + 101 WHERE name = ?",
                   ("client:c1:available",))
    with pytest.raises(IntegrityError), ledger.db.transaction() as tx:  # a hold counts against available too
        tx.execute("UPDATE accounts SET debits_pending = 101 WHERE name = ?", ("client:c1:available",))
    assert ledger.balance("client:c1:available").available_fen == 100


def test_r4_transfer_that_overdraws_is_refused_by_the_database_when_the_code_check_is_bypassed(
        ledger: Ledger, monkeypatch: pytest.MonkeyPatch) -> None:
    ledger.deposit("d1", "c1", 100)
    monkeypatch.setattr(Ledger, "_require_available", lambda self, tx, account, needed: None)
    with pytest.raises(IntegrityError):
        ledger.transfer("x1", "client:c1:available", "platform:revenue", 101, "correction")
    assert ledger.transfers(business_key_prefix="x1") == []


def test_r4_insufficient_funds_names_the_account_and_writes_nothing(ledger: Ledger) -> None:
    ledger.deposit("d1", "c1", 100)
    before = row_counts(ledger.db)
    with pytest.raises(InsufficientFunds) as refused:
        ledger.transfer("x1", "client:c1:available", "creator:u9:payable", 101, "test")
    assert (refused.value.account, refused.value.available_fen, refused.value.needed_fen) == (
        "client:c1:available", 100, 101)
    assert row_counts(ledger.db) == before


def test_r4_transfers_are_immutable_in_the_database(ledger: Ledger) -> None:
    ledger.deposit("d1", "c1", 100)
    for statement in ("UPDATE transfers SET amount_fen = 1", "DELETE FROM transfers"):
        with pytest.raises(IntegrityError), ledger.db.transaction() as tx:
            tx.execute(statement)
    assert ledger.transfers(business_key_prefix="deposit:")[0].amount_fen == 100


@pytest.mark.parametrize("amount", [0, -1, True, 1.0, "100"])
def test_r4_amounts_are_positive_integer_fen(ledger: Ledger, amount: Any) -> None:
    with pytest.raises(ValueError):
        ledger.deposit("d1", "c1", amount)


# ---- two-phase holds ------------------------------------------------------------------------------------

def test_r4_hold_reserves_then_posts_once(ledger: Ledger) -> None:
    ledger.deposit("d1", "c1", 1_000)
    ledger.hold("h1", "client:c1:available", CREATOR, 600)
    assert ledger.balance("client:c1:available").available_fen == 400
    with pytest.raises(InsufficientFunds):
        ledger.hold("h2", "client:c1:available", CREATOR, 401)
    posted = ledger.post_pending("p1", "h1")
    assert ledger.post_pending("p1", "h1").id == posted.id
    with pytest.raises(PendingAlreadyResolved, match="'p1'"):
        ledger.void_pending("v1", "h1")
    assert ledger.balance("client:c1:available").available_fen == 400
    assert ledger.balance(CREATOR).balance_fen == 600 and ledger.balance(CREATOR).credits_pending == 0


def test_r4_partial_post_releases_the_rest(ledger: Ledger) -> None:
    ledger.deposit("d1", "c1", 1_000)
    ledger.hold("h1", "client:c1:available", CREATOR, 600)
    ledger.post_pending("p1", "h1", 250)
    client = ledger.balance("client:c1:available")
    assert (client.balance_fen, client.available_fen, client.debits_pending) == (750, 750, 0)
    assert ledger.balance(CREATOR).balance_fen == 250


def test_r4_void_releases_the_hold_once(ledger: Ledger) -> None:
    ledger.deposit("d1", "c1", 1_000)
    ledger.hold("h1", "client:c1:available", CREATOR, 600)
    ledger.void_pending("v1", "h1")
    assert ledger.void_pending("v1", "h1").duplicate
    with pytest.raises(PendingAlreadyResolved):
        ledger.post_pending("p1", "h1")
    assert ledger.balance("client:c1:available").available_fen == 1_000
    assert ledger.balance(CREATOR).balance_fen == 0


def test_r4_database_refuses_a_second_resolution_of_a_hold(ledger: Ledger) -> None:
    ledger.deposit("d1", "c1", 1_000)
    hold = ledger.hold("h1", "client:c1:available", CREATOR, 600)
    ledger.void_pending("v1", "h1")
    with pytest.raises(IntegrityError), ledger.db.transaction() as tx:
        tx.execute("INSERT INTO transfers (id, business_key, debit_account, credit_account, amount_fen, kind,"
                   " created_at, pending_id, status) VALUES ('x', 'x', ?, ?, 600, 'post', 'now', ?,"
                   " 'posted_pending')", (hold.debit_account, hold.credit_account, hold.id))


# ---- corrections ----------------------------------------------------------------------------------------

def test_r4_correction_compensates_and_never_exceeds_the_original(ledger: Ledger) -> None:
    ledger.deposit("d1", "c1", 1_000)
    ledger.transfer("pay1", "client:c1:available", CREATOR, 600, "test")
    ledger.correct("fix1", "pay1", 200)
    assert ledger.correct("fix1", "pay1", 200).duplicate
    with pytest.raises(ValueError, match="400 fen left"):
        ledger.correct("fix2", "pay1", 401)
    ledger.correct("fix3", "pay1")  # the rest
    assert ledger.balance(CREATOR).balance_fen == 0
    assert ledger.balance("client:c1:available").balance_fen == 1_000
    assert len(ledger.transfers(account_prefix=CREATOR)) == 3  # nothing was updated or deleted


# ---- AM-3: freezing budget + platform fee ---------------------------------------------------------------------

def test_am_3_freeze_moves_budget_plus_fee_into_escrow_once(ledger: Ledger) -> None:
    ledger.deposit("d1", "c1", 20_000)
    first = ledger.freeze("t1", "c1", 10_000, 1_000)
    again = ledger.freeze("t1", "c1", 50_000, 5_000)
    assert (first["frozen_fen"], again["frozen_fen"], again["duplicate"], again["mismatch"]) == (
        11_000, 11_000, True, True)
    assert again["platform_fee_cap_fen"] == 1_000
    assert ledger.balance("task:t1:escrow").balance_fen == 11_000
    assert ledger.balance("client:c1:available").available_fen == 9_000


def test_am_3_freeze_with_insufficient_funds_writes_nothing(ledger: Ledger) -> None:
    ledger.deposit("d1", "c1", 10_999)
    before = row_counts(ledger.db)
    with pytest.raises(InsufficientFunds) as refused:
        ledger.freeze("t1", "c1", 10_000, 1_000)
    assert (refused.value.available_fen, refused.value.needed_fen) == (10_999, 11_000)
    assert row_counts(ledger.db) == before


# ---- AM-9, AM-10, R-1, R-3: the budget counter ----------------------------------------------------------------

def test_r3_accrue_truncates_to_whole_conversions_and_the_first_batch_past_the_budget_ends_it(
        ledger: Ledger) -> None:
    frozen_task(ledger, budget=1_000, fee=100)
    first = ledger.accrue("t1", "k1", "e1", 2, 300, T0)
    passing = ledger.accrue("t1", "k2", "e2", 2, 300, T0 + timedelta(hours=1))
    later = ledger.accrue("t1", "k1", "e3", 5, 50, T0 + timedelta(hours=2))
    assert (first.granted_count, first.exhausted_at) == (2, None)
    assert (passing.granted_count, passing.granted_fen, passing.remaining_fen) == (1, 300, 100)
    assert passing.exhausted_at == (T0 + timedelta(hours=1)).isoformat()
    assert (later.granted_count, later.spent_fen, later.exhausted_at) == (2, 1_000, passing.exhausted_at)


def test_am_10_spending_the_last_fen_exhausts_the_budget(ledger: Ledger) -> None:
    frozen_task(ledger, budget=1_000, fee=100)
    result = ledger.accrue("t1", "k1", "e1", 10, 100, T0)
    assert (result.granted_count, result.remaining_fen, result.exhausted_at) == (10, 0, T0.isoformat())


def test_r1_repeated_batch_gets_its_first_grant(ledger: Ledger) -> None:
    frozen_task(ledger, budget=1_000, fee=100)
    ledger.accrue("t1", "k1", "e1", 3, 100, T0)
    again = ledger.accrue("t1", "k1", "e1", 9, 100, T0)
    assert (again.duplicate, again.granted_count, again.spent_fen) == (True, 3, 300)


def test_r3_accrue_many_grants_in_order_in_one_call(ledger: Ledger) -> None:
    frozen_task(ledger, budget=1_000, fee=100)
    items = [AccrualItem(event_id=f"e{i}", count=4, price_fen=100, occurred_at=T0 + timedelta(minutes=i))
             for i in range(4)]
    results = ledger.accrue_many("t1", "k1", items)
    assert [r.granted_count for r in results] == [4, 4, 2, 0]
    assert results[-1].exhausted_at == (T0 + timedelta(minutes=2)).isoformat()


def test_r1_release_gives_a_batch_back_once(ledger: Ledger) -> None:
    frozen_task(ledger, budget=1_000, fee=100)
    ledger.accrue("t1", "k1", "e1", 3, 100, T0)
    assert ledger.release("t1", "e1") == 300
    assert ledger.release("t1", "e1") == 0
    assert ledger.task_money("t1")["spent_fen"] == 0
    assert ledger.accrue("t1", "k1", "e1", 3, 100, T0).released


def test_r1_a_batch_voided_before_it_arrives_never_counts(ledger: Ledger) -> None:
    frozen_task(ledger, budget=1_000, fee=100)
    assert ledger.release_many("t1", ["late"])[0].accrued is False
    assert ledger.accrue("t1", "k1", "late", 3, 100, T0).granted_count == 0


def test_am_9_budget_counter_is_checked_by_the_database(ledger: Ledger) -> None:
    frozen_task(ledger, budget=1_000, fee=100)
    for statement in ("UPDATE task_budgets SET spent_fen = 1001", "UPDATE task_budgets SET spent_fen = -1",
                      "UPDATE task_budgets SET platform_fee_charged_fen = 101"):
        with pytest.raises(IntegrityError), ledger.db.transaction() as tx:
            tx.execute(statement)


# ---- AM-12, AM-13: settlement and refund -------------------------------------------------------------------------

def test_am_12_settle_pays_fee_and_platform_fee_once(ledger: Ledger) -> None:
    frozen_task(ledger)
    first = ledger.settle("t1", "k1", CREATOR, 3_000, 300)
    again = ledger.settle("t1", "k1", CREATOR, 9_000, 900)
    assert (again["fee_fen"], again["platform_fee_fen"], again["duplicate"]) == (3_000, 300, True)
    assert first["duplicate"] is False
    assert ledger.balance(CREATOR).balance_fen == 3_000
    assert ledger.balance("platform:revenue").balance_fen == 300


def test_am_12_platform_fee_is_capped_at_what_was_frozen_for_it(ledger: Ledger) -> None:
    frozen_task(ledger, budget=10_000, fee=500)
    ledger.settle("t1", "k1", CREATOR, 3_000, 300)
    second = ledger.settle("t1", "k2", "agency:a1:payable", 3_000, 300)
    third = ledger.settle("t1", "k3", CREATOR, 100, 10)
    assert (second["platform_fee_fen"], second["platform_fee_requested_fen"]) == (200, 300)
    assert third["platform_fee_fen"] == 0 and ledger.transfers(business_key_prefix="settle:t1:k3:platform") == []
    assert ledger.balance("platform:revenue").balance_fen == 500


def test_am_9_settlements_never_pass_the_budget(ledger: Ledger) -> None:
    frozen_task(ledger, budget=1_000, fee=100)
    ledger.settle("t1", "k1", CREATOR, 800, 80)
    with pytest.raises(BudgetExceeded):
        ledger.settle("t1", "k2", CREATOR, 201, 20)


def test_am_13_refund_returns_exactly_the_escrow_left_and_a_repeat_returns_the_first(ledger: Ledger) -> None:
    frozen_task(ledger, budget=10_000, fee=1_000)
    ledger.settle("t1", "k1", CREATOR, 3_000, 300)
    refund = ledger.refund("t1", "c1")
    assert (refund["refunded_fen"], refund["duplicate"]) == (7_700, False)
    assert ledger.refund("t1", "c1") == {**refund, "duplicate": True}
    money = ledger.task_money("t1")
    assert money["frozen_fen"] == 11_000 == (money["paid_fen"] + money["platform_fees_fen"]
                                             + money["refunded_fen"])
    assert money["escrow_balance_fen"] == 0
    assert ledger.balance("client:c1:available").balance_fen == 7_700
    with pytest.raises(TaskClosed):
        ledger.settle("t1", "k2", CREATOR, 1, 0)


def test_am_13_a_refund_of_nothing_is_recorded_once(ledger: Ledger) -> None:
    frozen_task(ledger, budget=1_000, fee=100)
    ledger.settle("t1", "k1", CREATOR, 1_000, 100)
    assert ledger.refund("t1", "c1")["refunded_fen"] == 0
    assert ledger.refund("t1", "c1")["duplicate"] is True
    assert ledger.transfers(business_key_prefix="refund:") == []


# ---- concurrency ----------------------------------------------------------------------------------------------

def test_r4_eight_threads_posting_one_key_move_money_once(ledger: Ledger) -> None:
    results = in_threads(8, lambda i: ledger.deposit("d1", "c1", 1_000 + i))
    assert sum(not r.duplicate for r in results) == 1
    assert len({r.amount_fen for r in results}) == 1
    assert ledger.balance("client:c1:available").balance_fen == results[0].amount_fen


def test_am_12_eight_threads_settling_one_content_pay_once(ledger: Ledger) -> None:
    frozen_task(ledger)
    results = in_threads(8, lambda i: ledger.settle("t1", "k1", CREATOR, 1_000, 100))
    assert sum(not r["duplicate"] for r in results) == 1
    assert ledger.balance(CREATOR).balance_fen == 1_000


def test_r3_concurrent_batches_never_pass_the_budget(ledger: Ledger) -> None:
    frozen_task(ledger, budget=1_000, fee=100)
    results = in_threads(8, lambda i: ledger.accrue("t1", f"k{i}", f"e{i}", 3, 100, T0 + timedelta(minutes=i)))
    assert sum(r.granted_fen for r in results) == 1_000
    assert ledger.task_money("t1")["spent_fen"] == 1_000


def test_sqlite_two_database_objects_on_one_file_write_concurrently(tmp_path: Path) -> None:
    path = str(tmp_path / "shared.db")
    books = [Ledger(Database(path)), Ledger(Database(path))]
    in_threads(8, lambda i: [books[i % 2].deposit(f"d{j % 30}", f"c{j % 3}", 100) for j in range(40)])
    assert books[0].conservation_total() == 0
    books[1].check_conservation()
    assert sum(books[0].balance(f"client:c{c}:available").balance_fen for c in range(3)) == 30 * 100
    with books[0].db.transaction() as tx:
        assert tx.fetchone("PRAGMA integrity_check") == ("ok",)
    for book in books:
        book.db.close()


# ---- the activities ------------------------------------------------------------------------------------------

def test_am_3_activity_turns_insufficient_funds_into_a_final_application_error(ledger: Ledger) -> None:
    activities = LedgerActivities(ledger)
    with pytest.raises(ApplicationError) as refused:
        ActivityEnvironment().run(activities.freeze, FreezeRequest(task_id="t1", client_id="c1", budget_fen=100,
                                                                   platform_fee_fen=10))
    assert (refused.value.type, refused.value.non_retryable) == ("InsufficientFunds", True)
    assert refused.value.details == ({"account": "client:c1:available", "available_fen": 0, "needed_fen": 110},)


def test_am_13_activities_run_a_task_end_to_end(ledger: Ledger) -> None:
    activities, env = LedgerActivities(ledger), ActivityEnvironment()
    ledger.deposit("d1", "c1", 1_100)
    env.run(activities.freeze, FreezeRequest(task_id="t1", client_id="c1", budget_fen=1_000, platform_fee_fen=100))
    accrued = env.run(activities.accrue, AccrueRequest(task_id="t1", content_id="k1", items=[
        AccrualItem(event_id="e1", count=4, price_fen=300, occurred_at=T0)]))
    assert (accrued.spent_fen, accrued.exhausted_at) == (900, T0)
    released = env.run(activities.release, ReleaseRequest(task_id="t1", event_ids=["e1", "e1"]))
    assert released.released_fen == 900
    settled = env.run(activities.settle, SettleRequest(task_id="t1", content_id="k1", payee_account=CREATOR,
                                                       fee_fen=600, platform_fee_fen=60))
    refunded = env.run(activities.refund, RefundRequest(task_id="t1", client_id="c1"))
    money = env.run(activities.task_money, TaskMoneyRequest(task_id="t1"))
    assert (settled.fee_fen, refunded.refunded_fen, money.escrow_balance_fen) == (600, 440, 0)
    assert money.frozen_fen == money.paid_fen + money.platform_fees_fen + money.refunded_fen


@pytest.mark.parametrize("field, value", [("price_fen", True), ("price_fen", 1.5), ("count", -1),
                                          ("occurred_at", datetime(2026, 12, 1, 10))])
def test_r4_models_refuse_bools_floats_negatives_and_naive_instants(field: str, value: Any) -> None:
    item = {"event_id": "e1", "count": 1, "price_fen": 100, "occurred_at": T0, field: value}
    with pytest.raises(ValidationError):
        AccrualItem(**item)
