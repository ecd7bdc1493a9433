"""Duplicates and order (issue 7, item 3): every signal and update of every workflow type delivered twice changes
nothing beyond the first delivery, and conversions / billable events delivered out of order reach the money the
rules say.

Rules: AM-12 (settled exactly once, whatever retries happen), R-1 (a batch's `event_id` counts it once; a void by
event id), AM-5 (joining twice changes nothing), R-3 (budget accrues in arrival order), R-8 (XG money), and for the
commands the contract's "a rejected command changes nothing".

How a duplicate is checked (`twice`): the message is delivered, the workflows involved are let go quiet (no
workflow task or activity in flight), their `state` query (as a whole model dump) and every table of the database
(ledger accounts and postings, the budget counter and its accruals, the XG event register, the directory, the
penalty register, the vault, the outbox) are read; the same message (same payload, same event or request id) is
delivered again and everything is read again: it must be equal. Left out of the comparison are only the fields that
count messages received rather than their effects (`RECEIPT_FIELDS`). For updates the second answer must equal the
first, or be a typed refusal naming the repeat: which one each update gives is asserted in its case and listed in
`DUPLICATE_CASES` (the coverage guard fails when a message registered on a workflow has no case there).
"""

from __future__ import annotations

import inspect
import random
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import pytest
from pydantic import BaseModel
from temporalio import workflow

from activities.notifications import Notifications
from starter import client as api
from starter import privacy as pr_api
from starter import violations
from starter import xingguang as xg_api
from starter.client import Refused
from tests import helpers as h
from tests import test_xg_fixtures as xgf
from tests.conftest import Ctx, wait_until_quiet
from tests.duplicates_penalties import TestR12AM22DuplicatePenaltyMessages  # noqa: F401 (collected here)
from tests.duplicates_xg_holds import TestR13DuplicateXgRelease  # noqa: F401 (collected here)
from tests.privacy_helpers import PHONE, eventually, fixed_calendar, person, vault
from tests.violation_helpers import case_when, earn, start_case
from worker import WORKFLOWS
from workflows.contract import account as ac
from workflows.contract import data_subject_request as dsr
from workflows.contract import mount_task as mt
from workflows.contract import mounted_content as mc
from workflows.contract import security_incident as inc
from workflows.contract import violation_case as vc
from workflows.contract import xingguang as xg
from workflows.contract.names import (
    account_id,
    data_subject_request_id,
    mount_task_id,
    mounted_content_id,
    security_incident_id,
    violation_case_id,
    xingguang_claims_id,
)
from workflows.contract.privacy import AccountParty, PersonalField
from workflows.contract.xingguang_claims import XingguangClaimsState

# Deadlines in working days come from a fixed calendar: the test server's clock runs into unpublished years.
pytestmark = pytest.mark.replace_activities.with_args(fixed_calendar)

HOUR, SECOND = timedelta(hours=1), timedelta(seconds=1)

# Fields that record receipt, not effect: a per-run message counter that bounds the history (continue-as-new), the
# XG count of batches received and its ledger-operation sequence (each delivery is one claim in the event register,
# which answers "duplicate" the second time), the account's count of activity reports received and when its
# obligations were last checked (a repeated signal re-checks; the answer is the same).
RECEIPT_FIELDS: dict[type[BaseModel], set[str]] = {
    mt.MountTaskState: {"messages_this_run"},
    mc.MountedContentState: {"messages_this_run"},
    vc.ViolationCaseState: {"messages_this_run"},
    xg.XingguangTaskState: {"messages_this_run", "batches_received", "data_ops"},
    ac.AccountState: {"messages_this_run", "activities_recorded", "obligations_checked_at"},
    dsr.DataSubjectRequestState: set(),
    inc.SecurityIncidentState: set(),
    XingguangClaimsState: set(),
}


# ---------------------------------------------------------------------------------------------------- the harness
@dataclass(frozen=True)
class Watched:
    """A workflow whose `state` is compared, read as `model`."""

    workflow_id: str
    model: type[BaseModel]


def task_w(task: str) -> Watched:
    return Watched(mount_task_id(task), mt.MountTaskState)


def content_w(task: str, content_id: str) -> Watched:
    return Watched(mounted_content_id(task, content_id), mc.MountedContentState)


def world(ctx: Ctx) -> dict[str, list[str]]:
    """Every row of every table of the test's database: ledger, budget counter, registers, vault, outbox."""
    with ctx.a.db.transaction() as tx:
        tables = [r[0] for r in tx.fetchall("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")]
        return {t: sorted(repr(row) for row in tx.fetchall(f"SELECT * FROM {t}")) for t in tables}


async def observe(ctx: Ctx, watched: tuple[Watched, ...]) -> dict[str, Any]:
    await wait_until_quiet(ctx, [w.workflow_id for w in watched])
    seen: dict[str, Any] = {}
    for w in watched:
        state = await ctx.client.get_workflow_handle(w.workflow_id).query("state", result_type=w.model)
        seen[w.workflow_id] = state.model_dump(mode="json", exclude=RECEIPT_FIELDS[w.model])
    seen["database"] = world(ctx)
    return seen


async def attempt(send: Callable[[], Awaitable[Any]]) -> Any:
    """The answer, or the refusal (a Refused carries its kind and reasons)."""
    try:
        return await send()
    except Refused as refusal:
        return refusal


def differences(once: Any, again: Any, path: str = "") -> list[str]:
    if isinstance(once, dict) and isinstance(again, dict):
        return [d for k in sorted(set(once) | set(again), key=str)
                for d in differences(once.get(k), again.get(k), f"{path}.{k}")]
    if isinstance(once, list) and isinstance(again, list) and once != again and len(once) == len(again):
        return [d for i, (a, b) in enumerate(zip(once, again, strict=True)) for d in differences(a, b, f"{path}[{i}]")]
    return [] if once == again else [f"{path}: {once!r} -> {again!r}"]


async def repeat(ctx: Ctx, send: Callable[[], Awaitable[Any]], *watched: Watched) -> Any:
    """Delivers a message that was delivered before, again; asserts it changed nothing; returns its answer."""
    once = await observe(ctx, watched)
    answer = await attempt(send)
    again = await observe(ctx, watched)
    changed = differences(once, again)
    assert not changed, "the second delivery changed:\n" + "\n".join(changed[:30])
    return answer


async def twice(ctx: Ctx, send: Callable[[], Awaitable[Any]], *watched: Watched) -> tuple[Any, Any]:
    """Delivers a message, then the same message again (`repeat`); returns both answers."""
    first = await attempt(send)
    assert not isinstance(first, Refused), f"the first delivery was refused: {first}"
    return first, await repeat(ctx, send, *watched)


def refused_naming(answer: Any, kind: str, *words: str) -> None:
    """A typed refusal whose reasons name the repeat."""
    assert isinstance(answer, Refused), f"expected a refusal, got {answer!r}"
    text = "; ".join(answer.reasons)
    assert answer.kind == kind and all(w in text for w in words), (answer.kind, text)


