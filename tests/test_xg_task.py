"""XingguangTaskWorkflow rule by rule: XG-1, XG-3, XG-4, XG-5, XG-6, XG-7, XG-8, XG-10, XG-11, R-1, R-11."""

from __future__ import annotations

import pytest

from activities.calendar import CalendarActivities, ChinaWorkingDays
from starter import xingguang as api
from starter.client import Refused
from tests.conftest import Ctx
from tests.helpers import DAY, business_now, eligible_client, finish
from tests.xg_fixtures import (
    HOUR,
    OPERATOR,
    PROVIDER,
    client_says,
    events,
    ids,
    order_request,
    ordered_task,
    piece_when,
    provider_says,
    published_piece,
    select,
    sleep_until,
    submit,
    task_when,
    xg_money,
)
from workflows.contract import xingguang as xg
from workflows.contract import xingguang_pieces as xgp
from workflows.contract import xingguang_state as xgs

# The session's test server clock runs years ahead (time skipping): a calendar that answers for every year, so the
# deadline is exact; the missing-calendar path has its own test.
EVERY_YEAR = ChinaWorkingDays(covered=frozenset(range(2001, 2200)))


class TestXG1MaterialsReview:
    async def test_xg_1_refused_materials_close_the_task_and_refund_everything(self, ctx: Ctx) -> None:
        task, client_id = ids(ctx, "mat")
        eligible_client(ctx.a, client_id, 300_000)
        t0 = await business_now(ctx)
        await api.order(ctx.client, order_request(task, client_id, t0 + DAY, t0 + 11 * DAY), ctx.task_queue)
        with pytest.raises(Refused) as refusal:
            await api.review_materials(ctx.client, task, xg.ReviewMaterialsRequest(operator_id=OPERATOR, verdicts=[
                xg.MaterialVerdict(kind=xg.MaterialKind.LINK, item_id="lp-1", approved=False)]))
        assert refusal.value.reasons == ["verdicts[0].reason: required when refusing a material"]
        await api.review_materials(ctx.client, task, xg.ReviewMaterialsRequest(operator_id=OPERATOR, verdicts=[
            xg.MaterialVerdict(kind=xg.MaterialKind.QUALIFICATION, item_id="licence-1", approved=True),
            xg.MaterialVerdict(kind=xg.MaterialKind.LINK, item_id="lp-1", approved=False,
                               reason="landing page is unreachable")]))
        result = await finish(ctx, xg.xg_task_workflow_id(task), xgs.TaskResult)
        assert result.stage is xgs.TaskStage.CLOSED and result.refunded_fen == 198_000
        assert result.end_reason == "materials refused: link lp-1: landing page is unreachable"
        assert ctx.a.ledger.balance(f"client:{client_id}:available").balance_fen == 300_000


class TestXG3Provider:
    async def test_xg_3_only_the_assigned_provider_selects_within_the_earnings_budget(self, ctx: Ctx) -> None:
        task, client_id = ids(ctx, "prov")
        await ordered_task(ctx, task, client_id)
        state = await api.state(ctx.client, task)
        assert state.provider_id == PROVIDER and state.stage is xgs.TaskStage.IN_PROGRESS
        with pytest.raises(Refused) as refusal:
            await api.select_creator(ctx.client, task, xgp.SelectCreatorRequest(
                provider_id="prov-other", piece_id="p1", creator_id="c1", creator_earnings_fen=1_000))
        assert refusal.value.reasons == [f"provider_id: prov-other is not the provider assigned to task {task}"]
        await select(ctx, task, "p1", f"c1-{ctx.uid}", 70_000)
        with pytest.raises(Refused) as refusal:
            await select(ctx, task, "p2", f"c2-{ctx.uid}", 10_001)
        assert refusal.value.reasons == [("creator_earnings_fen: 10001 passes what is left of the creator earnings "
                                         "budget (10000 of 80000 fen)")]
        # One type per rule: the budget refused by the validator is the handler's SelectionRefused too.
        assert refusal.value.kind == "SelectionRefused"
        with pytest.raises(Refused) as refusal:
            await api.select_creator(ctx.client, task, xgp.SelectCreatorRequest(
                provider_id=PROVIDER, piece_id="p3", creator_id=f"ghost-{ctx.uid}", creator_earnings_fen=1_000))
        assert refusal.value.reasons == [f"creator ghost-{ctx.uid} is not registered"]


