"""Public contract of SecurityIncidentWorkflow (`incident:{incident_id}`): PR-7 with reading R-10.

Messages (all on `incident:{incident_id}`):
  updates  confirm, add_affected_accounts, publish_announcement, report_to_regulator
  query    state
Affected users are named by account id only; the notification activity finds their contact in the vault (PR-6).
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated

from pydantic import Field

from workflows.contract.common import ContractModel, Identifier, Instant, StateModel, Text

Part = Annotated[str, Field(min_length=1, max_length=2000)]
MAX_AFFECTED = 20_000  # above this, notices are not "feasible one by one": announce; keeps state < 2 MB


class NoticeParts(ContractModel):
    """PR-7 / R-10: the parts every notice carries. `remedy` is required ("none" must be said): a notice without it
    is refused (IncidentNoticeRefused); the field stays optional here only so that incidents opened before read
    back."""

    what_happened: Part = Field(description="what happened and its likely impact")
    actions_taken: Part = Field(description="what was done or will be done")
    user_advice: Part = Field(description="what the user can do to lower the risk")
    remedy: Part | None = Field(None, description='required: the remedy offered, or "none"')


class SecurityIncidentInput(ContractModel):
    incident_id: Identifier
    opened_by: Identifier
    summary: Text = Field(min_length=1)
    affected_account_ids: list[Identifier] = Field(max_length=MAX_AFFECTED)
    notice: NoticeParts
    confirmed_at: Instant | None = Field(None, description="set when opened already confirmed; else `confirm`")


class ConfirmIncident(ContractModel):
    confirmed_by: Identifier
    confirmed_at: Instant


class AddAffectedAccounts(ContractModel):
    account_ids: list[Identifier] = Field(min_length=1, max_length=MAX_AFFECTED)


class PublishAnnouncement(ContractModel):
    """R-10: one public announcement instead of the notices not delivered (telling each one is not feasible)."""

    published_by: Identifier
    reason: Text = Field(min_length=1)
    channel: Text = Field(min_length=1)
    published_at: Instant


class ReportToRegulator(ContractModel):
    reported_by: Identifier
    regulator: Text = Field(min_length=1)
    reference: Text = Field(min_length=1)
    reported_at: Instant


class IncidentStage(StrEnum):
    AWAITING_CONFIRMATION = "awaiting_confirmation"
    NOTIFYING = "notifying"
    NOTIFIED = "notified"  # every affected user told (or an announcement made); waiting for the regulator report
    CLOSED = "closed"


class Announcement(StateModel):
    published_by: str
    reason: str
    channel: str
    published_at: datetime


class RegulatorReport(StateModel):
    reported_by: str
    regulator: str
    reference: str
    reported_at: datetime


class SecurityIncidentView(StateModel):
    """A security incident (the `state` query): confirmation, the 72-hour notices, announcement and report."""

    incident_id: str
    opened_by: str
    summary: str
    notice: NoticeParts
    stage: IncidentStage = IncidentStage.AWAITING_CONFIRMATION
    confirmed_at: datetime | None = None
    confirmed_by: str | None = None
    notices_due_at: datetime | None = None  # confirmation + 72 hours
    affected: list[str] = Field(default_factory=list)
    notified: list[str] = Field(default_factory=list)
    undeliverable: list[str] = Field(default_factory=list)  # no contact on file: an announcement only
    notices_completed_at: datetime | None = None
    announcement: Announcement | None = None
    regulator_report: RegulatorReport | None = None
    escalated: bool = False
    escalated_at: datetime | None = None


class SecurityIncidentState(SecurityIncidentView):
    """What the workflow carries across continue-as-new (today exactly its view)."""
