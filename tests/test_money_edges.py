"""Three money edges in the ledger and its rules (SPEC R-3, R-4, AM-13 and its Reading), on SQLite and PostgreSQL.

Every scenario checks the balances it moved and conservation to the fen (the `ledger` fixture checks the whole
book after each test; `task_conserves` checks the task: frozen = paid + platform fees + refunded + escrow).
"""

from __future__ import annotations

import itertools
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone

import pytest
from temporalio.testing import ActivityEnvironment

from activities.ledger import Ledger, LedgerActivities, TaskClosuresRequest
from ports.ledger import HoldContentRequest, RefundPartRequest
from tests.ledger_fixtures import (  # noqa: F401  (fixtures)
    ledger_db_fixture,
    ledger_dsn_fixture,
    ledger_fixture,
    postgresql_schema_dsn_fixture,
)
from workflows.rules.fees import platform_fee, platform_fee_of_piece, refund_reserve

CST = timezone(timedelta(hours=8))
AT_14 = datetime(2026, 12, 1, 14, 0, tzinfo=CST)
AT_15 = datetime(2026, 12, 1, 15, 0, tzinfo=CST)
CREATOR = "creator:u1:payable"


def frozen_task(book: Ledger, task: str = "t1", budget: int = 3_000) -> int:
    frozen = budget + platform_fee(budget)
    book.deposit(f"dep-{task}", "c1", frozen)
    book.freeze(task, "c1", budget, platform_fee(budget))
    return frozen


def task_conserves(book: Ledger, task: str = "t1") -> dict[str, int]:
    money = book.task_money(task)
    assert money["frozen_fen"] == (money["paid_fen"] + money["platform_fees_fen"]
                                   + money["refunded_fen"] + money["escrow_balance_fen"])
    assert book.conservation_total() == 0
    return money


# ---- a used-up budget is paid in full -----------------------------------------------------------------------

@pytest.mark.parametrize("order", ["later_batch_first", "earlier_batch_first"])
def test_r3_the_issue_example_pays_the_whole_budget_in_both_arrival_orders(ledger: Ledger, order: str) -> None:
    """Budget 3,000, price 200: 8 conversions at 15:00 and 9 at 14:00. Whatever arrives first, the budget pays
    15 conversions, the period ends at 15:00 (the latest instant granted), nothing is released, 0 refunded."""
    frozen = frozen_task(ledger)
    batches = [("k15", "e15", 8, AT_15), ("k14", "e14", 9, AT_14)]
    if order == "earlier_batch_first":
        batches.reverse()
    grants = {event: ledger.accrue("t1", content, event, count, 200, at) for content, event, count, at in batches}
    if order == "later_batch_first":
        assert (grants["e15"].granted_count, grants["e14"].granted_count) == (8, 7)
    else:
        assert (grants["e14"].granted_count, grants["e15"].granted_count) == (9, 6)
    last = grants[batches[-1][1]]
    assert last.exhausted_at is not None and datetime.fromisoformat(last.exhausted_at) == AT_15
    assert last.remaining_fen == 0
    paid = {content: grants[event].granted_fen for content, event, _, _ in batches}
    for content, fee in paid.items():
        ledger.settle("t1", content, CREATOR, fee, platform_fee(fee))
    refund = ledger.refund("t1", "c1")
    assert refund["refunded_fen"] == 0
    assert ledger.balance(CREATOR).balance_fen == 3_000
    assert ledger.balance("platform:revenue").balance_fen == 300
    assert ledger.balance("client:c1:available").balance_fen == 0
    money = task_conserves(ledger)
    assert (money["frozen_fen"], money["paid_fen"], money["platform_fees_fen"]) == (frozen, 3_000, 300)
    assert datetime.fromisoformat(str(money["exhausted_at"])) == AT_15


def test_r3_a_released_grant_does_not_set_the_end(ledger: Ledger) -> None:
    frozen_task(ledger, budget=1_000)
    ledger.accrue("t1", "k1", "late", 2, 100, AT_15)
    ledger.release("t1", "late")  # voided: its 15:00 no longer lies in the granted batches
    used_up = ledger.accrue("t1", "k2", "e1", 11, 100, AT_14)
    assert (used_up.granted_count, used_up.remaining_fen) == (10, 0)
    assert used_up.exhausted_at is not None and datetime.fromisoformat(used_up.exhausted_at) == AT_14
    money = task_conserves(ledger)
    assert (money["spent_fen"], money["remaining_fen"], money["escrow_balance_fen"]) == (1_000, 0, 1_100)
    assert ledger.balance("client:c1:available").balance_fen == 0


