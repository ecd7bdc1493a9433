"""Whole Xingguang tasks checked against tables written by hand (R-5, R-8, R-9, XG-4..XG-8, XG-11).

Scenario 1: four pieces (one revised twice, one rejected by the client, one approved by the client's silence, one
objected to within 3 days), a compliance pause of the whole task that resumes, promotion data with a cheating batch
and a duplicate, and settlement with conservation (R-8)."""

from __future__ import annotations

from datetime import timedelta

import pytest

from starter import xingguang as api
from starter.client import Refused
from tests.conftest import Ctx
from tests.helpers import DAY, finish
from tests.xg_fixtures import (
    HOUR,
    OPERATOR,
    billed,
    client_says,
    events,
    notice,
    ordered_task,
    piece_when,
    provider_says,
    replays,
    select,
    sleep_until,
    submit,
    task_when,
    xg_money,
)
from workflows.contract import xingguang as xg
from workflows.contract import xingguang_pieces as xgp
from workflows.contract import xingguang_state as xgs
from workflows.rules.eligibility import CreatorKind

SECOND = timedelta(seconds=1)


async def test_r_5_r_8_four_pieces_pause_cheating_duplicate_and_settlement(ctx: Ctx) -> None:
    task, client_id = f"xg-s1-{ctx.uid}", f"cl-{ctx.uid}"
    A, B, C, D, M = (f"{x}-{ctx.uid}" for x in ("a", "b", "c", "d", "m"))
    # Placement budget 100,000, unit price 50, creator earnings budget 80,000, platform fee 10%, provider fee 5%,
    # client confirms content within 48 h; billing period [t0+1d, t0+11d).
    t0, ordered = await ordered_task(ctx, task, client_id, balance_fen=300_000)
    assert ordered.terms.frozen_fen == 198_000  # 100,000 + 80,000 + 10% of 180,000
    billing_start = t0 + DAY
    ctx.a.directory.put_agency(M)

    # P1: sent back twice by the provider, then approved by provider and client.
    await select(ctx, task, "p1", A, 20_000)
    for reason in ("logo too small", "missing ad disclosure"):
        await submit(ctx, task, "p1", A, "content-p1")
        await provider_says(ctx, task, "p1", False, reason)
    await submit(ctx, task, "p1", A, "content-p1")
    await provider_says(ctx, task, "p1", True)
    await client_says(ctx, task, client_id, "p1", True)
    # P2: rejected by the client once (back to revision), then approved.
    await select(ctx, task, "p2", B, 15_005)
    await submit(ctx, task, "p2", B, "content-p2")
    await provider_says(ctx, task, "p2", True)
    await client_says(ctx, task, client_id, "p2", False, "off-brand colours")
    await submit(ctx, task, "p2", B, "content-p2")
    await provider_says(ctx, task, "p2", True)
    await client_says(ctx, task, client_id, "p2", True)
    # P3: an MCN creator (paid through agency M); the client stays silent.
    await select(ctx, task, "p3", C, 25_000, kind=CreatorKind.MCN, agency_id=M)
    await submit(ctx, task, "p3", C, "content-p3")
    p3_reviewed = await provider_says(ctx, task, "p3", True)
    assert p3_reviewed.client_review_due_at is not None
    # P4: approved, objected to within 3 days, objection upheld.
    await select(ctx, task, "p4", D, 10_000)
    await submit(ctx, task, "p4", D, "content-p4")
    await provider_says(ctx, task, "p4", True)
    await client_says(ctx, task, client_id, "p4", True)

    state = await api.state(ctx.client, task)
    p1, p2, p4 = state.pieces["p1"], state.pieces["p2"], state.pieces["p4"]
    assert (p1.revisions, p2.revisions, p1.stage, p2.stage) == (2, 1, xgs.PieceStage.PUBLISHED,
                                                                xgs.PieceStage.PUBLISHED)
    assert [r.reason for r in p1.reviews if not r.approved] == ["logo too small", "missing ad disclosure"]
    assert [(r.by, r.approved) for r in p2.reviews] == [("provider", True), ("client", False), ("provider", True),
                                                        ("client", True)]
    for piece in (p1, p2, p4):  # published before the billing period: promoted from its start (XG-6)
        assert piece.promotion_starts_at == billing_start
        assert piece.licence is not None and piece.licence.licensee_client_id == client_id  # XG-11
        assert piece.objection_window_closes_at == piece.published_at + 3 * DAY  # type: ignore[operator]

    # Day 1: promotion data; a duplicate and a cheating batch.
    await sleep_until(ctx, t0 + DAY + 2 * HOUR)
    await events(ctx, task, "e1", "p1", 100, t0 + DAY + HOUR)
    await events(ctx, task, "e1", "p1", 100, t0 + DAY + HOUR)  # duplicate: billed once
    await events(ctx, task, "e2", "p2", 60, t0 + DAY + HOUR)
    await events(ctx, task, "e2-cheat", "p2", 500, t0 + DAY + HOUR, cheating=True)
    await events(ctx, task, "e3", "p4", 40, t0 + DAY + HOUR)
    await events(ctx, task, "e0-early", "p1", 7, t0 + 2 * HOUR)  # before the billing period: never billed
    # Day 2: the client's silence approved P3 at its deadline; it is published then (XG-4).
    await sleep_until(ctx, t0 + 2 * DAY + HOUR)
    p3 = await piece_when(ctx, task, "p3", lambda p: p.published_at is not None)
    assert p3.reviews[-1].by == "client_silence" and p3.approved_at == p3_reviewed.client_review_due_at
    assert p3.published_at == p3.approved_at == p3.promotion_starts_at
    # The client objects to P4 within 3 days; the operator upholds it and sets its amounts (XG-5).
    await events(ctx, task, "e4", "p4", 20, t0 + 2 * DAY + HOUR - 30 * 60 * SECOND)
    await api.raise_objection(ctx.client, task, xgp.RaiseObjectionRequest(
        client_id=client_id, piece_id="p4", reason="shows a competitor's logo"))
    await task_when(ctx, task, lambda s: s.pieces["p4"].billed_spend_fen == 3_000)
    await sleep_until(ctx, t0 + 2 * DAY + 2 * HOUR)
    await api.decide_objection(ctx.client, task, xgp.DecideObjectionRequest(
        operator_id=OPERATOR, piece_id="p4", upheld=True, creator_earnings_fen=5_000, promotion_spend_fen=2_000,
        note="competitor logo visible for 3 s"))
    p4 = await piece_when(ctx, task, "p4", lambda p: p.stage is xgs.PieceStage.SETTLED)

    # Day 3: a compliance pause of the whole task; changes made on day 4 (XG-7, R-9).
    await sleep_until(ctx, t0 + 3 * DAY)
    pause = await api.pause(ctx.client, task, xg.PauseRequest(
        operator_id=OPERATOR, pause_id="pz1", reason="landing page claims 'best in China'",
        **await notice(ctx, t0 + 5 * DAY)))
    await events(ctx, task, "e5-paused", "p1", 30, pause.paused_at + 6 * HOUR)  # inside the pause: not billed
    await sleep_until(ctx, t0 + 4 * DAY)
    paused_state = await api.state(ctx.client, task)
    assert paused_state.paused and paused_state.pieces["p1"].billable_events == 100
    resumed = await api.respond_to_pause(ctx.client, task, xg.RespondToPauseRequest(
        client_id=client_id, pause_id="pz1", changes_made=True, note="claim removed"))
    assert resumed.resumed_at is not None
    pause_length = resumed.resumed_at - pause.paused_at
    # After the pause: more data; a cheating batch on P3.
    await sleep_until(ctx, t0 + 6 * DAY + HOUR)
    await events(ctx, task, "e6", "p1", 200, t0 + 5 * DAY)
    await events(ctx, task, "e7", "p2", 100, t0 + 6 * DAY)
    await events(ctx, task, "e8", "p3", 300, t0 + 6 * DAY)
    await events(ctx, task, "e9-cheat", "p3", 50, t0 + 6 * DAY, cheating=True)
    await task_when(ctx, task, lambda s: s.pieces["p3"].billable_events == 300)

    result = await finish(ctx, xg.xg_task_workflow_id(task), xgs.TaskResult)
    final = await api.state(ctx.client, task)

    # The billing period is extended by the pause; each piece settles at its publicity window's close.
    billing_end = t0 + 11 * DAY + pause_length
    #        events, earnings, spend,  platform fee, provider fee, payee
    expected = {
        "p1": (100 + 200, 20_000, 15_000, 3_500, 1_000, f"creator:{A}:payable"),
        "p2": (60 + 100, 15_005, 8_000, 2_301, 750, f"creator:{B}:payable"),  # 10% of 23,005 = 2,300.5 -> 2,301
        "p3": (300, 25_000, 15_000, 4_000, 1_250, f"agency:{M}:payable"),
        "p4": (60, 5_000, 2_000, 700, 250, f"creator:{D}:payable"),  # operator's amounts (objection upheld)
    }
    for pid, (n, earnings, spend, fee, provider_fee, payee) in expected.items():
        piece = final.pieces[pid]
        assert piece.stage is xgs.PieceStage.SETTLED, pid
        assert piece.billable_events == n, pid
        assert piece.settlement == xgs.PieceMoney(creator_earnings_fen=earnings, promotion_spend_fen=spend,
                                                  platform_fee_fen=fee, provider_fee_fen=provider_fee,
                                                  payee_account=payee), pid
        assert ctx.a.ledger.balance(payee).balance_fen == earnings, pid
    for pid in ("p1", "p2", "p3"):
        piece = final.pieces[pid]
        assert piece.promotion_ends_at == billing_end, pid
        assert piece.publicity_window_closes_at == billing_end + 3 * DAY, pid
        assert piece.settled_at is not None
        assert billing_end + 3 * DAY <= piece.settled_at < billing_end + 3 * DAY + 2 * SECOND, pid
    assert p4.promotion_ends_at == p4.objection.decided_at  # type: ignore[union-attr]
    assert final.pauses[0].resumed_at == resumed.resumed_at

    # frozen = creators + promotion spend + platform fees + refund; platform fees = revenue + provider fees.
    assert (result.frozen_fen, result.paid_to_creators_fen, result.promotion_spend_fen, result.platform_fees_fen,
            result.provider_fees_fen, result.refunded_fen) == (198_000, 65_005, 40_000, 10_501, 3_250, 82_494)
    assert 198_000 == 65_005 + 40_000 + 10_501 + 82_494
    money = xg_money(ctx, task, client_id)
    assert (money["frozen"], money["creators"], money["promotion"], money["platform_fee"], money["provider_fee"],
            money["refund"], money["escrow"]) == (198_000, 65_005, 40_000, 10_501, 3_250, 82_494, 0)
    assert ctx.a.ledger.balance("platform:revenue").balance_fen == 10_501 - 3_250
    assert ctx.a.ledger.balance(f"provider:{'prov-1'}:payable").balance_fen == 3_250
    assert ctx.a.ledger.balance(f"client:{client_id}:available").balance_fen == 300_000 - 198_000 + 82_494
    assert ctx.a.ledger.conservation_total() == 0
    ctx.a.ledger.check_conservation()
    assert final.stage is xgs.TaskStage.CLOSED and not final.escalated

    await replays(ctx, xg.xg_task_workflow_id(task))

