"""The platform's controls on a Xingguang task: XG-7 (one-piece pause), XG-8 / R-11 (content deleted, continue after
a fix, freezing the client's balance), XG-10 (compensation and its cap)."""

from __future__ import annotations

import asyncio

import pytest

from starter import xingguang as api
from starter.client import Refused
from tests.conftest import Ctx
from tests.helpers import DAY, finish
from tests.xg_fixtures import (
    CLAIM_PERIOD,
    HOUR,
    OPERATOR,
    PLATFORM_FAULT,
    events,
    ids,
    notice,
    ordered_task,
    published_piece,
    sleep_until,
    task_when,
)
from workflows.contract import xingguang as xg
from workflows.contract import xingguang_state as xgs


class TestXG7OnePiecePause:
    async def test_xg_7_r_9_a_one_piece_pause_stops_and_extends_only_that_piece(self, ctx: Ctx) -> None:
        task, client_id = ids(ctx, "pp")
        t0, _ = await ordered_task(ctx, task, client_id, days=5)
        await published_piece(ctx, task, client_id, "p1", f"c1-{ctx.uid}", 10_000)
        await published_piece(ctx, task, client_id, "p2", f"c2-{ctx.uid}", 10_000)
        await sleep_until(ctx, t0 + 2 * DAY)
        pause = await api.pause(ctx.client, task, xg.PauseRequest(
            operator_id=OPERATOR, pause_id="pp1", piece_id="p1", reason="health claim in the voice-over",
            **await notice(ctx, t0 + 4 * DAY)))
        # JG 十二: no receipt proved, so received when sent; the workflow computes the deadline from it.
        assert pause.notice_sent_at is not None and pause.changes_within_days is not None
        assert pause.notice_received_at == pause.notice_sent_at
        assert pause.changes_due_at == pause.notice_sent_at + pause.changes_within_days * DAY == t0 + 4 * DAY
        await events(ctx, task, "x1", "p1", 10, t0 + 2 * DAY + HOUR)  # paused piece: not billed
        await events(ctx, task, "x2", "p2", 10, t0 + 2 * DAY + HOUR)  # the other piece bills
        await sleep_until(ctx, t0 + 3 * DAY)
        resumed = await api.respond_to_pause(ctx.client, task, xg.RespondToPauseRequest(
            client_id=client_id, pause_id="pp1", changes_made=True))
        assert resumed.resumed_at is not None
        result = await finish(ctx, xg.xg_task_workflow_id(task), xgs.TaskResult)
        final = await api.state(ctx.client, task)
        p1, p2 = final.pieces["p1"], final.pieces["p2"]
        assert p2.promotion_ends_at == t0 + 6 * DAY
        assert p1.promotion_ends_at == t0 + 6 * DAY + (resumed.resumed_at - pause.paused_at)
        assert (p1.billable_events, p2.billable_events) == (0, 10)
        assert result.pieces["p2"].promotion_spend_fen == 500 and result.pieces["p1"].promotion_spend_fen == 0

    async def test_xg_7_the_deadline_runs_from_receipt_and_must_lie_ahead(self, ctx: Ctx) -> None:
        task, client_id = ids(ctx, "ppbad")
        t0, _ = await ordered_task(ctx, task, client_id)
        now = await ctx.env.get_current_time()
        with pytest.raises(Refused) as refusal:
            await api.pause(ctx.client, task, xg.PauseRequest(operator_id=OPERATOR, pause_id="z", reason="r",
                                                              changes_due_at=t0 + DAY))
        assert refusal.value.kind == "PauseRefused"
        assert [r.split(":")[0] for r in refusal.value.reasons] == [
            "changes_due_at", "notice_sent_at", "changes_within_days"]
        with pytest.raises(Refused) as refusal:  # sent 3 days ago with 2 days for changes: already passed
            await api.pause(ctx.client, task, xg.PauseRequest(operator_id=OPERATOR, pause_id="z", reason="r",
                                                              notice_sent_at=now - 3 * DAY, changes_within_days=2))
        assert refusal.value.reasons[0].startswith("the deadline for changes, ")
        assert refusal.value.reasons[0].endswith("has passed")
        # JG 十二: received when sent, unless the client proves a later receipt: the deadline runs from that.
        pause = await api.pause(ctx.client, task, xg.PauseRequest(
            operator_id=OPERATOR, pause_id="z", reason="r", notice_sent_at=now - 3 * DAY,
            notice_received_at=now - HOUR, changes_within_days=2))
        assert pause.notice_received_at == now - HOUR
        assert pause.changes_due_at == now - HOUR + 2 * DAY


    async def test_xg_7_an_operator_may_accept_late_changes_instead_of_cancelling(self, ctx: Ctx) -> None:
        task, client_id = ids(ctx, "late")
        t0, _ = await ordered_task(ctx, task, client_id)
        await api.pause(ctx.client, task, xg.PauseRequest(operator_id=OPERATOR, pause_id="z", reason="claims",
                                                          **await notice(ctx, t0 + DAY)))
        await sleep_until(ctx, t0 + DAY + HOUR)
        await task_when(ctx, task, lambda s: s.escalated)
        with pytest.raises(Refused) as refusal:
            await api.respond_to_pause(ctx.client, task, xg.RespondToPauseRequest(
                client_id=client_id, pause_id="z", changes_made=True))
        assert "an operator may accept the late changes" in refusal.value.reasons[0]
        resumed = await api.respond_to_pause(ctx.client, task, xg.RespondToPauseRequest(
            client_id=client_id, pause_id="z", changes_made=True, late_changes_accepted_by=OPERATOR))
        assert resumed.late_changes_accepted_by == OPERATOR and resumed.deadline_missed
        state = await task_when(ctx, task, lambda s: not s.escalated)
        assert not state.paused and state.stage is xgs.TaskStage.IN_PROGRESS
        # only the part of the pause inside the billing period (from t0 + 1 day) extends it.
        assert resumed.resumed_at is not None
        assert state.promotion_due_to_end_at == t0 + 11 * DAY + (resumed.resumed_at - (t0 + DAY))


    async def test_xg_7_r_9_cancel_twice_answers_the_first_and_another_fee_names_it(self, ctx: Ctx) -> None:
        task, client_id = ids(ctx, "cnl2")
        t0, ordered = await ordered_task(ctx, task, client_id)
        await api.pause(ctx.client, task, xg.PauseRequest(operator_id=OPERATOR, pause_id="z", reason="claims",
                                                          **await notice(ctx, t0 + DAY)))
        await api.respond_to_pause(ctx.client, task, xg.RespondToPauseRequest(client_id=client_id, pause_id="z",
                                                                              changes_made=False))
        cancel = xg.CancelAfterPauseRequest(operator_id=OPERATOR, pause_id="z", delay_fee_fen=1_500,
                                            delay_fee_reason="one day of held production")
        first = await api.cancel_after_pause(ctx.client, task, cancel)
        assert first.end_reason == f"cancelled after pause z by {OPERATOR}: changes refused"
        assert await api.cancel_after_pause(ctx.client, task, cancel) == first
        with pytest.raises(Refused) as refusal:
            await api.cancel_after_pause(ctx.client, task, cancel.model_copy(update={"delay_fee_fen": 900}))
        assert refusal.value.kind == "XingguangStepRefused"
        assert refusal.value.reasons[0].startswith(f"pause_id: task {task} was already cancelled after pause z at ")
        assert f"by {OPERATOR} with a delay fee of 1500 fen" in refusal.value.reasons[0]
        assert refusal.value.reasons[1:] == ["delay_fee_fen: cancelled with 1500, this asks 900"]
        result = await finish(ctx, xg.xg_task_workflow_id(task), xgs.TaskResult)
        assert (result.delay_fee_fen, result.refunded_fen) == (1_500, ordered.terms.frozen_fen - 1_500)
        assert ctx.a.ledger.balance(f"client:{client_id}:available").balance_fen == 300_000 - 1_500
        assert len(ctx.a.ledger.transfers(business_key_prefix=f"xg:charge:{task}:delay_fee")) == 1
        ctx.a.ledger.check_conservation()


