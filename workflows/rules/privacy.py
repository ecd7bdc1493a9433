"""Pure rules of accounts and personal information: PR-2, PR-3, PR-4, PR-7 with readings R-6, R-7, R-10.

Plain functions over plain values, no I/O and no Temporal: the workflows and the vault activities call them.
"""

from __future__ import annotations

import calendar
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from workflows.rules.clock import BUSINESS_TZ, require_aware

DORMANCY_MONTHS = 24  # PR-3
DORMANCY_NOTICE_DAYS = 30  # R-7 (revised): after the notice, 30 days without use before cancellation
STATEMENT_DISPUTE_LAST_DAY = 10  # PR-4: "until the 10th of the month after the transaction"
INCIDENT_NOTICE_WINDOW = timedelta(hours=72)
DSR_REPLY_WORKING_DAYS = 15  # PR-1
DISPUTE_ESCALATION_WORKING_DAYS = 7  # statement disputes go to an operator "like fee disputes" (AM-17)


# ---- statement disputes --------------------------------------------------------------------------------

def statement_dispute_closes_at(transaction_at: datetime) -> datetime:
    """R-6: a dispute about a top-up, spend or balance is accepted before 00:00 (UTC+08:00) of the 11th of the
    month after the transaction's month (the whole 10th counts). The month is the transaction's business month."""
    require_aware(transaction_at, "transaction_at")
    local = transaction_at.astimezone(BUSINESS_TZ)
    year, month = (local.year + 1, 1) if local.month == 12 else (local.year, local.month + 1)
    return datetime(year, month, STATEMENT_DISPUTE_LAST_DAY + 1, tzinfo=BUSINESS_TZ)


def statement_dispute_open(transaction_at: datetime, now: datetime) -> bool:
    return now < statement_dispute_closes_at(transaction_at)


# ---- dormancy ------------------------------------------------------------------------------------------

def add_months(instant: datetime, months: int) -> datetime:
    """Calendar months on the business clock; a day past the end of the target month is its last day
    (2024-02-29 + 24 months = 2026-02-28), the time of day is kept to the microsecond."""
    require_aware(instant, "instant")
    local = instant.astimezone(BUSINESS_TZ)
    index = local.month - 1 + months
    year, month = local.year + index // 12, index % 12 + 1
    day = min(local.day, calendar.monthrange(year, month)[1])
    return local.replace(year=year, month=month, day=day)


def dormant_at(last_activity_at: datetime) -> datetime:
    """PR-3 / R-7: the instant an account unused since `last_activity_at` has been unused for 24 consecutive
    months. At that instant (not a second before) it is dormant."""
    return add_months(last_activity_at, DORMANCY_MONTHS)


def dormancy_cancels_at(notice_at: datetime) -> datetime:
    """R-7 (revised): the exclusive end of the 30 days after the dormancy notice: unused through them, the account
    is cancelled from this instant (its obligations first)."""
    require_aware(notice_at, "notice_at")
    return notice_at + timedelta(days=DORMANCY_NOTICE_DAYS)


# ---- incidents ----------------------------------------------------------------------------------------

def incident_notices_due_at(confirmed_at: datetime) -> datetime:
    """R-10: every affected user is told within 72 hours of confirmation: notices must be out before this."""
    require_aware(confirmed_at, "confirmed_at")
    return confirmed_at + INCIDENT_NOTICE_WINDOW


def missing_notice_parts(what_happened: str, actions_taken: str, user_advice: str, remedy: str | None) -> list[str]:
    """PR-7 / R-10 (revised): the parts every notice must have; the remedy too ("none" must be said, not left
    out)."""
    parts = {"what_happened": what_happened, "actions_taken": actions_taken, "user_advice": user_advice,
             "remedy": remedy or ""}
    return [name for name, text in parts.items() if not text.strip()]


def notice_refusals(what_happened: str, actions_taken: str, user_advice: str, remedy: str | None) -> list[str]:
    """The reasons an incident notice is refused (IncidentNoticeRefused), one per missing part."""
    none = ': say "none" when no remedy is offered'
    return [f"notice.{part}: required (PR-7, R-10{none if part == 'remedy' else ''})"
            for part in missing_notice_parts(what_happened, actions_taken, user_advice, remedy)]


# ---- PR-2: what deletion removes, anonymizes and retains ----------------------------------------------------

class PersonalField(StrEnum):
    NAME = "name"
    PHONE = "phone"
    ID_NUMBER = "id_number"
    EMAIL = "email"
    ADDRESS = "address"


CONTACT_FIELDS = (PersonalField.PHONE, PersonalField.EMAIL, PersonalField.ADDRESS)


class Disposition(StrEnum):
    DELETE = "delete"  # the value is gone
    ANONYMIZE = "anonymize"  # the record stays (ledger and conduct records point at it) without the person
    RETAIN = "retain"  # a hold still needs it: kept, and erased when the last such hold ends


class HoldReason(StrEnum):
    OPEN_DISPUTE = "open_dispute"  # a statement or fee dispute must reach and identify the party
    UNSETTLED_SETTLEMENT = "unsettled_settlement"  # a piece not yet paid: the payee's identity
    LEGAL_RETENTION = "legal_retention"  # a period the law sets (e.g. accounting records), with an end


# Which fields each kind of need keeps (PR-2: "unless the law requires keeping it, e.g. records an open dispute
# or settlement needs"). Everything else goes at once.
HOLD_NEEDS: Mapping[HoldReason, tuple[PersonalField, ...]] = {
    HoldReason.OPEN_DISPUTE: (PersonalField.PHONE, PersonalField.ID_NUMBER),  # reach and identify the party
    HoldReason.UNSETTLED_SETTLEMENT: (PersonalField.NAME, PersonalField.ID_NUMBER),
    HoldReason.LEGAL_RETENTION: (PersonalField.NAME, PersonalField.ID_NUMBER),
}

# With no hold: a name is anonymized (records of conduct and money keep a subject, never the person); identity
# numbers and contact details are deleted.
DEFAULT_DISPOSITION: Mapping[PersonalField, Disposition] = {
    PersonalField.NAME: Disposition.ANONYMIZE,
    PersonalField.PHONE: Disposition.DELETE,
    PersonalField.ID_NUMBER: Disposition.DELETE,
    PersonalField.EMAIL: Disposition.DELETE,
    PersonalField.ADDRESS: Disposition.DELETE,
}


@dataclass(frozen=True)
class Hold:
    hold_id: str
    reason: HoldReason


@dataclass(frozen=True)
class FieldPlan:
    field: PersonalField
    disposition: Disposition
    held_by: tuple[str, ...] = ()  # hold ids, when retained


def erasure_plan(fields: Iterable[PersonalField], holds: Sequence[Hold]) -> list[FieldPlan]:
    """PR-2: for each field on file, delete or anonymize it, unless an active hold still needs it."""
    plan: list[FieldPlan] = []
    for field in sorted(set(fields)):
        held_by = tuple(sorted(h.hold_id for h in holds if field in HOLD_NEEDS[h.reason]))
        disposition = Disposition.RETAIN if held_by else DEFAULT_DISPOSITION[field]
        plan.append(FieldPlan(field, disposition, held_by))
    return plan
