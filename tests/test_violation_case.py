"""ViolationCaseWorkflow: AM-18, AM-19, AM-20, AM-21, AM-22 (penalties, appeal window, appeal handling, outcome)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta

import pytest
from temporalio.client import WorkflowUpdateFailedError

from activities.directory import HeldSettlement
from activities.penalties import PenaltyAction, PenaltyActivities
from starter import client as api
from starter.client import Refused
from tests.conftest import Ctx
from tests.helpers import (
    DAY,
    assert_conservation,
    business_now,
    content_when,
    convert,
    creator,
    finish,
    mount,
    published_task,
)
from tests.ledger_fixtures import ledger_dsn_fixture, postgresql_schema_dsn_fixture  # noqa: F401
from tests.violation_helpers import (
    case_state,
    case_update,
    case_when,
    earn,
    fixed_calendar,
    missing_calendar,
    register,
    start_case,
)
from worker import Adapters
from workflows.contract import mount_task as mt
from workflows.contract import mounted_content as mc
from workflows.contract import violation_case as vc
from workflows.contract.names import (
    VIOLATION_CASE_WORKFLOW,
    mount_task_id,
    mounted_content_id,
    violation_case_id,
)
from workflows.rules.clock import BUSINESS_TZ
from workflows.rules.penalties import appeal_refusal, appeal_window_closes_at

SECOND = timedelta(seconds=1)

NINE_DAYS = fixed_calendar(9 * DAY)
THIRTY_DAYS = fixed_calendar(30 * DAY)  # "7 working days" = 9 calendar days, whatever the test server's date
FREEZE_3000_TO_DEDUCT = vc.Penalty(kind=vc.PenaltyKind.FREEZE_FEES, amount_fen=3_000, deduct_when_final=True)
BAR = vc.Penalty(kind=vc.PenaltyKind.BAR_FROM_MOUNT_TASKS)
CREDIT_12 = vc.Penalty(kind=vc.PenaltyKind.DEDUCT_CREDIT_SCORE, points=12)


def appeal_of(party: str) -> vc.AppealRequest:
    return vc.AppealRequest(party_id=party, reason="the conversions were real: attached the app's own logs")


class TestAM20AppealWindow:
    def test_am_20_the_sources_example_to_the_second(self) -> None:
        notice = datetime(2022, 7, 1, 13, 0, 0, tzinfo=BUSINESS_TZ)
        assert appeal_window_closes_at(notice) == datetime(2022, 7, 8, 13, 0, 0, tzinfo=BUSINESS_TZ)
        assert appeal_refusal(notice, datetime(2022, 7, 8, 12, 59, 59, tzinfo=BUSINESS_TZ)) is None
        refusal = appeal_refusal(notice, datetime(2022, 7, 8, 13, 0, 0, tzinfo=BUSINESS_TZ))
        assert refusal is not None and "closed at 2022-07-08 13:00:00 +08:00" in refusal

    @pytest.mark.replace_activities.with_args(NINE_DAYS)
    async def test_am_20_a_2022_notice_is_final_and_refuses_the_appeal_naming_the_close(self, ctx: Ctx) -> None:
        creator(ctx.a, "cr-1")
        earn(ctx.a, "cr-1", 5_000, f"seed-{ctx.uid}")
        notice = datetime(2022, 7, 1, 13, 0, 0, tzinfo=BUSINESS_TZ)
        await start_case(ctx.client, ctx.task_queue, f"v-{ctx.uid}", "cr-1", notice, FREEZE_3000_TO_DEDUCT)
        state = await case_when(ctx.client, f"v-{ctx.uid}", lambda s: s.stage is vc.CaseStage.CLOSED)
        assert state.appeal_window_closes_at == datetime(2022, 7, 8, 13, tzinfo=BUSINESS_TZ)
        assert (state.penalties[0].status, state.penalties[0].deducted_fen) == (vc.PenaltyStatus.DEDUCTED, 3_000)

    @pytest.mark.replace_activities.with_args(NINE_DAYS)
    async def test_am_20_both_sides_of_the_boundary_on_the_workflow_clock(self, ctx: Ctx) -> None:
        creator(ctx.a, "cr-1")
        notice = await business_now(ctx)
        await start_case(ctx.client, ctx.task_queue, f"in-{ctx.uid}", "cr-1", notice, BAR)
        # A timed restriction keeps the late case running (final) past its window, to answer the appeal.
        closed_for = vc.Penalty(kind=vc.PenaltyKind.CLOSE_ORDER_TAKING, until_at=notice + 30 * DAY)
        await start_case(ctx.client, ctx.task_queue, f"late-{ctx.uid}", "cr-1", notice, closed_for)
        await ctx.env.sleep(7 * DAY - 2 * SECOND)
        receipt = await case_update(ctx.client, f"in-{ctx.uid}", "appeal", appeal_of("cr-1"), vc.AppealReceipt)
        assert notice + 7 * DAY - 2 * SECOND <= receipt.appealed_at < notice + 7 * DAY
        await ctx.env.sleep(3 * SECOND)
        with pytest.raises(WorkflowUpdateFailedError) as refused:
            await case_update(ctx.client, f"late-{ctx.uid}", "appeal", appeal_of("cr-1"), vc.AppealReceipt)
        closes = (notice + 7 * DAY).strftime("%Y-%m-%d %H:%M:%S +08:00")
        assert f"the appeal window closed at {closes}" in str(refused.value.cause)
        assert (await case_state(ctx.client, f"in-{ctx.uid}")).stage is vc.CaseStage.APPEALED

    @pytest.mark.replace_activities.with_args(NINE_DAYS)
    async def test_am_20_only_the_penalized_party_appeals(self, ctx: Ctx) -> None:
        creator(ctx.a, "cr-1")
        await start_case(ctx.client, ctx.task_queue, f"v-{ctx.uid}", "cr-1", await business_now(ctx), BAR)
        with pytest.raises(WorkflowUpdateFailedError) as refused:
            await case_update(ctx.client, f"v-{ctx.uid}", "appeal", appeal_of("cr-2"), vc.AppealReceipt)
        assert "party_id: cr-2 is not the penalized party" in str(refused.value.cause)
        assert (await case_state(ctx.client, f"v-{ctx.uid}")).appeal is None
        receipt = await case_update(ctx.client, f"v-{ctx.uid}", "appeal", appeal_of("cr-1"), vc.AppealReceipt)
        assert (await case_state(ctx.client, f"v-{ctx.uid}")).appeal.appealed_at == receipt.appealed_at


class TestAM18AM19PenaltiesActAtNotice:
    @pytest.mark.replace_activities.with_args(NINE_DAYS)
    async def test_am_19_penalties_act_at_notice_and_unappealed_become_final(self, ctx: Ctx) -> None:
        creator(ctx.a, "cr-1")
        earn(ctx.a, "cr-1", 5_000, f"seed-{ctx.uid}")
        notice = await business_now(ctx)
        closed_for = vc.Penalty(kind=vc.PenaltyKind.CLOSE_ORDER_TAKING, until_at=notice + 30 * DAY)
        case = f"v-{ctx.uid}"
        await start_case(ctx.client, ctx.task_queue, case, "cr-1", notice, FREEZE_3000_TO_DEDUCT, BAR, CREDIT_12,
                         closed_for)
        state = await case_when(ctx.client, case, lambda s: all(p.status is vc.PenaltyStatus.IN_FORCE
                                                                for p in s.penalties))
        payable = ctx.a.ledger.balance("creator:cr-1:payable")
        assert (payable.balance_fen, payable.available_fen) == (5_000, 2_000)  # 3,000 frozen at notice
        facts = ctx.a.directory.creator("cr-1")
        assert facts.mount_barred and facts.order_taking_closed  # AM-4 now refuses a join
        assert register(ctx.a).credit_points_deducted("creator", "cr-1") == 12
        assert state.next_deadline_at == notice + 7 * DAY and state.next_deadline == "appeal window closes"

        result = await finish(ctx, f"violation:{case}", vc.ViolationCaseResult)
        by_kind = {p.kind: p for p in result.penalties}
        assert by_kind[vc.PenaltyKind.FREEZE_FEES].status is vc.PenaltyStatus.DEDUCTED
        assert by_kind[vc.PenaltyKind.CLOSE_ORDER_TAKING].status is vc.PenaltyStatus.EXPIRED
        assert by_kind[vc.PenaltyKind.CLOSE_ORDER_TAKING].ended_at == notice + 30 * DAY
        assert by_kind[vc.PenaltyKind.BAR_FROM_MOUNT_TASKS].status is vc.PenaltyStatus.FINAL
        assert (result.stage, result.deducted_fen) == (vc.CaseStage.CLOSED, 3_000)
        assert ctx.a.ledger.balance("creator:cr-1:payable").balance_fen == 2_000
        assert ctx.a.ledger.balance("platform:penalties").balance_fen == 3_000
        facts = ctx.a.directory.creator("cr-1")
        assert facts.mount_barred and not facts.order_taking_closed  # the timed closure ran out
        ctx.a.ledger.check_conservation()

    @pytest.mark.replace_activities.with_args(NINE_DAYS)
    async def test_am_18_a_client_cannot_get_a_creator_only_penalty(self, ctx: Ctx) -> None:
        with pytest.raises(Refused) as refused:
            await start_case(ctx.client, ctx.task_queue, f"v-{ctx.uid}", "client-1", await business_now(ctx),
                             vc.Penalty(kind=vc.PenaltyKind.RESTRICT_ACCOUNT), CREDIT_12,
                             party_kind=vc.PartyKind.CLIENT)
        assert refused.value.kind == "PenaltyNoticeRefused"
        assert refused.value.reasons == [("penalties[1].kind: deduct_credit_score is not a penalty for a client "
                                          "(allowed: ban_account, bar_from_mount_tasks, deduct_fees, freeze_fees, "
                                          "remove_from_task, restrict_account)")]

    async def test_am_18_the_workflow_refuses_a_misfit_penalty_started_around_the_helper(self, ctx: Ctx) -> None:
        case_id = violation_case_id(f"v-{ctx.uid}")
        await ctx.client.start_workflow(VIOLATION_CASE_WORKFLOW, vc.ViolationCaseInput(
            case_id=f"v-{ctx.uid}", party_kind=vc.PartyKind.CREATOR, party_id="cr-1", notice_at=await business_now(ctx),
            violation="faked follows", penalties=[vc.Penalty(kind=vc.PenaltyKind.BAR_FROM_MOUNT_TASKS, amount_fen=5)],
            issued_by="op-7"), id=case_id, task_queue=ctx.task_queue)
        with pytest.raises(Exception, match="amount_fen: only freeze_fees freezes a part"):
            await finish(ctx, case_id, vc.ViolationCaseResult)


class TestAM21AppealHandling:
    @pytest.mark.replace_activities.with_args(NINE_DAYS)
    async def test_am_21_unanswered_appeal_escalates_and_can_still_be_decided(self, ctx: Ctx) -> None:
        creator(ctx.a, "cr-1")
        case = f"v-{ctx.uid}"
        await start_case(ctx.client, ctx.task_queue, case, "cr-1", await business_now(ctx), BAR)
        receipt = await case_update(ctx.client, case, "appeal", appeal_of("cr-1"), vc.AppealReceipt)
        assert receipt.answer_due_at == receipt.appealed_at + 9 * DAY and not receipt.escalated
        state = await case_state(ctx.client, case)
        assert (state.next_deadline_at, state.next_deadline) == (receipt.answer_due_at, "appeal answer due")
        await ctx.env.sleep(9 * DAY + SECOND)
        state = await case_when(ctx.client, case, lambda s: s.escalated)
        assert state.escalation_reason is not None and "unanswered past" in state.escalation_reason
        assert state.stage is vc.CaseStage.APPEALED
        decided = await case_update(ctx.client, case, "decide_appeal", vc.DecideAppealRequest(
            decision="rejected", operator_id="op-2", note="logs show scripted installs"), vc.ViolationCaseView)
        assert (decided.stage, decided.escalated) == (vc.CaseStage.CLOSED, False)  # final, nothing timed left
        assert decided.penalties[0].status is vc.PenaltyStatus.FINAL

    @pytest.mark.replace_activities.with_args(NINE_DAYS)
    async def test_am_21_complex_case_has_no_deadline_and_stays_listed(self, ctx: Ctx) -> None:
        creator(ctx.a, "cr-1")
        case = f"v-{ctx.uid}"
        await start_case(ctx.client, ctx.task_queue, case, "cr-1", await business_now(ctx), BAR)
        receipt = await case_update(ctx.client, case, "appeal", appeal_of("cr-1"), vc.AppealReceipt)
        marked = await case_update(ctx.client, case, "mark_complex", vc.MarkComplexRequest(
            operator_id="op-2", note="needs the main site's raw logs"), vc.ViolationCaseView)
        assert marked.stage is vc.CaseStage.APPEAL_COMPLEX and marked.next_deadline_at is None
        assert marked.appeal is not None and marked.appeal.answer_due_at == receipt.answer_due_at  # still shown
        await ctx.env.sleep(20 * DAY)
        state = await case_state(ctx.client, case)
        assert state.stage is vc.CaseStage.APPEAL_COMPLEX and not state.escalated

    @pytest.mark.replace_activities.with_args(missing_calendar)
    async def test_am_21_unpublished_calendar_year_escalates_at_once(self, ctx: Ctx) -> None:
        creator(ctx.a, "cr-1")
        case = f"v-{ctx.uid}"
        await start_case(ctx.client, ctx.task_queue, case, "cr-1", await business_now(ctx), BAR)
        receipt = await case_update(ctx.client, case, "appeal", appeal_of("cr-1"), vc.AppealReceipt)
        assert receipt.answer_due_at is None and receipt.escalated
        state = await case_state(ctx.client, case)
        assert state.appeal is not None and state.appeal.calendar_problem is not None
        assert state.escalation_reason is not None and "is not published" in state.escalation_reason


class TestAM22AppealOutcome:
    @pytest.mark.replace_activities.with_args(NINE_DAYS)
    async def test_am_22_upheld_withdraws_every_penalty(self, ctx: Ctx) -> None:
        creator(ctx.a, "cr-1")
        earn(ctx.a, "cr-1", 5_000, f"seed-{ctx.uid}")
        case = f"v-{ctx.uid}"
        deduct_all = vc.Penalty(kind=vc.PenaltyKind.DEDUCT_FEES)
        await start_case(ctx.client, ctx.task_queue, case, "cr-1", await business_now(ctx), deduct_all, BAR,
                         CREDIT_12)
        await case_update(ctx.client, case, "appeal", appeal_of("cr-1"), vc.AppealReceipt)
        assert ctx.a.ledger.balance("creator:cr-1:payable").available_fen == 0  # all 5,000 frozen
        decided = await case_update(ctx.client, case, "decide_appeal", vc.DecideAppealRequest(
            decision="upheld", operator_id="op-2", note="conversions verified"), vc.ViolationCaseView)
        assert decided.stage is vc.CaseStage.WITHDRAWN
        assert [p.status for p in decided.penalties] == [vc.PenaltyStatus.WITHDRAWN] * 3
        assert decided.penalties[0].frozen_fen == 5_000
        payable = ctx.a.ledger.balance("creator:cr-1:payable")
        assert (payable.balance_fen, payable.available_fen) == (5_000, 5_000)
        assert ctx.a.ledger.balance("platform:penalties").balance_fen == 0
        assert not ctx.a.directory.creator("cr-1").mount_barred
        assert register(ctx.a).credit_points_deducted("creator", "cr-1") == 0
        result = await finish(ctx, f"violation:{case}", vc.ViolationCaseResult)
        assert (result.stage, result.deducted_fen) == (vc.CaseStage.WITHDRAWN, 0)

    @pytest.mark.replace_activities.with_args(NINE_DAYS)
    async def test_am_22_rejected_deducts_the_marked_freeze_and_the_other_stands_until_lifted(self, ctx: Ctx) -> None:
        creator(ctx.a, "cr-1", mount_barred=False)
        earn(ctx.a, "cr-1", 5_000, f"seed-{ctx.uid}")
        case = f"v-{ctx.uid}"
        await start_case(ctx.client, ctx.task_queue, case, "cr-1", await business_now(ctx),
                         FREEZE_3000_TO_DEDUCT, vc.Penalty(kind=vc.PenaltyKind.FREEZE_FEES, amount_fen=1_000))
        await case_update(ctx.client, case, "appeal", appeal_of("cr-1"), vc.AppealReceipt)
        decided = await case_update(ctx.client, case, "decide_appeal", vc.DecideAppealRequest(
            decision="rejected", operator_id="op-2", note="scripted installs"), vc.ViolationCaseView)
        assert [(p.status, p.deducted_fen) for p in decided.penalties] == [
            (vc.PenaltyStatus.DEDUCTED, 3_000), (vc.PenaltyStatus.FINAL, 0)]  # only the marked one deducts
        assert decided.stage is vc.CaseStage.FINAL  # the other freeze stands (AM-22): the case stays open
        payable = ctx.a.ledger.balance("creator:cr-1:payable")
        assert (payable.balance_fen, payable.available_fen) == (2_000, 1_000)
        lifted = await case_update(ctx.client, case, "lift_freeze", vc.LiftFreezeRequest(
            penalty_id="p2", operator_id="op-3", reason="cooperated with the review"), vc.ViolationCaseView)
        assert (lifted.penalties[1].status, lifted.penalties[1].lifted_by) == (vc.PenaltyStatus.LIFTED, "op-3")
        payable = ctx.a.ledger.balance("creator:cr-1:payable")
        assert (payable.balance_fen, payable.available_fen) == (2_000, 2_000)
        assert ctx.a.ledger.balance("platform:penalties").balance_fen == 3_000
        result = await finish(ctx, f"violation:{case}", vc.ViolationCaseResult)
        assert (result.stage, result.deducted_fen) == (vc.CaseStage.CLOSED, 3_000)
        ctx.a.ledger.check_conservation()

    @pytest.mark.replace_activities.with_args(NINE_DAYS)
    async def test_am_22_client_restriction_lifted_when_upheld(self, ctx: Ctx) -> None:
        from tests.helpers import eligible_client
        eligible_client(ctx.a, "client-1", 0)
        case = f"v-{ctx.uid}"
        await start_case(ctx.client, ctx.task_queue, case, "client-1", await business_now(ctx),
                         vc.Penalty(kind=vc.PenaltyKind.RESTRICT_ACCOUNT), party_kind=vc.PartyKind.CLIENT)
        await case_when(ctx.client, case, lambda s: s.penalties[0].status is vc.PenaltyStatus.IN_FORCE)
        assert ctx.a.directory.client("client-1").penalty_restricted  # AM-1 refuses publication meanwhile
        await case_update(ctx.client, case, "appeal", appeal_of("client-1"), vc.AppealReceipt)
        await case_update(ctx.client, case, "decide_appeal", vc.DecideAppealRequest(
            decision="upheld", operator_id="op-2", note="wrong account"), vc.ViolationCaseView)
        assert not ctx.a.directory.client("client-1").penalty_restricted


class TestAM19AM22HeldSettlements:
    """AM-19: while a creator's fees are frozen, a piece reaching its window close is held, not paid; AM-22: the
    outcome releases it (upheld: paid exactly once; rejected with all fees to be deducted: paid, then deducted)."""

    async def _held_piece(self, ctx: Ctx) -> tuple[str, str]:
        task, case = f"t-{ctx.uid}", f"v-{ctx.uid}"
        await published_task(ctx, task, budget_fen=100_000, price_fen=100, days=30)
        creator(ctx.a, "cr-1")
        await api.join(ctx.client, task, "cr-1")
        mounted_at = await business_now(ctx)
        await mount(ctx, task, "c1", "cr-1", mounted_at)
        await convert(ctx, task, "c1", "e1", 10, mounted_at + SECOND)
        await content_when(ctx, task, "c1", lambda s: s.fee_fen == 1_000)
        await start_case(ctx.client, ctx.task_queue, case, "cr-1", mounted_at,
                         vc.Penalty(kind=vc.PenaltyKind.DEDUCT_FEES))
        await case_update(ctx.client, case, "appeal", appeal_of("cr-1"), vc.AppealReceipt)
        await ctx.env.sleep(17 * DAY + 60 * SECOND)  # the piece's publicity window closes during the appeal
        state = await content_when(ctx, task, "c1", lambda s: s.stage is mc.ContentStage.HELD)
        assert state.settlement_hold is not None and state.settlement_hold.case_id == case
        assert state.settlement is None
        assert ctx.a.ledger.balance("creator:cr-1:payable").balance_fen == 0
        assert ctx.a.ledger.transfers(business_key_prefix=f"settle:{task}:c1") == []
        assert register(ctx.a).held_settlements("cr-1") == [(mounted_content_id(task, "c1"), case, None)]
        return task, case

    @pytest.mark.replace_activities.with_args(THIRTY_DAYS)
    async def test_am_22_upheld_appeal_releases_the_held_settlement_paid_exactly_once(self, ctx: Ctx) -> None:
        task, case = await self._held_piece(ctx)
        decided = await case_update(ctx.client, case, "decide_appeal", vc.DecideAppealRequest(
            decision="upheld", operator_id="op-2", note="conversions verified"), vc.ViolationCaseView)
        assert decided.held_settlements.released == 1 and decided.held_settlements.done
        state = await content_when(ctx, task, "c1", lambda s: s.stage is mc.ContentStage.SETTLED)
        assert state.settlement is not None and state.settlement_hold is not None
        assert (state.settlement.fee_fen, state.settlement_hold.outcome) == (1_000, "paid")
        assert register(ctx.a).held_to_release(case, 100) == ([], 0)  # a retried release finds nothing left
        result = await finish(ctx, mounted_content_id(task, "c1"), mc.ContentResult)
        assert (result.fee_fen, result.platform_fee_fen) == (1_000, 100)
        assert ctx.a.ledger.balance("creator:cr-1:payable").balance_fen == 1_000
        assert len(ctx.a.ledger.transfers(business_key_prefix=f"settle:{task}:c1")) == 2
        assert register(ctx.a).held_settlements("cr-1") == [(mounted_content_id(task, "c1"), case, "paid")]
        await finish(ctx, mount_task_id(task), mt.TaskResult)
        assert_conservation(ctx.a, task)

    @pytest.mark.replace_activities.with_args(THIRTY_DAYS)
    async def test_am_22_rejected_appeal_deducts_the_held_settlement_with_all_fees(self, ctx: Ctx) -> None:
        task, case = await self._held_piece(ctx)
        decided = await case_update(ctx.client, case, "decide_appeal", vc.DecideAppealRequest(
            decision="rejected", operator_id="op-2", note="scripted installs"), vc.ViolationCaseView)
        assert decided.held_settlements.deducted == 1
        state = await content_when(ctx, task, "c1", lambda s: s.stage is mc.ContentStage.SETTLED
                                   and s.settlement_hold is not None and s.settlement_hold.deducted_fen > 0)
        assert state.settlement_hold is not None
        assert (state.settlement_hold.outcome, state.settlement_hold.deducted_fen) == ("deducted", 1_000)
        assert ctx.a.ledger.balance("creator:cr-1:payable").balance_fen == 0  # paid, then deducted
        assert ctx.a.ledger.balance("platform:penalties").balance_fen == 1_000
        await finish(ctx, mount_task_id(task), mt.TaskResult)
        assert_conservation(ctx.a, task)
        ctx.a.ledger.check_conservation()


class TestAM18PenaltyRegister:
    """The directory's record of restrictions keeps the eligibility flags AM-1/AM-4 read equal to "any active
    restriction, else what the flag was before the first one". On SQLite and (with LEDGER_TEST_PG_DSN) PostgreSQL."""

    @pytest.fixture
    def adapters(self, ledger_dsn: str) -> Iterator[Adapters]:
        opened = Adapters.open(ledger_dsn)
        try:
            yield opened
        finally:
            opened.db.close()

    def test_am_18_two_cases_bar_until_both_are_lifted_and_the_old_flag_returns(self, adapters: Adapters) -> None:
        creator(adapters, "cr-1", order_taking_closed=True)  # closed before any penalty, for its own reasons
        reg = register(adapters)
        reg.apply_restriction("a", "p1", "creator", "cr-1", "bar_from_mount_tasks", None, "2026-01-01T00:00:00+08:00")
        reg.apply_restriction("b", "p1", "creator", "cr-1", "ban_account", None, "2026-01-02T00:00:00+08:00")
        facts = adapters.directory.creator("cr-1")
        assert facts.mount_barred and facts.order_taking_closed
        reg.lift_restriction("b", "p1", "appeal upheld", "2026-01-03T00:00:00+08:00")
        assert adapters.directory.creator("cr-1").mount_barred  # case a still bars
        reg.lift_restriction("a", "p1", "appeal upheld", "2026-01-04T00:00:00+08:00")
        facts = adapters.directory.creator("cr-1")
        assert not facts.mount_barred and facts.order_taking_closed  # back to what it was
        assert reg.active_restrictions("creator", "cr-1") == []

    def test_am_19_a_settlement_is_held_once_and_passed_on_to_a_case_still_freezing(self,
                                                                                   adapters: Adapters) -> None:
        reg = register(adapters)
        held = HeldSettlement(workflow_id="mount-content:t:c1", creator_id="cr-1", case_id="", task_id="t",
                              content_id="c1", fee_fen=1_000)
        assert reg.hold_settlement(held, "2026-01-01T00:00:00+08:00") is None  # nothing frozen: paid as usual
        reg.apply_restriction("a", "p1", "creator", "cr-1", "freeze_fees", None, "2026-01-01T00:00:00+08:00")
        reg.apply_restriction("b", "p1", "creator", "cr-1", "deduct_fees", None, "2026-01-02T00:00:00+08:00")
        held2 = held.model_copy(update={"workflow_id": "mount-content:t:c2", "content_id": "c2"})
        assert reg.hold_settlement(held2, "2026-01-03T00:00:00+08:00") == "a"
        assert reg.hold_settlement(held2, "2026-01-03T00:00:01+08:00") == "a"  # a repeated ask: same answer
        reg.lift_restriction("a", "p1", "final: unfrozen", "2026-01-04T00:00:00+08:00")
        assert reg.held_to_release("a", 10) == ([], 1)  # case b still freezes cr-1: held by b now
        reg.lift_restriction("b", "p1", "appeal upheld", "2026-01-05T00:00:00+08:00")
        free, passed_on = reg.held_to_release("b", 10)
        assert ([h.workflow_id for h in free], passed_on) == (["mount-content:t:c2"], 0)
        reg.mark_released(["mount-content:t:c2"], "paid", "2026-01-05T00:00:00+08:00")
        assert reg.held_settlements("cr-1") == [("mount-content:t:c2", "b", "paid")]

    def test_am_19_am_20_freeze_part_then_deduct_or_unfreeze_through_ledger_holds(self, adapters: Adapters) -> None:
        earn(adapters, "cr-1", 5_000, "seed")
        penalties = PenaltyActivities(adapters.ledger, register(adapters))
        notice = datetime(2022, 7, 1, 13, tzinfo=BUSINESS_TZ)

        def action(case: str, amount: int | None, deduct: bool) -> PenaltyAction:
            return PenaltyAction(case_id=case, penalty_id="p1", party_kind=vc.PartyKind.CREATOR, party_id="cr-1",
                                 kind=vc.PenaltyKind.FREEZE_FEES, amount_fen=amount, deduct_when_final=deduct,
                                 at=notice)

        kept, deducted = action("a", 1_000, False), action("b", 3_000, True)
        assert penalties.apply(kept).frozen_fen == 1_000
        assert penalties.apply(deducted).frozen_fen == 3_000
        assert penalties.apply(deducted).frozen_fen == 3_000  # a retried activity freezes nothing more
        assert adapters.ledger.balance("creator:cr-1:payable").available_fen == 1_000
        assert penalties.finalize(deducted).deducted_fen == 3_000
        assert penalties.finalize(deducted).deducted_fen == 3_000  # retried: deducted once
        assert penalties.withdraw(kept).released_fen == 1_000
        payable = adapters.ledger.balance("creator:cr-1:payable")
        assert (payable.balance_fen, payable.available_fen) == (2_000, 2_000)
        assert adapters.ledger.balance("platform:penalties").balance_fen == 3_000
        adapters.ledger.check_conservation()