class TestXG8Violations:
    async def test_xg_8_r_11_content_deleted_stops_that_piece_and_waits_for_a_decision(self, ctx: Ctx) -> None:
        task, client_id = ids(ctx, "del")
        t0, _ = await ordered_task(ctx, task, client_id, days=5)
        await published_piece(ctx, task, client_id, "p1", f"c1-{ctx.uid}", 10_000)
        await published_piece(ctx, task, client_id, "p2", f"c2-{ctx.uid}", 10_000)
        await sleep_until(ctx, t0 + 2 * DAY)
        await events(ctx, task, "y1", "p1", 20, t0 + DAY + HOUR)
        recorded = await api.record_violation(ctx.client, task, xg.RecordViolationRequest(
            operator_id=OPERATOR, violation_id="v1", cause=xg.TerminationCause.CONTENT_DELETED_OR_NON_PUBLIC,
            piece_id="p1", note="creator made the video private"))
        deleted_at = recorded.applied_at
        assert (await api.state(ctx.client, task)).pieces["p1"].promotion_ends_at == deleted_at
        assert recorded.stage is xgs.TaskStage.IN_PROGRESS  # the other piece goes on
        await events(ctx, task, "y2", "p1", 20, deleted_at + HOUR)  # after the stop: not billed
        await sleep_until(ctx, t0 + 9 * DAY)
        waiting = await task_when(ctx, task, lambda s: s.pieces["p2"].stage is xgs.PieceStage.SETTLED)
        assert waiting.escalated and waiting.pieces["p1"].decision_needed
        await api.decide_piece(ctx.client, task, xg.DecidePieceRequest(
            operator_id=OPERATOR, piece_id="p1", settle=False, note="deleted by its creator"))
        result = await finish(ctx, xg.xg_task_workflow_id(task), xgs.TaskResult)
        assert result.pieces["p1"].creator_earnings_fen == 0 and result.pieces["p1"].promotion_spend_fen == 1_000
        assert result.pieces["p2"].creator_earnings_fen == 10_000

    async def test_xg_8_continue_after_fix_holds_billing_until_proof_and_extends_the_period(self, ctx: Ctx) -> None:
        task, client_id = ids(ctx, "fix")
        t0, _ = await ordered_task(ctx, task, client_id, days=5)
        await published_piece(ctx, task, client_id, "p1", f"c1-{ctx.uid}", 10_000)
        await sleep_until(ctx, t0 + 2 * DAY)
        held = await api.record_violation(ctx.client, task, xg.RecordViolationRequest(
            operator_id=OPERATOR, violation_id="v2", cause=xg.TerminationCause.COMPONENT_OR_LANDING_PAGE_FAULT,
            note="download card points to a removed app", decision=xg.ViolationDecision.CONTINUE_AFTER_FIX))
        assert held.paused and held.stage is xgs.TaskStage.IN_PROGRESS
        await events(ctx, task, "z1", "p1", 10, t0 + 2 * DAY + HOUR)  # while held: not billed
        await sleep_until(ctx, t0 + 3 * DAY)
        resumed = await api.submit_fix_proof(ctx.client, task, xg.SubmitFixProofRequest(
            violation_id="v2", submitted_by=client_id, proof="app re-listed, store link attached"))
        assert not resumed.paused
        violation = (await api.state(ctx.client, task)).violations[0]
        assert violation.resumed_at == resumed.applied_at and violation.recorded_at == held.applied_at
        with pytest.raises(Refused):
            await api.submit_fix_proof(ctx.client, task, xg.SubmitFixProofRequest(
                violation_id="v2", submitted_by=client_id, proof="again"))
        await events(ctx, task, "z2", "p1", 10, t0 + 3 * DAY + HOUR)
        await finish(ctx, xg.xg_task_workflow_id(task), xgs.TaskResult)
        final = await api.state(ctx.client, task)
        assert final.pieces["p1"].billable_events == 10
        assert final.pieces["p1"].promotion_ends_at == t0 + 6 * DAY + (violation.resumed_at - violation.recorded_at)

    async def test_xg_8_freeze_of_the_client_balance_is_held_with_its_reason(self, ctx: Ctx) -> None:
        task, client_id = ids(ctx, "frz")
        await ordered_task(ctx, task, client_id, balance_fen=300_000)
        result = await api.penalize(ctx.client, task, xg.PenalizeRequest(
            operator_id=OPERATOR, penalty_id="f1", action=xg.PenaltyAction.FREEZE, amount_fen=50_000,
            reason="XG-8: spokesperson under investigation"))
        assert result.amount_fen == 50_000
        balance = ctx.a.ledger.balance(f"client:{client_id}:available")
        assert (balance.balance_fen, balance.available_fen) == (102_000, 52_000)
        [hold] = ctx.a.ledger.transfers(business_key_prefix=f"xg:penalty:{task}:f1")
        assert (hold.memo, hold.status) == ("XG-8: spokesperson under investigation", "pending")
        with pytest.raises(Refused) as refusal:
            await api.penalize(ctx.client, task, xg.PenalizeRequest(
                operator_id=OPERATOR, penalty_id="f2", action=xg.PenaltyAction.FREEZE, amount_fen=52_001,
                reason="more"))
        assert refusal.value.kind == "PenaltyRefused"
        assert ctx.a.ledger.balance(f"client:{client_id}:available").available_fen == 52_000