# ---------------------------------------------------------------------------------------------------- AM: the task
async def joined_and_mounted(ctx: Ctx, name: str, *, budget_fen: int = 100_000) -> tuple[str, datetime]:
    """A published task (price 100 fen, 30 days), creator cr-1 joined, content c1 mounted now."""
    task = f"t-{name}-{ctx.uid}"
    await h.published_task(ctx, task, budget_fen=budget_fen)
    h.creator(ctx.a, "cr-1")
    await api.join(ctx.client, task, "cr-1")
    t0 = await h.business_now(ctx)
    await h.mount(ctx, task, "c1", "cr-1", t0)
    return task, t0


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
        assert (await api.task_state(ctx.client, task)).pieces_open == 1

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
        state = await api.task_state(ctx.client, task)
        assert [p.status for p in state.pieces.values()] == ["unmounted", "unmounted"]

    async def test_am_7_cancel_twice_is_refused_naming_the_first_cancellation(self, ctx: Ctx) -> None:
        task, _ = await joined_and_mounted(ctx, "cnl")
        first, second = await twice(ctx, lambda: api.cancel(ctx.client, task, "client withdrew", "client-1"),
                                    task_w(task), content_w(task, "c1"))
        assert first.end_reason is mt.EndReason.CANCELLED
        refused_naming(second, "ValueError", "already cancelled", "client withdrew")

    async def test_am_10_budget_exhausted_signal_twice_ends_the_period_once(self, ctx: Ctx) -> None:
        task, t0 = await joined_and_mounted(ctx, "bex")
        signal = mt.BudgetExhaustedSignal(exhausted_at=t0)
        await twice(ctx, lambda: ctx.client.get_workflow_handle(mount_task_id(task)).signal(
            "budget_exhausted", signal), task_w(task), content_w(task, "c1"))
        state = await api.task_state(ctx.client, task)
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
        state = await api.task_state(ctx.client, task)
        assert (state.paid_to_creators_fen, state.platform_fees_fen, state.pieces_open) == (700, 70, 0)
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
        """A second `raise_dispute` of the same party is refused while its first is open (it names it); a second
        `resolve_dispute` is refused (the dispute is no longer open); the budget counter moves once."""
        task, t0 = await joined_and_mounted(ctx, "dsp")
        await h.convert(ctx, task, "c1", "e1", 10, t0)
        await h.content_when(ctx, task, "c1", lambda s: s.counted_conversions == 10)
        await h.advance(ctx, 14 * 86400 + 3600)
        await h.content_when(ctx, task, "c1", lambda s: s.stage is mc.ContentStage.PUBLICITY)
        raise_ = mc.RaiseDisputeRequest(raised_by="client", party_id="client-1", reason="installs look inflated")
        first, second = await twice(ctx, lambda: _content_update(ctx, task, "raise_dispute", raise_,
                                                                   mc.DisputeReceipt), content_w(task, "c1"))
        assert first.dispute_id == "d1"
        refused_naming(second, "DisputeRefused", "dispute d1", "is open")
        resolve = mc.ResolveDisputeRequest(dispute_id="d1", operator_id="op-1", amount_fen=600, note="4 were fake")
        first, second = await twice(ctx, lambda: _content_update(ctx, task, "resolve_dispute", resolve,
                                                                   mc.DisputeResolution),
                                    task_w(task), content_w(task, "c1"))
        assert (first.amount_fen, first.budget_adjustment_fen) == (600, -400)
        refused_naming(second, "ValueError", "d1 is not an open dispute")
        assert ctx.a.ledger.task_money(task)["spent_fen"] == 600


async def _content_update(ctx: Ctx, task: str, name: str, request: BaseModel, result_type: type[Any]) -> Any:
    return await api._update(ctx.client, mounted_content_id(task, "c1"), name, request, result_type)


# ---------------------------------------------------------------------------------------------------- AM: a case
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
        watched = Watched(violation_case_id(case), vc.ViolationCaseState)

        appeal = vc.AppealRequest(party_id="cr-1", reason="the conversions were real: the app's own logs attached")
        first, second = await twice(ctx, lambda: violations.appeal(ctx.client, case, appeal), watched)
        assert first.case_id == case
        refused_naming(second, "ValueError", "already appealed")

        complex_ = vc.MarkComplexRequest(operator_id="op-1", note="needs the main site's raw logs")
        first, second = await twice(ctx, lambda: violations.mark_complex(ctx.client, case, complex_), watched)
        assert first.stage is vc.CaseStage.APPEAL_COMPLEX
        refused_naming(second, "ValueError", "already marked complex")

        decide = vc.DecideAppealRequest(decision="rejected", operator_id="op-1", note="logs were edited")
        first, second = await twice(ctx, lambda: violations.decide_appeal(ctx.client, case, decide), watched)
        assert first.stage is vc.CaseStage.FINAL and first.penalties[0].deducted_fen == 3_000
        refused_naming(second, "ValueError", "already decided", "rejected")
        assert ctx.a.ledger.balance("creator:cr-1:payable").balance_fen == 2_000  # deducted once


# ---------------------------------------------------------------------------------------------------- XG
def xg_w(task: str) -> Watched:
    return Watched(xg.xg_task_workflow_id(task), xg.XingguangTaskState)


def same_status(first: xg.TaskStatus, second: xg.TaskStatus) -> None:
    """A TaskStatus says when the command was answered (`applied_at`); the rest must be the first answer."""
    assert second.model_dump(exclude={"applied_at"}) == first.model_dump(exclude={"applied_at"})


