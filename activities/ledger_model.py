"""The ledger's vocabulary (activities/ledger.py): accounts and their names, transfers and their ids, the refusals
(LedgerError and its kinds), and the plain values its operations return."""

from __future__ import annotations

import dataclasses
import re
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from ports.ledger import ClosureOutcome

LEDGER_NAMESPACE = uuid.UUID("5d0c6f4e-8a3b-5b7e-9c1d-2f4a6b8c0e13")
WORLD_DEPOSITS = "world:deposits"
PLATFORM_REVENUE = "platform:revenue"
# the platform's own accounts pay its obligations (provider fees, damages) when due, whatever they hold; the
# `world:*` accounts stand for money outside the system. Every other account is kept from going negative.
OWN_ACCOUNT_PREFIXES = ("world:", "platform:")


def may_go_negative(account: str) -> bool:
    return account.startswith(OWN_ACCOUNT_PREFIXES)


Status = Literal["posted", "pending", "posted_pending", "voided_pending"]
TRANSFER_COLUMNS = (
    "id, business_key, debit_account, credit_account, amount_fen, kind, memo, created_at, pending_id, corrects_id,"
    " status"
)
POSTED = "('posted', 'posted_pending')"


def transfer_id(business_key: str) -> str:
    """The transfer id of a business event: the same key always gives the same id, on every worker."""
    return str(uuid.uuid5(LEDGER_NAMESPACE, business_key))


class LedgerError(Exception):
    """A request the ledger refuses; retrying it unchanged gives the same answer."""


class InsufficientFunds(LedgerError):
    def __init__(self, account: str, available_fen: int, needed_fen: int) -> None:
        super().__init__(f"{account} has {available_fen} fen available, {needed_fen} fen needed")
        self.account, self.available_fen, self.needed_fen = account, available_fen, needed_fen


class PendingAlreadyResolved(LedgerError):
    def __init__(self, pending_key: str, resolved_by_key: str) -> None:
        super().__init__(f"pending transfer {pending_key!r} was already resolved by {resolved_by_key!r}")
        self.pending_key, self.resolved_by_key = pending_key, resolved_by_key


class UnknownTransfer(LedgerError):
    pass


class UnknownTask(LedgerError):
    pass


class TaskClosed(LedgerError):
    pass


class BudgetExceeded(LedgerError):
    pass


class ConservationBroken(LedgerError):
    pass


def _fen(value: Any, name: str, *, positive: bool) -> int:
    if type(value) is not int:  # bool is an int subclass, floats are never money
        raise ValueError(f"{name} must be an integer amount of fen, got {value!r}")
    if value < 0 or (positive and value == 0):
        raise ValueError(f"{name} must be {'> 0' if positive else '>= 0'} fen, got {value}")
    return value


def _account_name(name: str) -> str:
    if not re.fullmatch(r"[a-z_]+(:[^:\s]+)+", name):
        raise ValueError(f"account name {name!r} is not of the form kind:part[:part...]")
    return name


def _aware(instant: datetime, name: str) -> datetime:
    if instant.tzinfo is None or instant.utcoffset() is None:
        raise ValueError(f"{name} must be timezone-aware, got {instant!r}")
    return instant


def _utc_now() -> str:
    return datetime.now(UTC).isoformat()


def _escrow(task_id: str) -> str:
    return f"task:{task_id}:escrow"


def _client_available(client_id: str) -> str:
    return f"client:{client_id}:available"


@dataclass(frozen=True)
class Transfer:
    id: str
    business_key: str
    debit_account: str
    credit_account: str
    amount_fen: int
    kind: str
    memo: str
    created_at: str
    pending_id: str | None
    corrects_id: str | None
    status: Status
    duplicate: bool = False  # this call found the transfer already posted and moved nothing
    mismatch: bool = False  # ... and the earlier posting differs from what this call asked for

    def row(self) -> tuple[Any, ...]:
        """The values of TRANSFER_COLUMNS (not dataclasses.astuple: it deep-copies, a tenth of a posting's time)."""
        return (self.id, self.business_key, self.debit_account, self.credit_account, self.amount_fen, self.kind,
                self.memo, self.created_at, self.pending_id, self.corrects_id, self.status)

    def replayed(self, asked: Transfer) -> Transfer:
        differs = (self.debit_account, self.credit_account, self.amount_fen, self.kind, self.pending_id) != (
            asked.debit_account, asked.credit_account, asked.amount_fen, asked.kind, asked.pending_id)
        return dataclasses.replace(self, duplicate=True, mismatch=differs)


@dataclass(frozen=True)
class AccountBalance:
    name: str
    may_go_negative: bool
    debits_posted: int
    credits_posted: int
    debits_pending: int
    credits_pending: int

    @property
    def balance_fen(self) -> int:
        return self.credits_posted - self.debits_posted

    @property
    def available_fen(self) -> int:
        return self.balance_fen - self.debits_pending


@dataclass(frozen=True)
class Accrual:
    event_id: str
    granted_count: int
    granted_fen: int
    released: bool  # the batch was given back (voided): its grant no longer counts
    duplicate: bool
    spent_fen: int  # the task's counter after this item (current, for a duplicate)
    remaining_fen: int
    exhausted_at: str | None


@dataclass(frozen=True)
class Release:
    event_id: str
    released_fen: int
    accrued: bool  # False: the event had not been accrued; it is now recorded as void and never counts


@dataclass(frozen=True)
class Closure:
    seq: int  # the task's own numbering of its closures, from 1, in the order they were settled
    content_id: str
    outcome: ClosureOutcome
    fee_fen: int
    platform_fee_fen: int
    closed_at: str
