"""Running Xingguang tasks outlive code (DESIGN "Running workflows outlive code"): histories of XingguangTaskWorkflow
in its interesting shapes (every message: xingguang-every-message.json, and xingguang-task.json recorded before the
one-timer patch and kept as it was; a compliance pause that resumes; a pause whose deadline passes, then
cancellation with the fees of the delay (R-9); a stop with one piece settled and one declined (XG-8); an upheld
objection and a compensation (XG-5, XG-10); refused materials, and an order refused then expired as a failed run
(XG-1); a run continued as new and the run after it) replay against the current code without nondeterminism, both
fresh and as checked in under tests/histories/xingguang-*.json.

To record after a deliberate, `workflow.patched` change: `RECORD_XG_HISTORIES=1 .venv/bin/python -m pytest
tests/test_xg_replay.py`, then commit tests/histories/xingguang-*.json."""

from __future__ import annotations

from pathlib import Path

import pytest
from temporalio.exceptions import ApplicationError

from activities.calendar import CalendarActivities, ChinaWorkingDays
from starter import xingguang as api
from starter.client import Refused
from tests import replay_helpers as rh
from tests.conftest import Ctx
from tests.helpers import DAY, business_now, eligible_client, finish
from tests.xg_fixtures import (
    HOUR,
    OPERATOR,
    PLATFORM_FAULT,
    billed,
    client_says,
    events,
    ids,
    notice,
    order_request,
    ordered_task,
    piece_when,
    provider_says,
    published_piece,
    select,
    sleep_until,
    submit,
    task_when,
)
from workflows.common import MAX_MESSAGES_PER_RUN
from workflows.contract import xingguang as xg
from workflows.contract import xingguang_pieces as xgp
from workflows.contract import xingguang_state as xgs
from workflows.contract.names import xingguang_claims_id
from workflows.contract.xingguang_claims import XingguangClaimsView

REPLAYER = rh.family_replayer("xingguang-")
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
    await api.raise_objection(ctx.client, task, xgp.RaiseObjectionRequest(client_id=client_id, piece_id="p2",
                                                                          reason="wrong price"))
    await api.decide_objection(ctx.client, task, xgp.DecideObjectionRequest(
        operator_id=OPERATOR, piece_id="p2", upheld=False, note="price is right"))
    await sleep_until(ctx, t0 + DAY + 2 * HOUR)
    await events(ctx, task, "r1", "p1", 100, t0 + DAY + HOUR)
    await events(ctx, task, "r1", "p1", 100, t0 + DAY + HOUR)
    await events(ctx, task, "r2", "p2", 50, t0 + DAY + HOUR)
    await api.void_billable_events(ctx.client, task, xgp.VoidBillableEvents(event_id="r2", reason="bots"))
    await api.pause(ctx.client, task, xg.PauseRequest(operator_id=OPERATOR, pause_id="z", reason="claim",
                                                      **await notice(ctx, t0 + 2 * DAY)))
    await api.respond_to_pause(ctx.client, task, xg.RespondToPauseRequest(client_id=client_id, pause_id="z",
                                                                          changes_made=True))
    await sleep_until(ctx, t0 + 2 * DAY + HOUR)
    await piece_when(ctx, task, "p3", lambda p: p.published_at is not None)
    await api.raise_data_dispute(ctx.client, task, xgp.RaiseDataDisputeRequest(client_id=client_id, piece_id="p1",
                                                                               reason="too many"))
    await api.resolve_data_dispute(ctx.client, task, xgp.ResolveDataDisputeRequest(
        operator_id=OPERATOR, piece_id="p1", billable_events=90, note="10 removed"))
    await api.compensate(ctx.client, task, xg.CompensateRequest(
        **PLATFORM_FAULT, operator_id=OPERATOR, compensation_id="k1", kind=xg.CompensationKind.DELIVERY_ANOMALY,
        amount_fen=500, policy="policy-2026", note="wrong region"))
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
    closed = await task_when(ctx, task, lambda s: s.stage is xgs.TaskStage.CLOSED)
    assert closed.pieces["p1"].settlement is not None and closed.pieces["p1"].settlement.promotion_spend_fen == 4_500
    return (await ctx.client.get_workflow_handle(xg.xg_task_workflow_id(task)).fetch_history()).to_json()


