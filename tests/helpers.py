"""Scenario helpers: parties in the directory, money in the ledger, and publication requests."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, TypeVar, cast

from temporalio.api.common.v1 import WorkflowExecution
from temporalio.api.enums.v1 import WorkflowExecutionStatus
from temporalio.api.workflowservice.v1 import DescribeWorkflowExecutionRequest
from temporalio.testing import WorkflowEnvironment

from starter import client as api
from tests.conftest import Ctx
from worker import Adapters
from workflows.contract import mount_task as mt
from workflows.contract import mounted_content as mc
from workflows.contract.views import MountedContentView, MountTaskView
from workflows.rules.clock import BUSINESS_TZ
from workflows.rules.eligibility import ClientFacts, CreatorFacts, CreatorKind

DAY = timedelta(days=1)
T = TypeVar("T")
WORKFLOW_EXECUTION_STATUS_RUNNING = int(WorkflowExecutionStatus.WORKFLOW_EXECUTION_STATUS_RUNNING)


def eligible_client(adapters: Adapters, client_id: str, balance_fen: int) -> None:
    adapters.directory.put_client(ClientFacts(
        client_id=client_id, active=True, qualification_passed=True, corporate_verified=True,
        brand_certified=True, penalty_restricted=False, mount_allow_listed=True))
    if balance_fen:
        adapters.ledger.deposit(f"initial-{client_id}", client_id, balance_fen)


def creator(adapters: Adapters, creator_id: str, kind: CreatorKind = CreatorKind.NATURAL,
            agency_id: str | None = None, **flags: bool) -> None:
    facts = {"onboarded": True, **flags}
    adapters.directory.put_creator(CreatorFacts(creator_id=creator_id, kind=kind, agency_id=agency_id, **facts))


async def business_now(ctx: Ctx) -> datetime:
    """The test server's clock, in business time, to the second."""
    return (await ctx.env.get_current_time()).astimezone(BUSINESS_TZ).replace(microsecond=0)


def publish_request(task_id: str, client_id: str, start_at: datetime, end_at: datetime, budget_fen: int,
                    price_fen: int = 100) -> mt.PublishTaskRequest:
    return mt.PublishTaskRequest(
        task_id=task_id, client_id=client_id, task_type="submission", settlement_method="authorized_mount",
        task_name="Spring app-download push", task_icon_url="https://cdn.example/icon.png",
        header_image_url="https://cdn.example/header.png", component_id="component-app-card-1",
        budget_fen=budget_fen, period_start_at=start_at, period_end_at=end_at,
        billing_rule=mt.BillingRule(conversion_event="app_activation", price_fen=price_fen), public_days=30,
    )


async def published_task(ctx: Ctx, task_id: str, *, budget_fen: int = 100_000, price_fen: int = 100,
                         days: int = 30, balance_fen: int = 1_000_000, client_id: str = "client-1"
                         ) -> mt.PublicationResult:
    eligible_client(ctx.a, client_id, balance_fen)
    now = await business_now(ctx)
    return await api.publish_task(
        ctx.client, publish_request(task_id, client_id, now, now + days * DAY, budget_fen, price_fen),
        ctx.task_queue)


def assert_conservation(adapters: Adapters, task_id: str) -> dict[str, int]:
    """R-4: frozen = paid to creators + platform fees + refund, to the fen; the ledger sums to zero."""
    money = adapters.ledger.task_money(task_id)
    assert money["frozen_fen"] == money["paid_fen"] + money["platform_fees_fen"] + money[
        "refunded_fen"] + money["escrow_balance_fen"], money
    # The money picture adds up (workflows/contract/money.py): the escrow is what is accrued, the platform's part
    # of it, and what is still to come back.
    assert money["escrow_balance_fen"] == (money["accrued_fen"] + money["platform_fee_on_accrued_fen"]
                                           + money["refund_to_come_fen"]), money
    assert money["held_fen"] <= money["accrued_fen"], money
    assert adapters.ledger.conservation_total() == 0
    return money