class TestXG4ContentReview:
    async def test_xg_4_reviews_need_reasons_and_silence_approves_at_the_deadline(self, ctx: Ctx) -> None:
        task, client_id = ids(ctx, "rev")
        creator_id = f"c-{ctx.uid}"
        await ordered_task(ctx, task, client_id)
        await select(ctx, task, "p1", creator_id, 10_000)
        await submit(ctx, task, "p1", creator_id, "content-1")
        with pytest.raises(Refused) as refusal:
            await provider_says(ctx, task, "p1", False)
        assert refusal.value.reasons == ["reason: required when sending content back for revision"]
        reviewed = await provider_says(ctx, task, "p1", True)
        assert reviewed.stage is xgs.PieceStage.CLIENT_REVIEW and reviewed.client_review_due_at is not None
        with pytest.raises(Refused) as refusal:
            await client_says(ctx, task, client_id, "p1", False)
        assert refusal.value.reasons == ["reason: required when rejecting content"]
        await sleep_until(ctx, reviewed.client_review_due_at)
        piece = await piece_when(ctx, task, "p1", lambda p: p.published_at is not None)
        assert piece.published_at == reviewed.client_review_due_at
        assert (piece.reviews[-1].by, piece.reviews[-1].at) == ("client_silence", reviewed.client_review_due_at)
        with pytest.raises(Refused):
            await client_says(ctx, task, client_id, "p1", True)

    async def test_xg_4_without_client_confirmation_provider_approval_publishes(self, ctx: Ctx) -> None:
        task, client_id = ids(ctx, "noconf")
        await ordered_task(ctx, task, client_id, client_confirms_content=False, client_review_hours=None)
        piece = await published_piece(ctx, task, client_id, "p1", f"c-{ctx.uid}", 10_000)
        assert piece.published_at == piece.approved_at
        assert [r.by for r in piece.reviews] == ["provider"]


class TestXG11Licence:
    async def test_xg_11_published_piece_records_the_long_term_licence(self, ctx: Ctx) -> None:
        task, client_id = ids(ctx, "lic")
        await ordered_task(ctx, task, client_id)
        piece = await published_piece(ctx, task, client_id, "p1", f"c-{ctx.uid}", 10_000)
        assert piece.licence == xgs.Licence(content_id="content-p1", licensee_client_id=client_id,
                                            scope="xingguang_joint_placement_only", term="long_term",
                                            granted_at=piece.published_at)


class TestXG5Objections:
    async def test_xg_5_objection_after_three_days_is_refused_and_content_deemed_accepted(self, ctx: Ctx) -> None:
        task, client_id = ids(ctx, "obj")
        await ordered_task(ctx, task, client_id)
        piece = await published_piece(ctx, task, client_id, "p1", f"c-{ctx.uid}", 10_000)
        assert piece.objection_window_closes_at is not None
        await sleep_until(ctx, piece.objection_window_closes_at)
        accepted = await piece_when(ctx, task, "p1", lambda p: p.content_accepted_at is not None)
        assert accepted.content_accepted_at == piece.published_at + 3 * DAY  # type: ignore[operator]
        with pytest.raises(Refused) as refusal:
            await api.raise_objection(ctx.client, task, xgp.RaiseObjectionRequest(
                client_id=client_id, piece_id="p1", reason="too late"))
        assert refusal.value.reasons[0].startswith("the objection window closed at ")

    @pytest.mark.replace_activities(lambda a: [CalendarActivities(EVERY_YEAR).add_working_days])
    async def test_xg_5_dismissed_objection_goes_on_and_undecided_escalates_after_7_working_days(
            self, ctx: Ctx) -> None:
        task, client_id = ids(ctx, "objesc")
        t0, _ = await ordered_task(ctx, task, client_id, days=20)
        await published_piece(ctx, task, client_id, "p1", f"c-{ctx.uid}", 10_000)
        objected = await api.raise_objection(ctx.client, task, xgp.RaiseObjectionRequest(
            client_id=client_id, piece_id="p1", reason="wrong product colour"))
        assert objected.objection is not None
        # 7 statutory working days after the day it was raised, to the end of the 7th (calendar.add_working_days).
        expected, _ = EVERY_YEAR.deadline(objected.objection.raised_at, 7)
        assert objected.objection.escalates_at == expected
        await sleep_until(ctx, objected.objection.escalates_at)
        escalated = await task_when(ctx, task, lambda s: s.escalated)
        assert escalated.escalation_reasons == ["piece p1: objection undecided after 7 working days"]
        await events(ctx, task, "h1", "p1", 10, t0 + 2 * DAY)
        await api.decide_objection(ctx.client, task, xgp.DecideObjectionRequest(
            operator_id=OPERATOR, piece_id="p1", upheld=False, note="colour is as ordered"))
        cleared = await task_when(ctx, task, lambda s: not s.escalated)
        assert cleared.pieces["p1"].stage is xgs.PieceStage.PUBLISHED
        result = await finish(ctx, xg.xg_task_workflow_id(task), xgs.TaskResult)
        assert result.pieces["p1"].creator_earnings_fen == 10_000 and result.pieces["p1"].promotion_spend_fen == 500


    @pytest.mark.replace_activities(lambda a: [CalendarActivities(ChinaWorkingDays(covered=frozenset()))
                                               .add_working_days])
    async def test_xg_6_dispute_escalates_at_once_when_the_working_day_calendar_is_missing(self, ctx: Ctx) -> None:
        task, client_id = ids(ctx, "nocal")
        await ordered_task(ctx, task, client_id, days=5)
        await published_piece(ctx, task, client_id, "p1", f"c-{ctx.uid}", 10_000)
        disputed = await api.raise_data_dispute(ctx.client, task, xgp.RaiseDataDisputeRequest(
            client_id=client_id, piece_id="p1", reason="numbers look off"))
        assert disputed.data_dispute is not None
        assert disputed.data_dispute.escalates_at == disputed.data_dispute.raised_at
        escalated = await task_when(ctx, task, lambda s: s.escalated)
        assert escalated.escalation_reasons == ["piece p1: data dispute no working-day calendar for its deadline"]


