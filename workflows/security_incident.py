"""SecurityIncidentWorkflow (`incident:{incident_id}`): telling affected users about a security incident (PR-7, R-10).

An operator opens the incident with the affected accounts and the notice (what happened and its likely impact, what
was done or will be, what users can do, the remedy where one is offered). From confirmation, notices go out to each
account through the notification activity (idempotent per account: `incident:{incident_id}:{account_id}`), in
bounded batches. Every notice must be out within 72 hours of confirmation; otherwise the incident is escalated. An
account with no contact left on file can only be reached by a public announcement, which an operator publishes
with a reason. The incident closes when every affected user is told (or announced to) and the report to the
regulator is recorded.
"""

from __future__ import annotations

import asyncio
from datetime import datetime

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from ports import notifications
    from ports.notifications import IncidentNoticesRequest
    from workflows.contract import security_incident as c
    from workflows.contract.common import public_view
    from workflows.contract.names import SECURITY_INCIDENT_WORKFLOW
    from workflows.rules.clock import business_time, with_deadline
    from workflows.rules.privacy import incident_notices_due_at, notice_refusals

from workflows import details as details_md
from workflows import metrics
from workflows.common import stage_attributes, until, wait_summary
from workflows.escalation import Stalls
from workflows.refusals import refused

# workflow.patched id: R-10 (revised): a notice without its remedy ("none" must be said) is refused.
REMEDY_REQUIRED_PATCH = "incident-remedy-required"

NOTICE_BATCH = 100  # accounts per activity call: bounded payloads and history


