"""An update admitted while a run is about to continue as new finishes, and its effect is carried (DESIGN "Limits
that shape the design"; issue 22 item 2; R-1 for the money that rides along).

A run that is due waits for every handler to finish and continues as new in the same step: any activity between
that wait and `continue_as_new` lets a new update in, and the run would close under it (its caller gets an error,
its change is lost). Each test holds activities at gates so that, on the old order (wait, then pending work, then
continue as new), a second update is admitted while the post-wait activity runs:

1. update U1 is admitted and waits at its gated calendar activity; the run reaches its message bound (lowered
   through workflows.rules.run_length.MAX_MESSAGES_PER_RUN, read by the worker in this process) and waits for U1;
2. a data message arrives meanwhile (pending work), its ledger activity gated; U1 is let through;
3. the pending work's activity starts; update U2 arrives and waits at its own gated calendar activity;
4. the pending work is let through, then U2: U2 must answer, and the next run must hold both updates and the data.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import pytest
from temporalio import activity
from temporalio.api.enums.v1 import EventType

from activities.calendar import AddWorkingDaysRequest, AddWorkingDaysResult
from activities.content_batches import ContentBatchActivities, ContentBatches
from activities.ledger import AccrueRequest, AccrueResult, LedgerActivities
from activities.xg_ledger import ClaimEventsRequest, ClaimEventsResult, XgLedgerActivities
from ports.content_batches import ReconcileBatches, ReconciledBatches
from starter import client as mount_api
from starter import xingguang as xg_api
from tests import replay_helpers as rh
from tests.conftest import Ctx
from tests.helpers import (
    DAY,
    assert_conservation,
    business_now,
    content_when,
    convert,
    creator,
    mount,
    published_task,
)
from tests.xg_fixtures import HOUR, ids, ordered_task, published_piece, sleep_until, task_when
from worker import Adapters
from workflows.contract import mounted_content as mc
from workflows.contract import xingguang as xg
from workflows.contract import xingguang_pieces as xgp
from workflows.contract import xingguang_state as xgs
from workflows.contract.names import mounted_content_id
from workflows.mounted_content import MountedContentWorkflow
from workflows.rules import run_length
from workflows.xingguang_task import XingguangTaskWorkflow

SPAN = 9 * DAY  # the gated calendar's answer: "7 working days" = 9 calendar days, whatever the server's date
WAIT = 30.0  # seconds a test waits for a gate to be reached or an update to answer


@dataclass
class Gate:
    started: threading.Event = field(default_factory=threading.Event)
    release: threading.Event = field(default_factory=threading.Event)

    async def reached(self) -> None:
        assert await asyncio.to_thread(self.started.wait, WAIT), "the gated activity never started"


# Activities whose description contains a key wait at its gate (keys carry each test's unique id).
GATES: dict[str, Gate] = {}


def gate(key: str) -> Gate:
    return GATES.setdefault(key, Gate())


def _hold(description: str) -> None:
    for key, held in list(GATES.items()):
        if key in description:
            held.started.set()
            held.release.wait(WAIT * 2)


def gated(adapters: Adapters) -> list[Callable[..., Any]]:
    ledger, xg_ledger = LedgerActivities(adapters.ledger), XgLedgerActivities(adapters.ledger)

    @activity.defn(name="calendar.add_working_days")
    def add_working_days(request: AddWorkingDaysRequest) -> AddWorkingDaysResult:
        _hold(request.purpose)
        deadline = request.start_at + SPAN
        return AddWorkingDaysResult(start_at=request.start_at, working_days=request.working_days,
                                    deadline_at=deadline, last_working_day=deadline.date(), source="test: gated")

    @activity.defn(name="ledger.accrue")
    def accrue(request: AccrueRequest) -> AccrueResult:
        _hold(" ".join(item.event_id for item in request.items))
        return ledger.accrue(request)

    @activity.defn(name="xg_ledger.claim_events")
    def claim_events(request: ClaimEventsRequest) -> ClaimEventsResult:
        _hold(" ".join(event.event_id for event in request.events))
        return xg_ledger.claim_events(request)

    batches = ContentBatchActivities(ContentBatches(adapters.db, adapters.ledger))

    @activity.defn(name="content_batches.reconcile")
    def reconcile(request: ReconcileBatches) -> ReconciledBatches:
        _hold(" ".join(batch.event_id for batch in request.batches))
        return batches.reconcile(request)

    return [add_working_days, accrue, claim_events, reconcile]


async def pending(ctx: Ctx, task: str, event_id: str) -> None:
    """The piece has taken the batch and not counted it yet (it lists a batch once the database has it)."""
    for _ in range(int(WAIT / 0.05)):
        piece = await mount_api.content_state(ctx.client, task, "c1")
        batch = piece.recent_batches.get(event_id)
        if piece.batches_pending and (batch is None or not batch.counted):
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"batch {event_id} never pending")


async def continued_as_new(ctx: Ctx, workflow_id: str, first_run: str) -> None:
    """The first run closed by continuing as new (the scenario reached its bound)."""
    for _ in range(int(WAIT / 0.05)):
        history = await ctx.client.get_workflow_handle(workflow_id, run_id=first_run).fetch_history()
        if history.events[-1].event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_CONTINUED_AS_NEW:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"{workflow_id} run {first_run} did not continue as new")


@pytest.mark.replace_activities.with_args(gated)
async def test_am_11_dispute_admitted_while_a_piece_continues_as_new_is_answered_and_carried(
        ctx: Ctx, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(run_length, "MAX_MESSAGES_PER_RUN", 2)
    task = f"t-canh-{ctx.uid}"
    await published_task(ctx, task, budget_fen=100_000, price_fen=100)
    creator(ctx.a, "cr-1")
    await mount_api.join(ctx.client, task, "cr-1")
    now = await business_now(ctx)
    await mount(ctx, task, "c1", "cr-1", now)
    workflow_id = mounted_content_id(task, "c1")
    handle = ctx.client.get_workflow_handle(workflow_id)
    first_run = await rh.first_run_id(ctx.client, workflow_id)
    d1, d2 = gate(f"dispute d1 of {workflow_id}"), gate(f"dispute d2 of {workflow_id}")
    e3 = gate(f"e3-{ctx.uid}")

    u1 = asyncio.create_task(handle.execute_update("raise_dispute", mc.RaiseDisputeRequest(
        raised_by="client", party_id="client-1", reason="the numbers look high"), result_type=mc.DisputeReceipt))
    await d1.reached()
    await convert(ctx, task, "c1", f"e1-{ctx.uid}", 3, now + timedelta(seconds=1))
    await convert(ctx, task, "c1", f"e2-{ctx.uid}", 4, now + timedelta(seconds=2))  # the bound: due
    await content_when(ctx, task, "c1", lambda s: len(s.recent_batches) == 2 and s.counted_conversions == 7)
    await convert(ctx, task, "c1", f"e3-{ctx.uid}", 5, now + timedelta(seconds=3))  # while the run waits for U1
    await pending(ctx, task, f"e3-{ctx.uid}")
    d1.release.set()
    receipt = await asyncio.wait_for(u1, WAIT)
    assert (receipt.dispute_id, receipt.resolution_due_at) == ("d1", receipt.raised_at + SPAN)

    await e3.reached()  # the accrual of e3 runs (after the wait, on the old order)
    u2 = asyncio.create_task(handle.execute_update("raise_dispute", mc.RaiseDisputeRequest(
        raised_by="creator", party_id="cr-1", reason="a batch is missing"), result_type=mc.DisputeReceipt))
    await d2.reached()
    e3.release.set()
    await continued_as_new(ctx, workflow_id, first_run)
    d2.release.set()
    second = await asyncio.wait_for(u2, WAIT)
    assert (second.dispute_id, second.resolution_due_at) == ("d2", second.raised_at + SPAN)

    state = await content_when(ctx, task, "c1", lambda s: s.counted_conversions == 12)
    assert [(d.dispute_id, d.raised_by, d.resolution_due_at) for d in state.disputes] == [
        ("d1", "client", receipt.resolution_due_at), ("d2", "creator", second.resolution_due_at)]
    assert (state.fee_fen, ctx.a.ledger.task_money(task)["spent_fen"]) == (1_200, 1_200)
    assert_conservation(ctx.a, task)
    for history in (await handle.fetch_history(), await ctx.client.get_workflow_handle(
            workflow_id, run_id=first_run).fetch_history()):
        await rh.replayer(MountedContentWorkflow).replay_workflow(history)


@pytest.mark.replace_activities.with_args(gated)
async def test_xg_5_objection_admitted_while_the_task_continues_as_new_is_answered_and_carried(
        ctx: Ctx, monkeypatch: pytest.MonkeyPatch) -> None:
    bound = 30
    monkeypatch.setattr(run_length, "MAX_MESSAGES_PER_RUN", bound)
    task, client_id = ids(ctx, "canh")
    workflow_id = xg.xg_task_workflow_id(task)
    handle = ctx.client.get_workflow_handle(workflow_id)
    t0, _ = await ordered_task(ctx, task, client_id, unit_price_fen=10, days=3)
    await published_piece(ctx, task, client_id, "p1", f"c-{ctx.uid}", 10_000)
    await sleep_until(ctx, t0 + DAY + 2 * HOUR)
    first_run = await rh.first_run_id(ctx.client, workflow_id)
    so_far = (await rh.run_info(ctx.client, workflow_id)).messages_this_run
    assert so_far + 3 < bound
    dispute, objection = gate(f"data dispute on piece p1 of {task}"), gate(f"objection on piece p1 of {task}")
    last = gate(f"last-{ctx.uid}")

    def batch(event_id: str) -> xgp.BillableEventBatch:
        return xgp.BillableEventBatch(event_id=event_id, piece_id="p1", count=2, occurred_at=t0 + DAY + HOUR)

    u1 = asyncio.create_task(handle.execute_update("raise_data_dispute", xgp.RaiseDataDisputeRequest(
        client_id=client_id, piece_id="p1", reason="clicks look doubled"), result_type=xgs.Piece))
    await dispute.reached()
    fillers = bound - so_far - 1
    for i in range(fillers):
        await xg_api.report_billable_events(ctx.client, task, batch(f"n{i}-{ctx.uid}"))
    await task_when(ctx, task, lambda s: s.pieces["p1"].billable_events == 2 * fillers)
    await xg_api.report_billable_events(ctx.client, task, batch(f"last-{ctx.uid}"))  # the bound: due
    await task_when(ctx, task, lambda s: s.batches_received == fillers + 1)  # the last one is in: due
    dispute.release.set()
    disputed = await asyncio.wait_for(u1, WAIT)
    assert disputed.data_dispute is not None
    assert disputed.data_dispute.escalates_at == disputed.data_dispute.raised_at + SPAN

    await last.reached()  # billing the last batch (after the wait, on the old order)
    u2 = asyncio.create_task(handle.execute_update("raise_objection", xgp.RaiseObjectionRequest(
        client_id=client_id, piece_id="p1", reason="wrong product colour"), result_type=xgs.Piece))
    await objection.reached()
    last.release.set()
    await task_when(ctx, task, lambda s: s.pieces["p1"].billable_events == 2 * fillers + 2)
    objection.release.set()
    objected = await asyncio.wait_for(u2, WAIT)
    assert objected.objection is not None
    assert objected.objection.escalates_at == objected.objection.raised_at + SPAN

    await continued_as_new(ctx, workflow_id, first_run)
    state = await task_when(ctx, task, lambda s: s.pieces["p1"].objection is not None)
    piece = state.pieces["p1"]
    assert piece.data_dispute is not None and piece.data_dispute.raised_at == disputed.data_dispute.raised_at
    assert (piece.billable_events, piece.billed_spend_fen, state.money.accrued_fen) == (
        2 * fillers + 2, 20 * (fillers + 1), 20 * (fillers + 1) + piece.agreed_earnings_fen)
    assert not state.batches_pending and ctx.a.ledger.conservation_total() == 0
    for history in (await handle.fetch_history(), await ctx.client.get_workflow_handle(
            workflow_id, run_id=first_run).fetch_history()):
        await rh.replayer(XingguangTaskWorkflow).replay_workflow(history)