def test_r3_a_void_after_the_end_frees_budget_for_a_later_batch_and_the_end_stays(ledger: Ledger) -> None:
    frozen_task(ledger, budget=3_000)
    ledger.accrue("t1", "k15", "e15", 8, 200, AT_15)
    ledger.accrue("t1", "k14", "e14", 9, 200, AT_14)  # used up; the period ends at 15:00
    assert ledger.release("t1", "e15") == 1_600  # cheating found later
    later = ledger.accrue("t1", "k13", "e13", 10, 200, AT_14 - timedelta(hours=1))
    assert (later.granted_count, later.granted_fen, later.remaining_fen) == (8, 1_600, 0)
    assert later.exhausted_at is not None and datetime.fromisoformat(later.exhausted_at) == AT_15
    ledger.settle("t1", "k15", CREATOR, 0, 0)
    ledger.settle("t1", "k14", CREATOR, 1_400, platform_fee(1_400))
    ledger.settle("t1", "k13", "creator:u2:payable", 1_600, platform_fee(1_600))
    assert ledger.refund("t1", "c1")["refunded_fen"] == 0
    assert ledger.balance(CREATOR).balance_fen + ledger.balance("creator:u2:payable").balance_fen == 3_000
    assert task_conserves(ledger)["platform_fees_fen"] == 300


# ---- the platform fee is 10% of the task's total ----------------------------------------------------------

def test_r4_cumulative_rule_in_pieces() -> None:
    assert [platform_fee_of_piece(25 * i, 25, platform_fee(25 * i)) for i in range(7)] == [3, 2, 3, 2, 3, 2, 3]
    assert platform_fee_of_piece(0, 0, 0) == 0
    assert platform_fee_of_piece(100, 25, 13) == 0  # charged more before (per-piece rounding): never negative
    with pytest.raises(ValueError):
        platform_fee_of_piece(-1, 25, 0)


def test_r4_any_order_of_distinct_fees_sums_to_ten_percent_of_the_total() -> None:
    fees = [25, 35, 15, 5, 45, 1]
    for order in itertools.permutations(fees):
        settled = charged = 0
        for fee in order:
            charged += platform_fee_of_piece(settled, fee, charged)
            settled += fee
        assert charged == platform_fee(sum(fees)) == 13


def test_r4_seven_pieces_of_25_fen_settled_in_every_order_charge_18_not_21(ledger: Ledger) -> None:
    for n, order in enumerate(itertools.islice(itertools.permutations(range(7)), 0, 5040, 719)):
        task = f"t{n}"
        frozen = frozen_task(ledger, task, budget=1_000)
        charged = [ledger.settle(task, f"k{i}", CREATOR, 25, platform_fee(25))["platform_fee_fen"] for i in order]
        assert sum(charged) == 18 and charged.count(3) == 4
        refund = ledger.refund(task, "c1")
        assert refund["refunded_fen"] == frozen - 175 - 18
        assert task_conserves(ledger, task)["platform_fees_fen"] == 18
    assert ledger.balance("platform:revenue").balance_fen == 18 * (n + 1)
    assert ledger.balance(CREATOR).balance_fen == 175 * (n + 1)


def test_r4_concurrent_settlements_of_one_task_charge_ten_percent_of_the_total(ledger: Ledger) -> None:
    frozen = frozen_task(ledger, budget=1_000)
    start = threading.Barrier(7)

    def settle(i: int) -> int:
        start.wait()
        return int(ledger.settle("t1", f"k{i}", CREATOR, 25, platform_fee(25))["platform_fee_fen"])

    with ThreadPoolExecutor(7) as pool:
        charged = list(pool.map(settle, range(7)))
    assert sum(charged) == 18
    closures = ledger.task_closures("t1")
    assert [c.platform_fee_fen for c in closures] == [3, 2, 3, 2, 3, 2, 3]  # in commit order
    assert ledger.refund("t1", "c1")["refunded_fen"] == frozen - 193
    assert ledger.balance("platform:revenue").balance_fen == 18
    task_conserves(ledger)


# ---- AM-13: partial refunds -----------------------------------------------------------------------------------

def test_am_13_reserve_rule() -> None:
    # held pieces accrued 500, 300 of the budget free, 1,000 settled (platform 100 charged): at most 800 more in
    # fees and half_up(10% x 1,800) - 100 = 80 in platform fee.
    assert refund_reserve(500, 300, 1_000, 100) == 880
    assert refund_reserve(0, 0, 1_000, 100) == 0
    assert refund_reserve(25, 0, 25, 3) == 25 + 2  # the cumulative rule: 10% of 50 is 5, 3 already charged
    with pytest.raises(ValueError):
        refund_reserve(-1, 0, 0, 0)


