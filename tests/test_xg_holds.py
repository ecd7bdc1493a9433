"""R-13 on Xingguang: a freeze of a party's fees holds every XG piece settlement that would pay that party (AM-19),
the rest of the task goes on, and the case's outcome releases it (AM-22): paid once, or paid and deducted."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from temporalio.api.sdk.v1 import WorkflowMetadata

from starter import violations
from tests import replay_helpers as rh
from tests.conftest import Ctx
from tests.helpers import DAY, business_now, creator, finish
from tests.penalty_task_helpers import case_in_force, decide, lift
from tests.test_xg_fixtures import (
    HOUR,
    events,
    ids,
    ordered_task,
    published_piece,
    sleep_until,
    task_when,
    xg_money,
)
from tests.violation_helpers import case_when, earn, fixed_calendar, register
from workflows.contract import violation_case as vc
from workflows.contract import xingguang as xg
from workflows.rules.eligibility import CreatorKind
from workflows.xingguang_task import XingguangTaskWorkflow

THIRTY_DAYS = fixed_calendar(30 * DAY)
FREEZE_ALL = vc.Penalty(kind=vc.PenaltyKind.FREEZE_FEES)
SECOND = timedelta(seconds=1)
REPLAYER = rh.replayer(XingguangTaskWorkflow)


async def details(ctx: Ctx, task: str) -> str:
    metadata = await ctx.client.get_workflow_handle(xg.xg_task_workflow_id(task)).query(
        "__temporal_workflow_metadata", result_type=WorkflowMetadata)
    return metadata.current_details


async def two_pieces(ctx: Ctx, task: str, client_id: str, held: str, other: str, **kind: object) -> datetime:
    """A 2-day task: p1 of `held` (10,000 fen earnings, 100 events = 5,000 fen spend), p2 of `other` (5,000 fen, no
    events); returns t0 (billing runs t0+1d..t0+3d, publicity windows close at t0+6d)."""
    t0, _ = await ordered_task(ctx, task, client_id, days=2)
    await published_piece(ctx, task, client_id, "p1", held, 10_000, **kind)
    await published_piece(ctx, task, client_id, "p2", other, 5_000)
    return t0


async def held_while_the_other_settles(ctx: Ctx, task: str, t0: datetime, case: str) -> xg.Piece:
    await sleep_until(ctx, t0 + DAY + 2 * HOUR)
    await events(ctx, task, "e1", "p1", 100, t0 + DAY + HOUR)
    await sleep_until(ctx, t0 + 6 * DAY + HOUR)
    state = await task_when(ctx, task, lambda s: s.pieces["p2"].stage is xg.PieceStage.SETTLED
                            and s.pieces["p1"].settlement_hold is not None)
    p1 = state.pieces["p1"]
    assert p1.settlement_hold is not None and p1.publicity_window_closes_at is not None
    assert (p1.stage, p1.settlement, p1.settlement_hold.case_id) == (xg.PieceStage.PUBLICITY, None, case)
    assert p1.publicity_window_closes_at <= p1.settlement_hold.held_at < p1.publicity_window_closes_at + 2 * SECOND
    assert p1.settlement_hold.released_at is None
    assert state.stage is xg.TaskStage.SETTLING and state.refunded_fen == 0  # the refund waits for p1
    assert ctx.a.ledger.transfers(business_key_prefix=f"xg:settle:{task}:p1") == []
    assert ctx.a.ledger.transfers(business_key_prefix=f"xg:refund:{task}") == []
    assert f"piece p1 held by case {case}" in await details(ctx, task)
    # Still held half a day later (before any appeal window closes): the task waits, nothing more is paid.
    await ctx.env.sleep(12 * HOUR.total_seconds())
    later = await task_when(ctx, task, lambda s: True)
    assert later.pieces["p1"].settlement is None and later.stage is xg.TaskStage.SETTLING
    return p1


def assert_settled_once(ctx: Ctx, task: str, client_id: str, result: xg.TaskResult) -> None:
    """R-8 / R-4 to the fen: p1 10,000 + 5,000 spend, fee 1,500, provider 500; p2 5,000, fee 500, provider 250."""
    assert result.pieces["p1"] == xg.PieceMoney(creator_earnings_fen=10_000, promotion_spend_fen=5_000,
                                                platform_fee_fen=1_500, provider_fee_fen=500,
                                                payee_account=result.pieces["p1"].payee_account)
    assert (result.frozen_fen, result.paid_to_creators_fen, result.promotion_spend_fen, result.platform_fees_fen,
            result.provider_fees_fen, result.refunded_fen) == (198_000, 15_000, 5_000, 2_000, 750, 176_000)
    assert 198_000 == 15_000 + 5_000 + 2_000 + 176_000
    money = xg_money(ctx, task, client_id)
    assert (money["frozen"], money["creators"], money["promotion"], money["platform_fee"], money["provider_fee"],
            money["refund"], money["escrow"]) == (198_000, 15_000, 5_000, 2_000, 750, 176_000, 0)
    earnings = [t for t in ctx.a.ledger.transfers(business_key_prefix=f"xg:settle:{task}:p1")
                if t.kind == "xg_creator_earnings"]
    assert [t.amount_fen for t in earnings] == [10_000]  # paid exactly once
    assert ctx.a.ledger.balance(f"client:{client_id}:available").balance_fen == 300_000 - 198_000 + 176_000
    assert ctx.a.ledger.conservation_total() == 0
    ctx.a.ledger.check_conservation()


class TestR13HoldsReachXingguang:
    @pytest.mark.replace_activities.with_args(THIRTY_DAYS)
    async def test_r_13_xg_creator_fee_freeze_holds_their_piece_until_an_upheld_appeal(self, ctx: Ctx) -> None:
        task, client_id = ids(ctx, "r13c")
        case, a, b = f"v-{ctx.uid}", f"a-{ctx.uid}", f"b-{ctx.uid}"
        t0 = await two_pieces(ctx, task, client_id, a, b)
        earn(ctx.a, a, 700, f"seed-{ctx.uid}")
        state = await case_in_force(ctx, case, a, await business_now(ctx), FREEZE_ALL)
        assert state.penalties[0].frozen_fen == 700  # the creator's unwithdrawn fees
        await violations.appeal(ctx.client, case, vc.AppealRequest(party_id=a, reason="the users were real"))
        await held_while_the_other_settles(ctx, task, t0, case)
        assert ctx.a.ledger.balance(f"creator:{a}:payable").balance_fen == 700
        assert ctx.a.ledger.balance(f"creator:{b}:payable").balance_fen == 5_000  # p2 settled meanwhile

        await violations.decide_appeal(ctx.client, case, vc.DecideAppealRequest(
            decision="upheld", operator_id="op-2", note="reviewed the main site's logs"))
        decided = await case_when(ctx.client, case, lambda s: s.held_settlements.done)
        assert decided.held_settlements.released == 1
        result = await finish(ctx, xg.xg_task_workflow_id(task), xg.TaskResult)
        final = await task_when(ctx, task, lambda s: True)
        hold = final.pieces["p1"].settlement_hold
        assert hold is not None and (hold.outcome, hold.deducted_fen) == ("paid", 0)
        assert final.pieces["p1"].stage is xg.PieceStage.SETTLED and hold.released_at is not None
        assert final.pieces["p1"].settled_at is not None and final.pieces["p1"].settled_at >= hold.released_at
        assert_settled_once(ctx, task, client_id, result)
        creator = ctx.a.ledger.balance(f"creator:{a}:payable")
        assert (creator.balance_fen, creator.available_fen) == (10_700, 10_700)
        assert register(ctx.a).held_settlements(a) == [(xg.piece_hold_key(task, "p1"), case, "paid")]
        # The held-then-released path as a history (tests/test_xg_replay.py replays the checked-in file).
        history = await rh.history_json(ctx.client, xg.xg_task_workflow_id(task))
        await rh.replay_and_maybe_record(REPLAYER, {"xingguang-r13-piece-held-then-released": history},
                                         "RECORD_XG_HISTORIES")

    @pytest.mark.replace_activities.with_args(THIRTY_DAYS)
    async def test_r_13_xg_agency_freeze_holds_its_mcn_creators_piece_until_lifted(self, ctx: Ctx) -> None:
        """Rejected (AM-22): the agency's freeze stands after finality and keeps holding; the operator's lift
        releases the piece, paid to the agency once."""
        task, client_id = ids(ctx, "r13a")
        case, agency, m, b = f"v-{ctx.uid}", f"ag-{ctx.uid}", f"m-{ctx.uid}", f"b-{ctx.uid}"
        payee = f"agency:{agency}:payable"
        ctx.a.directory.put_agency(agency)
        creator(ctx.a, agency, CreatorKind.AGENCY)
        t0 = await two_pieces(ctx, task, client_id, m, b, kind=CreatorKind.MCN, agency_id=agency)
        await case_in_force(ctx, case, agency, await business_now(ctx), FREEZE_ALL)
        decided = await decide(ctx, case, agency, "rejected")
        assert (decided.stage, decided.penalties[0].status) == (vc.CaseStage.FINAL, vc.PenaltyStatus.FINAL)
        p1 = await held_while_the_other_settles(ctx, task, t0, case)
        assert p1.payee_account == payee and p1.creator_id == m
        assert ctx.a.ledger.balance(payee).balance_fen == 0

        lifted = await lift(ctx, case, "p1")
        assert lifted.held_settlements.released == 1
        result = await finish(ctx, xg.xg_task_workflow_id(task), xg.TaskResult)
        assert result.pieces["p1"].payee_account == payee
        assert_settled_once(ctx, task, client_id, result)
        paid = ctx.a.ledger.balance(payee)
        assert (paid.balance_fen, paid.available_fen) == (10_000, 10_000)
        assert register(ctx.a).held_settlements(m) == [(xg.piece_hold_key(task, "p1"), case, "paid")]

    @pytest.mark.replace_activities.with_args(THIRTY_DAYS)
    async def test_r_13_xg_unappealed_deduction_of_all_fees_pays_the_held_piece_then_deducts_it(self, ctx: Ctx
                                                                                               ) -> None:
        """AM-20 / AM-22: a penalty deducting all unwithdrawn fees, final with no appeal, reaches the held piece:
        its earnings are paid into the creator's account once, then go to the platform as the penalty."""
        task, client_id = ids(ctx, "r13d")
        case, a, b = f"v-{ctx.uid}", f"a-{ctx.uid}", f"b-{ctx.uid}"
        t0 = await two_pieces(ctx, task, client_id, a, b)
        earn(ctx.a, a, 700, f"seed-{ctx.uid}")
        in_force = await case_in_force(ctx, case, a, await business_now(ctx),
                                       vc.Penalty(kind=vc.PenaltyKind.DEDUCT_FEES))
        await held_while_the_other_settles(ctx, task, t0, case)
        assert in_force.appeal_window_closes_at is not None
        await sleep_until(ctx, in_force.appeal_window_closes_at + SECOND)  # no appeal: final (AM-20)
        final = await case_when(ctx.client, case, lambda s: s.held_settlements.done)
        assert (final.stage, final.held_settlements.deducted, final.penalties[0].deducted_fen) == (
            vc.CaseStage.CLOSED, 1, 700)  # final, nothing left standing: closed
        result = await finish(ctx, xg.xg_task_workflow_id(task), xg.TaskResult)
        state = await task_when(ctx, task, lambda s: True)
        hold = state.pieces["p1"].settlement_hold
        assert hold is not None and (hold.outcome, hold.deducted_fen) == ("deducted", 10_000)
        assert_settled_once(ctx, task, client_id, result)
        creator_account = ctx.a.ledger.balance(f"creator:{a}:payable")
        assert (creator_account.balance_fen, creator_account.available_fen) == (0, 0)
        deducted = ctx.a.ledger.transfers(business_key_prefix=f"penalty:{case}:held:")
        assert [(t.amount_fen, t.debit_account, t.credit_account) for t in deducted] == [
            (10_000, f"creator:{a}:payable", "platform:penalties")]
        assert ctx.a.ledger.balance("platform:penalties").balance_fen == 700 + 10_000
