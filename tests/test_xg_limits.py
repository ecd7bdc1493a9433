"""XingguangTaskWorkflow within Temporal's limits (DESIGN "Limits"): it continues as new after its own bound of
messages per run, carrying its state (R-1 still counts each event id once across runs), and its histories replay
against the current code (determinism)."""

from __future__ import annotations

import asyncio

from temporalio.api.common.v1 import WorkflowExecution
from temporalio.api.workflowservice.v1 import DescribeWorkflowExecutionRequest

from starter import xingguang as api
from tests.conftest import Ctx
from tests.helpers import DAY, finish
from tests.test_xg_fixtures import HOUR, ordered_task, published_piece, replays, sleep_until, task_when
from workflows.common import MAX_MESSAGES_PER_RUN
from workflows.contract import xingguang as xg


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
    handle = ctx.client.get_workflow_handle(workflow_id)
    for start in range(0, total, 200):
        await asyncio.gather(*(handle.signal("report_billable_events", xg.BillableEventBatch(
            event_id=f"n{i}", piece_id="p1", count=1, occurred_at=t0 + DAY + HOUR))
            for i in range(start, min(start + 200, total))))
    # The same ids again, after the workflow continued as new: billed nothing more.
    await asyncio.gather(*(handle.signal("report_billable_events", xg.BillableEventBatch(
        event_id=f"n{i}", piece_id="p1", count=1, occurred_at=t0 + DAY + HOUR)) for i in range(50)))
    state = await task_when(ctx, task, lambda s: s.batches_received >= 50 and not s.pending_batches
                            and s.pieces["p1"].billable_events == total)
    assert state.pieces["p1"].billed_spend_fen == total * 10
    result = await finish(ctx, workflow_id, xg.TaskResult)
    first = ctx.client.get_workflow_handle(workflow_id, run_id=first_run)
    kinds = [e.WhichOneof("attributes") async for e in first.fetch_history_events()]
    assert kinds[-1] == "workflow_execution_continued_as_new_event_attributes"
    assert result.pieces["p1"].promotion_spend_fen == total * 10
    assert result.refunded_fen == result.frozen_fen - 10_000 - total * 10 - result.platform_fees_fen
    await replays(ctx, workflow_id, first_run)
    await replays(ctx, workflow_id)
    state = await api.state(ctx.client, task)
    assert state.stage is xg.TaskStage.CLOSED