def test_am_13_a_held_piece_keeps_its_reserve_and_the_rest_is_refunded_in_parts_once_each(ledger: Ledger) -> None:
    frozen = frozen_task(ledger, budget=10_000)  # 11,000 frozen
    ledger.accrue("t1", "k1", "e1", 30, 100, AT_14)
    ledger.accrue("t1", "k2", "e2", 20, 100, AT_14)
    ledger.accrue("t1", "k3", "e3", 10, 100, AT_14)
    ledger.settle("t1", "k1", CREATOR, 3_000, 300)
    assert ledger.hold_content("t1", "k2", "dispute", AT_15) is True
    assert ledger.hold_content("t1", "k2", "dispute", AT_15) is False
    assert ledger.hold_content("t1", "k3", "penalty", AT_15) is True
    part1 = ledger.refund_part("t1", "c1", 1)
    # An open dispute may be resolved up to the budget: held 3,000 + free 4,000 in fees, and the platform fee
    # half_up(10% x 10,000) - 300 = 700 on them: the whole escrow stays.
    assert (part1["reserve_fen"], part1["refunded_fen"], part1["held_content_ids"]) == (7_700, 0, ["k2", "k3"])
    assert ledger.refund_part("t1", "c1", 1) == {**part1, "duplicate": True}
    ledger.release("t1", "e2")  # the operator lowered k2's fee to 1,500 (content_disputes moves the counter)
    ledger.accrue("t1", "k2", "dispute:k2:d1", 1_500, 1, AT_15)
    assert ledger.settle("t1", "k2", CREATOR, 1_500, 150)["platform_fee_fen"] == 150
    part2 = ledger.refund_part("t1", "c1", 2)
    # Only k3 (a penalty) is held: its 1,000 and half_up(10% x 5,500) - 450 = 100 stay; the free 4,500 and its
    # platform fee go back, and the free budget is closed to new grants.
    assert (part2["held_content_ids"], part2["reserve_fen"], part2["budget_closed_fen"]) == (["k3"], 1_100, 4_500)
    assert part2["refunded_fen"] == 11_000 - 3_300 - 1_650 - 1_100 == 4_950
    assert ledger.accrue("t1", "k3", "late", 5, 100, AT_14).granted_count == 0
    assert ledger.transfers(business_key_prefix="refund:t1:part:")[0].memo.startswith("part 2:")
    assert ledger.refund_part("t1", "c1", 2)["refunded_fen"] == 4_950
    assert ledger.balance("client:c1:available").balance_fen == 4_950
    assert ledger.settle("t1", "k3", CREATOR, 1_000, 100)["platform_fee_fen"] == 100
    final = ledger.refund("t1", "c1")
    money = task_conserves(ledger)
    assert final["refunded_fen"] == 0
    assert money["refunded_fen"] == part1["refunded_fen"] + part2["refunded_fen"] == frozen - 5_500 - 550
    assert money["escrow_balance_fen"] == 0 and money["platform_fees_fen"] == 550
    assert ledger.balance(CREATOR).balance_fen == 5_500
    assert ledger.balance("client:c1:available").balance_fen == money["refunded_fen"]


def test_am_13_the_reserve_covers_the_most_a_dispute_may_still_pay(ledger: Ledger) -> None:
    frozen = frozen_task(ledger, budget=1_000)
    ledger.accrue("t1", "k1", "e1", 5, 25, AT_14)
    ledger.accrue("t1", "k2", "e2", 1, 25, AT_14)
    ledger.settle("t1", "k1", CREATOR, 125, platform_fee(125))  # 13 charged
    ledger.hold_content("t1", "k2", "dispute", AT_15)
    part = ledger.refund_part("t1", "c1", 1)
    assert (part["reserve_fen"], part["refunded_fen"]) == (875 + platform_fee(1_000) - 13, 0)
    assert ledger.accrue("t1", "k2", "raise", 850, 1, AT_15).granted_fen == 850  # resolved up to the budget
    settled = ledger.settle("t1", "k2", CREATOR, 875, platform_fee(875))
    assert settled["platform_fee_fen"] == 100 - 13
    assert ledger.refund("t1", "c1")["refunded_fen"] == 0
    money = task_conserves(ledger)
    assert (money["refunded_fen"], money["paid_fen"], money["platform_fees_fen"]) == (0, 1_000, 100)
    assert money["frozen_fen"] == frozen and ledger.balance(CREATOR).balance_fen == 1_000


def test_am_13_the_activities_list_held_pieces_and_refund_parts(ledger: Ledger) -> None:
    activities, env = LedgerActivities(ledger), ActivityEnvironment()
    frozen_task(ledger, budget=1_000)
    ledger.accrue("t1", "k1", "e1", 2, 100, AT_14)
    env.run(activities.hold_content, HoldContentRequest(task_id="t1", content_id="k1", reason="penalty",
                                                        held_at=AT_15))
    looked = env.run(activities.task_closures, TaskClosuresRequest(task_id="t1"))
    assert (looked.closures, looked.held_content_ids) == ([], ["k1"])
    part = env.run(activities.refund_part, RefundPartRequest(task_id="t1", client_id="c1", part=1))
    assert (part.refunded_fen, part.reserve_fen, part.budget_closed_fen, part.duplicate) == (880, 220, 800, False)
    ledger.settle("t1", "k1", CREATOR, 200, 20)
    assert env.run(activities.task_closures, TaskClosuresRequest(task_id="t1")).held_content_ids == []
    assert ledger.refund("t1", "c1")["refunded_fen"] == 0
    assert ledger.balance("client:c1:available").balance_fen == 880
    task_conserves(ledger)
