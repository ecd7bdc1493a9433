"""Fee disputes on MountedContentWorkflow: AM-11 (who, with a reason, until the publicity window closes) and AM-17
(a dispute holds settlement; an operator resolves it with an amount within the budget; settlement pays that amount
once; unresolved after 7 working days it escalates and stays resolvable). Conservation R-4 after each scenario."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest
from temporalio.client import WorkflowUpdateFailedError

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
from tests.violation_helpers import fixed_calendar, missing_calendar
from workflows.contract import mount_task as mt
from workflows.contract import mounted_content as mc
from workflows.contract.names import mount_task_id, mounted_content_id
from workflows.rules.clock import business_time

SECOND = timedelta(seconds=1)

NINE_DAYS = fixed_calendar(9 * DAY)  # "7 working days" = 9 calendar days, whatever the test server's date


async def converted_piece(ctx: Ctx, budget_fen: int = 100_000) -> tuple[str, datetime]:
    """A task (price 100 fen) with creator cr-1's content c1 mounted now and 10 conversions: fee 1,000 fen."""
    task = f"t-{ctx.uid}"
    await published_task(ctx, task, budget_fen=budget_fen, price_fen=100, days=30)
    creator(ctx.a, "cr-1")
    await api.join(ctx.client, task, "cr-1")
    mounted_at = await business_now(ctx)
    await mount(ctx, task, "c1", "cr-1", mounted_at)
    await convert(ctx, task, "c1", "e1", 10, mounted_at + SECOND)
    await content_when(ctx, task, "c1", lambda s: s.fee_fen == 1_000)
    return task, mounted_at


async def update(ctx: Ctx, task: str, name: str, arg: Any, result_type: type) -> Any:
    return await ctx.client.get_workflow_handle(mounted_content_id(task, "c1")).execute_update(
        name, arg, result_type=result_type)


def dispute(raised_by: str, party_id: str) -> mc.RaiseDisputeRequest:
    return mc.RaiseDisputeRequest(raised_by=raised_by, party_id=party_id,  # type: ignore[arg-type]
                                  reason="the activations on day 3 came from our own QA devices")


async def refusal(ctx: Ctx, task: str, name: str, arg: Any) -> str:
    with pytest.raises(WorkflowUpdateFailedError) as refused:
        await update(ctx, task, name, arg, mc.DisputeReceipt)
    return str(refused.value.cause)


class TestAM11Window:
    @pytest.mark.replace_activities.with_args(NINE_DAYS)
    async def test_am_11_client_or_creator_may_dispute_until_the_window_closes(self, ctx: Ctx) -> None:
        task, mounted_at = await converted_piece(ctx)
        billing_end, window_close = mounted_at + 14 * DAY, mounted_at + 17 * DAY
        await ctx.env.sleep(14 * DAY + SECOND)
        assert "party_id: cr-2 is not the creator of content c1" in await refusal(
            ctx, task, "raise_dispute", dispute("creator", "cr-2"))
        receipt = await update(ctx, task, "raise_dispute", dispute("client", "client-1"), mc.DisputeReceipt)
        assert billing_end <= receipt.raised_at < window_close
        assert (receipt.dispute_id, receipt.fee_fen, receipt.publicity_window_closes_at) == ("d1", 1_000, window_close)
        assert receipt.resolution_due_at == receipt.raised_at + 9 * DAY and not receipt.escalated
        with pytest.raises(Refused) as second:  # as a service sees it, through the starter helper
            await violations.raise_dispute(ctx.client, task, "c1", dispute("client", "client-1"))
        assert second.value.kind == "DisputeRefused"
        assert "dispute d1 raised by the client" in second.value.reasons[0] and "is open" in second.value.reasons[0]
        await ctx.env.sleep(3 * DAY)
        await content_when(ctx, task, "c1", lambda s: s.stage is mc.ContentStage.DISPUTED)
        late = await refusal(ctx, task, "raise_dispute", dispute("creator", "cr-1"))
        assert f"closed at {business_time(window_close)}" in late and "deemed accepted" in late

    async def test_am_11_a_dispute_needs_a_reason(self) -> None:
        with pytest.raises(ValueError, match="reason"):
            mc.RaiseDisputeRequest(raised_by="client", party_id="client-1", reason="")


