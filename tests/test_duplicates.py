"""Duplicates (issue 7, item 3) of the authorized-mount workflows: every signal and update of a task, a piece and a
case delivered twice changes nothing beyond the first delivery (AM-12 settled exactly once, R-1 a batch counted once
by its event id, AM-5 joining twice, and "a rejected command changes nothing"). The harness:
tests/duplicates_helpers.py; what each second delivery does: tests/duplicate_cases.py."""


from __future__ import annotations

import pytest

from starter import client as api
from starter import violations
from tests import helpers as h
from tests.conftest import Ctx
from tests.duplicates_helpers import (
    SECOND,
    Watched,
    content_update,
    content_w,
    joined_and_mounted,
    refused_naming,
    repeat,
    task_w,
    twice,
)
from tests.helpers import task_seen
from tests.privacy_helpers import fixed_calendar
from tests.violation_helpers import case_when, earn, start_case
from workflows.contract import mount_task as mt
from workflows.contract import mounted_content as mc
from workflows.contract import violation_case as vc
from workflows.contract.names import (
    mount_task_id,
    violation_case_id,
)

# Deadlines in working days come from a fixed calendar: the test server's clock runs into unpublished years.
pytestmark = pytest.mark.replace_activities.with_args(fixed_calendar)


class TestAM12DuplicateTaskMessages:
    """MountTaskWorkflow: AM-3 publication, AM-5 joining, AM-6 mounting, AM-14/AM-15 revocation, AM-7 cancel,
    AM-10 budget exhausted, AM-12/AM-13 the pieces' closing reports: each delivered twice changes nothing."""

    async def test_am_3_publish_retried_by_update_with_start_freezes_once(self, ctx: Ctx) -> None:
        task = f"t-pub-{ctx.uid}"
        h.eligible_client(ctx.a, "client-1", 1_000_000)
        now = await h.business_now(ctx)
        request = h.publish_request(task, "client-1", now, now + 30 * h.DAY, 100_000)
        first, second = await twice(
            ctx, lambda: api.publish_task(ctx.client, request, ctx.task_queue), task_w(task))
        assert second == first and first.frozen_fen == 110_000
        assert [t.amount_fen for t in ctx.a.ledger.transfers(business_key_prefix=f"freeze:{task}")] == [110_000]

    async def test_am_5_join_twice_answers_already_joined_and_changes_nothing(self, ctx: Ctx) -> None:
        task = f"t-join-{ctx.uid}"
        await h.published_task(ctx, task)
        h.creator(ctx.a, "cr-1")
        first, second = await twice(ctx, lambda: api.join(ctx.client, task, "cr-1"), task_w(task))
        assert (first.already_joined, second.already_joined) == (False, True)
        assert second.model_dump(exclude={"already_joined"}) == first.model_dump(exclude={"already_joined"})

    async def test_am_6_report_mount_twice_starts_one_piece(self, ctx: Ctx) -> None:
        task = f"t-mnt-{ctx.uid}"
        await h.published_task(ctx, task)
        h.creator(ctx.a, "cr-1")
        await api.join(ctx.client, task, "cr-1")
        t0 = await h.business_now(ctx)
        first, second = await twice(ctx, lambda: h.mount(ctx, task, "c1", "cr-1", t0), task_w(task),
                                    content_w(task, "c1"))
        assert second == first
        assert (await task_seen(ctx, task)).view.pieces.open == 1

    async def test_am_14_revoke_content_twice_answers_the_first_revocation(self, ctx: Ctx) -> None:
        task, _ = await joined_and_mounted(ctx, "rvc")
        first, second = await twice(ctx, lambda: api.revoke_content(ctx.client, task, "cr-1", "c1"),
                                    task_w(task), content_w(task, "c1"))
        assert second == first and first.content_ids == ["c1"]

    async def test_am_15_revoke_all_twice_answers_the_first_revocation(self, ctx: Ctx) -> None:
        task, _ = await joined_and_mounted(ctx, "rva")
        first, second = await twice(ctx, lambda: api.revoke_all(ctx.client, task, "cr-1"),
                                    task_w(task), content_w(task, "c1"))
        assert second == first and first.content_ids == ["c1"]

    async def test_am_14_15_revoke_authorization_signal_twice(self, ctx: Ctx) -> None:
        task, _ = await joined_and_mounted(ctx, "rvs")
        await h.mount(ctx, task, "c2", "cr-1", await h.business_now(ctx))
        watched = (task_w(task), content_w(task, "c1"), content_w(task, "c2"))
        await twice(ctx, lambda: api.revoke_authorization(ctx.client, task, "cr-1", "c1"), *watched)
        await twice(ctx, lambda: api.revoke_authorization(ctx.client, task, "cr-1"), *watched)
        state = await task_seen(ctx, task)
        assert [p.status for p in state.pieces.values()] == ["unmounted", "unmounted"]

    async def test_am_7_cancel_twice_is_refused_naming_the_first_cancellation(self, ctx: Ctx) -> None:
        task, _ = await joined_and_mounted(ctx, "cnl")
        first, second = await twice(ctx, lambda: api.cancel(ctx.client, task, "client withdrew", "client-1"),
                                    task_w(task), content_w(task, "c1"))
        assert first.end_reason is mt.EndReason.CANCELLED
        refused_naming(second, "CancelRefused", "already cancelled", "client withdrew")

    async def test_am_10_budget_exhausted_signal_twice_ends_the_period_once(self, ctx: Ctx) -> None:
        task, t0 = await joined_and_mounted(ctx, "bex")
        signal = mt.BudgetExhaustedSignal(exhausted_at=t0)
        await twice(ctx, lambda: ctx.client.get_workflow_handle(mount_task_id(task)).signal(
            "budget_exhausted", signal), task_w(task), content_w(task, "c1"))
        state = await task_seen(ctx, task)
        assert (state.end_reason, state.ended_at) == (mt.EndReason.BUDGET_USED_UP, t0)

    async def test_am_12_content_closed_reported_again_counts_the_piece_once(self, ctx: Ctx) -> None:
        """The piece settles at its window's close and reports it; the same report again (a retried signal)
        changes neither the task's totals nor the ledger."""
        task, t0 = await joined_and_mounted(ctx, "ccl")
        await h.convert(ctx, task, "c1", "e1", 7, t0)
        await h.content_when(ctx, task, "c1", lambda s: s.counted_conversions == 7)
        await h.advance(ctx, 17 * 86400 + 60)
        settled = await h.content_when(ctx, task, "c1", lambda s: s.settlement is not None)
        assert settled.settlement is not None
        await h.task_when(ctx, task, lambda s: s.pieces["c1"].status == "settled")
        report = mt.ContentClosedSignal(content_id="c1", fee_fen=settled.settlement.fee_fen,
                                        platform_fee_fen=settled.settlement.platform_fee_fen, settled=True)
        await repeat(ctx, lambda: ctx.client.get_workflow_handle(mount_task_id(task)).signal(
            "content_closed", report), task_w(task), content_w(task, "c1"))
        state = await task_seen(ctx, task)
        assert (state.money.paid_fen, state.money.platform_fees_fen, state.view.pieces.open) == (700, 70, 0)
        assert ctx.a.ledger.balance("creator:cr-1:payable").balance_fen == 700