class TestXGDuplicateCommands:
    """XingguangTaskWorkflow (R-5): order (XG-1, update-with-start), materials and provider (XG-1, XG-3), creator
    selection, submission and reviews (XG-4), objections (XG-5), data disputes (XG-6), pauses (XG-7, R-9), violations
    and per-piece decisions (XG-8, R-11), compensation and penalties (XG-10, XG-8): each delivered twice."""

    async def test_xg_1_3_order_materials_and_provider_twice(self, ctx: Ctx) -> None:
        task, client_id = xgf.ids(ctx, "ord")
        h.eligible_client(ctx.a, client_id, 300_000)
        t0 = await h.business_now(ctx)
        order = xgf.order_request(task, client_id, t0 + h.DAY, t0 + 11 * h.DAY)
        first, second = await twice(ctx, lambda: xg_api.order(ctx.client, order, ctx.task_queue), xg_w(task))
        assert second == first
        assert [t.amount_fen for t in ctx.a.ledger.transfers(business_key_prefix=f"xg:freeze:{task}")] == [
            first.terms.frozen_fen]
        review = xg.ReviewMaterialsRequest(operator_id=xgf.OPERATOR, verdicts=[
            xg.MaterialVerdict(kind=xg.MaterialKind.QUALIFICATION, item_id="licence-1", approved=True)])
        first, second = await twice(ctx, lambda: xg_api.review_materials(ctx.client, task, review), xg_w(task))
        assert first.stage is xg.TaskStage.AWAITING_PROVIDER
        refused_naming(second, "ValueError", "awaiting_provider, not materials_review")
        first, second = await twice(ctx, lambda: xg_api.assign_provider(ctx.client, task, xgf.OPERATOR,
                                                                         xgf.PROVIDER), xg_w(task))
        assert first.stage is xg.TaskStage.IN_PROGRESS
        refused_naming(second, "ValueError", "in_progress, not awaiting_provider")

    async def test_xg_4_select_submit_and_reviews_twice(self, ctx: Ctx) -> None:
        task, client_id = xgf.ids(ctx, "rev")
        await xgf.ordered_task(ctx, task, client_id)
        h.creator(ctx.a, "cr-1")
        select = xg.SelectCreatorRequest(provider_id=xgf.PROVIDER, piece_id="p1", creator_id="cr-1",
                                         creator_earnings_fen=10_000)
        first, second = await twice(ctx, lambda: xg_api.select_creator(ctx.client, task, select), xg_w(task))
        assert second == first and first.agreed_earnings_fen == 10_000
        submit = xg.SubmitContentRequest(creator_id="cr-1", piece_id="p1", content_id="content-p1")
        first, second = await twice(ctx, lambda: xg_api.submit_content(ctx.client, task, submit), xg_w(task))
        assert second == first and first.stage is xg.PieceStage.PROVIDER_REVIEW
        provider = xg.ProviderReviewRequest(provider_id=xgf.PROVIDER, piece_id="p1", approved=True)
        first, second = await twice(ctx, lambda: xg_api.provider_review(ctx.client, task, provider), xg_w(task))
        assert first.stage is xg.PieceStage.CLIENT_REVIEW
        refused_naming(second, "ValueError", "p1 is client_review, not provider_review")
        client = xg.ClientReviewRequest(client_id=client_id, piece_id="p1", approved=True)
        first, second = await twice(ctx, lambda: xg_api.client_review(ctx.client, task, client), xg_w(task))
        assert first.approved_at is not None  # approved (and published: nothing holds it)
        refused_naming(second, "ValueError", "not client_review")
        assert len((await xg_api.state(ctx.client, task)).pieces["p1"].reviews) == 2

    async def test_xg_5_6_objection_and_data_dispute_twice(self, ctx: Ctx) -> None:
        task, client_id = xgf.ids(ctx, "obj")
        await xgf.ordered_task(ctx, task, client_id, start_in=timedelta(0))
        await xgf.published_piece(ctx, task, client_id, "p1", "cr-1", 10_000)
        objection = xg.RaiseObjectionRequest(client_id=client_id, piece_id="p1", reason="logo shown too small")
        first, second = await twice(ctx, lambda: xg_api.raise_objection(ctx.client, task, objection), xg_w(task))
        assert first.objection is not None
        refused_naming(second, "ValueError", "already had an objection")
        decide = xg.DecideObjectionRequest(operator_id=xgf.OPERATOR, piece_id="p1", upheld=False,
                                           note="within the brief")
        first, second = await twice(ctx, lambda: xg_api.decide_objection(ctx.client, task, decide), xg_w(task))
        assert first.objection is not None and first.objection.outcome == "dismissed: within the brief"
        refused_naming(second, "ValueError", "has no open objection")
        dispute = xg.RaiseDataDisputeRequest(client_id=client_id, piece_id="p1", reason="plays double-counted")
        first, second = await twice(ctx, lambda: xg_api.raise_data_dispute(ctx.client, task, dispute), xg_w(task))
        assert first.data_dispute is not None
        refused_naming(second, "ValueError", "already had a data dispute")
        resolve = xg.ResolveDataDisputeRequest(operator_id=xgf.OPERATOR, piece_id="p1", billable_events=0,
                                               note="nothing billed yet")
        first, second = await twice(ctx, lambda: xg_api.resolve_data_dispute(ctx.client, task, resolve),
                                    xg_w(task))
        assert first.data_dispute is not None and first.data_dispute.decided_at is not None
        refused_naming(second, "ValueError", "has no open data dispute")

    async def test_r_1_billable_events_and_their_void_twice(self, ctx: Ctx) -> None:
        task, client_id = xgf.ids(ctx, "bev")
        t0, _ = await xgf.ordered_task(ctx, task, client_id, start_in=timedelta(0))
        await xgf.published_piece(ctx, task, client_id, "p1", "cr-1", 10_000)
        await h.advance(ctx, 3600)
        at = t0 + 30 * 60 * SECOND
        await twice(ctx, lambda: xgf.events(ctx, task, "b1", "p1", 40, at), xg_w(task))
        await xgf.events(ctx, task, "b2", "p1", 10, at)
        piece = await xgf.piece_when(ctx, task, "p1", lambda p: p.billable_events == 50)
        assert piece.billed_spend_fen == 2_500
        void = xg.VoidBillableEvents(event_id="b1", reason="bot traffic found later")
        await twice(ctx, lambda: xg_api.void_billable_events(ctx.client, task, void), xg_w(task))
        state = await xg_api.state(ctx.client, task)
        assert (state.pieces["p1"].billable_events, state.placement_spent_fen) == (10, 500)

    async def test_xg_7_r_9_pause_answer_and_cancel_twice(self, ctx: Ctx) -> None:
        task, client_id = xgf.ids(ctx, "pau")
        t0, _ = await xgf.ordered_task(ctx, task, client_id)
        await xgf.select(ctx, task, "p1", "cr-1", 10_000)
        await xgf.submit(ctx, task, "p1", "cr-1", "content-p1")  # submitted: owed in full if cancelled
        pause = xg.PauseRequest(operator_id=xgf.OPERATOR, pause_id="pa1", reason="health claim in the voice-over",
                                **await xgf.notice(ctx, t0 + 3 * h.DAY))
        first, second = await twice(ctx, lambda: xg_api.pause(ctx.client, task, pause), xg_w(task))
        assert second == first
        answer = xg.RespondToPauseRequest(client_id=client_id, pause_id="pa1", changes_made=True)
        first, second = await twice(ctx, lambda: xg_api.respond_to_pause(ctx.client, task, answer), xg_w(task))
        assert first.resumed_at is not None
        refused_naming(second, "ValueError", "pause pa1 is already answered")
        await xg_api.pause(ctx.client, task, pause.model_copy(update={"pause_id": "pa2"}))
        await xg_api.respond_to_pause(ctx.client, task, answer.model_copy(update={"pause_id": "pa2",
                                                                                  "changes_made": False}))
        cancel = xg.CancelAfterPauseRequest(operator_id=xgf.OPERATOR, pause_id="pa2", delay_fee_fen=1_000,
                                            delay_fee_reason="two days of held production")
        first, second = await twice(ctx, lambda: xg_api.cancel_after_pause(ctx.client, task, cancel), xg_w(task))
        assert first.stage is xg.TaskStage.SETTLING
        refused_naming(second, "ValueError", "settling: nothing to cancel")
        assert (await xg_api.state(ctx.client, task)).delay_fee_fen == 1_000

    async def test_xg_8_r_11_violations_fix_proof_and_piece_decisions_twice(self, ctx: Ctx) -> None:
        task, client_id = xgf.ids(ctx, "vio")
        await xgf.ordered_task(ctx, task, client_id, start_in=timedelta(0))
        await xgf.published_piece(ctx, task, client_id, "p1", "cr-1", 10_000)
        await xgf.published_piece(ctx, task, client_id, "p2", "cr-2", 10_000)
        hold = xg.RecordViolationRequest(operator_id=xgf.OPERATOR, violation_id="v1",
                                         cause=xg.TerminationCause.COMPONENT_OR_LANDING_PAGE_FAULT,
                                         note="download card points to a removed app",
                                         decision=xg.ViolationDecision.CONTINUE_AFTER_FIX)
        first, second = await twice(ctx, lambda: xg_api.record_violation(ctx.client, task, hold), xg_w(task))
        same_status(first, second)
        assert first.paused
        proof = xg.SubmitFixProofRequest(violation_id="v1", submitted_by=client_id, proof="app re-listed")
        first, second = await twice(ctx, lambda: xg_api.submit_fix_proof(ctx.client, task, proof), xg_w(task))
        assert not first.paused
        refused_naming(second, "ValueError", "v1 is not waiting for proof of a fix")
        stop = xg.RecordViolationRequest(operator_id=xgf.OPERATOR, violation_id="v2",
                                         cause=xg.TerminationCause.CHEATING_BYPASS_OR_LAUNDERING,
                                         note="fake plays bought by the client")
        first, second = await twice(ctx, lambda: xg_api.record_violation(ctx.client, task, stop), xg_w(task))
        same_status(first, second)
        assert first.stage is xg.TaskStage.STOPPED
        decide = xg.DecidePieceRequest(operator_id=xgf.OPERATOR, piece_id="p1", settle=True, note="not involved")
        first, second = await twice(ctx, lambda: xg_api.decide_piece(ctx.client, task, decide), xg_w(task))
        assert first.stop_decision == "settle"
        refused_naming(second, "ValueError", "p1 is not waiting for a settle-or-decline decision")

    async def test_xg_10_xg_8_compensate_and_penalize_twice(self, ctx: Ctx) -> None:
        task, client_id = xgf.ids(ctx, "cmp")
        await xgf.ordered_task(ctx, task, client_id, balance_fen=400_000)
        compensate = xg.CompensateRequest(**xgf.PLATFORM_FAULT, operator_id=xgf.OPERATOR, compensation_id="k1",
                                          kind=xg.CompensationKind.DELIVERY_ANOMALY, amount_fen=2_000,
                                          policy="delivery anomaly policy 2026-03", note="ads served late")
        first, second = await twice(ctx, lambda: xg_api.compensate(ctx.client, task, compensate), xg_w(task))
        assert second == first and first.paid_fen == 2_000
        for action in (xg.PenaltyAction.FREEZE, xg.PenaltyAction.DEDUCT):
            penalty = xg.PenalizeRequest(operator_id=xgf.OPERATOR, penalty_id=f"pen-{action.value}", action=action,
                                         amount_fen=3_000, reason="landing page tampered with")
            first, second = await twice(ctx, lambda p=penalty: xg_api.penalize(ctx.client, task, p), xg_w(task))  # type: ignore[misc]
            assert second == first and first.amount_fen == 3_000
        state = await xg_api.state(ctx.client, task)
        assert (len(state.compensations), len(state.penalties), state.deduction_requested_fen) == (1, 2, 3_000)

    async def test_r_14_a_claim_after_close_twice(self, ctx: Ctx) -> None:
        task, client_id = xgf.ids(ctx, "late2")
        await xgf.ordered_task(ctx, task, client_id, balance_fen=300_000)  # order 198,000: cap 39,600
        await xg_api.record_violation(ctx.client, task, xg.RecordViolationRequest(
            operator_id=xgf.OPERATOR, violation_id="end", note="client cancelled",
            cause=xg.TerminationCause.BILLING_OVER_BALANCE_SHORT_OR_CANCELLED))
        await h.finish(ctx, xg.xg_task_workflow_id(task), xg.TaskResult)
        claim = xg.CompensateRequest(**xgf.PLATFORM_FAULT, operator_id=xgf.OPERATOR, compensation_id="d1",
                                     kind=xg.CompensationKind.DAMAGES, amount_fen=39_600, loss_fen=50_000,
                                     note="report data lost")
        first, second = await twice(ctx, lambda: xg_api.compensate(ctx.client, task, claim, ctx.task_queue),
                                    Watched(xingguang_claims_id(task), XingguangClaimsState))
        assert second == first and first.paid_fen == 39_600
        assert ctx.a.ledger.balance(f"client:{client_id}:available").balance_fen == 300_000 + 39_600
        assert ctx.a.ledger.balance("platform:revenue").balance_fen == -39_600
        assert ctx.a.ledger.conservation_total() == 0