class TestXG6DataAndR11Ends:
    async def test_xg_6_data_dispute_corrects_billable_events_and_late_dispute_is_refused(self, ctx: Ctx) -> None:
        task, client_id = ids(ctx, "data")
        t0, _ = await ordered_task(ctx, task, client_id, days=5)
        await published_piece(ctx, task, client_id, "p1", f"c-{ctx.uid}", 10_000)
        await sleep_until(ctx, t0 + 2 * DAY)
        await events(ctx, task, "d1", "p1", 100, t0 + DAY + HOUR)
        await sleep_until(ctx, t0 + 6 * DAY + HOUR)  # billing over at t0+6d: publicity window open
        await api.raise_data_dispute(ctx.client, task, xgp.RaiseDataDisputeRequest(
            client_id=client_id, piece_id="p1", reason="our tracker saw 80 clicks"))
        await sleep_until(ctx, t0 + 10 * DAY)  # past the window: settlement held by the dispute
        held = await api.state(ctx.client, task)
        assert held.pieces["p1"].stage is xgs.PieceStage.PUBLICITY
        await api.resolve_data_dispute(ctx.client, task, xgp.ResolveDataDisputeRequest(
            operator_id=OPERATOR, piece_id="p1", billable_events=80, note="20 bot clicks removed"))
        result = await finish(ctx, xg.xg_task_workflow_id(task), xgs.TaskResult)
        assert result.pieces["p1"].promotion_spend_fen == 4_000
        assert result.pieces["p1"].platform_fee_fen == 1_400
        final = await api.state(ctx.client, task)
        assert final.pieces["p1"].publicity_window_closes_at == t0 + 9 * DAY

    async def test_xg_6_no_data_dispute_after_the_publicity_window(self, ctx: Ctx) -> None:
        task, client_id = ids(ctx, "late")
        t0, _ = await ordered_task(ctx, task, client_id, days=5)
        await published_piece(ctx, task, client_id, "p1", f"c-{ctx.uid}", 10_000)
        await published_piece(ctx, task, client_id, "p2", f"c2-{ctx.uid}", 10_000)
        await api.raise_objection(ctx.client, task, xgp.RaiseObjectionRequest(
            client_id=client_id, piece_id="p2", reason="hold the task open"))
        await sleep_until(ctx, t0 + 9 * DAY)
        await piece_when(ctx, task, "p1", lambda p: p.stage is xgs.PieceStage.SETTLED)
        with pytest.raises(Refused) as refusal:
            await api.raise_data_dispute(ctx.client, task, xgp.RaiseDataDisputeRequest(
                client_id=client_id, piece_id="p1", reason="too late"))
        assert refusal.value.reasons == ["piece_id: piece p1 is settled, not published, publicity"]

    async def test_r_11_placement_budget_used_up_ends_promotion_at_that_batch(self, ctx: Ctx) -> None:
        task, client_id = ids(ctx, "budget")
        t0, _ = await ordered_task(ctx, task, client_id, placement_budget_fen=10_000)
        await published_piece(ctx, task, client_id, "p1", f"c-{ctx.uid}", 10_000)
        await published_piece(ctx, task, client_id, "p2", f"c2-{ctx.uid}", 10_000)
        await sleep_until(ctx, t0 + 3 * DAY)
        await events(ctx, task, "b1", "p1", 150, t0 + DAY + HOUR)
        await events(ctx, task, "b2", "p2", 100, t0 + 2 * DAY)  # only 50 of 100 fit the budget
        await events(ctx, task, "b3", "p1", 10, t0 + 2 * DAY + HOUR)  # after the end: not billed
        ended = await task_when(ctx, task, lambda s: s.stage is xgs.TaskStage.SETTLING)
        assert ended.promotion_stopped_at == t0 + 2 * DAY and ended.end_reason == "placement budget used up"
        result = await finish(ctx, xg.xg_task_workflow_id(task), xgs.TaskResult)
        assert (result.pieces["p1"].promotion_spend_fen, result.pieces["p2"].promotion_spend_fen) == (7_500, 2_500)
        final = await api.state(ctx.client, task)
        assert final.pieces["p2"].publicity_window_closes_at == t0 + 5 * DAY


