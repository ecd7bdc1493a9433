"""Claims against the platform (XG-7, XG-10, R-14): judged by the task's record of pauses, whatever cause the caller
names; the cap offered to the operator; one refusal type per rule, validator or handler."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from starter import xingguang as api
from starter.client import Refused
from tests.conftest import Ctx
from tests.helpers import DAY, finish
from tests.xg_fixtures import HOUR, OPERATOR, PLATFORM_FAULT, ids, notice, ordered_task, sleep_until
from workflows.contract import xingguang as xg
from workflows.contract import xingguang_state as xgs


async def test_xg_7_r_14_a_claim_overlapping_a_pause_is_refused_whatever_the_cause(ctx: Ctx) -> None:
    task, client_id = ids(ctx, "pclaim")
    t0, _ = await ordered_task(ctx, task, client_id, days=5)
    await sleep_until(ctx, t0 + DAY)
    await api.pause(ctx.client, task, xg.PauseRequest(operator_id=OPERATOR, pause_id="z", reason="unlicensed goods",
                                                      **await notice(ctx, t0 + 3 * DAY)))
    await sleep_until(ctx, t0 + 2 * DAY)
    await api.respond_to_pause(ctx.client, task, xg.RespondToPauseRequest(client_id=client_id, pause_id="z",
                                                                          changes_made=True))
    with pytest.raises(ValidationError):  # `cause` has no default: a caller must name one
        xg.CompensateRequest(operator_id=OPERATOR, compensation_id="k0", kind=xg.CompensationKind.DAMAGES,
                             amount_fen=1_000, loss_fen=1_000, note="late", period_start_at=t0,
                             period_end_at=t0 + 2 * DAY)
    for cause in xg.AnomalyCause:
        with pytest.raises(Refused) as refusal:
            await api.compensate(ctx.client, task, xg.CompensateRequest(
                operator_id=OPERATOR, compensation_id=f"k-{cause.value}", kind=xg.CompensationKind.DAMAGES,
                cause=cause, amount_fen=1_000, loss_fen=1_000, note="campaign ran a day late",
                period_start_at=t0 + DAY - HOUR, period_end_at=t0 + DAY + HOUR))
        assert refusal.value.kind == "CompensationRefused"
        assert "overlaps compliance pause z" in refusal.value.reasons[0]
        assert "whatever the cause named (XG-7, XG-10)" in refusal.value.reasons[0]
    # After the pause ended, the same claim is judged on its merits.
    paid = await api.compensate(ctx.client, task, xg.CompensateRequest(
        operator_id=OPERATOR, compensation_id="k1", kind=xg.CompensationKind.DAMAGES, amount_fen=1_000,
        loss_fen=1_000, note="report delivered late", cause=xg.AnomalyCause.PLATFORM_FAULT,
        period_start_at=t0 + 2 * DAY + HOUR, period_end_at=t0 + 2 * DAY + 2 * HOUR))
    assert paid.paid_fen == 1_000
    assert ctx.a.ledger.balance(f"client:{client_id}:available").balance_fen == 300_000 - 198_000 + 1_000
    assert ctx.a.ledger.balance("platform:revenue").balance_fen == -1_000  # paid from an unfunded platform
    assert [r.ref_id for r in (await api.state(ctx.client, task)).compensations] == ["k1"]
    assert ctx.a.ledger.conservation_total() == 0


async def test_xg_10_r_14_a_claim_without_an_amount_is_told_the_most_that_may_be_paid(ctx: Ctx) -> None:
    task, client_id = ids(ctx, "offer")
    await ordered_task(ctx, task, client_id)  # order 198,000: cap 39,600
    await api.compensate(ctx.client, task, xg.CompensateRequest(
        **PLATFORM_FAULT, operator_id=OPERATOR, compensation_id="d1", kind=xg.CompensationKind.DAMAGES,
        amount_fen=9_600, loss_fen=9_600, note="late launch"))
    with pytest.raises(Refused) as refusal:
        await api.compensate(ctx.client, task, xg.CompensateRequest(
            **PLATFORM_FAULT, operator_id=OPERATOR, compensation_id="d2", kind=xg.CompensationKind.DAMAGES,
            loss_fen=50_000, note="second breach"))
    assert refusal.value.kind == "CompensationRefused"
    assert refusal.value.reasons[0].startswith("amount_fen: required; at most 30000 fen may be paid: damages are "
                                               "capped at 39600 fen")
    with pytest.raises(Refused) as refusal:
        await api.compensate(ctx.client, task, xg.CompensateRequest(
            **PLATFORM_FAULT, operator_id=OPERATOR, compensation_id="d2", kind=xg.CompensationKind.DAMAGES,
            note="second breach"))
    assert "at most 30000 fen may be paid" in refusal.value.reasons[0]
    paid = await api.compensate(ctx.client, task, xg.CompensateRequest(
        **PLATFORM_FAULT, operator_id=OPERATOR, compensation_id="d2", kind=xg.CompensationKind.DAMAGES,
        amount_fen=30_000, loss_fen=50_000, note="second breach"))
    assert (paid.paid_fen, paid.cap_fen) == (30_000, 39_600)
    assert ctx.a.ledger.balance("platform:revenue").balance_fen == -39_600
    assert ctx.a.ledger.balance(f"client:{client_id}:available").balance_fen == 102_000 + 39_600
    assert ctx.a.ledger.balance(f"xg_task:{task}:escrow").balance_fen == 198_000  # the order's freeze untouched
    assert ctx.a.ledger.conservation_total() == 0


async def test_r_14_xg_10_damages_claimed_after_close_against_the_same_cap(ctx: Ctx) -> None:
    task, client_id = ids(ctx, "late")
    t0, _ = await ordered_task(ctx, task, client_id, days=3)  # order 198,000: cap 39,600
    await sleep_until(ctx, t0 + HOUR)
    await api.pause(ctx.client, task, xg.PauseRequest(operator_id=OPERATOR, pause_id="z", reason="unlicensed goods",
                                                      **await notice(ctx, t0 + 2 * DAY)))
    await sleep_until(ctx, t0 + 3 * HOUR)
    await api.respond_to_pause(ctx.client, task, xg.RespondToPauseRequest(client_id=client_id, pause_id="z",
                                                                          changes_made=True))
    await api.compensate(ctx.client, task, xg.CompensateRequest(
        **PLATFORM_FAULT, operator_id=OPERATOR, compensation_id="d1", kind=xg.CompensationKind.DAMAGES,
        amount_fen=9_600, loss_fen=9_600, note="late launch"))
    await api.record_violation(ctx.client, task, xg.RecordViolationRequest(
        operator_id=OPERATOR, violation_id="end", cause=xg.TerminationCause.BILLING_OVER_BALANCE_SHORT_OR_CANCELLED,
        note="client cancelled"))
    closed = await finish(ctx, xg.xg_task_workflow_id(task), xgs.TaskResult)
    assert closed.stage is xgs.TaskStage.CLOSED and closed.refunded_fen == 198_000
    assert [p.pause_id for p in closed.pauses] == ["z"]

    def claim(compensation_id: str, **fields: object) -> xg.CompensateRequest:
        base: dict[str, object] = {**PLATFORM_FAULT, "operator_id": OPERATOR, "compensation_id": compensation_id,
                                   "kind": xg.CompensationKind.DAMAGES, "note": "report data lost"}
        return xg.CompensateRequest(**{**base, **fields})

    with pytest.raises(Refused) as refusal:  # the cap is offered: what was paid during the task counts
        await api.compensate(ctx.client, task, claim("d2", loss_fen=50_000), ctx.task_queue)
    assert refusal.value.kind == "CompensationRefused"
    assert refusal.value.reasons[0].startswith("amount_fen: required; at most 30000 fen may be paid: damages are "
                                               "capped at 39600 fen (20% of the order amount 198000 fen, rounded "
                                               "down), 9600 fen already paid")
    with pytest.raises(Refused) as refusal:  # judged by the closed task's pauses, whatever the cause
        await api.compensate(ctx.client, task, claim(
            "d2", loss_fen=50_000, amount_fen=1_000, period_start_at=t0 + 2 * HOUR, period_end_at=t0 + 4 * HOUR),
            ctx.task_queue)
    assert "overlaps compliance pause z" in refusal.value.reasons[0]
    paid = await api.compensate(ctx.client, task, claim("d2", loss_fen=50_000, amount_fen=30_000), ctx.task_queue)
    assert (paid.paid_fen, paid.cap_fen) == (30_000, 39_600)
    again = await api.compensate(ctx.client, task, claim("d2", loss_fen=50_000, amount_fen=30_000), ctx.task_queue)
    assert again == paid
    first = await api.compensate(ctx.client, task, claim("d1", loss_fen=9_600, amount_fen=9_600), ctx.task_queue)
    assert (first.paid_fen, first.cap_fen) == (9_600, 39_600)  # paid during the task: answered, not paid again
    with pytest.raises(Refused) as refusal:
        await api.compensate(ctx.client, task, claim("d3", loss_fen=50_000, amount_fen=1), ctx.task_queue)
    assert "39600 fen already paid" in refusal.value.reasons[0]
    # the full cap paid from an unfunded platform; the client has its whole order back plus the damages.
    assert ctx.a.ledger.balance("platform:revenue").balance_fen == -39_600
    assert ctx.a.ledger.balance(f"client:{client_id}:available").balance_fen == 300_000 + 39_600
    assert ctx.a.ledger.conservation_total() == 0
