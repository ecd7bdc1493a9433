"""DataSubjectRequestWorkflow (`dsr:{request_id}`): one data-subject request (PR-1, PR-2, PR-6).

Identity first: the vault checks the evidence the requester gave against the data on file, else an operator
confirms or rejects it (`verify_identity`); an unverified request waits in stage `awaiting_verification`, visibly.
The 15-working-day reply deadline starts at verification (calendar activity) and escalates when missed. Then:
access/copy/portability write an export file; correction/supplement change the vault; deletion (and a report of a
minor's data collected without consent) deletes or anonymizes, retaining what a hold still needs until it ends;
consent withdrawal is recorded; account cancellation is handed to AccountWorkflow; a complaint waits for an
operator's reply. The reply goes to the requester through the notification activity.

PR-6: a request's intake (values in clear, in an encrypted payload) is put into the vault by the first activity;
from then on only tokens, account ids, field names and counts pass through here.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from datetime import timedelta

from temporalio import workflow
from temporalio.exceptions import ActivityError, FailureError

with workflow.unsafe.imports_passed_through():
    from ports import notifications, personal_data
    from ports.notifications import NoticeRequest
    from ports.personal_data import (
        Change,
        ConsentRequest,
        CorrectRequest,
        EraseRequest,
        ExportRequest,
        IdentityCheck,
        StageIntakeRequest,
    )
    from workflows.contract import data_subject_request as c
    from workflows.contract.account import CancellationRequested
    from workflows.contract.common import public_view
    from workflows.contract.names import DATA_SUBJECT_REQUEST_WORKFLOW, account_id
    from workflows.rules.clock import business_time, with_deadline
    from workflows.rules.privacy import DSR_REPLY_WORKING_DAYS, Disposition

from workflows import details as details_md
from workflows import metrics
from workflows.common import stage_attributes, until, wait_summary
from workflows.deadlines import working_days_after
from workflows.escalation import Stalls
from workflows.refusals import refused

RETENTION_RECHECK = timedelta(days=30)  # a missed release signal still ends in erasure
# Erasure destroys the subject's key and drops staged copies of erased fields: the requester's contact is kept
# through it, so that the reply PR-1 owes still reaches the requester.
ERASURE_KEEPS_REPLY_CONTACT = "dsr-erasure-keeps-reply-contact"


@workflow.defn(name=DATA_SUBJECT_REQUEST_WORKFLOW)
class DataSubjectRequestWorkflow:
    @workflow.init
    def __init__(self, input: c.DataSubjectRequestInput) -> None:
        self.input = input
        self.s = c.DataSubjectRequestState(request_id=input.request_id, account_id=input.account_id,
                                           kind=input.kind, received_at=input.received_at)
        self._released = 0
        self._stalls = Stalls("privacy")
        self.requester_token = input.requester_token
        self.evidence_tokens = list(input.evidence_tokens)
        self.changes = [Change(field=ch.field, value_token=ch.value_token) for ch in input.changes]

    @workflow.run
    async def run(self, input: c.DataSubjectRequestInput) -> c.DataSubjectRequestView:
        s = self.s
        self._show("waiting for identity verification (an operator, or evidence matching the data on file)")
        if input.intake is not None:
            await self._stage_intake(input.intake)
        if self.evidence_tokens:
            check = await personal_data.CHECK_IDENTITY(
                IdentityCheck(account_id=s.account_id, evidence_tokens=self.evidence_tokens))
            if check.matched and s.stage is c.DsrStage.AWAITING_VERIFICATION:
                self._verified("vault", "identity evidence matches the data on file")
        await workflow.wait_condition(lambda: s.stage is not c.DsrStage.AWAITING_VERIFICATION)
        if s.stage is c.DsrStage.IDENTITY_REJECTED:
            self._show("identity not verified: request closed")
            return public_view(c.DataSubjectRequestView, self.s)
        assert s.verified_at is not None
        s.reply_due_at = await working_days_after(s.verified_at, DSR_REPLY_WORKING_DAYS, f"reply to dsr {s.request_id}")
        if s.reply_due_at is None:
            self._escalate("no working-day calendar for the reply deadline: an operator sets it")
        self._show(f"verified; processing {s.kind.value}")
        await self._before_deadline(self._act)
        if s.replied_at is None and s.kind is not c.RequestKind.COMPLAINT and not s.note:
            await self._before_deadline(self._send_reply)
        if s.replied_at is None:
            s.stage = c.DsrStage.AWAITING_REPLY
            self._show("waiting for an operator's reply")
            await self._before_deadline(lambda: workflow.wait_condition(lambda: s.replied_at is not None))
            if s.replied_by != "platform":  # the operator's reply goes to the requester like an automatic one
                await self._deliver(s.reply_summary or "")
        await self._finish_retained_erasure()
        s.stage = c.DsrStage.COMPLETED
        self._show(f"completed; replied {business_time(s.replied_at)}" if s.replied_at else "completed")
        await workflow.wait_condition(workflow.all_handlers_finished)
        return public_view(c.DataSubjectRequestView, self.s)

    # ---------------------------------------------------------------- messages
    @workflow.update(name="verify_identity")
    def verify_identity(self, request: c.VerifyIdentity) -> c.DataSubjectRequestView:
        """An operator confirms (the reply clock starts now) or rejects the requester's identity."""
        if request.verified:
            self._verified(request.verified_by, request.method)
        else:
            self.s.stage, self.s.note = c.DsrStage.IDENTITY_REJECTED, request.note or request.method
            self.s.verified_by = request.verified_by
        return public_view(c.DataSubjectRequestView, self.s)

    @verify_identity.validator
    def _check_verify(self, request: c.VerifyIdentity) -> None:
        if self.s.stage is not c.DsrStage.AWAITING_VERIFICATION:
            raise refused("AlreadyVerified", f"stage: identity was already decided ({self.s.stage.value})")

    @workflow.update(name="reply")
    def reply(self, request: c.OperatorReply) -> c.DataSubjectRequestView:
        """An operator's reply (required for complaints): the reply deadline is met at this instant."""
        self._replied(request.summary, request.replied_by)
        return public_view(c.DataSubjectRequestView, self.s)

    @reply.validator
    def _check_reply(self, request: c.OperatorReply) -> None:
        if self.s.verified_at is None:
            raise refused("NotVerified", "stage: the requester's identity is not verified yet")
        if self.s.replied_at is not None:
            raise refused("AlreadyReplied", f"replied_at: already replied at {business_time(self.s.replied_at)}")

    @workflow.signal(name="retention_released")
    def retention_released(self, event: c.RetentionReleased) -> None:
        if event.hold_id not in self.s.retention_released:  # a repeat of a release already acted on wakes nothing
            self.s.retention_released.append(event.hold_id)
            self._released += 1

    @workflow.query(name="state")
    def state(self) -> c.DataSubjectRequestView:
        return public_view(c.DataSubjectRequestView, self.s)

    # ---------------------------------------------------------------- the work of each kind
    async def _stage_intake(self, intake: c.RequesterIntake) -> None:
        """PR-6: the values the requester gave in clear go into the vault; the workflow keeps their tokens only."""
        staged = await personal_data.STAGE_INTAKE(StageIntakeRequest(
            account_id=self.s.account_id, staging_key=workflow.uuid4().hex, intake=intake))
        self.requester_token = self.requester_token or staged.contact_token
        self.evidence_tokens += staged.evidence_tokens
        self.changes += staged.changes

    async def _act(self) -> None:
        s, kind = self.s, self.s.kind
        if kind in c.EXPORT_KINDS:
            export = await personal_data.EXPORT(ExportRequest(account_id=s.account_id, request_id=s.request_id))
            s.export = c.ExportSummary(**export.model_dump())
        elif kind in c.CHANGE_KINDS:
            try:
                result = await personal_data.CORRECT(CorrectRequest(
                    account_id=s.account_id, request_id=s.request_id, changes=self.changes))
            except ActivityError as error:
                s.note = f"correction not applied ({error.cause or error}): an operator replies"
                return
            s.corrected_fields = result.fields
        elif kind in c.ERASURE_KINDS:
            await self._erase()
        elif kind is c.RequestKind.CONSENT_WITHDRAWAL:
            assert self.input.consent_purpose is not None
            consent = await personal_data.WITHDRAW_CONSENT(ConsentRequest(
                account_id=s.account_id, request_id=s.request_id, purpose=self.input.consent_purpose))
            s.consent_withdrawn_at = consent.withdrawn_at
        elif kind is c.RequestKind.ACCOUNT_CANCELLATION:
            try:
                await workflow.get_external_workflow_handle(account_id(s.account_id)).signal(
                    "request_cancellation", CancellationRequested(request_id=s.request_id,
                                                                  requested_at=workflow.now()))
            except FailureError as error:  # no running account workflow: never used, or already cancelled
                s.note = f"account workflow not running ({error.message}): an operator replies"
                return
            s.cancellation_requested_at = workflow.now()

    async def _erase(self) -> None:
        s = self.s
        keep = [self.requester_token] if self.requester_token and workflow.patched(ERASURE_KEEPS_REPLY_CONTACT) else []
        result = await self._stalls.call("erasure", personal_data.ERASE, EraseRequest(
            account_id=s.account_id, request_id=s.request_id, fields=self.input.fields, keep_tokens=keep))
        by = {d: [o.field for o in result.fields if o.disposition is d] for d in Disposition}
        s.erasure = c.ErasureSummary(
            deleted=by[Disposition.DELETE], anonymized=by[Disposition.ANONYMIZE],
            retained=[c.RetainedField(field=o.field, held_by=o.held_by) for o in result.fields
                      if o.disposition is Disposition.RETAIN],
            kept_records=result.kept_records)
        if not s.erasure.retained:
            s.erasure.completed_at = workflow.now()

    async def _send_reply(self) -> None:
        s = self.s
        summary = self._summary()
        if not await self._deliver(summary):
            s.note = "no contact to send the reply to: an operator replies"
        elif s.replied_at is None:
            self._replied(summary, "platform")

    async def _deliver(self, summary: str) -> bool:
        """The reply notice, once per request (the key), to the requester's contact or else the account's."""
        s = self.s
        notice = await notifications.SEND(NoticeRequest(
            key=f"dsr-reply:{s.request_id}", account_id=s.account_id, kind="data_subject_reply",
            body={"request_id": s.request_id, "kind": s.kind.value, "summary": summary},
            contact_token=self.requester_token))
        if notice.status == "undeliverable" and s.replied_at is not None:
            s.note = "reply recorded; no contact on file to deliver it"
        return notice.status != "undeliverable"

    def _summary(self) -> str:
        s = self.s
        if s.export is not None:
            return f"export ready: {s.export.sections} (sha256 {s.export.sha256[:12]})"
        if s.erasure is not None:
            retained = ", ".join(f"{r.field.value} (held by {', '.join(r.held_by)})" for r in s.erasure.retained)
            return (f"deleted: {', '.join(f.value for f in s.erasure.deleted) or 'none'}; anonymized: "
                    f"{', '.join(f.value for f in s.erasure.anonymized) or 'none'}; retained until the need ends: "
                    f"{retained or 'none'}")
        if s.corrected_fields:
            return f"corrected: {', '.join(f.value for f in s.corrected_fields)}"
        if s.consent_withdrawn_at is not None:
            return f"consent withdrawn at {business_time(s.consent_withdrawn_at)}"
        if s.cancellation_requested_at is not None:
            return "account cancellation started: open tasks and balance are settled first"
        return f"{s.kind.value} handled"

    async def _finish_retained_erasure(self) -> None:
        """PR-2: what a hold kept is erased when the hold ends (signalled by its owner; re-checked monthly)."""
        s = self.s
        while s.erasure is not None and s.erasure.retained:
            s.stage = c.DsrStage.RETENTION_PENDING
            recheck_at = workflow.now() + RETENTION_RECHECK
            recheck = f"re-check retained personal data {business_time(recheck_at)}"
            self._show(f"retaining {', '.join(r.field.value for r in s.erasure.retained)} until their holds end; "
                       f"{recheck}")
            self._released = 0
            with contextlib.suppress(TimeoutError):  # the deadline came first
                await workflow.wait_condition(
                    lambda: self._released > 0, timeout=RETENTION_RECHECK,
                    timeout_summary=wait_summary("the next re-check of retained personal data", recheck_at))
            await self._erase()

    # ---------------------------------------------------------------- deadline and visibility
    async def _before_deadline(self, work: Callable[[], Awaitable[object]]) -> None:
        """Runs `work`; if the reply deadline passes first, escalates and keeps going."""
        task = asyncio.ensure_future(work())
        due = self.s.reply_due_at
        if due is not None and not self.s.escalated:
            try:
                await workflow.wait_condition(task.done, timeout=until(due),
                                              timeout_summary=wait_summary("the reply is due", due))
            except TimeoutError:
                self._escalate(f"reply was due {business_time(due)} (15 working days after verification)")
        await task

    def _verified(self, by: str, method: str) -> None:
        s = self.s
        s.stage, s.verified_at, s.verified_by, s.verification_method = c.DsrStage.PROCESSING, workflow.now(), by, method

    def _replied(self, summary: str, by: str) -> None:
        s = self.s
        s.replied_at, s.reply_summary, s.replied_by = workflow.now(), summary, by
        if s.escalated:
            metrics.escalation("privacy", True, False)
            s.escalated = False  # a human acted; escalated_at keeps the record
        self._show(f"replied {business_time(s.replied_at)}")

    def _escalate(self, why: str) -> None:
        s = self.s
        metrics.escalation("privacy", s.escalated, True)
        s.escalated, s.escalated_at = True, workflow.now()
        self._show(f"ESCALATED: {why}")

    def _show(self, details: str) -> None:
        s = self.s
        deadline = s.reply_due_at if s.replied_at is None else None
        to_do = (f"**What to do**: reply: `python -m starter dsr-reply {s.request_id} --replied-by OPERATOR "
                 f"--summary TEXT`" if s.escalated and s.replied_at is None else "")
        workflow.set_current_details(self._stalls.details(details_md.lines(
            with_deadline(f"data-subject request {s.request_id} ({s.kind.value}) of account {s.account_id}: "
                          f"{details}", "reply due", deadline), to_do), s.escalated))
        stage_attributes(s.stage.value, deadline, s.escalated or self._stalls.escalated)