class TestAM17Resolution:
    @pytest.mark.replace_activities.with_args(NINE_DAYS)
    async def test_am_17_dispute_holds_settlement_then_pays_the_resolved_amount_once(self, ctx: Ctx) -> None:
        task, mounted_at = await converted_piece(ctx)
        await ctx.env.sleep(14 * DAY + SECOND)
        await update(ctx, task, "raise_dispute", dispute("client", "client-1"), mc.DisputeReceipt)
        await ctx.env.sleep(3 * DAY)
        state = await content_when(ctx, task, "c1", lambda s: s.stage is mc.ContentStage.DISPUTED)
        assert state.settlement is None and ctx.a.ledger.balance("creator:cr-1:payable").balance_fen == 0
        resolution = await update(ctx, task, "resolve_dispute", mc.ResolveDisputeRequest(
            dispute_id="d1", operator_id="op-1", amount_fen=600, note="4 QA activations removed"),
            mc.DisputeResolution)
        assert (resolution.fee_before_fen, resolution.amount_fen, resolution.budget_adjustment_fen) == (1_000, 600,
                                                                                                         -400)
        result = await finish(ctx, mounted_content_id(task, "c1"), mc.ContentResult)
        assert (result.stage, result.fee_fen, result.platform_fee_fen) == (mc.ContentStage.SETTLED, 600, 60)
        assert result.settled_at >= mounted_at + 17 * DAY
        assert ctx.a.ledger.balance("creator:cr-1:payable").balance_fen == 600
        assert len(ctx.a.ledger.transfers(business_key_prefix=f"settle:{task}:c1")) == 2
        assert ctx.a.ledger.task_money(task)["spent_fen"] == 600  # the counter follows the resolution
        task_result = await finish(ctx, mount_task_id(task), mt.TaskResult)
        assert (task_result.paid_to_creators_fen, task_result.platform_fees_fen, task_result.refunded_fen) == (
            600, 60, 110_000 - 660)
        assert_conservation(ctx.a, task)

    async def test_am_17_resolving_twice_answers_the_first_and_another_amount_names_it(self, ctx: Ctx) -> None:
        task, _ = await converted_piece(ctx)
        await ctx.env.sleep(14 * DAY + SECOND)
        await update(ctx, task, "raise_dispute", dispute("client", "client-1"), mc.DisputeReceipt)
        request = mc.ResolveDisputeRequest(dispute_id="d1", operator_id="op-1", amount_fen=600, note="QA devices")
        first = await update(ctx, task, "resolve_dispute", request, mc.DisputeResolution)
        assert (first.fee_before_fen, first.amount_fen, first.budget_adjustment_fen) == (1_000, 600, -400)
        assert await update(ctx, task, "resolve_dispute", request, mc.DisputeResolution) == first
        other = request.model_copy(update={"operator_id": "op-2", "amount_fen": 900})
        with pytest.raises(WorkflowUpdateFailedError) as refused:
            await update(ctx, task, "resolve_dispute", other, mc.DisputeResolution)
        cause = refused.value.cause
        assert getattr(cause, "type", None) == "ResolutionRefused"
        assert cause.details[0]["reasons"] == [  # type: ignore[union-attr]
            f"dispute_id: d1 of content c1 was resolved at {business_time(first.resolved_at)} by op-1 with 600 fen",
            "operator_id: resolved with 'op-1', this asks 'op-2'", "amount_fen: resolved with 600, this asks 900"]
        assert ctx.a.ledger.task_money(task)["spent_fen"] == 600  # the counter moved once
        result = await finish(ctx, mounted_content_id(task, "c1"), mc.ContentResult)
        assert (result.fee_fen, result.platform_fee_fen) == (600, 60)
        assert ctx.a.ledger.balance("creator:cr-1:payable").balance_fen == 600
        task_result = await finish(ctx, mount_task_id(task), mt.TaskResult)
        assert task_result.refunded_fen == 110_000 - 660
        assert_conservation(ctx.a, task)

    @pytest.mark.replace_activities.with_args(NINE_DAYS)
    async def test_am_17_amount_never_above_what_the_budget_allows(self, ctx: Ctx) -> None:
        task, _ = await converted_piece(ctx, budget_fen=1_500)  # fee 1,000; 500 left in the budget
        await ctx.env.sleep(14 * DAY + SECOND)
        await update(ctx, task, "raise_dispute", dispute("creator", "cr-1"), mc.DisputeReceipt)
        too_much = mc.ResolveDisputeRequest(dispute_id="d1", operator_id="op-1", amount_fen=1_501,
                                            note="more activations found")
        with pytest.raises(WorkflowUpdateFailedError) as refused:
            await update(ctx, task, "resolve_dispute", too_much, mc.DisputeResolution)
        assert "amount_fen: 1501 fen is above what the budget allows: at most 1500 fen" in str(refused.value.cause)
        state = await api.content_state(ctx.client, task, "c1")
        assert state.disputes[0].resolved_at is None and state.agreed_fee_fen is None  # nothing changed
        assert ctx.a.ledger.task_money(task)["spent_fen"] == 1_000
        resolution = await update(ctx, task, "resolve_dispute", mc.ResolveDisputeRequest(
            dispute_id="d1", operator_id="op-1", amount_fen=1_400, note="4 activations reported late"),
            mc.DisputeResolution)
        assert (resolution.amount_fen, resolution.budget_adjustment_fen) == (1_400, 400)
        assert ctx.a.ledger.task_money(task)["spent_fen"] == 1_400
        result = await finish(ctx, mounted_content_id(task, "c1"), mc.ContentResult)
        assert (result.fee_fen, result.platform_fee_fen) == (1_400, 140)
        task_result = await finish(ctx, mount_task_id(task), mt.TaskResult)
        assert task_result.refunded_fen == 1_650 - 1_540
        assert_conservation(ctx.a, task)

    @pytest.mark.replace_activities.with_args(NINE_DAYS)
    async def test_am_17_unresolved_dispute_escalates_and_stays_resolvable(self, ctx: Ctx) -> None:
        task, _ = await converted_piece(ctx)
        await ctx.env.sleep(14 * DAY + SECOND)
        receipt = await update(ctx, task, "raise_dispute", dispute("creator", "cr-1"), mc.DisputeReceipt)
        await ctx.env.sleep(9 * DAY + SECOND)
        state = await content_when(ctx, task, "c1", lambda s: s.escalated)
        assert state.stage is mc.ContentStage.DISPUTED and state.settlement is None
        assert receipt.resolution_due_at is not None and state.disputes[0].escalated_at is not None
        assert state.disputes[0].escalated_at >= receipt.resolution_due_at
        assert state.escalation_reason is not None
        assert f"unresolved past {business_time(receipt.resolution_due_at)}" in state.escalation_reason
        await update(ctx, task, "resolve_dispute", mc.ResolveDisputeRequest(
            dispute_id="d1", operator_id="op-1", amount_fen=1_000, note="the data stands"), mc.DisputeResolution)
        result = await finish(ctx, mounted_content_id(task, "c1"), mc.ContentResult)
        assert (result.fee_fen, result.platform_fee_fen) == (1_000, 100)
        assert ctx.a.ledger.balance("creator:cr-1:payable").balance_fen == 1_000

    @pytest.mark.replace_activities.with_args(missing_calendar)
    async def test_am_17_unpublished_calendar_year_escalates_the_dispute_at_once(self, ctx: Ctx) -> None:
        task, _ = await converted_piece(ctx)
        await ctx.env.sleep(14 * DAY + SECOND)
        receipt = await update(ctx, task, "raise_dispute", dispute("client", "client-1"), mc.DisputeReceipt)
        assert receipt.escalated and receipt.resolution_due_at is None
        state = await content_when(ctx, task, "c1", lambda s: s.escalated)
        assert state.escalation_reason is not None and "is not published" in state.escalation_reason
        assert state.disputes[0].calendar_problem is not None

    @pytest.mark.replace_activities.with_args(NINE_DAYS)
    async def test_am_17_a_resolution_fixes_the_fee_and_a_second_dispute_moves_it_again(self, ctx: Ctx) -> None:
        task, mounted_at = await converted_piece(ctx)
        await ctx.env.sleep(14 * DAY + SECOND)
        await update(ctx, task, "raise_dispute", dispute("client", "client-1"), mc.DisputeReceipt)
        first = await update(ctx, task, "resolve_dispute", mc.ResolveDisputeRequest(
            dispute_id="d1", operator_id="op-1", amount_fen=600, note="QA devices removed"), mc.DisputeResolution)
        assert (first.amount_fen, ctx.a.ledger.task_money(task)["spent_fen"]) == (600, 600)
        # Late data inside the counting interval no longer changes a fee an operator has fixed (R-2 vs AM-17).
        await convert(ctx, task, "c1", "e-late", 5, mounted_at + 2 * SECOND)
        state = await content_when(ctx, task, "c1", lambda s: "e-late" in s.recent_batches)
        assert state.recent_batches["e-late"].late and state.agreed_fee_fen == 600
        # The window is still open: the creator disputes the corrected fee.
        second = await update(ctx, task, "raise_dispute", dispute("creator", "cr-1"), mc.DisputeReceipt)
        assert (second.dispute_id, second.fee_fen) == ("d2", 600)
        resolved = await update(ctx, task, "resolve_dispute", mc.ResolveDisputeRequest(
            dispute_id="d2", operator_id="op-2", amount_fen=800, note="2 activations were genuine"),
            mc.DisputeResolution)
        assert (resolved.fee_before_fen, resolved.amount_fen, resolved.budget_adjustment_fen) == (600, 800, 200)
        assert ctx.a.ledger.task_money(task)["spent_fen"] == 800
        lower = await update(ctx, task, "raise_dispute", dispute("client", "client-1"), mc.DisputeReceipt)
        await update(ctx, task, "resolve_dispute", mc.ResolveDisputeRequest(
            dispute_id=lower.dispute_id, operator_id="op-1", amount_fen=300, note="final review"),
            mc.DisputeResolution)
        assert ctx.a.ledger.task_money(task)["spent_fen"] == 300
        result = await finish(ctx, mounted_content_id(task, "c1"), mc.ContentResult)
        assert (result.fee_fen, result.platform_fee_fen) == (300, 30)
        task_result = await finish(ctx, mount_task_id(task), mt.TaskResult)
        assert task_result.refunded_fen == 110_000 - 330
        assert_conservation(ctx.a, task)
