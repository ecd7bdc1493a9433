"""Three money edges through the workflows (SPEC R-3, R-4, AM-13 and its Reading), on the time-skipping server.

R-3: a used-up budget is paid in full, whatever the arrival order; a void after the end frees budget for later
batches inside their counting intervals. R-4: the platform fee is 10% of the task's total, settled in order or at
once. AM-13: a piece held by a complex appeal or by an open fee dispute does not keep the rest of the task frozen.
Every test checks balances and the task's conservation to the fen. The AM-13 appeal test also records (with
RECORD_MOUNT_HISTORIES=1) the histories of the new path, replayed by tests/test_mount_replay.py.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

import pytest

from starter import client as api
from starter import violations
from tests import replay_helpers as rh
from tests.conftest import Ctx
from tests.helpers import (
    DAY,
    advance,
    assert_conservation,
    business_now,
    content_when,
    convert,
    creator,
    finish,
    mount,
    published_task,
    task_seen,
    task_when,
)
from tests.violation_helpers import fixed_calendar, start_case
from workflows.contract import mount_task as mt
from workflows.contract import mounted_content as mc
from workflows.contract import violation_case as vc
from workflows.contract.names import mount_task_id, mounted_content_id
from workflows.mount_task import MountTaskWorkflow
from workflows.mounted_content import MountedContentWorkflow

SECOND, HOUR = timedelta(seconds=1), timedelta(hours=1)
THIRTY_DAYS = fixed_calendar(30 * DAY)
REPLAYER = rh.replayer(MountTaskWorkflow, MountedContentWorkflow)


async def two_pieces(ctx: Ctx, task: str, budget_fen: int, price_fen: int, days: int = 30) -> datetime:
    """A task with pieces a (creator cr-a) and b (cr-b) mounted at t0; returns t0."""
    await published_task(ctx, task, budget_fen=budget_fen, price_fen=price_fen, days=days)
    for piece in ("a", "b"):
        creator(ctx.a, f"cr-{piece}")
        await api.join(ctx.client, task, f"cr-{piece}")
    t0 = await business_now(ctx)
    for piece in ("a", "b"):
        await mount(ctx, task, piece, f"cr-{piece}", t0)
    return t0


def batch_arrived(event_id: str) -> Callable[[mc.MountedContentState], bool]:
    return lambda s: event_id in s.recent_batches


async def settle_all(ctx: Ctx, task: str, pieces: tuple[str, ...]) -> tuple[dict[str, mc.ContentResult],
                                                                              mt.TaskResult]:
    results = {p: await finish(ctx, mounted_content_id(task, p), mc.ContentResult) for p in pieces}
    return results, await finish(ctx, mount_task_id(task), mt.TaskResult)


class TestR3UsedUpBudgetPaidInFull:
    """The issue's example: budget 3,000 fen, price 200; 8 conversions at 15:00 (piece a), 9 at 14:00 (piece b)."""

    @pytest.mark.parametrize("later_first", [True, False], ids=["15h-first", "14h-first"])
    async def test_r_3_the_example_pays_3000_and_refunds_nothing_in_both_orders(self, ctx: Ctx,
                                                                              later_first: bool) -> None:
        task = f"t-r3-{ctx.uid}"
        t0 = await two_pieces(ctx, task, budget_fen=3_000, price_fen=200)
        await advance(ctx, 3 * 3600)
        at_15, at_14 = t0 + 2 * HOUR, t0 + HOUR
        arrivals = [("a", "e15", 8, at_15), ("b", "e14", 9, at_14)]
        for piece, event, count, at in arrivals if later_first else reversed(arrivals):
            await convert(ctx, task, piece, event, count, at)
            await content_when(ctx, task, piece, batch_arrived(event))
        ended = await task_when(ctx, task, lambda s: s.stage is not mt.TaskStage.PUBLISHED)
        assert (ended.end_reason, ended.ended_at) == (mt.EndReason.BUDGET_USED_UP, at_15)  # the latest granted
        results, result = await settle_all(ctx, task, ("a", "b"))
        counted = {p: (r.counted_conversions, r.fee_fen, r.platform_fee_fen) for p, r in results.items()}
        # Old reading, 15:00 first: the period ended at 14:00, a's 1,600 was released, 1,760 refunded.
        assert counted == ({"a": (8, 1_600, 160), "b": (7, 1_400, 140)} if later_first
                           else {"a": (6, 1_200, 120), "b": (9, 1_800, 180)})
        assert (result.paid_to_creators_fen, result.platform_fees_fen, result.refunded_fen) == (3_000, 300, 0)
        assert ctx.a.ledger.balance("creator:cr-a:payable").balance_fen == counted["a"][1]
        assert ctx.a.ledger.balance("creator:cr-b:payable").balance_fen == counted["b"][1]
        money = assert_conservation(ctx.a, task)
        assert (money["frozen_fen"], money["escrow_balance_fen"], money["refunded_fen"]) == (3_300, 0, 0)

    async def test_r_3_a_void_after_the_end_frees_budget_for_a_later_batch_inside_its_interval(
            self, ctx: Ctx) -> None:
        task = f"t-r3v-{ctx.uid}"
        t0 = await two_pieces(ctx, task, budget_fen=3_000, price_fen=200)
        await advance(ctx, 3 * 3600)
        await convert(ctx, task, "a", "e15", 8, t0 + 2 * HOUR)
        await content_when(ctx, task, "a", lambda s: s.counted_conversions == 8)
        await convert(ctx, task, "b", "e14", 9, t0 + HOUR)
        await task_when(ctx, task, lambda s: s.stage is not mt.TaskStage.PUBLISHED)
        await api.content_signal(ctx.client, task, "a", "void_conversions", mc.VoidConversions(
            event_id="e15", reason="fake installs found after the end"))
        await content_when(ctx, task, "a", lambda s: s.fee_fen == 0 and s.recent_batches["e15"].voided)
        assert ctx.a.ledger.task_money(task)["remaining_fen"] == 1_600
        await convert(ctx, task, "b", "e-after-end", 5, t0 + 2 * HOUR + 30 * 60 * SECOND)  # past the end
        await convert(ctx, task, "b", "e13", 10, t0 + 30 * 60 * SECOND)  # inside: 1,600 fen pays 8
        state = await content_when(ctx, task, "b", lambda s: {"e13", "e-after-end"} <= set(s.recent_batches))
        assert (state.recent_batches["e13"].counted, state.recent_batches["e-after-end"].counted) == (8, 0)
        results, result = await settle_all(ctx, task, ("a", "b"))
        assert (results["a"].fee_fen, results["b"].fee_fen, results["b"].counted_conversions) == (0, 3_000, 15)
        assert result.ended_at == t0 + 2 * HOUR  # the end stays where the budget was used up
        assert (result.paid_to_creators_fen, result.platform_fees_fen, result.refunded_fen) == (3_000, 300, 0)
        assert ctx.a.ledger.balance("creator:cr-b:payable").balance_fen == 3_000
        assert ctx.a.ledger.balance("creator:cr-a:payable").balance_fen == 0
        assert assert_conservation(ctx.a, task)["escrow_balance_fen"] == 0


