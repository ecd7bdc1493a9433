"""Activities of the personal-data vault (PR-1, PR-2, PR-5, PR-6) and of closing an account (R-7, PR-4).

The vault itself is activities/personal_data_store.py (tables, erasure, export); money and directory steps of an
account's closure are activities/account_closure.py. Every activity takes one model and returns one
(ports/personal_data.py), and none carries a personal value in clear: account ids, tokens, fields,
counts, paths. The one exception, stage_intake's request, is encrypted by the payload codec (PR-6).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.account_closure import AccountClosure
from activities.personal_data_store import ANONYMIZED, PersonalData, export_dir_for, new_token
from ports import personal_data as port
from ports.personal_data import (
    AdjustRequest,
    AdjustResult,
    ArchiveRequest,
    ArchiveResult,
    Change,
    ConsentRequest,
    ConsentResult,
    CorrectRequest,
    CorrectResult,
    EraseRequest,
    EraseResult,
    ExportRequest,
    ExportResult,
    HoldRequest,
    HoldResult,
    IdentityCheck,
    IdentityResult,
    ObligationsRequest,
    ObligationsResult,
    PayoutRequest,
    PayoutResult,
    ReleaseHoldRequest,
    ReleaseHoldResult,
    StageIntakeRequest,
    StageIntakeResult,
)
from starter.codec import ERASED_VALUE
from workflows.contract.privacy import AccountParty
from workflows.rules.privacy import PersonalField

__all__ = ["ANONYMIZED", "AccountClosure", "PersonalData", "PersonalDataActivities", "export_dir_for", "new_token"]


class PersonalDataActivities:
    """Activities: one model in, one out, no personal data in either (tokens, fields, counts, paths)."""

    def __init__(self, vault: PersonalData) -> None:
        self.vault = vault
        self.closure = AccountClosure(vault)

    @activity.defn(name=port.STAGE_INTAKE.name)
    def stage_intake(self, request: StageIntakeRequest) -> StageIntakeResult:
        """Puts what a requester submitted in clear into the vault (staged) and returns its tokens. Repeat-safe."""
        intake = request.intake
        given = [intake.contact, *intake.evidence, *intake.changes]
        if any(v is not None and v.value == ERASED_VALUE for v in given):
            # The subject was erased after the request was sent: its values are gone, and "[erased]" must never
            # become evidence or a corrected value.
            raise ApplicationError("the request's intake was erased (the account's personal data was deleted after "
                                   "the request was sent): submit it again", {"reasons": ["intake erased"]},
                                   type="IntakeErased", non_retryable=True)
        slots = [("contact", intake.contact)] if intake.contact else []
        slots += [(f"evidence:{i}", v) for i, v in enumerate(intake.evidence)]
        slots += [(f"change:{i}", v) for i, v in enumerate(intake.changes)]
        tokens = dict(zip((slot for slot, _ in slots), self.vault.stage(
            request.account_id, request.staging_key, [(slot, v.field, v.value) for slot, v in slots]), strict=True))
        return StageIntakeResult(
            contact_token=tokens.get("contact"),
            evidence_tokens=[tokens[f"evidence:{i}"] for i in range(len(intake.evidence))],
            changes=[Change(field=v.field, value_token=tokens[f"change:{i}"]) for i, v in enumerate(intake.changes)])

    @activity.defn(name=port.CHECK_IDENTITY.name)
    def check_identity(self, request: IdentityCheck) -> IdentityResult:
        return IdentityResult(matched=self.vault.check_identity(request.account_id, request.evidence_tokens))

    @activity.defn(name=port.CORRECT.name)
    def correct(self, request: CorrectRequest) -> CorrectResult:
        try:
            applied = self.vault.correct(request.account_id, request.request_id,
                                         [(c.field, c.value_token) for c in request.changes])
        except ValueError as error:  # a token of another account, or none: retrying cannot help
            raise ApplicationError(str(error), type="InvalidChange", non_retryable=True) from error
        return CorrectResult(fields=[PersonalField(f) for f in applied])

    @activity.defn(name=port.WITHDRAW_CONSENT.name)
    def withdraw_consent(self, request: ConsentRequest) -> ConsentResult:
        at = self.vault.withdraw_consent(request.account_id, request.purpose, request.request_id)
        return ConsentResult(withdrawn_at=datetime.fromisoformat(at))

    @activity.defn(name=port.ERASE.name)
    def erase(self, request: EraseRequest) -> EraseResult:
        outcomes = self.vault.erase(request.account_id, request.request_id, request.fields, request.keep_tokens)
        return EraseResult(fields=outcomes, kept_records=kept_records(self.vault, request.account_id))

    @activity.defn(name=port.EXPORT.name)
    def export(self, request: ExportRequest) -> ExportResult:
        path, sha, size, sections = self.vault.export(request.request_id, request.account_id)
        return ExportResult(path=str(path), sha256=sha, size_bytes=size, sections=sections)

    @activity.defn(name=port.HOLD.name)
    def hold(self, request: HoldRequest) -> HoldResult:
        self.vault.hold(request.account_id, request.hold_id, request.reason)
        return HoldResult(hold_id=request.hold_id)

    @activity.defn(name=port.RELEASE_HOLD.name)
    def release_hold(self, request: ReleaseHoldRequest) -> ReleaseHoldResult:
        account_id, waiting = self.vault.release_hold(request.hold_id)
        return ReleaseHoldResult(account_id=account_id, waiting_erasure_requests=waiting)

    @activity.defn(name=port.OBLIGATIONS.name)
    def obligations(self, request: ObligationsRequest) -> ObligationsResult:
        return ObligationsResult(open_task_ids=self.closure.open_tasks(request.account_id, request.party))

    @activity.defn(name=port.PAYOUT.name)
    def payout(self, request: PayoutRequest) -> PayoutResult:
        account, amount, key = self.closure.payout(request.account_id, request.party)
        return PayoutResult(ledger_account=account, amount_fen=amount, transfer_key=key)

    @activity.defn(name=port.STATEMENT_ADJUSTMENT.name)
    def statement_adjustment(self, request: AdjustRequest) -> AdjustResult:
        account, amount, key = self.closure.statement_adjustment(request.account_id, request.party,
                                                               request.dispute_id, request.amount_fen)
        return AdjustResult(ledger_account=account, amount_fen=amount, transfer_key=key)

    @activity.defn(name=port.ARCHIVE_ACCOUNT.name)
    def archive_account(self, request: ArchiveRequest) -> ArchiveResult:
        archived = self.closure.archive_directory_entry(request.account_id)
        outcomes = self.vault.erase(request.account_id, request.erasure_request_id)
        return ArchiveResult(directory_entries_archived=archived, fields=outcomes,
                             kept_records=kept_records(self.vault, request.account_id))

    def all(self) -> list[Callable[..., Any]]:
        return [self.stage_intake, self.check_identity, self.correct, self.withdraw_consent, self.erase, self.export,
                self.hold, self.release_hold, self.obligations, self.payout, self.statement_adjustment,
                self.archive_account]


def kept_records(vault: PersonalData, account_id: str) -> list[str]:
    """What stays for earlier conduct and open money (PR-2, PR-5), named without personal data."""
    kept = [f"ledger:{a.name}" for party in AccountParty for a in vault.ledger.accounts(f"{party.value}:{account_id}:")]
    with vault.db.transaction() as tx:
        kept += [f"directory_archive:{r[0]}" for r in tx.fetchall(
            "SELECT source FROM pd_archive WHERE account_id = ? ORDER BY source", (account_id,))]
    return kept