@workflow.defn(name=SECURITY_INCIDENT_WORKFLOW)
class SecurityIncidentWorkflow:
    @workflow.init
    def __init__(self, input: c.SecurityIncidentInput) -> None:
        self._stalls = Stalls("privacy")
        self.s = c.SecurityIncidentState(incident_id=input.incident_id, opened_by=input.opened_by,
                                         summary=input.summary, notice=input.notice,
                                         affected=list(dict.fromkeys(input.affected_account_ids)))
        if input.confirmed_at is not None:
            self._confirm(input.opened_by, input.confirmed_at)

    @workflow.run
    async def run(self, input: c.SecurityIncidentInput) -> c.SecurityIncidentView:
        s = self.s
        n = s.notice
        if (problems := notice_refusals(n.what_happened, n.actions_taken, n.user_advice, n.remedy)) and \
                workflow.patched(REMEDY_REQUIRED_PATCH):
            # nothing is sent; the incident is opened again with a complete notice.
            self._show("refused: " + "; ".join(problems))
            raise refused("IncidentNoticeRefused", problems)
        self._show("waiting for confirmation")
        await workflow.wait_condition(lambda: s.confirmed_at is not None)
        watcher = asyncio.ensure_future(self._escalate_when_late())
        while s.stage is not c.IncidentStage.CLOSED:
            pending = self._pending()
            if pending:
                self._show(f"sending notices: {len(pending)} to go")
                await self._send(pending[:NOTICE_BATCH])
                continue
            if self._all_told() and s.notices_completed_at is None:
                s.notices_completed_at = workflow.now()
            if self._all_told() and s.regulator_report is not None:
                s.stage = c.IncidentStage.CLOSED
                break
            s.stage = c.IncidentStage.NOTIFIED if self._all_told() else c.IncidentStage.NOTIFYING
            self._show("waiting for " + ("the regulator report" if self._all_told() else
                                         f"an announcement for {len(s.undeliverable)} unreachable users"))
            await workflow.wait_condition(lambda: bool(self._pending()) or (
                self._all_told() and (s.notices_completed_at is None or s.regulator_report is not None)))
        if s.escalated:
            metrics.escalation("privacy", True, False)
            s.escalated = False
        self._show(f"closed: {len(s.notified)} notified, {len(s.undeliverable)} by announcement")
        watcher.cancel()
        await workflow.wait_condition(workflow.all_handlers_finished)
        return public_view(c.SecurityIncidentView, self.s)

    # ---------------------------------------------------------------- updates
    @workflow.update(name="confirm")
    def confirm(self, request: c.ConfirmIncident) -> c.SecurityIncidentView:
        """The incident is confirmed: the 72 hours for notices start at `confirmed_at`."""
        self._confirm(request.confirmed_by, request.confirmed_at)
        return public_view(c.SecurityIncidentView, self.s)

    @confirm.validator
    def _check_confirm(self, request: c.ConfirmIncident) -> None:
        if self.s.confirmed_at is not None:
            raise refused("AlreadyConfirmed", f"confirmed_at: confirmed {business_time(self.s.confirmed_at)}")
        if request.confirmed_at > workflow.now():
            raise refused("IncidentRefused", f"confirmed_at: {business_time(request.confirmed_at)} is in the future")

    @workflow.update(name="add_affected_accounts")
    def add_affected_accounts(self, request: c.AddAffectedAccounts) -> c.SecurityIncidentView:
        s = self.s
        known = set(s.affected)
        s.affected += [a for a in dict.fromkeys(request.account_ids) if a not in known]
        s.notices_completed_at = None if self._pending() else s.notices_completed_at
        return public_view(c.SecurityIncidentView, self.s)

    @add_affected_accounts.validator
    def _check_add(self, request: c.AddAffectedAccounts) -> None:
        if self.s.stage is c.IncidentStage.CLOSED:
            raise refused("IncidentClosed", "stage: the incident is closed")
        if len(set(self.s.affected) | set(request.account_ids)) > c.MAX_AFFECTED:
            raise refused("IncidentRefused", f"account_ids: at most {c.MAX_AFFECTED} affected accounts per incident")

    @workflow.update(name="publish_announcement")
    def publish_announcement(self, request: c.PublishAnnouncement) -> c.SecurityIncidentView:
        """R-10: one public announcement instead of the notices not yet out (telling each is not feasible)."""
        self.s.announcement = c.Announcement(**request.model_dump())
        return public_view(c.SecurityIncidentView, self.s)

    @publish_announcement.validator
    def _check_announcement(self, request: c.PublishAnnouncement) -> None:
        if self.s.confirmed_at is None:
            raise refused("NotConfirmed", "stage: confirm the incident before announcing it")
        if self.s.announcement is not None:
            raise refused("AlreadyAnnounced", "announcement: already published")

    @workflow.update(name="report_to_regulator")
    def report_to_regulator(self, request: c.ReportToRegulator) -> c.SecurityIncidentView:
        self.s.regulator_report = c.RegulatorReport(**request.model_dump())
        return public_view(c.SecurityIncidentView, self.s)

    @report_to_regulator.validator
    def _check_report(self, request: c.ReportToRegulator) -> None:
        if self.s.confirmed_at is None:
            raise refused("NotConfirmed", "stage: confirm the incident before reporting it")
        if self.s.regulator_report is not None:
            raise refused("AlreadyReported", "regulator_report: already recorded")

    @workflow.query(name="state")
    def state(self) -> c.SecurityIncidentView:
        return public_view(c.SecurityIncidentView, self.s)

    # ---------------------------------------------------------------- internals
    def _confirm(self, by: str, at: datetime) -> None:
        s = self.s
        s.confirmed_at, s.confirmed_by, s.notices_due_at = at, by, incident_notices_due_at(at)
        s.stage = c.IncidentStage.NOTIFYING

    def _pending(self) -> list[str]:
        """Accounts still to be sent a notice; none once an announcement replaces the notices (R-10)."""
        if self.s.announcement is not None:
            return []
        done = set(self.s.notified) | set(self.s.undeliverable)
        return [a for a in self.s.affected if a not in done]

    def _all_told(self) -> bool:
        return not self._pending() and (not self.s.undeliverable or self.s.announcement is not None)

    async def _send(self, account_ids: list[str]) -> None:
        s = self.s
        body = {"incident_id": s.incident_id, **{k: v for k, v in s.notice.model_dump().items() if v}}
        result = await self._stalls.call(
            "incident notices", notifications.SEND_INCIDENT_NOTICES,
            IncidentNoticesRequest(incident_id=s.incident_id, account_ids=account_ids, body=body))
        s.notified += result.notified
        s.undeliverable += result.undeliverable

    async def _escalate_when_late(self) -> None:
        """R-10: every notice out within 72 hours of confirmation, else escalated (visible until resolved)."""
        s = self.s
        assert s.notices_due_at is not None
        try:
            await workflow.wait_condition(lambda: s.notices_completed_at is not None,
                                          timeout=until(s.notices_due_at),
                                          timeout_summary=wait_summary("the notices are due", s.notices_due_at))
        except TimeoutError:
            if s.notices_completed_at is None:
                metrics.escalation("privacy", s.escalated, True)
                s.escalated, s.escalated_at = True, workflow.now()
                self._show(f"ESCALATED: notices not all out by {business_time(s.notices_due_at)}")

    def _show(self, details: str) -> None:
        s = self.s
        deadline = s.notices_due_at if s.notices_completed_at is None else None
        to_do = (f"**What to do**: send the notices left, or publish an announcement: `python -m starter "
                 f"incident-announce {s.incident_id} ...`" if s.escalated and s.notices_completed_at is None else "")
        workflow.set_current_details(self._stalls.details(details_md.lines(
            with_deadline(f"incident {s.incident_id}: {details}", "notices due", deadline),
            f"**Accounts**: {len(s.affected)} affected · {len(s.notified)} notified · {len(s.undeliverable)} "
            f"without a contact", to_do), s.escalated))
        stage_attributes(s.stage.value, deadline, s.escalated or self._stalls.escalated)
