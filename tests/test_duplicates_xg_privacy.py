"""Duplicates (issue 7, item 3) of the Xingguang (XG-1..XG-10, R-8) and privacy (PR-1..PR-7) workflows: every signal
and update delivered twice changes nothing beyond the first delivery. Harness: tests/duplicates_helpers.py."""


from __future__ import annotations

from datetime import timedelta

import pytest

from activities.notifications import Notifications
from starter import privacy as pr_api
from starter import xingguang as xg_api
from tests import helpers as h
from tests import xg_fixtures as xgf
from tests.conftest import Ctx
from tests.duplicates_helpers import (
    SECOND,
    Watched,
    closed_or_refused,
    refused_naming,
    repeat,
    same_status,
    twice,
    xg_w,
)
from tests.privacy_helpers import PHONE, eventually, fixed_calendar, person, vault
from tests.xg_fixtures import billed
from workflows.contract import account as ac
from workflows.contract import data_subject_request as dsr
from workflows.contract import security_incident as inc
from workflows.contract import xingguang as xg
from workflows.contract import xingguang_pieces as xgp
from workflows.contract import xingguang_state as xgs
from workflows.contract.names import (
    account_id,
    data_subject_request_id,
    security_incident_id,
    xingguang_claims_id,
)
from workflows.contract.privacy import AccountParty, PersonalField
from workflows.contract.xingguang_claims import XingguangClaimsView