# ---------------------------------------------------------------------------------------------------- PR
def closed_or_refused(answer: Any, kind: str, *words: str) -> None:
    """The repeat of the command that lets the workflow finish: refused by the validator while the workflow still
    runs (naming the repeat), or refused as NotRunning once it has closed. Either way it changes nothing."""
    if isinstance(answer, Refused) and answer.kind == "NotRunning":
        return
    refused_naming(answer, kind, *words)


class TestPRDuplicateMessages:
    """AccountWorkflow (PR-3/R-7 activity, obligations and cancellation signals; PR-4/R-6 statement disputes),
    DataSubjectRequestWorkflow (PR-1 verification and reply, PR-2 retention released), SecurityIncidentWorkflow
    (PR-7/R-10 confirm, affected accounts, announcement, regulator report): each delivered twice."""

    async def test_pr_3_pr_4_account_signals_and_statement_disputes_twice(self, ctx: Ctx) -> None:
        account = f"cl-{ctx.uid}"
        h.eligible_client(ctx.a, account, 100_000)
        person(ctx, account)
        now = await h.business_now(ctx)
        watched = Watched(account_id(account), ac.AccountState)
        use = ac.AccountActivity(event_id="login-1", occurred_at=now, kind="sign_in")
        await twice(ctx, lambda: pr_api.record_activity(ctx.client, account, AccountParty.CLIENT, use,
                                                        ctx.task_queue), watched)
        await twice(ctx, lambda: pr_api.obligations_changed(ctx.client, account, f"task-{ctx.uid}"), watched)

        raise_ = ac.RaiseStatementDispute(dispute_id="d1", subject=ac.StatementSubject.TOP_UP, transaction_at=now,
                                          amount_fen=5_000, reason="top-up charged twice")
        first, second = await twice(ctx, lambda: pr_api.raise_statement_dispute(ctx.client, account, raise_),
                                    watched)
        assert second == first and first.status == "open"
        resolve = ac.ResolveStatementDispute(dispute_id="d1", resolved_by="op-1", outcome="upheld",
                                             adjustment_fen=5_000, note="charged twice: refunded")
        first, second = await twice(ctx, lambda: pr_api.resolve_statement_dispute(ctx.client, account, resolve),
                                    watched)
        assert first.status == "upheld"
        refused_naming(second, "DisputeClosed", "d1 was already upheld")
        assert ctx.a.ledger.balance(f"client:{account}:available").balance_fen == 105_000  # adjusted once

        ctx.a.ledger.freeze(f"task-{ctx.uid}", account, 30_000, 3_000)  # an open task: cancellation waits for it
        cancel = ac.CancellationRequested(request_id=f"r-{ctx.uid}", requested_at=now)
        await twice(ctx, lambda: ctx.client.get_workflow_handle(account_id(account)).signal(
            "request_cancellation", cancel), watched)
        state = await pr_api.account_state(ctx.client, account)
        assert (state.stage, state.open_task_ids) == (ac.AccountStage.CANCELLING, [f"task-{ctx.uid}"])

    async def test_pr_1_pr_2_verification_reply_and_retention_released_twice(self, ctx: Ctx) -> None:
        account = f"acct-{ctx.uid}"
        person(ctx, account)
        now = await h.business_now(ctx)
        complaint = dsr.DataSubjectRequestInput(request_id=f"r-c-{ctx.uid}", account_id=account,
                                                kind=dsr.RequestKind.COMPLAINT, received_at=now)
        await pr_api.submit_request(ctx.client, complaint, ctx.task_queue)
        watched = Watched(data_subject_request_id(complaint.request_id), dsr.DataSubjectRequestState)
        verify = dsr.VerifyIdentity(verified=True, verified_by="op-1", method="video call")
        first, second = await twice(ctx, lambda: pr_api.verify_identity(ctx.client, complaint.request_id, verify),
                                    watched)
        assert first.verified_at is not None
        refused_naming(second, "AlreadyVerified", "already decided")
        await eventually(lambda: pr_api.request_state(ctx.client, complaint.request_id),
                         lambda s: s.stage is dsr.DsrStage.AWAITING_REPLY, "waiting for the operator")
        reply = dsr.OperatorReply(replied_by="op-2", summary="complaint answered")
        first, second = await twice(ctx, lambda: pr_api.reply(ctx.client, complaint.request_id, reply), watched)
        assert first.replied_at is not None
        closed_or_refused(second, "AlreadyReplied", "already replied")
        assert len(Notifications(ctx.a.db, vault(ctx)).sent(f"dsr-reply:{complaint.request_id}")) == 1

        # Deletion with a statement dispute open on the account: phone and ID number are retained for it.
        await pr_api.record_activity(ctx.client, account, AccountParty.CLIENT, ac.AccountActivity(
            event_id="login-1", occurred_at=now), ctx.task_queue)
        statement = ac.RaiseStatementDispute(dispute_id="d1", subject=ac.StatementSubject.TOP_UP,
                                             transaction_at=now, reason="charged twice")
        await pr_api.raise_statement_dispute(ctx.client, account, statement)
        evidence = pr_api.stage_value(vault(ctx), account, PersonalField.PHONE, PHONE)
        deletion = dsr.DataSubjectRequestInput(request_id=f"r-d-{ctx.uid}", account_id=account, received_at=now,
                                               kind=dsr.RequestKind.DELETION, evidence_tokens=[evidence])
        await pr_api.submit_request(ctx.client, deletion, ctx.task_queue)
        await eventually(lambda: pr_api.request_state(ctx.client, deletion.request_id),
                         lambda s: s.stage is dsr.DsrStage.RETENTION_PENDING, "retention pending")
        released = dsr.RetentionReleased(hold_id=f"statement-dispute:{account}:d1", released_at=now)
        await twice(ctx, lambda: ctx.client.get_workflow_handle(data_subject_request_id(deletion.request_id)).signal(
            "retention_released", released),
            Watched(data_subject_request_id(deletion.request_id), dsr.DataSubjectRequestState))
        state = await pr_api.request_state(ctx.client, deletion.request_id)
        assert state.retention_released == [released.hold_id] and state.stage is dsr.DsrStage.RETENTION_PENDING

    async def test_pr_7_r_10_incident_updates_twice(self, ctx: Ctx) -> None:
        reachable, unreachable, late = f"a-{ctx.uid}", f"b-{ctx.uid}", f"c-{ctx.uid}"
        person(ctx, reachable)
        person(ctx, late)
        person(ctx, unreachable, phone=False, email=False)  # no contact on file: an announcement only
        incident = f"i-{ctx.uid}"
        notice = inc.NoticeParts(what_happened="an API key leaked; phone numbers may have been read",
                                 actions_taken="the key was revoked", user_advice="never share verification codes",
                                 remedy="none")
        await pr_api.open_incident(ctx.client, inc.SecurityIncidentInput(
            incident_id=incident, opened_by="sec-1", summary="API key leak", notice=notice,
            affected_account_ids=[reachable, unreachable]), ctx.task_queue)
        watched = Watched(security_incident_id(incident), inc.SecurityIncidentState)
        now = await h.business_now(ctx)
        confirm = inc.ConfirmIncident(confirmed_by="sec-1", confirmed_at=now)
        first, second = await twice(ctx, lambda: pr_api.incident_update(ctx.client, incident, "confirm", confirm),
                                    watched)
        assert first.confirmed_at == now
        refused_naming(second, "AlreadyConfirmed", "confirmed_at: confirmed")
        add = inc.AddAffectedAccounts(account_ids=[late, reachable])
        first, second = await twice(ctx, lambda: pr_api.incident_update(
            ctx.client, incident, "add_affected_accounts", add), watched)
        assert second.affected == [reachable, unreachable, late]
        # The report first: the incident stays open (one account is still to be told), so its repeat reaches the
        # validator; the announcement then lets it close, so its repeat may find it closed.
        for name, request, kind, words, field in (
                ("report_to_regulator", inc.ReportToRegulator(reported_by="sec-1", regulator="CAC provincial office",
                                                              reference="2026-INC-17", reported_at=now),
                 "AlreadyReported", "already recorded", "regulator_report"),
                ("publish_announcement", inc.PublishAnnouncement(published_by="sec-1", channel="site banner",
                                                                 reason="no contact on file for one account",
                                                                 published_at=now),
                 "AlreadyAnnounced", "already published", "announcement")):
            first, second = await twice(ctx, lambda n=name, r=request: pr_api.incident_update(  # type: ignore[misc]
                ctx.client, incident, n, r), watched)
            assert getattr(first, field) is not None
            (refused_naming if field == "regulator_report" else closed_or_refused)(second, kind, words)
        sent = Notifications(ctx.a.db, vault(ctx)).sent(f"incident:{incident}:")
        assert len(sent) == 2  # the reachable account and the one added, once each


