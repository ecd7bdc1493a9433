"""XingguangTaskWorkflow within Temporal's limits and faults (DESIGN "Limits", "The money path"): it continues as new
after its own bound of messages per run, carrying its state (R-1 still counts each event id once across runs); its
histories replay against the current code; money activities that crash mid-way are retried and pay exactly once."""

from __future__ import annotations

from typing import Any

import pytest
from temporalio import activity
from temporalio.api.common.v1 import WorkflowExecution
from temporalio.api.workflowservice.v1 import DescribeWorkflowExecutionRequest

from activities.xg_ledger import (
    ClaimEventsRequest,
    ClaimEventsResult,
    XgLedgerActivities,
    XgRefundRequest,
    XgRefundResult,
    XgSettleRequest,
    XgSettleResult,
)
from starter import xingguang as api
from tests import replay_helpers as rh
from tests.conftest import Ctx
from tests.helpers import DAY, finish
from tests.xg_fixtures import (
    HOUR,
    events,
    ordered_task,
    published_piece,
    replays,
    sleep_until,
    task_when,
)
from worker import Adapters
from workflows.common import MAX_MESSAGES_PER_RUN
from workflows.contract import xingguang as xg
from workflows.contract import xingguang_pieces as xgp
from workflows.contract import xingguang_state as xgs


async def run_id(ctx: Ctx, workflow_id: str) -> str:
    response = await ctx.client.workflow_service.describe_workflow_execution(DescribeWorkflowExecutionRequest(
        namespace=ctx.client.namespace, execution=WorkflowExecution(workflow_id=workflow_id)))
    return str(response.workflow_execution_info.execution.run_id)


async def test_r_1_continues_as_new_after_its_message_bound_and_counts_each_event_once(ctx: Ctx) -> None:
    task, client_id = f"xg-can-{ctx.uid}", f"cl-{ctx.uid}"
    workflow_id = xg.xg_task_workflow_id(task)
    t0, _ = await ordered_task(ctx, task, client_id, unit_price_fen=10, days=3)
    await published_piece(ctx, task, client_id, "p1", f"c-{ctx.uid}", 10_000)
    first_run = await run_id(ctx, workflow_id)
    await sleep_until(ctx, t0 + DAY + 2 * HOUR)
    total = MAX_MESSAGES_PER_RUN + 100

    def batch(i: int) -> xgp.BillableEventBatch:
        return xgp.BillableEventBatch(event_id=f"n{i}", piece_id="p1", count=1, occurred_at=t0 + DAY + HOUR)

    # Exactly up to the bound, then (once the run has continued as new) the rest and the same ids again, which
    # bill nothing more. Signals racing the closing run would keep a workflow task of the closed run in flight,
    # which locks the time-skipping server (seen in CI: "still running after 60 s of time skipping").
    so_far = (await rh.run_info(ctx.client, workflow_id)).messages_this_run
    to_bound = MAX_MESSAGES_PER_RUN - so_far
    await rh.continue_as_new_by_signals(ctx.client, workflow_id, "report_billable_events",
                                        [batch(i) for i in range(to_bound)],
                                        [batch(i) for i in range(to_bound, total)] + [batch(i) for i in range(50)])
    state = await task_when(ctx, task, lambda s: s.batches_received >= 50 and not s.batches_pending
                            and s.pieces["p1"].billable_events == total)
    assert state.pieces["p1"].billed_spend_fen == total * 10
    result = await finish(ctx, workflow_id, xgs.TaskResult)
    first = ctx.client.get_workflow_handle(workflow_id, run_id=first_run)
    kinds = [e.WhichOneof("attributes") async for e in first.fetch_history_events()]
    assert kinds[-1] == "workflow_execution_continued_as_new_event_attributes"
    assert result.pieces["p1"].promotion_spend_fen == total * 10
    assert result.refunded_fen == result.frozen_fen - 10_000 - total * 10 - result.platform_fees_fen
    await replays(ctx, workflow_id, first_run)
    await replays(ctx, workflow_id)
    state = await api.state(ctx.client, task)
    assert state.stage is xgs.TaskStage.CLOSED


def crashing_between_postings(adapters: Adapters) -> list[Any]:
    """Money activities that post (part of) their transfers, then fail once, as if the worker died mid-way."""
    xg_ledger = XgLedgerActivities(adapters.ledger)

    @activity.defn(name="xg_ledger.settle_piece")
    def settle_half_then_fail(request: XgSettleRequest) -> XgSettleResult:
        if activity.info().attempt == 1:
            first_two = request.model_copy(update={"platform_fee_fen": 0, "provider_fee_fen": 0})
            xg_ledger.xg.settle_piece(first_two)  # earnings and promotion posted; the fees not yet
            raise RuntimeError("worker lost after two of four postings")
        return xg_ledger.settle_piece(request)

    @activity.defn(name="xg_ledger.claim_events")
    def claim_then_fail(request: ClaimEventsRequest) -> ClaimEventsResult:
        result = xg_ledger.claim_events(request)
        if activity.info().attempt == 1:
            raise RuntimeError("connection lost after the claim was committed")
        return result

    @activity.defn(name="xg_ledger.refund")
    def refund_then_fail(request: XgRefundRequest) -> XgRefundResult:
        result = xg_ledger.refund(request)
        if activity.info().attempt == 1:
            raise RuntimeError("connection lost after the refund was posted")
        return result

    return [settle_half_then_fail, claim_then_fail, refund_then_fail]


@pytest.mark.replace_activities.with_args(crashing_between_postings)
async def test_r_8_retries_after_partial_postings_pay_and_bill_exactly_once(ctx: Ctx) -> None:
    task, client_id = f"xg-crash-{ctx.uid}", f"cl-{ctx.uid}"
    creator_id = f"c-{ctx.uid}"
    t0, _ = await ordered_task(ctx, task, client_id, days=3)
    await published_piece(ctx, task, client_id, "p1", creator_id, 20_000)
    await sleep_until(ctx, t0 + DAY + 2 * HOUR)
    await events(ctx, task, "k1", "p1", 100, t0 + DAY + HOUR)  # the claim is retried: still billed once
    result = await finish(ctx, xg.xg_task_workflow_id(task), xgs.TaskResult)
    assert result.pieces["p1"] == xgs.PieceMoney(creator_earnings_fen=20_000, promotion_spend_fen=5_000,
                                                 platform_fee_fen=2_500, provider_fee_fen=1_000,
                                                 payee_account=f"creator:{creator_id}:payable")
    assert len(ctx.a.ledger.transfers(business_key_prefix=f"xg:settle:{task}:p1:")) == 4
    assert ctx.a.ledger.balance(f"creator:{creator_id}:payable").balance_fen == 20_000
    assert result.refunded_fen == 198_000 - 20_000 - 5_000 - 2_500
    assert ctx.a.ledger.balance(f"client:{client_id}:available").balance_fen == 300_000 - 27_500
    assert ctx.a.ledger.balance(f"xg_task:{task}:escrow").balance_fen == 0
    ctx.a.ledger.check_conservation()