# Deadlines in working days come from a fixed calendar: the test server's clock runs into unpublished years.
pytestmark = pytest.mark.replace_activities.with_args(fixed_calendar)


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
        assert first.stage is xgs.TaskStage.AWAITING_PROVIDER
        refused_naming(second, "XingguangStepRefused", "awaiting_provider, not materials_review")
        first, second = await twice(ctx, lambda: xg_api.assign_provider(ctx.client, task, xgf.OPERATOR,
                                                                         xgf.PROVIDER), xg_w(task))
        assert first.stage is xgs.TaskStage.IN_PROGRESS
        refused_naming(second, "XingguangStepRefused", "in_progress, not awaiting_provider")

    async def test_xg_4_select_submit_and_reviews_twice(self, ctx: Ctx) -> None:
        task, client_id = xgf.ids(ctx, "rev")
        await xgf.ordered_task(ctx, task, client_id)
        h.creator(ctx.a, "cr-1")
        select = xgp.SelectCreatorRequest(provider_id=xgf.PROVIDER, piece_id="p1", creator_id="cr-1",
                                          creator_earnings_fen=10_000)
        first, second = await twice(ctx, lambda: xg_api.select_creator(ctx.client, task, select), xg_w(task))
        assert second == first and first.agreed_earnings_fen == 10_000
        submit = xgp.SubmitContentRequest(creator_id="cr-1", piece_id="p1", content_id="content-p1")
        first, second = await twice(ctx, lambda: xg_api.submit_content(ctx.client, task, submit), xg_w(task))
        assert second == first and first.stage is xgs.PieceStage.PROVIDER_REVIEW
        provider = xgp.ProviderReviewRequest(provider_id=xgf.PROVIDER, piece_id="p1", approved=True)
        first, second = await twice(ctx, lambda: xg_api.provider_review(ctx.client, task, provider), xg_w(task))
        assert first.stage is xgs.PieceStage.CLIENT_REVIEW
        refused_naming(second, "XingguangStepRefused", "p1 is client_review, not provider_review")
        client = xgp.ClientReviewRequest(client_id=client_id, piece_id="p1", approved=True)
        first, second = await twice(ctx, lambda: xg_api.client_review(ctx.client, task, client), xg_w(task))
        assert first.approved_at is not None  # approved (and published: nothing holds it)
        refused_naming(second, "XingguangStepRefused", "not client_review")
        assert len((await xg_api.state(ctx.client, task)).pieces["p1"].reviews) == 2

    async def test_xg_5_6_objection_and_data_dispute_twice(self, ctx: Ctx) -> None:
        task, client_id = xgf.ids(ctx, "obj")
        await xgf.ordered_task(ctx, task, client_id, start_in=timedelta(0))
        await xgf.published_piece(ctx, task, client_id, "p1", "cr-1", 10_000)
        objection = xgp.RaiseObjectionRequest(client_id=client_id, piece_id="p1", reason="logo shown too small")
        first, second = await twice(ctx, lambda: xg_api.raise_objection(ctx.client, task, objection), xg_w(task))
        assert first.objection is not None
        refused_naming(second, "XingguangStepRefused", "already had an objection")
        decide = xgp.DecideObjectionRequest(operator_id=xgf.OPERATOR, piece_id="p1", upheld=False,
                                            note="within the brief")
        first, second = await twice(ctx, lambda: xg_api.decide_objection(ctx.client, task, decide), xg_w(task))
        assert first.objection is not None and first.objection.outcome == "dismissed: within the brief"
        refused_naming(second, "XingguangStepRefused", "has no open objection")
        dispute = xgp.RaiseDataDisputeRequest(client_id=client_id, piece_id="p1", reason="plays double-counted")
        first, second = await twice(ctx, lambda: xg_api.raise_data_dispute(ctx.client, task, dispute), xg_w(task))
        assert first.data_dispute is not None
        refused_naming(second, "XingguangStepRefused", "already had a data dispute")
        resolve = xgp.ResolveDataDisputeRequest(operator_id=xgf.OPERATOR, piece_id="p1", billable_events=0,
                                                note="nothing billed yet")
        first, second = await twice(ctx, lambda: xg_api.resolve_data_dispute(ctx.client, task, resolve),
                                    xg_w(task))
        assert first.data_dispute is not None and first.data_dispute.decided_at is not None
        refused_naming(second, "XingguangStepRefused", "has no open data dispute")

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
        void = xgp.VoidBillableEvents(event_id="b1", reason="bot traffic found later")
        await twice(ctx, lambda: xg_api.void_billable_events(ctx.client, task, void), xg_w(task))
        state = await xg_api.state(ctx.client, task)
        assert (state.pieces["p1"].billable_events, billed(state)) == (10, 500)

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
        refused_naming(second, "XingguangStepRefused", "pause pa1 is already answered")
        await xg_api.pause(ctx.client, task, pause.model_copy(update={"pause_id": "pa2"}))
        await xg_api.respond_to_pause(ctx.client, task, answer.model_copy(update={"pause_id": "pa2",
                                                                                  "changes_made": False}))
        cancel = xg.CancelAfterPauseRequest(operator_id=xgf.OPERATOR, pause_id="pa2", delay_fee_fen=1_000,
                                            delay_fee_reason="two days of held production")
        first, second = await twice(ctx, lambda: xg_api.cancel_after_pause(ctx.client, task, cancel), xg_w(task))
        assert first.stage is xgs.TaskStage.SETTLING
        assert second == first  # the same cancellation again: the first answer
        other = cancel.model_copy(update={"pause_id": "pa1", "delay_fee_fen": 2_000})
        conflict = await repeat(ctx, lambda: xg_api.cancel_after_pause(ctx.client, task, other), xg_w(task))
        refused_naming(conflict, "XingguangStepRefused", "already cancelled after pause pa2 at",
                       f"by {xgf.OPERATOR} with a delay fee of 1000 fen",
                       "pause_id: cancelled with 'pa2', this asks 'pa1'",
                       "delay_fee_fen: cancelled with 1000, this asks 2000")
        assert (await xg_api.state(ctx.client, task)).money.delay_fee_fen == 1_000

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
        refused_naming(second, "XingguangStepRefused", "v1 is not waiting for proof of a fix")
        stop = xg.RecordViolationRequest(operator_id=xgf.OPERATOR, violation_id="v2",
                                         cause=xg.TerminationCause.CHEATING_BYPASS_OR_LAUNDERING,
                                         note="fake plays bought by the client")
        first, second = await twice(ctx, lambda: xg_api.record_violation(ctx.client, task, stop), xg_w(task))
        same_status(first, second)
        assert first.stage is xgs.TaskStage.STOPPED
        decide = xg.DecidePieceRequest(operator_id=xgf.OPERATOR, piece_id="p1", settle=True, note="not involved")
        first, second = await twice(ctx, lambda: xg_api.decide_piece(ctx.client, task, decide), xg_w(task))
        assert first.stop_decision == "settle"
        refused_naming(second, "XingguangStepRefused", "p1 is not waiting for a settle-or-decline decision")

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
        await h.finish(ctx, xg.xg_task_workflow_id(task), xgs.TaskResult)
        claim = xg.CompensateRequest(**xgf.PLATFORM_FAULT, operator_id=xgf.OPERATOR, compensation_id="d1",
                                     kind=xg.CompensationKind.DAMAGES, amount_fen=39_600, loss_fen=50_000,
                                     note="report data lost")
        first, second = await twice(ctx, lambda: xg_api.compensate(ctx.client, task, claim, ctx.task_queue),
                                    Watched(xingguang_claims_id(task), XingguangClaimsView))
        assert second == first and first.paid_fen == 39_600
        assert ctx.a.ledger.balance(f"client:{client_id}:available").balance_fen == 300_000 + 39_600
        assert ctx.a.ledger.balance("platform:revenue").balance_fen == -39_600
        assert ctx.a.ledger.conservation_total() == 0



class TestPRDuplicateMessages:
    """AccountWorkflow (PR-3/R-7 activity, obligations and cancellation signals; PR-4/R-6 statement disputes),
    DataSubjectRequestWorkflow (PR-1 verification and reply, PR-2 retention released), SecurityIncidentWorkflow
    (PR-7/R-10 confirm, affected accounts, announcement, regulator report): each delivered twice."""

    async def test_pr_3_pr_4_account_signals_and_statement_disputes_twice(self, ctx: Ctx) -> None:
        account = f"cl-{ctx.uid}"
        h.eligible_client(ctx.a, account, 100_000)
        person(ctx, account)
        now = await h.business_now(ctx)
        watched = Watched(account_id(account), ac.AccountView)
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
        watched = Watched(data_subject_request_id(complaint.request_id), dsr.DataSubjectRequestView)
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
            Watched(data_subject_request_id(deletion.request_id), dsr.DataSubjectRequestView))
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
        watched = Watched(security_incident_id(incident), inc.SecurityIncidentView)
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