# ---------------------------------------------------------------------------------------------------- AM: a piece
class TestR1DuplicateContentMessages:
    """MountedContentWorkflow: R-1 conversion batches and voids by event id, AM-16 visibility and disposal,
    AM-14/AM-7 the task's revocation and end reports, AM-22 a released settlement, AM-11/AM-17 disputes."""

    async def test_r_1_report_conversions_twice_counts_the_batch_once(self, ctx: Ctx) -> None:
        task, t0 = await joined_and_mounted(ctx, "cv2")
        await twice(ctx, lambda: h.convert(ctx, task, "c1", "e1", 7, t0 + SECOND), task_w(task),
                    content_w(task, "c1"))
        state = await h.content_when(ctx, task, "c1", lambda s: True)
        assert (state.counted_conversions, state.fee_fen) == (7, 700)
        assert ctx.a.ledger.task_money(task)["spent_fen"] == 700

    async def test_r_1_void_conversions_twice_gives_the_batch_back_once(self, ctx: Ctx) -> None:
        task, t0 = await joined_and_mounted(ctx, "vd2")
        await h.convert(ctx, task, "c1", "e1", 7, t0 + SECOND)
        await h.convert(ctx, task, "c1", "e2", 3, t0 + SECOND)
        await h.content_when(ctx, task, "c1", lambda s: s.counted_conversions == 10)
        void = mc.VoidConversions(event_id="e1", reason="fake installs found by risk control")
        await twice(ctx, lambda: api.content_signal(ctx.client, task, "c1", "void_conversions", void),
                    task_w(task), content_w(task, "c1"))
        state = await h.content_when(ctx, task, "c1", lambda s: True)
        assert (state.counted_conversions, state.fee_fen) == (3, 300)
        assert ctx.a.ledger.task_money(task)["spent_fen"] == 300

    async def test_am_16_visibility_lost_and_disposal_twice(self, ctx: Ctx) -> None:
        task, t0 = await joined_and_mounted(ctx, "vis")
        await h.mount(ctx, task, "c2", "cr-1", t0)
        lost = mc.VisibilityLost(kind=mc.VisibilityKind.DELETED, occurred_at=t0)
        await twice(ctx, lambda: api.content_signal(ctx.client, task, "c1", "report_visibility_lost", lost),
                    task_w(task), content_w(task, "c1"))
        disposal = mc.PlatformDisposal(reason=mc.DisposalReason.TAKEN_DOWN, occurred_at=t0)
        await twice(ctx, lambda: api.content_signal(ctx.client, task, "c2", "report_disposal", disposal),
                    task_w(task), content_w(task, "c2"))
        c1, c2 = [await api.content_state(ctx.client, task, c) for c in ("c1", "c2")]
        assert (c1.counting_stops_at, c2.disposed_at) == (t0, t0)
        assert "c2" in ctx.a.main_site.unmounted(task)  # disposed: taken down at once

    async def test_am_14_am_7_content_revoked_and_task_period_ended_twice(self, ctx: Ctx) -> None:
        task, t0 = await joined_and_mounted(ctx, "tpe")
        await h.mount(ctx, task, "c2", "cr-1", t0)
        revoked = mc.ContentRevoked(revoked_at=t0, scope="content")
        await twice(ctx, lambda: api.content_signal(ctx.client, task, "c1", "content_revoked", revoked),
                    content_w(task, "c1"))
        ended = mc.TaskPeriodEnded(ended_at=t0, reason="cancelled")
        await twice(ctx, lambda: api.content_signal(ctx.client, task, "c2", "task_period_ended", ended),
                    content_w(task, "c2"))
        c1, c2 = [await api.content_state(ctx.client, task, c) for c in ("c1", "c2")]
        assert (c1.revoked_at, c2.task_period_ended_at) == (t0, t0)

    async def test_am_22_settlement_released_twice_releases_once(self, ctx: Ctx) -> None:
        task, t0 = await joined_and_mounted(ctx, "rel")
        released = mc.SettlementReleased(case_id=f"v-{ctx.uid}", outcome="paid", released_at=t0 + SECOND)
        await twice(ctx, lambda: api.content_signal(ctx.client, task, "c1", "settlement_released", released),
                    content_w(task, "c1"))
        hold = (await api.content_state(ctx.client, task, "c1")).settlement_hold
        assert hold is not None and (hold.released_at, hold.outcome) == (t0 + SECOND, "paid")

    async def test_am_11_am_17_raise_and_resolve_dispute_twice(self, ctx: Ctx) -> None:
        """A second `raise_dispute` of the same party is refused while its first is open (it names it); the same
        `resolve_dispute` again answers the first resolution, another is refused naming it (AM-17); the budget
        counter moves once."""
        task, t0 = await joined_and_mounted(ctx, "dsp")
        await h.convert(ctx, task, "c1", "e1", 10, t0)
        await h.content_when(ctx, task, "c1", lambda s: s.counted_conversions == 10)
        await h.advance(ctx, 14 * 86400 + 3600)
        await h.content_when(ctx, task, "c1", lambda s: s.stage is mc.ContentStage.PUBLICITY)
        raise_ = mc.RaiseDisputeRequest(raised_by="client", party_id="client-1", reason="installs look inflated")
        first, second = await twice(ctx, lambda: content_update(ctx, task, "raise_dispute", raise_,
                                                                   mc.DisputeReceipt), content_w(task, "c1"))
        assert first.dispute_id == "d1"
        refused_naming(second, "DisputeRefused", "dispute d1", "is open")
        resolve = mc.ResolveDisputeRequest(dispute_id="d1", operator_id="op-1", amount_fen=600, note="4 were fake")
        first, second = await twice(ctx, lambda: content_update(ctx, task, "resolve_dispute", resolve,
                                                                   mc.DisputeResolution),
                                    task_w(task), content_w(task, "c1"))
        assert (first.amount_fen, first.budget_adjustment_fen) == (600, -400)
        assert second == first  # the same request again: the first answer, and nothing moved (repeat checks)
        other = resolve.model_copy(update={"amount_fen": 700})
        conflict = await repeat(ctx, lambda: content_update(ctx, task, "resolve_dispute", other,
                                                             mc.DisputeResolution), task_w(task), content_w(task, "c1"))
        refused_naming(conflict, "ResolutionRefused", "d1 of content c1 was resolved at", "by op-1 with 600 fen",
                       "amount_fen: resolved with 600, this asks 700")
        assert ctx.a.ledger.task_money(task)["spent_fen"] == 600