async def finish(ctx: Ctx, workflow_id: str, result_type: type[T]) -> T:
    """Let time skip until the workflow closes, then return its result (or raise its failure).

    Handles got by id do not unlock time skipping themselves, and the test server's long poll for the close
    event can come back empty once virtual time leaps ahead; so wait for the close, then read the history."""
    env = ctx.env
    async with env.time_skipping_unlocked():
        for _ in range(1200):
            if await workflow_status(env, workflow_id) != WORKFLOW_EXECUTION_STATUS_RUNNING:
                break
            await asyncio.sleep(0.05)
        else:
            raise AssertionError(f"{workflow_id} still running after 60 s of time skipping")
    async for event in ctx.client.get_workflow_handle(workflow_id).fetch_history_events():
        if event.HasField("workflow_execution_completed_event_attributes"):
            payloads = event.workflow_execution_completed_event_attributes.result.payloads
            [value] = await ctx.client.data_converter.decode(payloads, [result_type])
            return cast(T, value)
        if event.HasField("workflow_execution_failed_event_attributes"):
            failure = event.workflow_execution_failed_event_attributes.failure
            raise await ctx.client.data_converter.decode_failure(failure)
    raise AssertionError(f"{workflow_id} closed without a result")


async def workflow_status(env: WorkflowEnvironment, workflow_id: str) -> int:
    """The raw status (the typed describe() cannot decode the test server's datetime search attributes)."""
    response = await env.client.workflow_service.describe_workflow_execution(
        DescribeWorkflowExecutionRequest(namespace=env.client.namespace,
                                         execution=WorkflowExecution(workflow_id=workflow_id)))
    return int(response.workflow_execution_info.status)


async def mount(ctx: Ctx, task_id: str, content_id: str, creator_id: str, mounted_at: datetime) -> mt.MountResult:
    return await api.report_mount(ctx.client, task_id, mt.ReportMountRequest(
        content_id=content_id, creator_id=creator_id, mounted_at=mounted_at))


async def convert(ctx: Ctx, task_id: str, content_id: str, event_id: str, count: int, occurred_at: datetime,
                  cheating: bool = False) -> None:
    await api.report_conversions(ctx.client, task_id, mc.ConversionBatch(
        event_id=event_id, content_id=content_id, count=count, occurred_at=occurred_at, cheating=cheating))


async def content_when(ctx: Ctx, task_id: str, content_id: str,
                       predicate: Callable[[MountedContentView], bool]) -> MountedContentView:
    """Poll a piece's state until `predicate` holds and no batch awaits counting (signals are asynchronous)."""
    state = await api.content_state(ctx.client, task_id, content_id)
    for _ in range(200):
        if predicate(state) and not state.batches_pending:
            return state
        await asyncio.sleep(0.05)
        state = await api.content_state(ctx.client, task_id, content_id)
    raise AssertionError(f"content {content_id} never reached the expected state: {state.model_dump()}")


@dataclass
class TaskSeen:
    """A task as a test sees it: its `state` view, and its register of pieces and creators from the ledger's
    database (the task itself keeps only counts)."""

    view: MountTaskView
    pieces: dict[str, mt.PieceEntry]
    creators: dict[str, mt.CreatorEntry]

    def __getattr__(self, name: str) -> Any:
        return getattr(self.view, name)


async def task_seen(ctx: Ctx, task_id: str) -> TaskSeen:
    from activities.task_register import TaskRegister

    register = TaskRegister(ctx.a.db)
    view = await api.task_state(ctx.client, task_id)
    return TaskSeen(view, {r.piece.content_id: r.piece for r in register.pieces_page(task_id, 0, 1 << 30)},
                    {e.creator_id: e for e in register.creators_page(task_id, "", 1 << 30)})


async def task_when(ctx: Ctx, task_id: str, predicate: Callable[[TaskSeen], bool]) -> TaskSeen:
    state = await task_seen(ctx, task_id)
    for _ in range(200):
        if predicate(state):
            return state
        await asyncio.sleep(0.05)
        state = await task_seen(ctx, task_id)
    raise AssertionError(f"task {task_id} never reached the expected state: {state.view}")


async def advance(ctx: Ctx, seconds: float) -> None:
    """Move the test server's clock forward by `seconds`, in steps of at most a day, each retried once if its
    RPC times out (a loaded machine makes one long skip slow to answer, not wrong)."""
    from temporalio.service import RPCError

    remaining = seconds
    while remaining > 0:
        step = min(remaining, 86400.0)
        start = await ctx.env.get_current_time()
        try:
            await ctx.env.sleep(step)
        except RPCError:
            moved = (await ctx.env.get_current_time() - start).total_seconds()
            if moved < step:
                await ctx.env.sleep(step - moved)
        remaining -= step