async def test_r_9_r_14_pause_with_missed_deadline_then_cancellation_charges_the_fees_of_the_delay(ctx: Ctx) -> None:
    """Scenario 2 (XG-7, R-9): a task-wide pause whose deadline passes; the operator cancels; every piece submitted
    and not rejected, or published, is paid its full earnings; promotion billed so far is charged; a delay fee."""
    task, client_id = f"xg-s2-{ctx.uid}", f"cl-{ctx.uid}"
    A, B, C, D, E = (f"{x}-{ctx.uid}" for x in ("a", "b", "c", "d", "e"))
    t0, ordered = await ordered_task(ctx, task, client_id, balance_fen=300_000)
    await select(ctx, task, "q1", A, 20_000)  # published, promoted
    await submit(ctx, task, "q1", A, "content-q1")
    await provider_says(ctx, task, "q1", True)
    await client_says(ctx, task, client_id, "q1", True)
    await select(ctx, task, "q2", B, 10_000)  # submitted, waiting for the provider's review
    await submit(ctx, task, "q2", B, "content-q2")
    await select(ctx, task, "q3", C, 8_000)  # sent back for revision (rejected): not paid
    await submit(ctx, task, "q3", C, "content-q3")
    await provider_says(ctx, task, "q3", False, "shaky footage")
    await select(ctx, task, "q4", D, 6_000)  # never submitted: not paid
    await select(ctx, task, "q5", E, 7_000)  # approved during the pause: held, not published
    await submit(ctx, task, "q5", E, "content-q5")
    await provider_says(ctx, task, "q5", True)

    await sleep_until(ctx, t0 + DAY + 2 * HOUR)
    await events(ctx, task, "f1", "q1", 100, t0 + DAY + HOUR)
    await sleep_until(ctx, t0 + 2 * DAY)
    await api.pause(ctx.client, task, xg.PauseRequest(
        operator_id=OPERATOR, pause_id="pz", reason="promoted goods lack a licence", **await notice(ctx, t0 + 4 * DAY)))
    await client_says(ctx, task, client_id, "q5", True)
    held = await piece_when(ctx, task, "q5", lambda p: p.stage is xgs.PieceStage.APPROVED)
    assert held.published_at is None  # nothing publishes while paused
    await events(ctx, task, "f2-paused", "q1", 80, t0 + 2 * DAY + HOUR)  # not billed: paused

    early = xg.CancelAfterPauseRequest(operator_id=OPERATOR, pause_id="pz")
    with pytest.raises(Refused) as refusal:
        await api.cancel_after_pause(ctx.client, task, early)
    assert "has until" in refusal.value.reasons[0]

    # The deadline passes without changes: escalated (a paused task past its deadline).
    await sleep_until(ctx, t0 + 4 * DAY + HOUR)
    late = await task_when(ctx, task, lambda s: s.escalated)
    assert late.pauses[0].deadline_missed
    assert late.escalation_reasons == ["pause pz: deadline for changes missed; cancel, or accept late changes"]
    with pytest.raises(Refused) as refusal:
        await api.respond_to_pause(ctx.client, task, xg.RespondToPauseRequest(
            client_id=client_id, pause_id="pz", changes_made=True))
    assert refusal.value.reasons[0].startswith("the deadline for changes passed at ")
    # The delay fee is at most what remains frozen after what is owed: 198,000 - 61,600 = 136,400.
    with pytest.raises(Refused) as refusal:
        await api.cancel_after_pause(ctx.client, task, xg.CancelAfterPauseRequest(
            operator_id=OPERATOR, pause_id="pz", delay_fee_fen=136_401, delay_fee_reason="two days of delay"))
    assert "above what remains frozen (136400 fen)" in refusal.value.reasons[0]
    cancelled = await api.cancel_after_pause(ctx.client, task, xg.CancelAfterPauseRequest(
        operator_id=OPERATOR, pause_id="pz", delay_fee_fen=3_000, delay_fee_reason="two days of delay"))
    cancel_at = cancelled.applied_at
    assert cancelled.promotion_stopped_at == cancel_at

    result = await finish(ctx, xg.xg_task_workflow_id(task), xgs.TaskResult)
    final = await api.state(ctx.client, task)
    #          earnings, spend, platform fee, provider fee
    expected = {"q1": (20_000, 5_000, 2_500, 1_000), "q2": (10_000, 0, 1_000, 500), "q5": (7_000, 0, 700, 350)}
    for pid, (earnings, spend, fee, provider_fee) in expected.items():
        piece = final.pieces[pid]
        assert piece.stage is xgs.PieceStage.SETTLED, pid
        assert piece.settlement is not None
        assert (piece.settlement.creator_earnings_fen, piece.settlement.promotion_spend_fen,
                piece.settlement.platform_fee_fen, piece.settlement.provider_fee_fen) == (
            earnings, spend, fee, provider_fee), pid
        assert piece.publicity_window_closes_at == cancel_at + 3 * DAY, pid
    for pid in ("q3", "q4"):
        assert final.pieces[pid].stage is xgs.PieceStage.CLOSED
        assert final.pieces[pid].close_reason == "not published before promotion ended"
    assert final.pieces["q1"].billable_events == 100
    assert (result.paid_to_creators_fen, result.promotion_spend_fen, result.platform_fees_fen,
            result.provider_fees_fen, result.delay_fee_fen, result.refunded_fen) == (
        37_000, 5_000, 4_200, 1_850, 3_000, 148_800)
    assert ordered.terms.frozen_fen == 198_000 == 37_000 + 5_000 + 4_200 + 3_000 + 148_800
    money = xg_money(ctx, task, client_id)
    assert (money["creators"], money["promotion"], money["platform_fee"], money["delay_fee"], money["refund"],
            money["escrow"]) == (37_000, 5_000, 4_200, 3_000, 148_800, 0)
    assert ctx.a.ledger.balance("platform:revenue").balance_fen == 4_200 + 3_000 - 1_850
    # the task's own delay fee is charged before its pieces settle.
    keys = [t.business_key for t in ctx.a.ledger.transfers(business_key_prefix="xg:")
            if f":{task}:" in f"{t.business_key}:"]
    assert keys.index(f"xg:charge:{task}:delay_fee") < min(i for i, k in enumerate(keys) if k.startswith("xg:settle:"))
    assert final.end_reason == f"cancelled after pause pz by {OPERATOR}: deadline for changes missed"
    assert not final.escalated and final.stage is xgs.TaskStage.CLOSED
    ctx.a.ledger.check_conservation()

    await replays(ctx, xg.xg_task_workflow_id(task))