class TestXG10Compensation:
    async def test_xg_10_anomaly_compensation_is_paid_to_the_client_from_platform_revenue(self, ctx: Ctx) -> None:
        task, client_id = ids(ctx, "comp")
        await ordered_task(ctx, task, client_id, balance_fen=300_000)
        paid = await api.compensate(ctx.client, task, xg.CompensateRequest(**PLATFORM_FAULT, 
            operator_id=OPERATOR, compensation_id="k1", kind=xg.CompensationKind.DELIVERY_ANOMALY, amount_fen=3_000,
            policy="2026-11 delivery anomaly policy", note="ads served to the wrong region for 2 h"))
        assert (paid.paid_fen, paid.cap_fen) == (3_000, None)
        assert ctx.a.ledger.balance(f"client:{client_id}:available").balance_fen == 102_000 + 3_000
        assert ctx.a.ledger.balance("platform:revenue").balance_fen == -3_000  # unfunded, paid anyway
        again = await api.compensate(ctx.client, task, xg.CompensateRequest(**PLATFORM_FAULT, 
            operator_id=OPERATOR, compensation_id="k1", kind=xg.CompensationKind.DELIVERY_ANOMALY, amount_fen=3_000,
            policy="2026-11 delivery anomaly policy", note="ads served to the wrong region for 2 h"))
        assert again == paid
        assert ctx.a.ledger.balance(f"client:{client_id}:available").balance_fen == 105_000
        assert ctx.a.ledger.balance("platform:revenue").balance_fen == -3_000  # paid once
        assert ctx.a.ledger.conservation_total() == 0

    async def test_xg_7_xg_10_pause_delays_and_announced_changes_earn_no_compensation(self, ctx: Ctx) -> None:
        task, client_id = ids(ctx, "nocomp")
        await ordered_task(ctx, task, client_id)
        for cause in (xg.AnomalyCause.COMPLIANCE_PAUSE, xg.AnomalyCause.ANNOUNCED_SERVICE_CHANGE):
            with pytest.raises(Refused) as refusal:
                await api.compensate(ctx.client, task, xg.CompensateRequest(
                    **CLAIM_PERIOD, operator_id=OPERATOR, compensation_id=f"k-{cause.value}",
                    kind=xg.CompensationKind.DELIVERY_ANOMALY, cause=cause, amount_fen=100, policy="policy",
                    note="delay"))
            assert refusal.value.reasons == [(f"cause: {cause.value} is not a delivery anomaly the platform caused: "
                                             "no compensation (XG-7, XG-10)")]
        assert (await api.state(ctx.client, task)).compensations == []

    async def test_xg_10_r_14_damages_capped_at_twenty_percent_are_paid_in_full_on_a_fresh_ledger(
            self, ctx: Ctx) -> None:
        task, client_id = ids(ctx, "cap")
        await ordered_task(ctx, task, client_id, balance_fen=300_000, placement_budget_fen=100_005)
        # Order amount frozen: 198,006; cap floor(39,601.2) = 39,601.
        with pytest.raises(Refused) as refusal:
            await api.compensate(ctx.client, task, xg.CompensateRequest(**PLATFORM_FAULT, 
                operator_id=OPERATOR, compensation_id="d1", kind=xg.CompensationKind.DAMAGES, amount_fen=39_602,
                loss_fen=60_000, note="campaign launched a day late by platform error"))
        assert "damages are capped at 39601 fen (20% of the order amount 198006 fen, rounded down)" in \
            refusal.value.reasons[0]
        assert refusal.value.kind == "CompensationRefused"  # the validator's refusal
        with pytest.raises(Refused):
            await api.compensate(ctx.client, task, xg.CompensateRequest(**PLATFORM_FAULT, 
                operator_id=OPERATOR, compensation_id="d1", kind=xg.CompensationKind.DAMAGES, amount_fen=1_001,
                loss_fen=1_000, note="above the loss"))
        paid = await api.compensate(ctx.client, task, xg.CompensateRequest(**PLATFORM_FAULT, 
            operator_id=OPERATOR, compensation_id="d1", kind=xg.CompensationKind.DAMAGES, amount_fen=39_601,
            loss_fen=60_000, note="campaign launched a day late by platform error"))
        assert (paid.paid_fen, paid.cap_fen) == (39_601, 39_601)
        with pytest.raises(Refused) as refusal:
            await api.compensate(ctx.client, task, xg.CompensateRequest(**PLATFORM_FAULT, 
                operator_id=OPERATOR, compensation_id="d2", kind=xg.CompensationKind.DAMAGES, amount_fen=1,
                loss_fen=60_000, note="more"))
        assert "39601 fen already paid" in refusal.value.reasons[0]
        assert ctx.a.ledger.balance(f"client:{client_id}:available").balance_fen == 300_000 - 198_006 + 39_601
        assert ctx.a.ledger.balance("platform:revenue").balance_fen == -39_601  # a fresh ledger, paid in full
        assert ctx.a.ledger.conservation_total() == 0