async def history_json(ctx: Ctx, task: str, run_id: str | None = None) -> str:
    return await rh.history_json(ctx.client, xg.xg_task_workflow_id(task), run_id)


async def replay_and_maybe_record(histories: dict[str, str]) -> None:
    await rh.replay_and_maybe_record(REPLAYER, histories, "RECORD_XG_HISTORIES")


async def test_xingguang_task_replays_a_fresh_history_using_every_message(ctx: Ctx) -> None:
    # xingguang-task.json is the same driver recorded before ONE_TIMER_PATCH: kept, never re-recorded.
    await replay_and_maybe_record({"xingguang-every-message": await every_message(ctx)})


async def test_replay_xg_7_a_pause_that_resumes_then_settlement(ctx: Ctx) -> None:
    task, client_id = ids(ctx, "rp-pause")
    t0, _ = await ordered_task(ctx, task, client_id, days=2)
    await published_piece(ctx, task, client_id, "p1", f"a-{ctx.uid}", 10_000)
    await sleep_until(ctx, t0 + DAY + 2 * HOUR)
    await events(ctx, task, "e1", "p1", 100, t0 + DAY + HOUR)
    await api.pause(ctx.client, task, xg.PauseRequest(operator_id=OPERATOR, pause_id="z", reason="health claim",
                                                      **await notice(ctx, t0 + 3 * DAY)))
    await sleep_until(ctx, t0 + 2 * DAY)
    resumed = await api.respond_to_pause(ctx.client, task, xg.RespondToPauseRequest(
        client_id=client_id, pause_id="z", changes_made=True, note="claim removed"))
    assert resumed.resumed_at is not None
    result = await finish(ctx, xg.xg_task_workflow_id(task), xgs.TaskResult)
    assert result.pieces["p1"].creator_earnings_fen == 10_000 and result.pieces["p1"].promotion_spend_fen == 5_000
    await replay_and_maybe_record({"xingguang-pause-resumed": await history_json(ctx, task)})


async def test_replay_r_9_a_pause_with_a_missed_deadline_then_cancellation(ctx: Ctx) -> None:
    task, client_id = ids(ctx, "rp-cancel")
    t0, _ = await ordered_task(ctx, task, client_id, days=3)
    await published_piece(ctx, task, client_id, "q1", f"a-{ctx.uid}", 20_000)
    await select(ctx, task, "q2", f"b-{ctx.uid}", 10_000)
    await submit(ctx, task, "q2", f"b-{ctx.uid}", "content-q2")  # submitted, not reviewed: paid on cancellation
    await sleep_until(ctx, t0 + DAY + 2 * HOUR)
    await events(ctx, task, "f1", "q1", 100, t0 + DAY + HOUR)
    await api.pause(ctx.client, task, xg.PauseRequest(operator_id=OPERATOR, pause_id="pz", reason="no licence",
                                                      **await notice(ctx, t0 + 2 * DAY)))
    await sleep_until(ctx, t0 + 2 * DAY + HOUR)
    await task_when(ctx, task, lambda s: s.escalated)
    await api.cancel_after_pause(ctx.client, task, xg.CancelAfterPauseRequest(
        operator_id=OPERATOR, pause_id="pz", delay_fee_fen=3_000, delay_fee_reason="a day of delay"))
    result = await finish(ctx, xg.xg_task_workflow_id(task), xgs.TaskResult)
    assert (result.paid_to_creators_fen, result.promotion_spend_fen, result.delay_fee_fen) == (30_000, 5_000, 3_000)
    await replay_and_maybe_record({"xingguang-pause-missed-cancelled": await history_json(ctx, task)})


