"""AccountWorkflow (`account:{account_id}`): one long-lived workflow per account (PR-3, PR-4, PR-5, R-6, R-7).

Any sign-in or use resets the 24-month dormancy clock. At 24 months to the second the account is flagged dormant;
once its open tasks have ended (and its statement disputes are settled) its available balance is paid out through
the ledger and it is cancelled: taken out of the active directory, its personal data erased except what a hold
still needs, its ledger and conduct records kept (PR-5). A user's own cancellation request takes the same path.

Statement disputes (PR-4) are accepted before 00:00 (UTC+08:00) of the 11th of the month after the transaction
(R-6) and go to an operator like fee disputes: escalated after 7 working days, resolved with an outcome, an
optional adjustment credited through the ledger, and a note. While one is open the account's identity and
contact are held from erasure; when it settles, erasure requests waiting on them are told.

History stays bounded: continue-as-new on the SDK's suggestion or after MAX_MESSAGES_PER_RUN messages, once every
handler has finished, carrying the whole state.
"""

from __future__ import annotations

import contextlib
from datetime import datetime, timedelta

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from ports import notifications, personal_data
    from ports.notifications import NoticeRequest
    from ports.personal_data import (
        AdjustRequest,
        ArchiveRequest,
        HoldRequest,
        ObligationsRequest,
        PayoutRequest,
        ReleaseHoldRequest,
    )
    from workflows.contract import account as c
    from workflows.contract.common import public_view
    from workflows.contract.data_subject_request import RetentionReleased
    from workflows.contract.names import ACCOUNT_WORKFLOW, SA, data_subject_request_id
    from workflows.contract.privacy import AccountParty
    from workflows.contract.views import RunInfo
    from workflows.rules.clock import business_time, with_deadline
    from workflows.rules.privacy import (
        DISPUTE_ESCALATION_WORKING_DAYS,
        HoldReason,
        dormancy_cancels_at,
        dormant_at,
        statement_dispute_closes_at,
    )

from workflows import details as details_md
from workflows import metrics
from workflows.common import (
    RunLength,
    continue_as_new_when_handlers_done,
    run_info,
    stage_attributes,
    until,
    wait_summary,
)
from workflows.deadlines import working_days_after
from workflows.escalation import Stalls
from workflows.refusals import refused

OBLIGATIONS_RECHECK = timedelta(days=7)  # tasks end by signal; a missed one is found within a week
WAITING = (c.AccountStage.DORMANT, c.AccountStage.CANCELLING)
# workflow.patched id: R-7 (revised): a notice at 24 months, cancellation only after 30 more days unused.
DORMANCY_NOTICE_PATCH = "dormancy-notice-first"


def dispute_hold_id(account: str, dispute_id: str) -> str:
    return f"statement-dispute:{account}:{dispute_id}"