# ---------------------------------------------------------------------------------------------------- order
@dataclass(frozen=True)
class Delivery:
    """One message of the main site's (or the platform statistics') stream: a batch, or the void of one (R-1)."""

    piece: str
    event_id: str
    count: int = 0
    minute: int = 0  # occurred_at = start + minute minutes
    cheating: bool = False
    void: bool = False


# Two pieces; cheating batches (never count), two batches voided later, two delivered twice.
STREAM = [
    Delivery("p1", "e1", 5, 1), Delivery("p2", "f1", 6, 1), Delivery("p1", "e2", 3, 2), Delivery("p2", "f2", 1, 2),
    Delivery("p1", "cheat-1", 50, 3, cheating=True), Delivery("p1", "e3", 4, 4), Delivery("p1", "e4", 2, 5),
    Delivery("p2", "f3", 8, 6), Delivery("p2", "cheat-2", 9, 6, cheating=True),
]
VOIDS = [Delivery("p1", "e3", void=True), Delivery("p2", "f2", void=True)]
REPEATED = ("e1", "f3")
SEEDS = (11, 23, 37)


def in_order() -> list[Delivery]:
    """Batches by the instant they occurred, each repeat right after its first delivery, the voids last."""
    stream = sorted(STREAM, key=lambda d: d.minute)
    stream = [x for d in stream for x in ([d, d] if d.event_id in REPEATED else [d])]
    return [*stream, *VOIDS]


def shuffled(seed: int) -> list[Delivery]:
    """Every delivery of `in_order` (repeats and voids included) in a seeded random order: a void may come before
    its batch, a repeat before its first... it is the same message."""
    stream = in_order()
    return random.Random(seed).sample(stream, len(stream))


def orders() -> list[tuple[str, list[Delivery]]]:
    return [("in order", in_order()), *[(f"shuffled (seed {seed})", shuffled(seed)) for seed in SEEDS]]


def occurred(start: datetime, delivery: Delivery) -> datetime:
    return start + delivery.minute * 60 * SECOND


def counting(stream: list[Delivery]) -> list[Delivery]:
    """The batches that may count: not cheating, not voided."""
    voided = {d.event_id for d in VOIDS}
    return [d for d in STREAM if not d.cheating and d.event_id not in voided and d in stream]


async def mount_task_with_stream(ctx: Ctx, name: str, stream: list[Delivery], budget_fen: int,
                                 one_at_a_time: bool = False
                                 ) -> tuple[str, datetime, mt.TaskResult, dict[str, mc.MountedContentState]]:
    """A task (price 100 fen) with pieces p1 and p2 mounted at t0, the stream delivered at t0 (every batch of the
    first minutes of their billing period), then run to its refund. Each piece is its own workflow, so the ledger
    accepts the two pieces' batches in whatever order their workflows get to it; `one_at_a_time` waits until each
    delivery is accepted before the next (acceptance order = delivery order)."""
    task = f"t-{name}-{ctx.uid}"
    ids = [mount_task_id(task), *(mounted_content_id(task, p) for p in ("p1", "p2"))]
    await h.published_task(ctx, task, budget_fen=budget_fen)
    h.creator(ctx.a, "cr-1")
    await api.join(ctx.client, task, "cr-1")
    t0 = await h.business_now(ctx)
    for piece in ("p1", "p2"):
        await h.mount(ctx, task, piece, "cr-1", t0)
    for d in stream:
        if d.void:
            await api.content_signal(ctx.client, task, d.piece, "void_conversions", mc.VoidConversions(
                event_id=d.event_id, reason="cheating found later"))
        else:
            await h.convert(ctx, task, d.piece, d.event_id, d.count, occurred(t0, d), d.cheating)
        if one_at_a_time:
            await wait_until_quiet(ctx, ids)
    await wait_until_quiet(ctx, ids)
    result = await h.finish(ctx, mount_task_id(task), mt.TaskResult)
    pieces = {p: await api.content_state(ctx.client, task, p) for p in ("p1", "p2")}
    h.assert_conservation(ctx.a, task)
    return task, t0, result, pieces