async def test_replay_xg_8_a_stop_with_one_piece_settled_and_one_declined(ctx: Ctx) -> None:
    task, client_id = ids(ctx, "rp-stop")
    t0, _ = await ordered_task(ctx, task, client_id, days=3)
    await published_piece(ctx, task, client_id, "r1", f"a-{ctx.uid}", 20_000)
    await published_piece(ctx, task, client_id, "r2", f"b-{ctx.uid}", 10_000)
    await sleep_until(ctx, t0 + DAY + 2 * HOUR)
    await events(ctx, task, "g1", "r1", 100, t0 + DAY + HOUR)
    await events(ctx, task, "g2", "r2", 40, t0 + DAY + HOUR)
    await task_when(ctx, task, lambda s: billed(s) == 7_000)
    await api.record_violation(ctx.client, task, xg.RecordViolationRequest(
        operator_id=OPERATOR, violation_id="v1", cause=xg.TerminationCause.CHEATING_BYPASS_OR_LAUNDERING,
        note="click farm", decision=xg.ViolationDecision.STOP))
    await task_when(ctx, task, lambda s: s.escalated)
    await api.decide_piece(ctx.client, task, xg.DecidePieceRequest(operator_id=OPERATOR, piece_id="r1", settle=True,
                                                                   note="creator not involved"))
    await api.decide_piece(ctx.client, task, xg.DecidePieceRequest(operator_id=OPERATOR, piece_id="r2",
                                                                   settle=False, note="creator ran the farm"))
    result = await finish(ctx, xg.xg_task_workflow_id(task), xgs.TaskResult)
    assert (result.pieces["r1"].creator_earnings_fen, result.pieces["r2"].creator_earnings_fen) == (20_000, 0)
    await replay_and_maybe_record({"xingguang-stopped-settled-and-declined": await history_json(ctx, task)})


async def test_replay_xg_5_xg_10_an_upheld_objection_and_a_compensation(ctx: Ctx) -> None:
    task, client_id = ids(ctx, "rp-obj")
    t0, _ = await ordered_task(ctx, task, client_id, days=2)
    await published_piece(ctx, task, client_id, "p1", f"a-{ctx.uid}", 10_000)
    await api.raise_objection(ctx.client, task, xgp.RaiseObjectionRequest(client_id=client_id, piece_id="p1",
                                                                          reason="a competitor's logo"))
    await api.decide_objection(ctx.client, task, xgp.DecideObjectionRequest(
        operator_id=OPERATOR, piece_id="p1", upheld=True, creator_earnings_fen=5_000, promotion_spend_fen=0,
        note="logo visible for 3 s"))
    await piece_when(ctx, task, "p1", lambda p: p.stage is xgs.PieceStage.SETTLED)
    paid = await api.compensate(ctx.client, task, xg.CompensateRequest(
        **PLATFORM_FAULT, operator_id=OPERATOR, compensation_id="k1", kind=xg.CompensationKind.DELIVERY_ANOMALY,
        amount_fen=500, policy="policy-2026", note="shown in the wrong region"))
    assert paid.paid_fen == 500
    await sleep_until(ctx, t0 + 3 * DAY)
    result = await finish(ctx, xg.xg_task_workflow_id(task), xgs.TaskResult)
    assert result.pieces["p1"].creator_earnings_fen == 5_000
    await replay_and_maybe_record({"xingguang-objection-upheld-compensated": await history_json(ctx, task)})


async def test_replay_xg_1_refused_materials_and_an_order_the_balance_does_not_cover(ctx: Ctx) -> None:
    """Two short lives: materials refused close the task and refund everything; a refused order leaves a draft that
    expires and fails the run (TaskNotOrdered)."""
    task, client_id = ids(ctx, "rp-mat")
    eligible_client(ctx.a, client_id, 300_000)
    t0 = await business_now(ctx)
    await api.order(ctx.client, order_request(task, client_id, t0 + DAY, t0 + 3 * DAY), ctx.task_queue)
    await api.review_materials(ctx.client, task, xg.ReviewMaterialsRequest(operator_id=OPERATOR, verdicts=[
        xg.MaterialVerdict(kind=xg.MaterialKind.LINK, item_id="lp-1", approved=False, reason="unreachable")]))
    result = await finish(ctx, xg.xg_task_workflow_id(task), xgs.TaskResult)
    assert (result.stage, result.refunded_fen) == (xgs.TaskStage.CLOSED, 198_000)
    poor, poor_client = ids(ctx, "rp-poor")
    eligible_client(ctx.a, poor_client, 1_000)
    with pytest.raises(Refused):
        await api.order(ctx.client, order_request(poor, poor_client, t0 + DAY, t0 + 3 * DAY), ctx.task_queue)
    with pytest.raises(ApplicationError) as failure:
        await finish(ctx, xg.xg_task_workflow_id(poor), xgs.TaskResult)
    assert failure.value.type == "TaskNotOrdered"
    await replay_and_maybe_record({"xingguang-materials-refused": await history_json(ctx, task),
                                   "xingguang-not-ordered": await history_json(ctx, poor)})