class TestXG10ConcurrentDamages:
    async def test_xg_10_concurrent_damages_never_pass_the_cap_together(self, ctx: Ctx) -> None:
        task, client_id = ids(ctx, "race")
        await ordered_task(ctx, task, client_id, balance_fen=300_000)  # order 198,000: cap 39,600
        requests = [xg.CompensateRequest(**PLATFORM_FAULT, operator_id=OPERATOR, compensation_id=f"d{i}",
                                         kind=xg.CompensationKind.DAMAGES, amount_fen=30_000, loss_fen=30_000,
                                         note="late launch") for i in (1, 2)]
        outcomes = await asyncio.gather(*(api.compensate(ctx.client, task, r) for r in requests),
                                        return_exceptions=True)
        paid = [o for o in outcomes if isinstance(o, xg.CompensationResult)]
        refusals = [o for o in outcomes if isinstance(o, Refused)]
        assert len(paid) == 1 and len(refusals) == 1, outcomes
        assert "damages are capped at 39600 fen" in refusals[0].reasons[0]
        # One type for the cap, whether the validator refuses the second claim or the handler does (it passed the
        # validator while the first was paying, and is judged again once the first is paid).
        assert refusals[0].kind == "CompensationRefused"
        assert ctx.a.ledger.balance(f"client:{client_id}:available").balance_fen == 102_000 + 30_000
        assert ctx.a.ledger.balance("platform:revenue").balance_fen == -30_000
        assert ctx.a.ledger.conservation_total() == 0
        assert len((await api.state(ctx.client, task)).compensations) == 1
