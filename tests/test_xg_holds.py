"""R-13 on Xingguang: a freeze of a party's fees holds every XG piece settlement that would pay that party (AM-19),
the rest of the task goes on, and the case's outcome releases it (AM-22): paid once, or paid and deducted."""

from __future__ import annotations

import pytest

from starter import violations
from tests import replay_helpers as rh
from tests.conftest import Ctx
from tests.helpers import business_now, creator, finish
from tests.penalty_task_helpers import case_in_force, decide, lift
from tests.violation_helpers import case_when, earn, register
from tests.xg_fixtures import ids, sleep_until, task_when
from tests.xg_hold_helpers import (
    FREEZE_ALL,
    SECOND,
    THIRTY_DAYS,
    assert_settled_once,
    held_while_the_other_settles,
    two_pieces,
)
from workflows.contract import violation_case as vc
from workflows.contract import xingguang as xg
from workflows.contract import xingguang_pieces as xgp
from workflows.contract import xingguang_state as xgs
from workflows.rules.eligibility import CreatorKind
from workflows.xingguang_task import XingguangTaskWorkflow

REPLAYER = rh.replayer(XingguangTaskWorkflow)


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
        result = await finish(ctx, xg.xg_task_workflow_id(task), xgs.TaskResult)
        final = await task_when(ctx, task, lambda s: True)
        hold = final.pieces["p1"].settlement_hold
        assert hold is not None and (hold.outcome, hold.deducted_fen) == ("paid", 0)
        assert final.pieces["p1"].stage is xgs.PieceStage.SETTLED and hold.released_at is not None
        assert final.pieces["p1"].settled_at is not None and final.pieces["p1"].settled_at >= hold.released_at
        assert_settled_once(ctx, task, client_id, result)
        creator = ctx.a.ledger.balance(f"creator:{a}:payable")
        assert (creator.balance_fen, creator.available_fen) == (10_700, 10_700)
        assert register(ctx.a).held_settlements(a) == [(xgp.piece_hold_key(task, "p1"), case, "paid")]
        # The held-then-released path as a history (tests/test_xg_replay.py replays the checked-in file).
        history = await rh.history_json(ctx.client, xg.xg_task_workflow_id(task))
        await rh.replay_and_maybe_record(REPLAYER, {"xingguang-r13-piece-held-then-released": history},
                                         "RECORD_XG_HISTORIES")

    @pytest.mark.replace_activities.with_args(THIRTY_DAYS)
    @pytest.mark.parametrize("frozen", ["agency", "mcn_creator"])
    async def test_r_13_xg_a_freeze_of_the_agency_or_of_its_mcn_creator_holds_the_piece_until_lifted(
            self, ctx: Ctx, frozen: str) -> None:
        """R-13: the piece of an MCN creator pays their agency; a freeze of either holds it. Rejected (AM-22), the
        freeze stands after finality and keeps holding; the operator's lift releases the piece, paid to the agency
        once (as tests/test_penalty_holds.py has it for a mount piece)."""
        task, client_id = ids(ctx, f"r13{frozen[0]}")
        case, agency, m, b = f"v-{ctx.uid}", f"ag-{ctx.uid}", f"m-{ctx.uid}", f"b-{ctx.uid}"
        party = agency if frozen == "agency" else m
        payee = f"agency:{agency}:payable"
        ctx.a.directory.put_agency(agency)
        creator(ctx.a, agency, CreatorKind.AGENCY)
        t0 = await two_pieces(ctx, task, client_id, m, b, kind=CreatorKind.MCN, agency_id=agency)
        await case_in_force(ctx, case, party, await business_now(ctx), FREEZE_ALL)
        decided = await decide(ctx, case, party, "rejected")
        assert (decided.stage, decided.penalties[0].status) == (vc.CaseStage.FINAL, vc.PenaltyStatus.FINAL)
        p1 = await held_while_the_other_settles(ctx, task, t0, case)
        assert p1.payee_account == payee and p1.creator_id == m
        assert ctx.a.ledger.balance(payee).balance_fen == 0

        lifted = await lift(ctx, case, "p1")
        assert lifted.held_settlements.released == 1
        result = await finish(ctx, xg.xg_task_workflow_id(task), xgs.TaskResult)
        assert result.pieces["p1"].payee_account == payee
        assert_settled_once(ctx, task, client_id, result)
        paid = ctx.a.ledger.balance(payee)
        assert (paid.balance_fen, paid.available_fen) == (10_000, 10_000)
        assert ctx.a.ledger.balance(f"creator:{m}:payable").balance_fen == 0
        assert register(ctx.a).held_settlements(m) == [(xgp.piece_hold_key(task, "p1"), case, "paid")]
        assert register(ctx.a).held_settlements(m) == [(xgp.piece_hold_key(task, "p1"), case, "paid")]

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
        result = await finish(ctx, xg.xg_task_workflow_id(task), xgs.TaskResult)
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


def test_r_13_xg_hold_key_names_the_task_workflow_and_the_piece() -> None:
    """The register's key of a held piece routes the release to the task's workflow, naming the piece; a mounted
    content workflow id is not read as one."""
    assert xgp.piece_hold_key("t-1", "p1") == "xg-task:t-1#p1"
    assert xgp.piece_of_hold_key(xgp.piece_hold_key("t-1", "p1")) == ("xg-task:t-1", "p1")
    assert xgp.piece_of_hold_key("mount-content:t-1:c1") is None
    assert xgp.piece_of_hold_key("mount-content:t-1:c#1") is None