def mount_money(task: str, result: mt.TaskResult, pieces: dict[str, mc.MountedContentState], ctx: Ctx
                ) -> dict[str, Any]:
    money = ctx.a.ledger.task_money(task)
    return {
        "task": (result.stage, result.end_reason, result.frozen_fen, result.paid_to_creators_fen,
                 result.platform_fees_fen, result.refunded_fen),
        "ledger": {k: v for k, v in money.items() if k.endswith("_fen")},
        "pieces": {p: (s.counted_conversions, s.fee_fen, s.settlement and (s.settlement.fee_fen,
                                                                          s.settlement.platform_fee_fen),
                       {eid: (b.counted, b.fee_fen, b.voided) for eid, b in sorted(s.batches.items())})
                   for p, s in pieces.items()},
    }


class TestR1R3ConversionsOutOfOrder:
    """R-1 / R-3 / AM-9 / AM-12: conversion batches of two pieces delivered in seeded random orders, with repeats,
    cheating batches and voids (some voids before their batch) mixed in."""

    async def test_r_1_within_the_budget_every_order_counts_and_settles_the_same(self, ctx: Ctx) -> None:
        """While the budget lasts, R-3's arrival order decides nothing: every order counts the same batches and
        settles the same fees as the in-order delivery."""
        outcomes: dict[str, dict[str, Any]] = {}
        for label, stream in orders():
            task, _, result, pieces = await mount_task_with_stream(ctx, f"o{len(outcomes)}", stream, 100_000)
            outcomes[label] = mount_money(task, result, pieces, ctx)
        baseline = outcomes["in order"]
        assert {p: v[:3] for p, v in baseline["pieces"].items()} == {
            "p1": (10, 1_000, (1_000, 100)), "p2": (14, 1_400, (1_400, 140))}  # e1+e2+e4; f1+f3
        assert baseline["task"][3:] == (2_400, 240, 110_000 - 2_640)
        for label, outcome in outcomes.items():
            assert outcome == baseline, label

    async def test_r_3_across_the_budget_arrival_order_decides_what_counts(self, ctx: Ctx) -> None:
        """R-3: spend accrues in the order batches are accepted; the batch that passes the budget counts the whole
        conversions left, and the task period ends at the latest `occurred_at` granted so far (so no granted
        batch lies after the end and none is released by it); nothing after that instant counts (AM-10), and a
        void after the end frees budget only for batches that arrive later inside their counting intervals. So
        which batches count may differ between orders (identity is not the rule); what holds in every order: the
        fees never pass the budget, the period ends at the instant of a counting batch, no batch after that
        instant counts, cheating and voided batches never count, each piece settles once at price x counted, and
        the money is conserved. In order, each accepted before the next (2,000 fen = 20 conversions): e1 5, f1 6,
        e2 3, f2 1, e3 4, then e4 gets 1 of 2 and ends the period at minute 5 (the latest granted); f3 (minute 6)
        gets nothing; the voids of e3 and f2 give 500 fen back to the client (nothing arrives after them)."""
        budget = 2_000
        for n, (label, stream) in enumerate(orders()):
            task, t0, result, pieces = await mount_task_with_stream(ctx, f"b{n}", stream, budget,
                                                                    one_at_a_time=label == "in order")
            assert result.end_reason is mt.EndReason.BUDGET_USED_UP, label
            assert result.ended_at is not None
            end_minute = (result.ended_at - t0) / (60 * SECOND)
            assert end_minute in {d.minute for d in counting(STREAM)}, (label, end_minute)
            fees = 0
            for piece, state in pieces.items():
                assert state.settlement is not None and state.settlement.fee_fen == state.fee_fen, (label, piece)
                assert state.fee_fen == 100 * state.counted_conversions, (label, piece)
                fees += state.fee_fen
                for eid, batch in state.batches.items():
                    delivery = next(d for d in STREAM if d.event_id == eid)
                    if batch.counted:
                        assert delivery in counting(STREAM) and delivery.minute <= end_minute, (label, eid)
                        assert batch.counted <= delivery.count, (label, eid)
            assert fees == result.paid_to_creators_fen <= budget, label
            assert result.platform_fees_fen == fees // 10 and (
                result.refunded_fen == result.frozen_fen - fees - fees // 10), label
            assert len(ctx.a.ledger.transfers(business_key_prefix=f"settle:{task}:")) <= 4, label
            if label == "in order":
                assert end_minute == 5 and {p: s.counted_conversions for p, s in pieces.items()} == {"p1": 9, "p2": 6}
                assert result.paid_to_creators_fen == 1_500


async def xg_task_with_stream(ctx: Ctx, name: str, stream: list[Delivery], placement_budget_fen: int,
                              one_at_a_time: bool = False
                              ) -> tuple[str, datetime, xg.TaskResult, xg.XingguangTaskState, dict[str, int]]:
    """An XG task (unit price 50 fen) with pieces p1 and p2 published and promoted, the stream of billable-event
    batches delivered (occurred_at = the later publication + minutes), then run until it closes. Returns the task,
    that start, its result, its final state and the event register's billed events per event id."""
    task, client_id = xgf.ids(ctx, name)
    await xgf.ordered_task(ctx, task, client_id, start_in=timedelta(0), placement_budget_fen=placement_budget_fen)
    published = [await xgf.published_piece(ctx, task, client_id, p, f"cr-{p}", 10_000) for p in ("p1", "p2")]
    start = max(p.published_at for p in published if p.published_at is not None)
    await h.advance(ctx, 600)
    for d in stream:
        if d.void:
            await xg_api.void_billable_events(ctx.client, task, xg.VoidBillableEvents(event_id=d.event_id,
                                                                                      reason="bots found later"))
        else:
            await xgf.events(ctx, task, d.event_id, d.piece, d.count, occurred(start, d), d.cheating)
        if one_at_a_time:
            await wait_until_quiet(ctx, [xg.xg_task_workflow_id(task)])
    await wait_until_quiet(ctx, [xg.xg_task_workflow_id(task)])
    result = await h.finish(ctx, xg.xg_task_workflow_id(task), xg.TaskResult)
    state = await xg_api.state(ctx.client, task)
    money = xgf.xg_money(ctx, task, client_id)
    assert money["frozen"] == sum(money[k] for k in ("creators", "promotion", "platform_fee", "delay_fee",
                                                     "deducted", "refund")) and money["escrow"] == 0, money
    with ctx.a.db.transaction() as tx:
        billed = {eid: int(n) for eid, n in tx.fetchall(
            "SELECT event_id, billed_events FROM xg_billable_events WHERE task_id = ? AND voided_by IS NULL",
            (task,))}
    return task, start, result, state, billed


