"""AM-11 reading (2026-12): the client and the creator each have their own right to dispute a piece's fee: one
party's open dispute never refuses the other's, both go to the operator, and settlement waits for every
resolution (AM-17); a dispute may be raised from the mount on, and then holds settlement too, escalating 7 working
days after it was raised. Money checked to the fen, with conservation (R-4)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest

from starter import client as api
from starter import violations
from starter.client import Refused
from tests.conftest import Ctx
from tests.helpers import (
    DAY,
    assert_conservation,
    business_now,
    content_when,
    convert,
    creator,
    finish,
    mount,
    published_task,
)
from tests.violation_helpers import fixed_calendar
from workflows.contract import mount_task as mt
from workflows.contract import mounted_content as mc
from workflows.contract.names import mount_task_id, mounted_content_id

SECOND = timedelta(seconds=1)
NINE_DAYS = fixed_calendar(9 * DAY)  # "7 working days" = 9 calendar days, whatever the test server's date


async def converted_piece(ctx: Ctx) -> tuple[str, datetime]:
    """Budget 100,000 fen at 100 fen a conversion; cr-1's content c1 mounted now with 10 conversions (1,000 fen)."""
    task = f"t-{ctx.uid}"
    await published_task(ctx, task, budget_fen=100_000, price_fen=100, days=30)
    creator(ctx.a, "cr-1")
    await api.join(ctx.client, task, "cr-1")
    mounted_at = await business_now(ctx)
    await mount(ctx, task, "c1", "cr-1", mounted_at)
    await convert(ctx, task, "c1", "e1", 10, mounted_at + SECOND)
    await content_when(ctx, task, "c1", lambda s: s.fee_fen == 1_000)
    return task, mounted_at


def dispute(raised_by: str, party_id: str, reason: str = "the activations look inflated") -> mc.RaiseDisputeRequest:
    return mc.RaiseDisputeRequest(raised_by=raised_by, party_id=party_id, reason=reason)  # type: ignore[arg-type]


async def resolve(ctx: Ctx, task: str, dispute_id: str, amount_fen: int, operator: str = "op-1") -> Any:
    return await violations.resolve_dispute(ctx.client, task, "c1", mc.ResolveDisputeRequest(
        dispute_id=dispute_id, operator_id=operator, amount_fen=amount_fen, note=f"checked by {operator}"))


