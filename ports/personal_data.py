"""The personal-data vault as the workflows see it (activities/personal_data.py implements it). PR-6: none of them
carries a personal value in clear, only account ids, vault tokens, field names, counts and paths; except
StageIntakeRequest, whose intake is a PersonalModel: the converter flags its payload and the codec encrypts it."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from ports.port import ActivityPort
from workflows.contract.data_subject_request import RequesterIntake
from workflows.contract.privacy import AccountParty, VaultToken
from workflows.rules.privacy import Disposition, HoldReason, PersonalField


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class IdentityCheck(_Model):
    account_id: str
    evidence_tokens: list[VaultToken]


class IdentityResult(_Model):
    matched: bool


class Change(_Model):
    field: PersonalField
    value_token: VaultToken


class StageIntakeRequest(_Model):
    account_id: str
    staging_key: str = Field(min_length=16, description="the workflow's random key: a retry stores the same tokens")
    intake: RequesterIntake  # personal values in clear: this payload is encrypted (PR-6)


class StageIntakeResult(_Model):
    contact_token: VaultToken | None
    evidence_tokens: list[VaultToken]
    changes: list[Change]


class CorrectRequest(_Model):
    account_id: str
    request_id: str
    changes: list[Change] = Field(min_length=1)


class CorrectResult(_Model):
    fields: list[PersonalField]


class ConsentRequest(_Model):
    account_id: str
    request_id: str
    purpose: str = Field(min_length=1)


class ConsentResult(_Model):
    withdrawn_at: datetime


class FieldOutcome(_Model):
    field: PersonalField
    disposition: Disposition
    held_by: list[str] = []


class EraseRequest(_Model):
    account_id: str
    request_id: str
    fields: list[PersonalField] = []  # empty: every field on file
    # Staged values the request still needs (its requester's contact, for the reply PR-1 owes): kept through the
    # erasure, re-sealed under the subject's new key; every other staged copy of an erased field is dropped.
    keep_tokens: list[VaultToken] = []


class EraseResult(_Model):
    fields: list[FieldOutcome]
    kept_records: list[str]


class ExportRequest(_Model):
    account_id: str
    request_id: str


class ExportResult(_Model):
    path: str
    sha256: str
    size_bytes: int
    sections: dict[str, int]


class HoldRequest(_Model):
    account_id: str
    hold_id: str
    reason: HoldReason


class HoldResult(_Model):
    hold_id: str


class ReleaseHoldRequest(_Model):
    hold_id: str


class ReleaseHoldResult(_Model):
    account_id: str | None
    waiting_erasure_requests: list[str]  # erasure requests still waiting on the account's data


class ObligationsRequest(_Model):
    account_id: str
    party: AccountParty


class ObligationsResult(_Model):
    open_task_ids: list[str]


class PayoutRequest(_Model):
    account_id: str
    party: AccountParty


class PayoutResult(_Model):
    ledger_account: str
    amount_fen: int
    transfer_key: str


class ArchiveRequest(_Model):
    account_id: str
    erasure_request_id: str


class ArchiveResult(_Model):
    directory_entries_archived: list[str]
    fields: list[FieldOutcome]
    kept_records: list[str]


class AdjustRequest(_Model):
    account_id: str
    party: AccountParty
    dispute_id: str
    amount_fen: int = Field(strict=True, gt=0)


class AdjustResult(_Model):
    ledger_account: str
    amount_fen: int
    transfer_key: str


STAGE_INTAKE = ActivityPort[StageIntakeRequest, StageIntakeResult]("personal_data.stage_intake", StageIntakeResult)
CHECK_IDENTITY = ActivityPort[IdentityCheck, IdentityResult]("personal_data.check_identity", IdentityResult)
CORRECT = ActivityPort[CorrectRequest, CorrectResult]("personal_data.correct", CorrectResult)
WITHDRAW_CONSENT = ActivityPort[ConsentRequest, ConsentResult]("personal_data.withdraw_consent", ConsentResult)
ERASE = ActivityPort[EraseRequest, EraseResult]("personal_data.erase", EraseResult)
EXPORT = ActivityPort[ExportRequest, ExportResult]("personal_data.export", ExportResult)
HOLD = ActivityPort[HoldRequest, HoldResult]("personal_data.hold", HoldResult)
RELEASE_HOLD = ActivityPort[ReleaseHoldRequest, ReleaseHoldResult]("personal_data.release_hold", ReleaseHoldResult)
OBLIGATIONS = ActivityPort[ObligationsRequest, ObligationsResult]("personal_data.obligations", ObligationsResult)
PAYOUT = ActivityPort[PayoutRequest, PayoutResult]("personal_data.payout", PayoutResult)
STATEMENT_ADJUSTMENT = ActivityPort[AdjustRequest, AdjustResult]("personal_data.statement_adjustment", AdjustResult)
ARCHIVE_ACCOUNT = ActivityPort[ArchiveRequest, ArchiveResult]("personal_data.archive_account", ArchiveResult)