class TestR4PlatformFeeOfTheTotal:
    """Seven pieces of 25 fen: 10% of 175 is 17.5, so 18 fen in all (per piece, half-up, it was 7 x 3 = 21)."""

    async def _seven_pieces(self, ctx: Ctx, task: str, apart: timedelta) -> tuple[list[int], mt.TaskResult]:
        await published_task(ctx, task, budget_fen=1_000, price_fen=25, days=30)
        creator(ctx.a, "cr-1")
        await api.join(ctx.client, task, "cr-1")
        for i in range(7):
            mounted_at = await business_now(ctx)
            await mount(ctx, task, f"p{i}", "cr-1", mounted_at)
            await convert(ctx, task, f"p{i}", f"e{i}", 1, mounted_at + SECOND)
            await content_when(ctx, task, f"p{i}", lambda s: s.fee_fen == 25)
            if apart:
                await advance(ctx, apart.total_seconds())
        results, result = await settle_all(ctx, task, tuple(f"p{i}" for i in range(7)))
        assert all(r.fee_fen == 25 for r in results.values())
        assert (result.paid_to_creators_fen, result.platform_fees_fen, result.refunded_fen) == (175, 18, 1_100 - 193)
        assert ctx.a.ledger.balance("creator:cr-1:payable").balance_fen == 175
        money = assert_conservation(ctx.a, task)
        assert (money["platform_fees_fen"], money["refunded_fen"], money["escrow_balance_fen"]) == (18, 907, 0)
        return [r.platform_fee_fen for r in results.values()], result

    async def test_r_4_seven_pieces_settling_one_after_another_charge_18_fen(self, ctx: Ctx) -> None:
        fees, _ = await self._seven_pieces(ctx, f"t-r4s-{ctx.uid}", apart=HOUR)
        assert fees == [3, 2, 3, 2, 3, 2, 3]  # p0 settles first, p6 last: each its part of the running 10%

    async def test_r_4_seven_pieces_settling_at_once_charge_18_fen(self, ctx: Ctx) -> None:
        fees, _ = await self._seven_pieces(ctx, f"t-r4c-{ctx.uid}", apart=timedelta(0))
        assert sorted(fees) == [2, 2, 2, 3, 3, 3, 3] and sum(fees) == 18