@workflow.defn(name=ACCOUNT_WORKFLOW)
class AccountWorkflow:
    @workflow.init
    def __init__(self, input: c.AccountInput) -> None:
        if input.carried_state is not None:
            self.s = input.carried_state
            self.s.runs += 1
        else:
            self.s = c.AccountState(account_id=input.account_id, party=input.party, opened_at=input.opened_at,
                                    last_activity_at=input.opened_at, dormant_at=dormant_at(input.opened_at))
        self.s.messages_this_run = 0
        self._wake = False
        self._closing = False  # payout and archive under way: a late sign-in no longer reactivates
        self._stalls = Stalls("privacy")

    @workflow.run
    async def run(self, input: c.AccountInput) -> c.AccountView:
        s = self.s
        self._run_length = RunLength()
        party_key = SA.CLIENT_ID if s.party is AccountParty.CLIENT else SA.CREATOR_ID
        workflow.upsert_search_attributes([party_key.value_set(s.account_id)])
        while s.stage is not c.AccountStage.CANCELLED:
            self._escalate_due_disputes()
            if s.stage is c.AccountStage.ACTIVE:
                if workflow.now() >= s.dormant_at:
                    if workflow.patched(DORMANCY_NOTICE_PATCH):
                        await self._send_dormancy_notice()
                        continue
                    s.stage, s.flagged_dormant_at, s.cancellation_reason = (
                        c.AccountStage.DORMANT, workflow.now(), "dormancy")
                    continue
                self._show(f"active; dormant at {business_time(s.dormant_at)} unless used before")
                await self._sleep_until(s.dormant_at, "the account is 24 months unused")
            elif s.stage is c.AccountStage.DORMANCY_NOTICE:
                assert s.dormancy_cancels_at is not None and s.dormancy_notice_at is not None
                if workflow.now() >= s.dormancy_cancels_at:
                    s.stage, s.flagged_dormant_at, s.cancellation_reason = (
                        c.AccountStage.DORMANT, workflow.now(), "dormancy")
                    continue
                self._show(f"dormancy notice sent {business_time(s.dormancy_notice_at)}; cancelled from "
                           f"{business_time(s.dormancy_cancels_at)} unless signed in or used before")
                await self._sleep_until(s.dormancy_cancels_at, "the account is cancelled if still unused")
            else:
                if await self._obligations_done():
                    await self._cancel()
                    break
                self._show(f"{s.stage.value}: waiting for open tasks {s.open_task_ids or 'none'} and disputes "
                           f"{self._open_disputes() or 'none'} before cancellation; re-check "
                           f"{business_time(workflow.now() + OBLIGATIONS_RECHECK)}")
                await self._sleep_until(workflow.now() + OBLIGATIONS_RECHECK, "the next re-check of open tasks")
            if self._run_length.due(s.messages_this_run):
                await continue_as_new_when_handlers_done(lambda: c.AccountInput(
                    account_id=s.account_id, party=s.party, opened_at=s.opened_at, carried_state=s))
        await workflow.wait_condition(workflow.all_handlers_finished)
        return public_view(c.AccountView, self.s)

    # ---------------------------------------------------------------- signals
    @workflow.signal(name="record_activity")
    def record_activity(self, event: c.AccountActivity) -> None:
        """R-7: a sign-in or use resets the 24 months (a dormant account waiting to be cancelled is active again)."""
        s = self.s
        s.messages_this_run += 1
        if s.stage is c.AccountStage.CANCELLED:
            return
        s.activities_recorded += 1
        occurred_at = min(event.occurred_at, workflow.now())  # a clock ahead of ours cannot push dormancy out
        if occurred_at > s.last_activity_at:
            s.last_activity_at, s.dormant_at = occurred_at, dormant_at(occurred_at)
        if (s.stage in (c.AccountStage.DORMANT, c.AccountStage.DORMANCY_NOTICE) and workflow.now() < s.dormant_at
                and not self._closing):
            # a use after the notice keeps the account (the next notice comes 24 months after this use).
            s.stage, s.flagged_dormant_at, s.cancellation_reason = c.AccountStage.ACTIVE, None, None
            s.dormancy_notice_at = s.dormancy_cancels_at = None
        self._wake = True

    @workflow.signal(name="obligations_changed")
    def obligations_changed(self, event: c.ObligationsChanged) -> None:
        self.s.messages_this_run += 1
        self._wake = True

    @workflow.signal(name="request_cancellation")
    def request_cancellation(self, event: c.CancellationRequested) -> None:
        s = self.s
        s.messages_this_run += 1
        if s.stage in (c.AccountStage.ACTIVE, c.AccountStage.DORMANCY_NOTICE, c.AccountStage.DORMANT):
            s.stage, s.cancellation_reason, s.cancellation_request_id = (
                c.AccountStage.CANCELLING, "requested", event.request_id)
        self._wake = True

    # ---------------------------------------------------------------- statement disputes (PR-4, R-6)
    @workflow.update(name="raise_statement_dispute")
    async def raise_statement_dispute(self, request: c.RaiseStatementDispute) -> c.StatementDisputeRecord:
        s = self.s
        s.messages_this_run += 1
        if request.dispute_id in s.statement_disputes:
            return s.statement_disputes[request.dispute_id]
        record = c.StatementDisputeRecord(
            dispute_id=request.dispute_id, subject=request.subject, transaction_at=request.transaction_at,
            transaction_ref=request.transaction_ref, amount_fen=request.amount_fen, reason=request.reason,
            raised_at=workflow.now(), window_closed_at=statement_dispute_closes_at(request.transaction_at))
        s.statement_disputes[request.dispute_id] = record
        await personal_data.HOLD(HoldRequest(account_id=s.account_id, reason=HoldReason.OPEN_DISPUTE,
                                             hold_id=dispute_hold_id(s.account_id, request.dispute_id)))
        record.escalation_due_at = await working_days_after(
            record.raised_at, DISPUTE_ESCALATION_WORKING_DAYS, f"statement dispute {request.dispute_id}")
        if record.escalation_due_at is None:
            metrics.escalation("privacy", record.escalated, True)
            record.escalated = True  # no calendar for that year: an operator must see it now
        self._wake = True
        return record

    @raise_statement_dispute.validator
    def _check_raise(self, request: c.RaiseStatementDispute) -> None:
        s, now = self.s, workflow.now()
        if s.stage is c.AccountStage.CANCELLED:
            raise refused("AccountCancelled", f"account {s.account_id} is cancelled")
        if request.dispute_id in s.statement_disputes:
            return  # a repeat answers with the first record
        if request.transaction_at > now:
            raise refused("StatementDisputeRefused",
                          f"transaction_at: {business_time(request.transaction_at)} is in the future")
        closes_at = statement_dispute_closes_at(request.transaction_at)
        if now >= closes_at:
            raise refused("StatementDisputeWindowClosed",
                          f"transaction_at: disputes about a {request.subject.value} of "
                          f"{business_time(request.transaction_at)} were accepted until {business_time(closes_at)}"
                          f" (the end of the 10th of the following month); the statement is deemed accepted")

    @workflow.update(name="resolve_statement_dispute")
    async def resolve_statement_dispute(self, request: c.ResolveStatementDispute) -> c.StatementDisputeRecord:
        s = self.s
        s.messages_this_run += 1
        record = s.statement_disputes[request.dispute_id]
        if request.outcome == "upheld" and request.adjustment_fen > 0:
            await personal_data.STATEMENT_ADJUSTMENT(AdjustRequest(
                account_id=s.account_id, party=s.party, dispute_id=request.dispute_id,
                amount_fen=request.adjustment_fen))
        record.status, record.resolved_at, record.resolved_by = request.outcome, workflow.now(), request.resolved_by
        metrics.escalation("privacy", record.escalated, False)
        record.adjustment_fen, record.note, record.escalated = request.adjustment_fen, request.note, False
        released = await personal_data.RELEASE_HOLD(ReleaseHoldRequest(
            hold_id=dispute_hold_id(s.account_id, request.dispute_id)))
        for request_id in released.waiting_erasure_requests:
            await workflow.get_external_workflow_handle(data_subject_request_id(request_id)).signal(
                "retention_released", RetentionReleased(hold_id=dispute_hold_id(s.account_id, request.dispute_id),
                                                        released_at=workflow.now()))
        self._wake = True
        return record

    @resolve_statement_dispute.validator
    def _check_resolve(self, request: c.ResolveStatementDispute) -> None:
        record = self.s.statement_disputes.get(request.dispute_id)
        if record is None:
            raise refused("UnknownDispute", f"dispute_id: no statement dispute {request.dispute_id} on this account")
        if record.status != "open":
            raise refused("DisputeClosed", f"dispute_id: {request.dispute_id} was already {record.status}")
        if request.outcome == "rejected" and request.adjustment_fen:
            raise refused("StatementDisputeRefused", "adjustment_fen: a rejected dispute adjusts nothing")

    @workflow.query(name="state")
    def state(self) -> c.AccountView:
        return public_view(c.AccountView, self.s)

    @workflow.query(name="run")
    def run_info(self) -> RunInfo:
        """How far this run is towards continuing as new: the messages it counted, and its bound."""
        return run_info(self.s.messages_this_run, getattr(self, "_run_length", None))

    # ---------------------------------------------------------------- internals
    def _open_disputes(self) -> list[str]:
        return [d for d, r in self.s.statement_disputes.items() if r.status == "open"]

    def _escalate_due_disputes(self) -> None:
        for record in self.s.statement_disputes.values():
            if (record.status == "open" and not record.escalated and record.escalation_due_at is not None
                    and workflow.now() >= record.escalation_due_at):
                metrics.escalation("privacy", False, True)
                record.escalated = True

    def _next_escalation(self) -> datetime | None:
        due = [r.escalation_due_at for r in self.s.statement_disputes.values()
               if r.status == "open" and not r.escalated and r.escalation_due_at is not None]
        return min(due) if due else None

    async def _sleep_until(self, instant: datetime, what: str) -> None:
        escalation = self._next_escalation()
        if escalation is not None and escalation < instant:
            instant, what = escalation, "a statement dispute escalates"
        self._wake = False
        with contextlib.suppress(TimeoutError):  # the deadline came first
            await workflow.wait_condition(
                lambda: self._wake or self._run_length.reached(self.s.messages_this_run), timeout=until(instant),
                timeout_summary=wait_summary(what, instant))

    async def _send_dormancy_notice(self) -> None:
        """R-7 (revised): at 24 months unused the user is told; cancellation only after 30 more days unused."""
        s, now = self.s, workflow.now()
        cancels_at = dormancy_cancels_at(now)
        await self._stalls.call("dormancy notice", notifications.SEND, NoticeRequest(
            key=f"dormancy:{s.account_id}:{s.dormant_at.isoformat()}", account_id=s.account_id,
            kind="dormancy_notice", body={"unused_since": s.last_activity_at.isoformat(),
                                          "cancelled_from": cancels_at.isoformat(),
                                          "keep_it": "sign in or use the account before then"}))
        s.stage, s.dormancy_notice_at, s.dormancy_cancels_at = c.AccountStage.DORMANCY_NOTICE, now, cancels_at
        s.dormancy_notices += 1

    async def _obligations_done(self) -> bool:
        """R-7: open tasks ended (the ledger's and the holds' view) and no statement dispute open."""
        s = self.s
        result = await personal_data.OBLIGATIONS(ObligationsRequest(account_id=s.account_id, party=s.party))
        s.open_task_ids, s.obligations_checked_at = result.open_task_ids, workflow.now()
        return not s.open_task_ids and not self._open_disputes()

    async def _cancel(self) -> None:
        """R-7 then PR-5: pay out the balance, then leave the active directory and erase personal data."""
        s = self.s
        self._closing = True
        payout = await self._stalls.call("payout of the balance", personal_data.PAYOUT,
                                         PayoutRequest(account_id=s.account_id, party=s.party))
        if payout.amount_fen and not s.payouts:
            s.payouts.append(c.Payout(**payout.model_dump()))
        await self._stalls.call("archive", personal_data.ARCHIVE_ACCOUNT, ArchiveRequest(
            account_id=s.account_id, erasure_request_id=f"cancel-{s.account_id}"))
        s.stage, s.cancelled_at = c.AccountStage.CANCELLED, workflow.now()
        self._show(f"cancelled ({s.cancellation_reason}); paid out {payout.amount_fen} fen")

    def _show(self, details: str) -> None:
        s = self.s
        overdue = [d for d, r in s.statement_disputes.items() if r.escalated and r.status == "open"]
        escalated = bool(overdue)
        prefix = f"ESCALATED: statement dispute(s) {', '.join(overdue)} need an operator | " if overdue else ""
        deadline = s.dormant_at if s.stage is c.AccountStage.ACTIVE else None
        what = "dormant at"
        if s.stage is c.AccountStage.DORMANCY_NOTICE:
            deadline, what = s.dormancy_cancels_at, "cancelled if still unused"
        escalation = self._next_escalation()
        if escalation is not None and (deadline is None or escalation < deadline):
            deadline, what = escalation, "statement dispute escalates"
        to_do = (f"**What to do**: resolve them: `python -m starter account-dispute-resolve {s.account_id} "
                 f"--dispute-id ID --resolved-by OPERATOR --outcome upheld|rejected --note TEXT`" if overdue else "")
        paid_out = sum(p.amount_fen for p in s.payouts)
        workflow.set_current_details(self._stalls.details(details_md.lines(
            with_deadline(f"{prefix}account {s.account_id}: {details}", what, deadline),
            f"**Money** (fen): paid out {details_md.fen(paid_out)}; **Open tasks**: {len(s.open_task_ids)}; "
            f"**Statement disputes open**: {len(self._open_disputes())}", to_do), escalated))
        stage_attributes(s.stage.value, deadline, escalated or self._stalls.escalated)
