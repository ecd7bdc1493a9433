"""R-13: a freeze holds every settlement that would pay the frozen party (an MCN agency, an MCN creator whose
agency is paid); AM-22: after a rejected appeal a freeze stands until its set end or an operator's lift."""

from __future__ import annotations

from datetime import timedelta

import pytest

from starter import violations
from starter.client import Refused
from tests.conftest import Ctx
from tests.helpers import DAY, assert_conservation, business_now, content_when, creator, finish
from tests.penalty_task_helpers import case_in_force, decide, lift, mounted_piece
from tests.violation_helpers import case_state, earn, fixed_calendar, register
from workflows.contract import mount_task as mt
from workflows.contract import mounted_content as mc
from workflows.contract import violation_case as vc
from workflows.contract.names import mount_task_id, mounted_content_id, violation_case_id
from workflows.rules.eligibility import CreatorKind

SECOND = timedelta(seconds=1)
THIRTY_DAYS = fixed_calendar(30 * DAY)
FREEZE_ALL = vc.Penalty(kind=vc.PenaltyKind.FREEZE_FEES)
AGENCY = "agency:ag-1:payable"


def mcn(ctx: Ctx) -> None:
    ctx.a.directory.put_agency("ag-1")
    creator(ctx.a, "ag-1", CreatorKind.AGENCY)
    creator(ctx.a, "cr-m", CreatorKind.MCN, "ag-1")


async def held_by(ctx: Ctx, task: str, case: str) -> None:
    await ctx.env.sleep(17 * DAY + 60 * SECOND)  # the piece's publicity window closes
    state = await content_when(ctx, task, "c1", lambda s: s.stage is mc.ContentStage.HELD)
    assert state.settlement_hold is not None and state.settlement_hold.case_id == case
    assert state.payee_account == AGENCY
    assert ctx.a.ledger.transfers(business_key_prefix=f"settle:{task}:c1") == []


class TestR13HoldsCoverEveryPayout:
    @pytest.mark.replace_activities.with_args(THIRTY_DAYS)
    async def test_r13_agency_freeze_holds_its_mcn_creators_settlement_that_pays_it(self, ctx: Ctx) -> None:
        task, case = f"t-{ctx.uid}", f"v-{ctx.uid}"
        mcn(ctx)
        ctx.a.ledger.transfer(f"seed-{ctx.uid}", "world:deposits", AGENCY, 500, "test_seed")
        await mounted_piece(ctx, task, "cr-m", "c1")  # 1,000 fen, paid to the agency
        state = await case_in_force(ctx, case, "ag-1", await business_now(ctx), FREEZE_ALL)
        assert state.penalties[0].frozen_fen == 500  # the agency's own unwithdrawn fees
        assert ctx.a.ledger.balance(AGENCY).available_fen == 0
        await violations.appeal(ctx.client, case, vc.AppealRequest(party_id="ag-1", reason="not us"))
        await held_by(ctx, task, case)
        assert ctx.a.ledger.balance(AGENCY).balance_fen == 500

        await violations.decide_appeal(ctx.client, case, vc.DecideAppealRequest(
            decision="upheld", operator_id="op-2", note="another agency's account"))
        result = await finish(ctx, mounted_content_id(task, "c1"), mc.ContentResult)
        assert (result.fee_fen, result.platform_fee_fen, result.payee_account) == (1_000, 100, AGENCY)
        agency = ctx.a.ledger.balance(AGENCY)
        assert (agency.balance_fen, agency.available_fen) == (1_500, 1_500)
        assert register(ctx.a).held_settlements("cr-m") == [(mounted_content_id(task, "c1"), case, "paid")]
        await finish(ctx, mount_task_id(task), mt.TaskResult)
        assert_conservation(ctx.a, task)

    @pytest.mark.replace_activities.with_args(THIRTY_DAYS)
    async def test_r13_mcn_creator_freeze_holds_their_settlement_though_the_agency_is_paid(self, ctx: Ctx) -> None:
        """Rejected (AM-22): the freeze stands after finality and keeps holding; the operator's lift releases."""
        task, case = f"t-{ctx.uid}", f"v-{ctx.uid}"
        mcn(ctx)
        await mounted_piece(ctx, task, "cr-m", "c1")
        await case_in_force(ctx, case, "cr-m", await business_now(ctx), FREEZE_ALL)
        decided = await decide(ctx, case, "cr-m", "rejected")
        assert (decided.stage, decided.penalties[0].status) == (vc.CaseStage.FINAL, vc.PenaltyStatus.FINAL)
        await held_by(ctx, task, case)  # the window closes long after finality: still held
        assert ctx.a.ledger.balance(AGENCY).balance_fen == 0
        assert (await case_state(ctx.client, case)).stage is vc.CaseStage.FINAL

        lifted = await lift(ctx, case, "p1")
        assert lifted.held_settlements.released == 1
        result = await finish(ctx, mounted_content_id(task, "c1"), mc.ContentResult)
        assert (result.fee_fen, result.platform_fee_fen) == (1_000, 100)
        assert ctx.a.ledger.balance(AGENCY).balance_fen == 1_000
        assert ctx.a.ledger.balance("creator:cr-m:payable").balance_fen == 0
        assert ctx.a.ledger.balance("platform:penalties").balance_fen == 0
        await finish(ctx, mount_task_id(task), mt.TaskResult)
        assert_conservation(ctx.a, task)


