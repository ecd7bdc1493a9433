"""Public contract of DataSubjectRequestWorkflow (`dsr:{request_id}`): PR-1, PR-2, PR-6.

Messages (all on `dsr:{request_id}`):
  updates  verify_identity (an operator confirms or rejects the requester's identity), reply (an operator's reply,
           needed for complaints, allowed for every kind)
  signals  retention_released (a hold that kept personal data ended: erase what it kept)
  query    state

PR-6: the requester's contact, identity evidence and corrected values are vault tokens, or they come in clear in
`intake` (a `PersonalModel`: every payload holding it is encrypted by the payload codec). The workflow's first
activity puts the intake into the vault; from then on it holds tokens only. Everything else here is plain.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Self

from pydantic import Field, model_validator

from workflows.contract.common import ContractModel, Identifier, Instant, StateModel, Text
from workflows.contract.privacy import PersonalField, PersonalModel, PersonalText, VaultToken


class RequestKind(StrEnum):
    ACCESS = "access"
    COPY = "copy"
    PORTABILITY = "portability"  # "transfer": a portable export
    CORRECTION = "correction"
    SUPPLEMENT = "supplement"
    DELETION = "deletion"
    MINOR_DATA_REPORT = "minor_data_report"  # PR-1: a deletion request for that information
    CONSENT_WITHDRAWAL = "consent_withdrawal"
    ACCOUNT_CANCELLATION = "account_cancellation"
    COMPLAINT = "complaint"


EXPORT_KINDS = (RequestKind.ACCESS, RequestKind.COPY, RequestKind.PORTABILITY)
CHANGE_KINDS = (RequestKind.CORRECTION, RequestKind.SUPPLEMENT)
ERASURE_KINDS = (RequestKind.DELETION, RequestKind.MINOR_DATA_REPORT)


class FieldChange(ContractModel):
    """A corrected or supplemented value: the new value is in the vault under `value_token`."""

    field: PersonalField
    value_token: VaultToken


CONTACT_FIELDS = (PersonalField.PHONE, PersonalField.EMAIL)


class GivenValue(PersonalModel):
    """One personal value as the requester gave it, in clear (encrypted in every payload that holds it)."""

    field: PersonalField
    value: PersonalText


class RequesterIntake(PersonalModel):
    """The request as the requester submitted it, values in clear (PR-6: encrypted in Temporal, put into the vault
    by the workflow's first activity). Alternative to the `*_token` fields, which carry values staged before."""

    contact: GivenValue | None = Field(None, description="where to send the reply: a phone number or e-mail")
    evidence: list[GivenValue] = Field([], max_length=10, description="identity evidence: phone, ID number, e-mail")
    changes: list[GivenValue] = Field([], max_length=10, description="correction / supplement: the new values")

    @model_validator(mode="after")
    def _contact_is_a_contact(self) -> Self:
        if self.contact is not None and self.contact.field not in CONTACT_FIELDS:
            raise ValueError(f"contact: a phone or email, not {self.contact.field.value}")
        return self


class DataSubjectRequestInput(ContractModel):
    request_id: Identifier
    account_id: Identifier
    kind: RequestKind
    received_at: Instant
    requester_token: VaultToken | None = Field(
        None, description="where to send the reply: a contact the requester gave, kept in the vault")
    evidence_tokens: list[VaultToken] = Field(
        [], max_length=10, description="identity evidence the requester gave (phone, ID number), in the vault; "
                                       "a match with what is on file verifies the request at once")
    changes: list[FieldChange] = Field([], max_length=10, description="correction / supplement only")
    consent_purpose: Text | None = Field(None, description="consent withdrawal: which processing")
    fields: list[PersonalField] = Field(
        [], description="minor data report / deletion: the fields concerned (empty: every field on file)")
    intake: RequesterIntake | None = Field(
        None, description="the same in clear (contact, evidence, changes): encrypted in Temporal, vaulted first")

    @model_validator(mode="after")
    def _kind_needs(self) -> Self:
        changes = bool(self.changes) or (self.intake is not None and bool(self.intake.changes))
        if self.kind in CHANGE_KINDS and not changes:
            raise ValueError(f"changes: a {self.kind.value} request lists at least one field and its new value token")
        if self.kind not in CHANGE_KINDS and changes:
            raise ValueError(f"changes: only correction and supplement requests carry changes, not {self.kind.value}")
        if self.intake is not None and self.intake.contact is not None and self.requester_token is not None:
            raise ValueError("requester_token: give the contact either as a token or in intake.contact, not both")
        if self.kind is RequestKind.CONSENT_WITHDRAWAL and not self.consent_purpose:
            raise ValueError("consent_purpose: say which processing the consent is withdrawn from")
        return self


class VerifyIdentity(ContractModel):
    verified: bool
    verified_by: Identifier
    method: Text = Field(min_length=1, description="how the identity was checked, e.g. 'video call'")
    note: Text = ""


class OperatorReply(ContractModel):
    replied_by: Identifier
    summary: Text = Field(min_length=1, description="what the reply says (no personal data)")


class RetentionReleased(ContractModel):
    """Sent by the workflow that owned a hold (e.g. AccountWorkflow when a statement dispute settles)."""

    hold_id: str = Field(min_length=1, max_length=256)
    released_at: Instant


class DsrStage(StrEnum):
    AWAITING_VERIFICATION = "awaiting_verification"
    PROCESSING = "processing"
    AWAITING_REPLY = "awaiting_reply"  # an operator writes the reply (complaints)
    RETENTION_PENDING = "retention_pending"  # replied; data a hold still needs is erased when the hold ends
    COMPLETED = "completed"
    IDENTITY_REJECTED = "identity_rejected"


class ExportSummary(StateModel):
    """Where the export file is and what it holds (counts only: the file itself is what is handed over)."""

    path: str
    sha256: str
    size_bytes: int
    sections: dict[str, int]


class RetainedField(StateModel):
    field: PersonalField
    held_by: list[str]


class ErasureSummary(StateModel):
    deleted: list[PersonalField] = Field(default_factory=list)
    anonymized: list[PersonalField] = Field(default_factory=list)
    retained: list[RetainedField] = Field(default_factory=list)
    kept_records: list[str] = Field(default_factory=list)  # records kept for conduct and money (ids only)
    completed_at: datetime | None = None


class DataSubjectRequestView(StateModel):
    """A data-subject request (the `state` query): verification, the reply deadline, and what was done."""

    request_id: str
    account_id: str
    kind: RequestKind
    stage: DsrStage = DsrStage.AWAITING_VERIFICATION
    received_at: datetime
    verified_at: datetime | None = None
    verified_by: str | None = None
    verification_method: str | None = None
    reply_due_at: datetime | None = None  # 15 working days from verification (PR-1)
    replied_at: datetime | None = None
    reply_summary: str | None = None
    replied_by: str | None = None
    escalated: bool = False
    escalated_at: datetime | None = None
    export: ExportSummary | None = None
    corrected_fields: list[PersonalField] = Field(default_factory=list)
    erasure: ErasureSummary | None = None
    consent_withdrawn_at: datetime | None = None
    cancellation_requested_at: datetime | None = None
    retention_released: list[str] = Field(default_factory=list)
    note: str = ""


class DataSubjectRequestState(DataSubjectRequestView):
    """What the workflow carries across continue-as-new (today exactly its view)."""