class TestAM20AM22DuplicateAppealMessages:
    """ViolationCaseWorkflow: AM-20 appeal, AM-21 marked complex, AM-22 decided: each repeat is refused naming the
    first, and the penalty's money (frozen at notice, deducted when the rejection makes it final) moves once. A
    timed restriction keeps the final case running, so the repeated decision reaches the workflow."""

    async def test_am_20_21_22_appeal_mark_complex_and_decide_twice(self, ctx: Ctx) -> None:
        h.creator(ctx.a, "cr-1")
        earn(ctx.a, "cr-1", 5_000, f"seed-{ctx.uid}")
        case = f"v-{ctx.uid}"
        freeze = vc.Penalty(kind=vc.PenaltyKind.FREEZE_FEES, amount_fen=3_000, deduct_when_final=True)
        notice_at = await h.business_now(ctx)
        closed = vc.Penalty(kind=vc.PenaltyKind.CLOSE_ORDER_TAKING, until_at=notice_at + 60 * h.DAY)
        await start_case(ctx.client, ctx.task_queue, case, "cr-1", notice_at, freeze, closed)
        await case_when(ctx.client, case, lambda s: s.penalties[0].status is vc.PenaltyStatus.IN_FORCE)
        watched = Watched(violation_case_id(case), vc.ViolationCaseView)

        appeal = vc.AppealRequest(party_id="cr-1", reason="the conversions were real: the app's own logs attached")
        first, second = await twice(ctx, lambda: violations.appeal(ctx.client, case, appeal), watched)
        assert first.case_id == case
        refused_naming(second, "AppealRefused", "already appealed")

        complex_ = vc.MarkComplexRequest(operator_id="op-1", note="needs the main site's raw logs")
        first, second = await twice(ctx, lambda: violations.mark_complex(ctx.client, case, complex_), watched)
        assert first.stage is vc.CaseStage.APPEAL_COMPLEX
        refused_naming(second, "AppealRefused", "already marked complex")

        decide = vc.DecideAppealRequest(decision="rejected", operator_id="op-1", note="logs were edited")
        first, second = await twice(ctx, lambda: violations.decide_appeal(ctx.client, case, decide), watched)
        assert first.stage is vc.CaseStage.FINAL and first.penalties[0].deducted_fen == 3_000
        refused_naming(second, "AppealRefused", "already decided", "rejected")
        assert ctx.a.ledger.balance("creator:cr-1:payable").balance_fen == 2_000  # deducted once