class TestAM13RefundInParts:
    @pytest.mark.replace_activities.with_args(THIRTY_DAYS)
    async def test_am_13_a_piece_held_by_a_complex_appeal_refunds_the_rest_at_once(self, ctx: Ctx) -> None:
        task, case = f"t-am13-{ctx.uid}", f"v-am13-{ctx.uid}"
        t0 = await two_pieces(ctx, task, budget_fen=10_000, price_fen=100, days=2)  # 11,000 frozen
        await convert(ctx, task, "a", "a1", 6, t0 + SECOND)
        await convert(ctx, task, "a", "a2", 4, t0 + 2 * SECOND)
        await convert(ctx, task, "b", "b1", 20, t0 + SECOND)
        await content_when(ctx, task, "a", lambda s: s.fee_fen == 1_000)
        await content_when(ctx, task, "b", lambda s: s.fee_fen == 2_000)
        await start_case(ctx.client, ctx.task_queue, case, "cr-a", t0, vc.Penalty(kind=vc.PenaltyKind.DEDUCT_FEES))
        await violations.appeal(ctx.client, case, vc.AppealRequest(party_id="cr-a", reason="real users"))
        await violations.mark_complex(ctx.client, case, vc.MarkComplexRequest(operator_id="op-2",
                                                                              note="needs raw logs"))
        # The period ends on day 2; both windows close on day 5: b settles, a is held by the case.
        await advance(ctx, 5 * 86400 + 2 * 3600)
        held = await content_when(ctx, task, "a", lambda s: s.stage is mc.ContentStage.HELD)
        with ctx.a.ledger.db.transaction() as tx:  # the task keeps a reserve for it (AM-13)
            assert ctx.a.ledger.open_holds(tx, task) == ["a"]
        assert held.money.held_fen == 1_000
        state = await task_when(ctx, task, lambda s: len(s.refund_parts) == 1)
        part = state.refund_parts[0]
        # Kept: a's 1,000 fen and the platform fee on it under R-4 (half_up(10% x 3,000) - 200 = 100); the budget
        # still free (7,000 fen) goes back with its platform fee: 11,000 - 2,200 (b) - 1,100 = 7,700.
        assert (part.part, part.key, part.held_content_ids) == (1, f"refund:{task}:part:1", ["a"])
        assert (part.refunded_fen, part.reserve_fen, state.money.refunded_fen) == (7_700, 1_100, 7_700)
        assert ctx.a.ledger.balance("client:client-1:available").balance_fen == 1_000_000 - 11_000 + 7_700
        assert assert_conservation(ctx.a, task)["escrow_balance_fen"] == 1_100
        await advance(ctx, 2 * 86400)  # the complex case has no deadline: the task waits, nothing more moves
        assert len((await task_seen(ctx, task)).refund_parts) == 1
        await api.content_signal(ctx.client, task, "a", "void_conversions", mc.VoidConversions(
            event_id="a2", reason="bots found while held"))  # a held fee still follows voids
        await content_when(ctx, task, "a", lambda s: s.fee_fen == 600)
        await violations.decide_appeal(ctx.client, case, vc.DecideAppealRequest(
            decision="upheld", operator_id="op-2", note="the rest verified"))
        results, result = await settle_all(ctx, task, ("a", "b"))
        assert (results["a"].fee_fen, results["a"].platform_fee_fen) == (600, 60)  # half_up(10% x 2,600) - 200
        # The remainder follows when the case ends: 1,100 kept - 660 paid = 440.
        assert (result.paid_to_creators_fen, result.platform_fees_fen, result.refunded_fen) == (2_600, 260, 8_140)
        final = (await task_seen(ctx, task)).refund_parts
        assert [(p.part, p.refunded_fen, p.final) for p in final] == [(1, 7_700, False), (2, 440, True)]
        assert ctx.a.ledger.balance("creator:cr-a:payable").balance_fen == 600
        assert ctx.a.ledger.balance("creator:cr-b:payable").balance_fen == 2_000
        assert ctx.a.ledger.balance("client:client-1:available").balance_fen == 1_000_000 - 11_000 + 8_140
        money = assert_conservation(ctx.a, task)
        assert (money["refunded_fen"], money["escrow_balance_fen"]) == (8_140, 0)
        assert sorted(t.business_key for t in ctx.a.ledger.transfers(business_key_prefix=f"refund:{task}")) == [
            f"refund:{task}", f"refund:{task}:part:1"]
        await rh.replay_and_maybe_record(REPLAYER, {
            "mount-task-refund-in-parts-held-by-appeal": await rh.history_json(ctx.client, mount_task_id(task)),
            "mount-content-held-hold-in-ledger": await rh.history_json(ctx.client, mounted_content_id(task, "a")),
        }, "RECORD_MOUNT_HISTORIES")

    @pytest.mark.replace_activities.with_args(THIRTY_DAYS)
    async def test_am_13_a_piece_held_by_an_open_fee_dispute_keeps_what_the_operator_may_still_pay(
            self, ctx: Ctx) -> None:
        task = f"t-am13d-{ctx.uid}"
        t0 = await two_pieces(ctx, task, budget_fen=10_000, price_fen=100, days=2)
        await convert(ctx, task, "a", "a1", 10, t0 + SECOND)
        await convert(ctx, task, "b", "b1", 20, t0 + SECOND)
        await content_when(ctx, task, "b", lambda s: s.fee_fen == 2_000)
        await advance(ctx, 3 * 86400)  # publicity windows open
        await violations.raise_dispute(ctx.client, task, "a", mc.RaiseDisputeRequest(
            raised_by="creator", party_id="cr-a", reason="the app's own count is higher"))
        await advance(ctx, 2 * 86400 + 2 * 3600)
        state = await task_when(ctx, task, lambda s: len(s.refund_parts) == 1)
        part = state.refund_parts[0]
        # The operator may resolve a's fee up to what the budget allows (AM-17): 1,000 + 7,000 free, and the
        # platform fee on that: the whole escrow (11,000 - 2,200) stays until the dispute is resolved.
        assert (part.held_content_ids, part.refunded_fen, part.reserve_fen) == (["a"], 0, 8_800)
        assert assert_conservation(ctx.a, task)["escrow_balance_fen"] == 8_800
        dispute = (await api.content_state(ctx.client, task, "a")).disputes[0]
        await violations.resolve_dispute(ctx.client, task, "a", mc.ResolveDisputeRequest(
            dispute_id=dispute.dispute_id, operator_id="op-1", amount_fen=1_500, note="main-site logs agree"))
        results, result = await settle_all(ctx, task, ("a", "b"))
        assert (results["a"].fee_fen, results["a"].platform_fee_fen) == (1_500, 150)
        assert (result.paid_to_creators_fen, result.platform_fees_fen, result.refunded_fen) == (3_500, 350, 7_150)
        assert ctx.a.ledger.balance("creator:cr-a:payable").balance_fen == 1_500
        money = assert_conservation(ctx.a, task)
        assert (money["refunded_fen"], money["escrow_balance_fen"]) == (7_150, 0)