class TestR1R8BillableEventsOutOfOrder:
    """R-1 / R-8 / XG-6 / R-11: the Xingguang piece's billable events, delivered in seeded random orders with
    repeats, cheating batches and voids (some before their batch) mixed in."""

    async def test_r_1_r_8_within_the_placement_budget_every_order_settles_the_same(self, ctx: Ctx) -> None:
        outcomes: dict[str, tuple[Any, ...]] = {}
        for label, stream in orders():
            _, _, result, state, billed = await xg_task_with_stream(ctx, f"xo{len(outcomes)}", stream, 100_000)
            outcomes[label] = (result.model_dump(exclude={"task_id", "order"}),
                               {p: piece.billable_events for p, piece in state.pieces.items()}, billed)
        baseline = outcomes["in order"]
        assert baseline[1] == {"p1": 10, "p2": 14}  # e1+e2+e4; f1+f3
        assert {p: m["promotion_spend_fen"] for p, m in baseline[0]["pieces"].items()} == {"p1": 500, "p2": 700}
        for label, outcome in outcomes.items():
            assert outcome == baseline, label

    async def test_r_3_r_11_across_the_placement_budget_arrival_order_decides_what_bills(self, ctx: Ctx) -> None:
        """As R-3 for the placement budget (R-8, R-11): events bill in the order their batches arrive, whole events
        while the budget lasts; the batch that uses it up stops promotion for every piece at its `occurred_at`, and
        batches arriving after that bill nothing that occurred from then on; cheating and voided batches never
        bill; a void gives its spend back to the client. Which batches bill may differ between orders; what holds
        in every order: the spend never passes the placement budget, promotion stops at the instant of a billing
        batch, only counting batches bill (never more events than reported), the settled promotion spend is 50 fen
        x the events billed, and the frozen money is all accounted for.

        Unlike a mounted piece (AM-10: a batch that occurred after the end is given back), a batch billed *before*
        the exhausting batch arrived keeps its events even when it occurred after the stop instant: the XG register
        keeps no instants to find them by. Nothing in R-8/R-11 says otherwise, so it is not asserted either way.

        In order, each accepted before the next (1,000 fen = 20 events): e1 5, f1 6, e2 3, f2 1, e3 4, then e4
        bills 1 of 2 and stops promotion at minute 5; f3 (minute 6) bills nothing; the voids give back 250 fen."""
        budget = 1_000
        for n, (label, stream) in enumerate(orders()):
            _, start, result, state, billed = await xg_task_with_stream(
                ctx, f"xb{n}", stream, budget, one_at_a_time=label == "in order")
            assert state.end_reason == "placement budget used up" and state.promotion_stopped_at is not None, label
            stop_minute = (state.promotion_stopped_at - start) / (60 * SECOND)
            assert stop_minute in {d.minute for d in counting(STREAM)}, (label, stop_minute)
            for eid, events in billed.items():
                if events:
                    delivery = next(d for d in STREAM if d.event_id == eid)
                    assert delivery in counting(STREAM), (label, eid, billed)
                    assert events <= delivery.count, (label, eid)
            spend = sum(m.promotion_spend_fen for m in result.pieces.values())
            assert spend == result.promotion_spend_fen == state.placement_spent_fen <= budget, label
            assert spend == 50 * sum(billed.values()) == 50 * sum(p.billable_events for p in state.pieces.values())
            assert [m.creator_earnings_fen for m in result.pieces.values()] == [10_000, 10_000], label
            if label == "in order":
                assert stop_minute == 5
                assert {e: n for e, n in billed.items() if n} == {"e1": 5, "f1": 6, "e2": 3, "e4": 1}
                assert {p: piece.billable_events for p, piece in state.pieces.items()} == {"p1": 9, "p2": 6}


