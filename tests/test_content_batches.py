"""A piece's batches in the ledger's database (issue 21; R-1, R-3, AM-16, AM-17, R-12), on SQLite and PostgreSQL.

`ContentBatches.reconcile` records what arrived, voids, gives back and accrues in one transaction; these tests
call it as the piece's workflow does and check what it answers, what the budget granted and conservation.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from activities.content_batches import ContentBatches
from activities.ledger import Ledger
from ports.content_batches import GiveBack, ReconcileBatches
from tests.ledger_fixtures import (  # noqa: F401  (fixtures)
    ledger_db_fixture,
    ledger_dsn_fixture,
    ledger_fixture,
    postgresql_schema_dsn_fixture,
)
from workflows.contract.mounted_content import IncomingBatch
from workflows.rules.counting import CountingRule, FreezeSpan
from workflows.rules.fees import platform_fee

CST = timezone(timedelta(hours=8))
T0 = datetime(2026, 12, 1, 10, 0, tzinfo=CST)
HOUR = timedelta(hours=1)
PRICE = 100
RULE = CountingRule(mounted_at=T0, counting_stops_at=T0 + 24 * HOUR)


def frozen_task(book: Ledger, budget: int = 3_000) -> None:
    book.deposit("dep-t1", "client-1", budget + platform_fee(budget))
    book.freeze("t1", "client-1", budget, platform_fee(budget))


def conserves(book: Ledger, fee_fen: int) -> None:
    """The budget's counter is the piece's fee (one piece), and the book sums to zero."""
    money = book.task_money("t1")
    assert money["spent_fen"] == fee_fen, money
    assert money["frozen_fen"] == money["paid_fen"] + money["platform_fees_fen"] + money["refunded_fen"] + money[
        "escrow_balance_fen"], money
    assert book.conservation_total() == 0


def batch(event_id: str, count: int, at: datetime, *, cheating: bool = False, late: bool = False) -> IncomingBatch:
    return IncomingBatch(event_id=event_id, count=count, occurred_at=at, cheating=cheating, late=late)


def ask(first_seq: int, *batches: IncomingBatch, voids: tuple[str, ...] = (), rejudge: bool = False,
        rule: CountingRule = RULE, fee_fixed: bool = False, shown: tuple[str, ...] = ()) -> ReconcileBatches:
    return ReconcileBatches(task_id="t1", content_id="c1", price_fen=PRICE, first_seq=first_seq,
                            batches=list(batches), voids=list(voids), rejudge=rejudge, fee_fixed=fee_fixed,
                            rule=rule, shown=list(shown))


@pytest.fixture
def batches(ledger: Ledger) -> ContentBatches:
    frozen_task(ledger)
    return ContentBatches(ledger.db, ledger)


def test_issue_21_r_1_a_batch_counts_once_across_calls_and_a_retry_answers_as_its_first_try(
        ledger: Ledger, batches: ContentBatches) -> None:
    first = ask(0, batch("e1", 3, T0 + HOUR), batch("e2", 4, T0 + 2 * HOUR), batch("e-cheat", 5, T0, cheating=True))
    answer = batches.reconcile(first)
    assert (answer.received, answer.counted_now, answer.counted_conversions, answer.fee_fen) == (3, 7, 7, 700)
    assert batches.reconcile(first) == answer.model_copy(update={"counted_now": 0})  # the retry: nothing moves
    again = batches.reconcile(ask(3, batch("e1", 3, T0 + HOUR), batch("e3", 2, T0 + 3 * HOUR)))
    assert (again.received, again.counted_conversions, again.fee_fen) == (1, 9, 900)
    assert (again.records["e3"].counted, "e1" in again.records) == (2, False)
    conserves(ledger, 900)


def test_issue_21_r_1_a_void_gives_back_once_and_a_batch_voided_before_it_arrives_never_counts(
        ledger: Ledger, batches: ContentBatches) -> None:
    batches.reconcile(ask(0, batch("e1", 3, T0 + HOUR), batch("e2", 4, T0 + 2 * HOUR)))
    voided = batches.reconcile(ask(2, voids=("e1", "e-early"), shown=("e1", "e2")))
    assert (voided.released_now, voided.fee_fen, voided.records["e1"].voided, voided.records["e1"].counted) == (
        3, 400, True, 0)
    arrived = batches.reconcile(ask(2, batch("e-early", 6, T0 + HOUR)))
    assert (arrived.received, arrived.counted_now, arrived.records["e-early"].voided, arrived.fee_fen) == (
        1, 0, True, 400)
    assert batches.reconcile(ask(3, voids=("e1",))).released_now == 0  # voided twice: given back once
    conserves(ledger, 400)


def test_issue_21_am_16_a_shrunk_interval_gives_back_what_lies_after_it_and_late_batches_never_count(
        ledger: Ledger, batches: ContentBatches) -> None:
    batches.reconcile(ask(0, batch("e1", 3, T0 + HOUR), batch("e2", 4, T0 + 5 * HOUR)))
    shrunk = RULE.model_copy(update={"counting_stops_at": T0 + 2 * HOUR})  # visibility lost at 12:00
    answer = batches.reconcile(ask(2, batch("e-late", 9, T0 + HOUR, late=True), rejudge=True, rule=shrunk))
    assert (answer.released_now, answer.counted_conversions, answer.fee_fen, answer.late) == (4, 3, 300, 1)
    assert not answer.records["e-late"].counted and answer.records["e-late"].late
    conserves(ledger, 300)


def test_issue_21_r_3_the_used_up_budget_is_answered_on_a_retry_too(ledger: Ledger, batches: ContentBatches) -> None:
    request = ask(0, batch("e1", 20, T0 + HOUR), batch("e2", 15, T0 + 2 * HOUR))
    answer = batches.reconcile(request)
    # 3,000 fen pays 30 conversions: e2 gets 10 of 15, and the period ends at e2's instant (R-3).
    assert (answer.counted_conversions, answer.fee_fen, answer.exhausted_at) == (30, 3_000, T0 + 2 * HOUR)
    assert batches.reconcile(request).exhausted_at == T0 + 2 * HOUR
    conserves(ledger, 3_000)


def test_issue_21_r_12_a_withdrawn_freeze_accrues_what_came_during_it(ledger: Ledger, batches: ContentBatches) -> None:
    standing = RULE.model_copy(update={"freezes": [FreezeSpan(frozen_at=T0 + 2 * HOUR)]})
    held = batches.reconcile(ask(0, batch("before", 3, T0 + HOUR), batch("during", 5, T0 + 3 * HOUR), rule=standing))
    assert (held.counted_conversions, held.records["during"].counted) == (3, 0)
    withdrawn = RULE.model_copy(update={"freezes": [FreezeSpan(frozen_at=T0 + 2 * HOUR, withdrawn=True)]})
    counted = batches.reconcile(ask(2, rejudge=True, rule=withdrawn, shown=("during",)))
    assert (counted.counted_now, counted.counted_conversions, counted.records["during"].counted) == (5, 8, 5)
    conserves(ledger, 800)


def test_issue_21_r_12_a_freeze_that_ends_gives_back_what_came_during_it(
        ledger: Ledger, batches: ContentBatches) -> None:
    batches.reconcile(ask(0, batch("before", 3, T0 + HOUR), batch("during", 5, T0 + 3 * HOUR)))  # told later
    ended = RULE.model_copy(update={"freezes": [FreezeSpan(frozen_at=T0 + 2 * HOUR, resumed_at=T0 + 4 * HOUR)]})
    answer = batches.reconcile(ask(2, batch("after", 2, T0 + 5 * HOUR), rejudge=True, rule=ended))
    assert (answer.released_now, answer.counted_conversions, answer.fee_fen) == (5, 5, 500)
    conserves(ledger, 500)


def test_issue_21_am_17_a_fixed_fee_records_without_moving_money_and_the_give_back_is_once(
        ledger: Ledger, batches: ContentBatches) -> None:
    batches.reconcile(ask(0, batch("e1", 3, T0 + HOUR), batch("e2", 4, T0 + 2 * HOUR)))
    given = batches.give_back(GiveBack(task_id="t1", content_id="c1"))
    assert (given.released_fen, given.batches) == (700, 2)
    assert batches.give_back(GiveBack(task_id="t1", content_id="c1")).released_fen == 0
    fixed = batches.reconcile(ask(2, batch("e3", 6, T0 + 3 * HOUR, late=True), fee_fixed=True))
    assert (fixed.received, fixed.counted_now, fixed.late) == (1, 0, 1)
    conserves(ledger, 0)