class TestAM22FreezeStands:
    @pytest.mark.replace_activities.with_args(fixed_calendar(9 * DAY))
    async def test_am_22_rejected_freeze_stays_after_finality_and_ends_at_its_set_end(self, ctx: Ctx) -> None:
        creator(ctx.a, "cr-1")
        earn(ctx.a, "cr-1", 5_000, f"seed-{ctx.uid}")
        case, notice = f"v-{ctx.uid}", await business_now(ctx)
        timed = vc.Penalty(kind=vc.PenaltyKind.FREEZE_FEES, amount_fen=2_000, until_at=notice + 20 * DAY)
        await case_in_force(ctx, case, "cr-1", notice, timed)
        decided = await decide(ctx, case, "cr-1", "rejected")
        assert decided.final_at is not None and decided.penalties[0].status is vc.PenaltyStatus.FINAL
        assert (decided.next_deadline_at, decided.next_deadline) == (notice + 20 * DAY, "p1 freeze_fees ends")
        await ctx.env.sleep(19 * DAY)  # long after finality, before the set end: still frozen
        payable = ctx.a.ledger.balance("creator:cr-1:payable")
        assert (payable.balance_fen, payable.available_fen) == (5_000, 3_000)

        result = await finish(ctx, violation_case_id(case), vc.ViolationCaseResult)
        assert (result.stage, result.deducted_fen) == (vc.CaseStage.CLOSED, 0)
        assert (result.penalties[0].status, result.penalties[0].ended_at) == (vc.PenaltyStatus.EXPIRED,
                                                                              notice + 20 * DAY)
        payable = ctx.a.ledger.balance("creator:cr-1:payable")
        assert (payable.balance_fen, payable.available_fen) == (5_000, 5_000)
        assert ctx.a.ledger.balance("platform:penalties").balance_fen == 0
        ctx.a.ledger.check_conservation()

    @pytest.mark.replace_activities.with_args(fixed_calendar(9 * DAY))
    async def test_am_22_lift_freeze_refuses_what_it_cannot_lift_and_names_the_lift(self, ctx: Ctx) -> None:
        creator(ctx.a, "cr-1")
        earn(ctx.a, "cr-1", 5_000, f"seed-{ctx.uid}")
        case = f"v-{ctx.uid}"
        await case_in_force(ctx, case, "cr-1", await business_now(ctx),
                            vc.Penalty(kind=vc.PenaltyKind.FREEZE_FEES, amount_fen=1, deduct_when_final=True),
                            FREEZE_ALL, vc.Penalty(kind=vc.PenaltyKind.BAR_FROM_MOUNT_TASKS))
        refusals = []
        for penalty_id in ("p1", "p3", "p9"):
            with pytest.raises(Refused) as refused:
                await lift(ctx, case, penalty_id)
            refusals.append(refused.value.reasons[0])
        assert "p1 is freeze_fees marked to be deducted: only a freeze" in refusals[0]
        assert "p3 is bar_from_mount_tasks: only a freeze" in refusals[1]
        assert "has no penalty p9" in refusals[2]
        lifted = await lift(ctx, case, "p2")  # before any appeal: an operator may lift a freeze at any time
        assert (lifted.penalties[1].status, lifted.penalties[1].frozen_fen) == (vc.PenaltyStatus.LIFTED, 4_999)
        with pytest.raises(Refused) as again:
            await lift(ctx, case, "p2")
        assert again.value.kind == "FreezeLiftRefused" and "p2 was lifted by op-3" in again.value.reasons[0]
        payable = ctx.a.ledger.balance("creator:cr-1:payable")
        assert (payable.balance_fen, payable.available_fen) == (5_000, 4_999)  # p1's 1 fen stays frozen
        assert (await case_state(ctx.client, case)).stage is vc.CaseStage.IN_FORCE
        ctx.a.ledger.check_conservation()