async def test_r_9_r_11_stop_with_one_piece_settled_and_one_declined(ctx: Ctx) -> None:
    """Scenario 3 (XG-8, R-9, R-11): a fault stops the task at once; escalated until every unsettled piece is decided;
    one settled, one declined (its earnings withheld, its promotion billed still charged); a recorded deduction comes
    out of the refund."""
    task, client_id = f"xg-s3-{ctx.uid}", f"cl-{ctx.uid}"
    A, B = f"a-{ctx.uid}", f"b-{ctx.uid}"
    t0, _ = await ordered_task(ctx, task, client_id, balance_fen=300_000)
    for pid, who, earnings in (("r1", A, 20_000), ("r2", B, 10_000)):
        await select(ctx, task, pid, who, earnings)
        await submit(ctx, task, pid, who, f"content-{pid}")
        await provider_says(ctx, task, pid, True)
        await client_says(ctx, task, client_id, pid, True)
    await sleep_until(ctx, t0 + 2 * DAY)
    await events(ctx, task, "g1", "r1", 100, t0 + DAY + HOUR)
    await events(ctx, task, "g2", "r2", 40, t0 + DAY + HOUR)
    await task_when(ctx, task, lambda s: billed(s) == 7_000)

    await sleep_until(ctx, t0 + 3 * DAY)
    stopped = await api.record_violation(ctx.client, task, xg.RecordViolationRequest(
        operator_id=OPERATOR, violation_id="v1", cause=xg.TerminationCause.CHEATING_BYPASS_OR_LAUNDERING,
        note="click farm detected on the landing page", decision=xg.ViolationDecision.STOP))
    stop_at = stopped.promotion_stopped_at
    assert stop_at is not None and stopped.stage is xgs.TaskStage.STOPPED
    waiting = await task_when(ctx, task, lambda s: s.escalated)
    assert waiting.escalation_reasons == ["pieces awaiting a settle-or-decline decision: r1, r2"]
    await events(ctx, task, "g3-after-stop", "r1", 50, stop_at + HOUR)  # after the stop: never billed
    await api.penalize(ctx.client, task, xg.PenalizeRequest(
        operator_id=OPERATOR, penalty_id="pen1", action=xg.PenaltyAction.DEDUCT, amount_fen=1_000,
        reason="XG-8: cheating investigation"))
    await api.decide_piece(ctx.client, task, xg.DecidePieceRequest(
        operator_id=OPERATOR, piece_id="r1", settle=True, note="creator not involved"))
    still = await task_when(ctx, task, lambda s: s.pieces["r1"].stage is xgs.PieceStage.SETTLED)
    assert still.escalated and still.escalation_reasons == ["pieces awaiting a settle-or-decline decision: r2"]
    await api.decide_piece(ctx.client, task, xg.DecidePieceRequest(
        operator_id=OPERATOR, piece_id="r2", settle=False, note="creator ran the click farm"))

    result = await finish(ctx, xg.xg_task_workflow_id(task), xgs.TaskResult)
    final = await api.state(ctx.client, task)
    r1, r2 = final.pieces["r1"], final.pieces["r2"]
    assert r1.stage is xgs.PieceStage.SETTLED and r2.stage is xgs.PieceStage.CLOSED
    assert r1.settlement == xgs.PieceMoney(creator_earnings_fen=20_000, promotion_spend_fen=5_000,
                                           platform_fee_fen=2_500, provider_fee_fen=1_000,
                                           payee_account=f"creator:{A}:payable")
    assert r2.settlement == xgs.PieceMoney(creator_earnings_fen=0, promotion_spend_fen=2_000, platform_fee_fen=200,
                                           provider_fee_fen=0, payee_account=f"creator:{B}:payable")
    assert r1.promotion_ends_at == r2.promotion_ends_at == stop_at
    assert r1.billable_events == 100
    # 198,000 = 20,000 + 7,000 + 2,700 + 1,000 deducted + 167,300 refunded
    assert (result.paid_to_creators_fen, result.promotion_spend_fen, result.platform_fees_fen,
            result.deducted_fen, result.refunded_fen) == (20_000, 7_000, 2_700, 1_000, 167_300)
    assert ctx.a.ledger.balance(f"creator:{B}:payable").balance_fen == 0
    assert ctx.a.ledger.balance(f"client:{client_id}:available").balance_fen == 300_000 - 198_000 + 167_300
    assert final.stage is xgs.TaskStage.CLOSED and not final.escalated
    assert final.end_reason == "stopped: cheating_bypass_or_laundering: click farm detected on the landing page"
    ctx.a.ledger.check_conservation()
    await replays(ctx, xg.xg_task_workflow_id(task))