async def test_replay_a_task_that_continued_as_new(ctx: Ctx) -> None:
    """More billable-event batches than one run takes (MAX_MESSAGES_PER_RUN): the first run ends continued as new,
    the next one starts from the carried state."""
    task, client_id = ids(ctx, "rp-can")
    workflow_id = xg.xg_task_workflow_id(task)
    t0, _ = await ordered_task(ctx, task, client_id, unit_price_fen=10, days=2)
    await published_piece(ctx, task, client_id, "p1", f"a-{ctx.uid}", 10_000)
    await sleep_until(ctx, t0 + DAY + 2 * HOUR)
    batches = [xgp.BillableEventBatch(event_id=f"n{i}", piece_id="p1", count=1, occurred_at=t0 + DAY + HOUR)
               for i in range(MAX_MESSAGES_PER_RUN + 10)]
    to_bound = MAX_MESSAGES_PER_RUN - (await rh.run_info(ctx.client, workflow_id)).messages_this_run
    first_run = await rh.continue_as_new_by_signals(ctx.client, workflow_id, "report_billable_events",
                                                    batches[:to_bound], batches[to_bound:])
    total = len(batches)
    await task_when(ctx, task, lambda s: s.pieces["p1"].billable_events == total)
    result = await finish(ctx, workflow_id, xgs.TaskResult)
    assert result.pieces["p1"].promotion_spend_fen == total * 10
    histories = {"xingguang-continued-as-new": await history_json(ctx, task, first_run),
                 "xingguang-after-continue-as-new": await history_json(ctx, task)}
    assert "WORKFLOW_EXECUTION_CONTINUED_AS_NEW" in histories["xingguang-continued-as-new"]
    await replay_and_maybe_record(histories)


@pytest.mark.parametrize("path", rh.checked_in("xingguang-"), ids=lambda p: p.name)
async def test_xingguang_task_replays_its_checked_in_histories(path: Path) -> None:
    await rh.replay_checked_in(REPLAYER, path)


async def test_replay_r_14_damages_claimed_after_the_task_closed(ctx: Ctx) -> None:
    """XingguangClaimsWorkflow: a claim after close, refused over the cap, then paid; idle a week, it completes."""
    task, client_id = ids(ctx, "rp-late")
    eligible_client(ctx.a, client_id, 300_000)
    t0 = await business_now(ctx)
    await api.order(ctx.client, order_request(task, client_id, t0 + DAY, t0 + 3 * DAY), ctx.task_queue)
    await api.review_materials(ctx.client, task, xg.ReviewMaterialsRequest(operator_id=OPERATOR, verdicts=[
        xg.MaterialVerdict(kind=xg.MaterialKind.COMPONENT, item_id="app-card-1", approved=False,
                           reason="the download link is broken")]))
    await finish(ctx, xg.xg_task_workflow_id(task), xgs.TaskResult)
    with pytest.raises(Refused):
        await api.compensate(ctx.client, task, xg.CompensateRequest(
            **PLATFORM_FAULT, operator_id=OPERATOR, compensation_id="d1", kind=xg.CompensationKind.DAMAGES,
            amount_fen=39_601, loss_fen=50_000, note="review lost the client's materials"), ctx.task_queue)
    paid = await api.compensate(ctx.client, task, xg.CompensateRequest(
        **PLATFORM_FAULT, operator_id=OPERATOR, compensation_id="d1", kind=xg.CompensationKind.DAMAGES,
        amount_fen=39_600, loss_fen=50_000, note="review lost the client's materials"), ctx.task_queue)
    assert (paid.paid_fen, paid.cap_fen) == (39_600, 39_600)
    await ctx.env.sleep(8 * 86_400)
    claims = await finish(ctx, xingguang_claims_id(task), XingguangClaimsView)
    assert [c.amount_fen for c in claims.claims] == [39_600]
    assert ctx.a.ledger.balance(f"client:{client_id}:available").balance_fen == 300_000 + 39_600
    claims_history = await rh.history_json(ctx.client, xingguang_claims_id(task))
    await replay_and_maybe_record({"xingguang-claims-after-close": claims_history})
