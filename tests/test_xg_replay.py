"""Running Xingguang tasks outlive code (DESIGN "Running workflows outlive code"): a history that uses every message
of XingguangTaskWorkflow replays against the current code without nondeterminism, both fresh and as checked in under
tests/histories/xingguang-task.json. `RECORD_XG_HISTORIES=1` rewrites the checked-in one (after a deliberate,
`workflow.patched` change)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from temporalio.client import WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Replayer

from activities.calendar import CalendarActivities, ChinaWorkingDays
from starter import xingguang as api
from tests.conftest import Ctx
from tests.helpers import DAY
from tests.test_xg_fixtures import (
    HOUR,
    OPERATOR,
    client_says,
    events,
    ids,
    ordered_task,
    piece_when,
    provider_says,
    published_piece,
    select,
    sleep_until,
    submit,
    task_when,
)
from tests.ui_metadata import assert_operator_metadata
from workflows.contract import xingguang as xg
from workflows.xingguang_task import XingguangTaskWorkflow

HISTORY = Path(__file__).parent / "histories" / "xingguang-task.json"
REPLAYER = Replayer(workflows=[XingguangTaskWorkflow], data_converter=pydantic_data_converter)
EVERY_YEAR = ChinaWorkingDays(covered=frozenset(range(2001, 2200)))
pytestmark = pytest.mark.replace_activities.with_args(lambda a: [CalendarActivities(EVERY_YEAR).add_working_days])


async def every_message(ctx: Ctx) -> str:
    """One task through every update and signal, ending closed; returns its history as JSON."""
    task, client_id = ids(ctx, "replay")
    t0, _ = await ordered_task(ctx, task, client_id, days=4)
    a, b, c = f"a-{ctx.uid}", f"b-{ctx.uid}", f"c-{ctx.uid}"
    await select(ctx, task, "p1", a, 10_000)
    await submit(ctx, task, "p1", a, "content-p1")
    await provider_says(ctx, task, "p1", False, "too dark")
    await submit(ctx, task, "p1", a, "content-p1")
    await provider_says(ctx, task, "p1", True)
    await client_says(ctx, task, client_id, "p1", True)
    await published_piece(ctx, task, client_id, "p2", b, 10_000)
    await select(ctx, task, "p3", c, 5_000)
    await submit(ctx, task, "p3", c, "content-p3")
    await provider_says(ctx, task, "p3", True)  # approved by the client's silence
    await api.raise_objection(ctx.client, task, xg.RaiseObjectionRequest(client_id=client_id, piece_id="p2",
                                                                         reason="wrong price"))
    await api.decide_objection(ctx.client, task, xg.DecideObjectionRequest(
        operator_id=OPERATOR, piece_id="p2", upheld=False, note="price is right"))
    await sleep_until(ctx, t0 + DAY + 2 * HOUR)
    await events(ctx, task, "r1", "p1", 100, t0 + DAY + HOUR)
    await events(ctx, task, "r1", "p1", 100, t0 + DAY + HOUR)
    await events(ctx, task, "r2", "p2", 50, t0 + DAY + HOUR)
    await api.void_billable_events(ctx.client, task, xg.VoidBillableEvents(event_id="r2", reason="bots"))
    await api.pause(ctx.client, task, xg.PauseRequest(operator_id=OPERATOR, pause_id="z", reason="claim",
                                                      changes_due_at=t0 + 2 * DAY))
    await api.respond_to_pause(ctx.client, task, xg.RespondToPauseRequest(client_id=client_id, pause_id="z",
                                                                          changes_made=True))
    await sleep_until(ctx, t0 + 2 * DAY + HOUR)
    await piece_when(ctx, task, "p3", lambda p: p.published_at is not None)
    await api.raise_data_dispute(ctx.client, task, xg.RaiseDataDisputeRequest(client_id=client_id, piece_id="p1",
                                                                              reason="too many"))
    await api.resolve_data_dispute(ctx.client, task, xg.ResolveDataDisputeRequest(
        operator_id=OPERATOR, piece_id="p1", billable_events=90, note="10 removed"))
    ctx.a.ledger.transfer(f"capital-{ctx.uid}", "world:platform_capital", "platform:revenue", 10_000, "capital")
    await api.compensate(ctx.client, task, xg.CompensateRequest(
        operator_id=OPERATOR, compensation_id="k1", kind=xg.CompensationKind.DELIVERY_ANOMALY, amount_fen=500,
        policy="policy-2026", note="wrong region"))
    await api.penalize(ctx.client, task, xg.PenalizeRequest(operator_id=OPERATOR, penalty_id="d1",
                                                            action=xg.PenaltyAction.DEDUCT, amount_fen=300,
                                                            reason="late materials"))
    await api.record_violation(ctx.client, task, xg.RecordViolationRequest(
        operator_id=OPERATOR, violation_id="v1", cause=xg.TerminationCause.COMPONENT_OR_LANDING_PAGE_FAULT,
        note="broken card", decision=xg.ViolationDecision.CONTINUE_AFTER_FIX))
    await api.submit_fix_proof(ctx.client, task, xg.SubmitFixProofRequest(violation_id="v1", submitted_by=client_id,
                                                                          proof="card fixed"))
    await api.record_violation(ctx.client, task, xg.RecordViolationRequest(
        operator_id=OPERATOR, violation_id="v2", cause=xg.TerminationCause.OTHER_VIOLATION, note="repeat fault"))
    for pid, settle in (("p1", True), ("p2", True), ("p3", False)):
        await api.decide_piece(ctx.client, task, xg.DecidePieceRequest(operator_id=OPERATOR, piece_id=pid,
                                                                       settle=settle, note="decided"))
    closed = await task_when(ctx, task, lambda s: s.stage is xg.TaskStage.CLOSED)
    assert closed.pieces["p1"].settlement is not None and closed.pieces["p1"].settlement.promotion_spend_fen == 4_500
    return (await ctx.client.get_workflow_handle(xg.xg_task_workflow_id(task)).fetch_history()).to_json()


async def test_xingguang_task_replays_a_fresh_history_using_every_message(ctx: Ctx) -> None:
    text = await every_message(ctx)
    history = WorkflowHistory.from_json("xingguang-task", text)
    await REPLAYER.replay_workflow(history)  # raises on nondeterminism
    assert_operator_metadata(history)  # every timer named, static summary (issue 9)
    if os.environ.get("RECORD_XG_HISTORIES"):
        HISTORY.write_text(text)


async def test_xingguang_task_replays_its_checked_in_history() -> None:
    history = WorkflowHistory.from_json("xingguang-task", HISTORY.read_text())
    assert len(history.events) > 50
    await REPLAYER.replay_workflow(history)