# ---------------------------------------------------------------------------------------------------- coverage
# What the second delivery of each message does, and the case that delivers it twice: "workflow message test",
# then the behaviour, indented. The coverage guard below reads it.
DUPLICATE_TABLE = """
MountTaskWorkflow publish test_am_3_publish_retried_by_update_with_start_freezes_once
    answers with the first answer (update-with-start finds the running task); no second freeze
MountTaskWorkflow join test_am_5_join_twice_answers_already_joined_and_changes_nothing
    answers the first join with already_joined=true (AM-5)
MountTaskWorkflow report_mount test_am_6_report_mount_twice_starts_one_piece
    answers with the first answer; the piece's workflow is found, not started again
MountTaskWorkflow revoke_content test_am_14_revoke_content_twice_answers_the_first_revocation
    answers with the first answer
MountTaskWorkflow revoke_all test_am_15_revoke_all_twice_answers_the_first_revocation
    answers with the first answer (was: an empty content_ids list; fixed)
MountTaskWorkflow cancel test_am_7_cancel_twice_is_refused_naming_the_first_cancellation
    refused (ValueError): 'already cancelled at ...: reason' (message fixed)
MountTaskWorkflow revoke_authorization test_am_14_15_revoke_authorization_signal_twice
    ignored: the piece / the creator is already revoked
MountTaskWorkflow budget_exhausted test_am_10_budget_exhausted_signal_twice_ends_the_period_once
    ignored: the period has ended
MountTaskWorkflow content_closed test_am_12_content_closed_reported_again_counts_the_piece_once
    ignored: the piece is already settled; totals and ledger unchanged
MountTaskWorkflow remove_creator test_r_12_am_22_penalty_messages_twice_change_nothing
    ignored: the creator is already removed by that case (tests/duplicates_penalties.py)
MountTaskWorkflow removal_withdrawn test_r_12_am_22_penalty_messages_twice_change_nothing
    ignored: no removal by that case left
MountedContentWorkflow report_conversions test_r_1_report_conversions_twice_counts_the_batch_once
    ignored: the event id is known (R-1)
MountedContentWorkflow void_conversions test_r_1_void_conversions_twice_gives_the_batch_back_once
    marks the voided batch voided again: nothing moves
MountedContentWorkflow report_visibility_lost test_am_16_visibility_lost_and_disposal_twice
    ignored: not earlier than the instant recorded
MountedContentWorkflow report_disposal test_am_16_visibility_lost_and_disposal_twice
    ignored: already disposed
MountedContentWorkflow content_revoked test_am_14_am_7_content_revoked_and_task_period_ended_twice
    ignored: not earlier than the revocation recorded
MountedContentWorkflow task_period_ended test_am_14_am_7_content_revoked_and_task_period_ended_twice
    ignored: not earlier than the end recorded
MountedContentWorkflow settlement_released test_am_22_settlement_released_twice_releases_once
    ignored: released already
MountedContentWorkflow counting_frozen test_r_12_am_22_penalty_messages_twice_change_nothing
    ignored: the piece has that case's freeze already
MountedContentWorkflow counting_resumed test_r_12_am_22_penalty_messages_twice_change_nothing
    ignored: the freeze has ended (or was withdrawn) already
MountedContentWorkflow raise_dispute test_am_11_am_17_raise_and_resolve_dispute_twice
    refused (ValueError): 'dispute d1 ... is open'
MountedContentWorkflow resolve_dispute test_am_11_am_17_raise_and_resolve_dispute_twice
    refused (ValueError): 'd1 is not an open dispute'
ViolationCaseWorkflow appeal test_am_20_21_22_appeal_mark_complex_and_decide_twice
    refused (ValueError): 'already appealed at ...'
ViolationCaseWorkflow mark_complex test_am_20_21_22_appeal_mark_complex_and_decide_twice
    refused (ValueError): 'already marked complex at ...' (message fixed)
ViolationCaseWorkflow decide_appeal test_am_20_21_22_appeal_mark_complex_and_decide_twice
    refused (ValueError): 'already decided: rejected' (message fixed)
ViolationCaseWorkflow lift_freeze test_r_12_am_22_penalty_messages_twice_change_nothing
    refused (ValueError): 'p1 was lifted by op-3 at ...: reason'
XingguangTaskWorkflow order test_xg_1_3_order_materials_and_provider_twice
    answers with the first answer (update-with-start); no second freeze
XingguangTaskWorkflow review_materials test_xg_1_3_order_materials_and_provider_twice
    refused (ValueError): 'is awaiting_provider, not materials_review'
XingguangTaskWorkflow assign_provider test_xg_1_3_order_materials_and_provider_twice
    refused (ValueError): 'is in_progress, not awaiting_provider'
XingguangTaskWorkflow select_creator test_xg_4_select_submit_and_reviews_twice
    answers with the first answer
XingguangTaskWorkflow submit_content test_xg_4_select_submit_and_reviews_twice
    answers with the first answer
XingguangTaskWorkflow provider_review test_xg_4_select_submit_and_reviews_twice
    refused (ValueError): 'p1 is client_review, not provider_review'
XingguangTaskWorkflow client_review test_xg_4_select_submit_and_reviews_twice
    refused (ValueError): 'p1 is published, not client_review'
XingguangTaskWorkflow raise_objection test_xg_5_6_objection_and_data_dispute_twice
    refused (ValueError): 'already had an objection'
XingguangTaskWorkflow decide_objection test_xg_5_6_objection_and_data_dispute_twice
    refused (ValueError): 'has no open objection'
XingguangTaskWorkflow raise_data_dispute test_xg_5_6_objection_and_data_dispute_twice
    refused (ValueError): 'already had a data dispute'
XingguangTaskWorkflow resolve_data_dispute test_xg_5_6_objection_and_data_dispute_twice
    refused (ValueError): 'has no open data dispute'
XingguangTaskWorkflow report_billable_events test_r_1_billable_events_and_their_void_twice
    claimed in the event register as a duplicate: bills nothing
XingguangTaskWorkflow void_billable_events test_r_1_billable_events_and_their_void_twice
    the register says voided already: nothing given back twice
XingguangTaskWorkflow pause test_xg_7_r_9_pause_answer_and_cancel_twice
    answers with the first answer (the same pause_id)
XingguangTaskWorkflow respond_to_pause test_xg_7_r_9_pause_answer_and_cancel_twice
    refused (ValueError): 'pause pa1 is already answered'
XingguangTaskWorkflow cancel_after_pause test_xg_7_r_9_pause_answer_and_cancel_twice
    refused (ValueError): 'is settling: nothing to cancel'
XingguangTaskWorkflow record_violation test_xg_8_r_11_violations_fix_proof_and_piece_decisions_twice
    answers the task's status again (the same violation_id): only applied_at is the new instant
XingguangTaskWorkflow submit_fix_proof test_xg_8_r_11_violations_fix_proof_and_piece_decisions_twice
    refused (ValueError): 'v1 is not waiting for proof of a fix'
XingguangTaskWorkflow decide_piece test_xg_8_r_11_violations_fix_proof_and_piece_decisions_twice
    refused (ValueError): 'p1 is not waiting for a settle-or-decline decision'
XingguangTaskWorkflow compensate test_xg_10_xg_8_compensate_and_penalize_twice
    answers with the first answer (the same compensation_id); paid once
XingguangTaskWorkflow penalize test_xg_10_xg_8_compensate_and_penalize_twice
    answers with the first answer (the same penalty_id); frozen / deducted once
XingguangTaskWorkflow settlement_released test_r_13_xg_settlement_released_twice_pays_once
    ignored: the piece's hold is released already, or it settled (tests/duplicates_xg_holds.py)
XingguangClaimsWorkflow compensate test_r_14_a_claim_after_close_twice
    answers with the first answer (the same compensation_id, judged again by the ledger); paid once
AccountWorkflow record_activity test_pr_3_pr_4_account_signals_and_statement_disputes_twice
    the latest instant wins: nothing moves (counted as received)
AccountWorkflow obligations_changed test_pr_3_pr_4_account_signals_and_statement_disputes_twice
    wakes the account, which finds nothing new
AccountWorkflow request_cancellation test_pr_3_pr_4_account_signals_and_statement_disputes_twice
    ignored: cancelling already (its obligations re-checked, same answer)
AccountWorkflow raise_statement_dispute test_pr_3_pr_4_account_signals_and_statement_disputes_twice
    answers with the first answer (the same dispute_id)
AccountWorkflow resolve_statement_dispute test_pr_3_pr_4_account_signals_and_statement_disputes_twice
    refused (DisputeClosed): 'd1 was already upheld'; adjusted once
DataSubjectRequestWorkflow verify_identity test_pr_1_pr_2_verification_reply_and_retention_released_twice
    refused (AlreadyVerified): 'identity was already decided'
DataSubjectRequestWorkflow reply test_pr_1_pr_2_verification_reply_and_retention_released_twice
    refused (AlreadyReplied), or NotRunning once the request has closed; delivered once
DataSubjectRequestWorkflow retention_released test_pr_1_pr_2_verification_reply_and_retention_released_twice
    ignored (was: another erasure pass re-stamping the vault; fixed)
SecurityIncidentWorkflow confirm test_pr_7_r_10_incident_updates_twice
    refused (AlreadyConfirmed)
SecurityIncidentWorkflow add_affected_accounts test_pr_7_r_10_incident_updates_twice
    adds nobody new: each account is told once
SecurityIncidentWorkflow report_to_regulator test_pr_7_r_10_incident_updates_twice
    refused (AlreadyReported)
SecurityIncidentWorkflow publish_announcement test_pr_7_r_10_incident_updates_twice
    refused (AlreadyAnnounced), or NotRunning once closed
"""


def duplicate_cases() -> dict[tuple[str, str], tuple[str, str]]:
    """(workflow type, message) -> (test name, what the second delivery does)."""
    cases: dict[tuple[str, str], tuple[str, str]] = {}
    key = ("", "")
    for line in DUPLICATE_TABLE.strip().splitlines():
        if line.startswith(" "):
            cases[key] = (cases[key][0], line.strip())
        else:
            workflow_type, message, test = line.split()
            key = (workflow_type, message)
            assert key not in cases, f"{key} listed twice"
            cases[key] = (test, "")
    return cases


def registered_messages() -> set[tuple[str, str]]:
    """Every named signal and update of every workflow the worker registers (temporalio's own definitions)."""
    found: set[tuple[str, str]] = set()
    for cls in WORKFLOWS:
        definition = workflow._Definition.must_from_class(cls)
        assert definition.name is not None
        found |= {(definition.name, name) for name in [*definition.signals, *definition.updates] if name}
    return found


def test_coverage_every_signal_and_update_has_a_duplicate_case() -> None:
    """Fails when a workflow gains a message with no duplicate case here (or a case names a message that is gone,
    or a test that does not exist)."""
    registered, cases = registered_messages(), duplicate_cases()
    missing = sorted(registered - set(cases))
    stale = sorted(set(cases) - registered)
    assert not missing, f"messages with no duplicate case in DUPLICATE_TABLE: {missing}"
    assert not stale, f"DUPLICATE_TABLE names messages no workflow registers: {stale}"
    tests = {name for _, cls in inspect.getmembers(sys.modules[__name__], inspect.isclass)
             if cls.__name__.startswith("Test") for name in vars(cls) if name.startswith("test_")}
    for key, (test, behaviour) in cases.items():
        assert test in tests and behaviour, (key, test)
    assert len(registered) >= 50  # seven workflow types