class TestAM11TwoSidedDisputes:
    @pytest.mark.replace_activities.with_args(NINE_DAYS)
    async def test_am_11_both_parties_dispute_the_same_piece_and_settlement_waits_for_both(self, ctx: Ctx) -> None:
        task, mounted_at = await converted_piece(ctx)
        await ctx.env.sleep(14 * DAY + SECOND)
        by_client = await violations.raise_dispute(ctx.client, task, "c1", dispute("client", "client-1"))
        by_creator = await violations.raise_dispute(ctx.client, task, "c1", dispute(
            "creator", "cr-1", "genuine activations were left out"))
        assert (by_client.dispute_id, by_creator.dispute_id) == ("d1", "d2")
        assert by_client.fee_fen == by_creator.fee_fen == 1_000
        with pytest.raises(Refused) as again:  # each party: one open dispute at a time
            await violations.raise_dispute(ctx.client, task, "c1", dispute("creator", "cr-1"))
        assert again.value.kind == "DisputeRefused" and "dispute d2 raised by the creator" in again.value.reasons[0]
        await ctx.env.sleep(3 * DAY)
        state = await content_when(ctx, task, "c1", lambda s: s.stage is mc.ContentStage.DISPUTED)
        assert [(d.dispute_id, d.raised_by, d.resolved_at) for d in state.disputes] == [
            ("d1", "client", None), ("d2", "creator", None)]
        first = await resolve(ctx, task, "d1", 600)
        assert (first.fee_before_fen, first.amount_fen, first.budget_adjustment_fen) == (1_000, 600, -400)
        await ctx.env.sleep(DAY)  # the creator's dispute is still open: nothing is paid
        state = await content_when(ctx, task, "c1", lambda s: s.agreed_fee_fen == 600)
        assert state.stage is mc.ContentStage.DISPUTED and state.settlement is None
        assert ctx.a.ledger.balance("creator:cr-1:payable").balance_fen == 0
        assert ctx.a.ledger.task_money(task)["spent_fen"] == 600
        # The later resolution starts from the fee the first agreed, and sets the amount paid.
        second = await resolve(ctx, task, "d2", 800, operator="op-2")
        assert (second.fee_before_fen, second.amount_fen, second.budget_adjustment_fen) == (600, 800, 200)
        result = await finish(ctx, mounted_content_id(task, "c1"), mc.ContentResult)
        assert (result.stage, result.fee_fen, result.platform_fee_fen) == (mc.ContentStage.SETTLED, 800, 80)
        assert result.settled_at >= mounted_at + 18 * DAY
        assert ctx.a.ledger.balance("creator:cr-1:payable").balance_fen == 800
        assert ctx.a.ledger.task_money(task)["spent_fen"] == 800
        task_result = await finish(ctx, mount_task_id(task), mt.TaskResult)
        assert (task_result.paid_to_creators_fen, task_result.platform_fees_fen, task_result.refunded_fen) == (
            800, 80, 110_000 - 880)
        assert_conservation(ctx.a, task)

    @pytest.mark.replace_activities.with_args(NINE_DAYS)
    async def test_am_11_a_dispute_raised_during_the_billing_period_holds_settlement(self, ctx: Ctx) -> None:
        task, mounted_at = await converted_piece(ctx)
        await ctx.env.sleep(DAY)
        receipt = await violations.raise_dispute(ctx.client, task, "c1", dispute("client", "client-1"))
        assert receipt.dispute_id == "d1" and receipt.fee_fen == 1_000
        assert receipt.publicity_window_closes_at == mounted_at + 17 * DAY
        assert receipt.resolution_due_at == receipt.raised_at + 9 * DAY
        # The fee still accrues while the dispute is open: a batch of day 2 counts.
        await convert(ctx, task, "c1", "e2", 5, mounted_at + 2 * DAY)
        state = await content_when(ctx, task, "c1", lambda s: s.fee_fen == 1_500)
        assert state.stage is mc.ContentStage.MOUNTED
        # Unresolved 7 working days after it was raised, it escalates while the piece is still mounted (AM-17).
        await ctx.env.sleep(9 * DAY + SECOND)
        state = await content_when(ctx, task, "c1", lambda s: s.escalated)
        assert state.stage is mc.ContentStage.MOUNTED and state.disputes[0].escalated_at is not None
        assert state.escalation_reason is not None and "fee dispute d1" in state.escalation_reason
        # The window closes with the dispute open: nothing is paid.
        await ctx.env.sleep(7 * DAY)
        state = await content_when(ctx, task, "c1", lambda s: s.stage is mc.ContentStage.DISPUTED)
        assert state.settlement is None and state.unmounted_at is not None
        assert ctx.a.ledger.balance("creator:cr-1:payable").balance_fen == 0
        resolution = await resolve(ctx, task, "d1", 1_200)
        assert (resolution.fee_before_fen, resolution.amount_fen, resolution.budget_adjustment_fen) == (
            1_500, 1_200, -300)
        result = await finish(ctx, mounted_content_id(task, "c1"), mc.ContentResult)
        assert (result.fee_fen, result.platform_fee_fen) == (1_200, 120)
        assert ctx.a.ledger.balance("creator:cr-1:payable").balance_fen == 1_200
        task_result = await finish(ctx, mount_task_id(task), mt.TaskResult)
        assert task_result.refunded_fen == 110_000 - 1_320
        assert_conservation(ctx.a, task)

    @pytest.mark.replace_activities.with_args(NINE_DAYS)
    async def test_am_11_a_resolution_during_the_billing_period_fixes_the_fee_and_the_piece_still_unmounts(
            self, ctx: Ctx) -> None:
        task, mounted_at = await converted_piece(ctx)
        await violations.raise_dispute(ctx.client, task, "c1", dispute("creator", "cr-1"))
        await resolve(ctx, task, "d1", 900)
        await convert(ctx, task, "c1", "e-after", 4, mounted_at + 2 * SECOND)
        state = await content_when(ctx, task, "c1", lambda s: "e-after" in s.recent_batches)
        assert state.recent_batches["e-after"].late and state.agreed_fee_fen == 900
        await api.revoke_content(ctx.client, task, "cr-1", "c1")  # AM-14: taken down at once, fee as agreed
        state = await content_when(ctx, task, "c1", lambda s: s.unmounted_at is not None)
        assert state.stage is mc.ContentStage.MOUNTED and state.revoked_at is not None
        assert ctx.a.ledger.task_money(task)["spent_fen"] == 900
        result = await finish(ctx, mounted_content_id(task, "c1"), mc.ContentResult)
        assert (result.fee_fen, result.platform_fee_fen) == (900, 90)
        assert ctx.a.ledger.balance("creator:cr-1:payable").balance_fen == 900
        task_result = await finish(ctx, mount_task_id(task), mt.TaskResult)
        assert task_result.refunded_fen == 110_000 - 990
        assert ctx.a.ledger.balance("client:client-1:available").balance_fen == 1_000_000 - 990
        assert_conservation(ctx.a, task)