class TestR1Void:
    async def test_r_1_voided_batch_stops_billing_before_settlement(self, ctx: Ctx) -> None:
        task, client_id = ids(ctx, "void")
        t0, _ = await ordered_task(ctx, task, client_id, days=3)
        await published_piece(ctx, task, client_id, "p1", f"c-{ctx.uid}", 10_000)
        await sleep_until(ctx, t0 + 2 * DAY)
        await events(ctx, task, "v1", "p1", 100, t0 + DAY + HOUR)
        await events(ctx, task, "v2", "p1", 40, t0 + DAY + HOUR)
        await api.void_billable_events(ctx.client, task, xgp.VoidBillableEvents(event_id="v2", reason="bot farm"))
        await api.void_billable_events(ctx.client, task, xgp.VoidBillableEvents(event_id="v3", reason="bot farm"))
        await events(ctx, task, "v3", "p1", 30, t0 + DAY + 2 * HOUR)  # voided before it arrived
        await task_when(ctx, task, lambda s: s.batches_received == 3 and not s.batches_pending)
        result = await finish(ctx, xg.xg_task_workflow_id(task), xgs.TaskResult)
        assert result.pieces["p1"].promotion_spend_fen == 5_000


class TestXG9Fees:
    async def test_xg_9_r_8_r_14_waived_fee_settles_and_the_unfunded_platform_still_pays_the_provider(
            self, ctx: Ctx) -> None:
        task, client_id = ids(ctx, "waive")
        t0, ordered = await ordered_task(ctx, task, client_id, days=3, platform_fee_rate_bp=None,
                                         platform_fee_waiver="new-client fee holiday")
        assert ordered.terms.frozen_fen == 180_000
        await published_piece(ctx, task, client_id, "p1", f"c-{ctx.uid}", 12_345)
        await sleep_until(ctx, t0 + 2 * DAY)
        await events(ctx, task, "w1", "p1", 100, t0 + DAY + HOUR)
        result = await finish(ctx, xg.xg_task_workflow_id(task), xgs.TaskResult)
        # Provider fee: 5% of 12,345 = 617.25 -> 617, from the platform's own revenue, never from the client.
        assert result.pieces["p1"] == xgs.PieceMoney(
            creator_earnings_fen=12_345, promotion_spend_fen=5_000, platform_fee_fen=0, provider_fee_fen=617,
            payee_account=f"creator:c-{ctx.uid}:payable")
        assert result.refunded_fen == 180_000 - 12_345 - 5_000
        assert ctx.a.ledger.balance("platform:revenue").balance_fen == -617  # paid from an unfunded account
        assert ctx.a.ledger.balance(f"client:{client_id}:available").balance_fen == 300_000 - 12_345 - 5_000
        # Conservation to the fen with the platform's account negative.
        money = xg_money(ctx, task, client_id)
        assert (money["frozen"], money["creators"], money["promotion"], money["platform_fee"], money["provider_fee"],
                money["refund"], money["escrow"]) == (180_000, 12_345, 5_000, 0, 617, 180_000 - 12_345 - 5_000, 0)
        assert ctx.a.ledger.balance(f"provider:{PROVIDER}:payable").balance_fen == 617
        assert ctx.a.ledger.conservation_total() == 0
        ctx.a.ledger.check_conservation()
