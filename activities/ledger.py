"""The money path: a double-entry ledger in a real database (SPEC AM-3, AM-9..13, R-3, R-4; DESIGN "The money path").

Guarantees, each held by the database and not only by this code:
- Every transfer is an immutable row (triggers refuse UPDATE and DELETE) whose id is a UUID5 of its business key:
  posting a key again returns the first transfer and moves nothing, whatever amount is asked the second time.
- An account that is not flagged `may_go_negative` (only `world:*` and `platform:*` accounts are) never has
  credits_posted - debits_posted - debits_pending < 0: a CHECK constraint refuses the write.
- A pending transfer (a hold) is resolved at most once: resolution rows carry a UNIQUE `pending_id`.
- Conservation: every transfer debits one account and credits another by the same amount, in one transaction, so
  the sum over accounts of (credits_posted - debits_posted) is 0 at every instant.
- A task's budget counter never passes the budget, and its platform fee never passes the fee frozen (CHECKs).
Compound operations (settle, refund) record their result in `operations` under their business key, in the same
transaction as their transfers, so a repeat returns the first result.

Locks are always taken in one order (operation key, task budget row, accounts sorted by name) so that concurrent
PostgreSQL transactions queue instead of deadlocking; on SQLite, `BEGIN IMMEDIATE` serializes writers.
"""

from __future__ import annotations

import dataclasses
import json
import re
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.db import Database, IntegrityError, Tx, default_dsn
from activities.ledger_holds import HOLDS_SCHEMA, HeldContent
from ports import ledger as port
from ports.ledger import (
    INSUFFICIENT_FUNDS,
    AccrualGrant,
    AccrualItem,
    AccrueRequest,
    AccrueResult,
    ClosureOutcome,
    ContentClosure,
    DepositRequest,
    DepositResult,
    FreezeRequest,
    FreezeResult,
    HoldContentRequest,
    HoldContentResult,
    RefundPartRequest,
    RefundPartResult,
    RefundRequest,
    RefundResult,
    ReleasedEvent,
    ReleaseRequest,
    ReleaseResult,
    SettleRequest,
    SettleResult,
    TaskClosuresRequest,
    TaskClosuresResult,
    TaskMoney,
    TaskMoneyRequest,
)
from ports.logs import BoundLog
from workflows.rules.fees import platform_fee_of_piece

LEDGER_NAMESPACE = uuid.UUID("5d0c6f4e-8a3b-5b7e-9c1d-2f4a6b8c0e13")
WORLD_DEPOSITS = "world:deposits"
PLATFORM_REVENUE = "platform:revenue"
# the platform's own accounts pay its obligations (provider fees, damages) when due, whatever they hold; the
# `world:*` accounts stand for money outside the system. Every other account is kept from going negative.
OWN_ACCOUNT_PREFIXES = ("world:", "platform:")


def may_go_negative(account: str) -> bool:
    return account.startswith(OWN_ACCOUNT_PREFIXES)

Status = Literal["posted", "pending", "posted_pending", "voided_pending"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS accounts (
    name TEXT PRIMARY KEY,
    may_go_negative INTEGER NOT NULL DEFAULT 0 CHECK (may_go_negative IN (0, 1)),
    debits_posted BIGINT NOT NULL DEFAULT 0 CHECK (debits_posted >= 0),
    credits_posted BIGINT NOT NULL DEFAULT 0 CHECK (credits_posted >= 0),
    debits_pending BIGINT NOT NULL DEFAULT 0 CHECK (debits_pending >= 0),
    credits_pending BIGINT NOT NULL DEFAULT 0 CHECK (credits_pending >= 0),
    created_at TEXT NOT NULL,
    CONSTRAINT available_not_negative
        CHECK (may_go_negative = 1 OR credits_posted - debits_posted - debits_pending >= 0)
);
CREATE TABLE IF NOT EXISTS transfers (
    id TEXT PRIMARY KEY,
    business_key TEXT NOT NULL UNIQUE,
    debit_account TEXT NOT NULL REFERENCES accounts (name),
    credit_account TEXT NOT NULL REFERENCES accounts (name),
    amount_fen BIGINT NOT NULL CHECK (amount_fen > 0),
    kind TEXT NOT NULL,
    memo TEXT NOT NULL DEFAULT '',
    created_at TEXT NOT NULL,
    pending_id TEXT REFERENCES transfers (id),  -- a hold is resolved once: transfers_resolve_once
    corrects_id TEXT REFERENCES transfers (id),
    status TEXT NOT NULL CHECK (status IN ('posted', 'pending', 'posted_pending', 'voided_pending')),
    CHECK (debit_account <> credit_account),
    CHECK ((pending_id IS NULL) = (status IN ('posted', 'pending')))
);
CREATE INDEX IF NOT EXISTS transfers_by_debit ON transfers (debit_account);
CREATE INDEX IF NOT EXISTS transfers_by_credit ON transfers (credit_account);
-- Partial: most transfers resolve no hold and correct nothing, and an index entry for each of their NULLs cost
-- every posting two more b-tree pages to commit (docs/bench.md "Limits found" 8). Databases made before keep
-- their inline UNIQUE (pending_id) and full index as well; the guarantees are the same.
CREATE UNIQUE INDEX IF NOT EXISTS transfers_resolve_once ON transfers (pending_id) WHERE pending_id IS NOT NULL;
CREATE INDEX IF NOT EXISTS transfers_by_correction ON transfers (corrects_id) WHERE corrects_id IS NOT NULL;
CREATE TABLE IF NOT EXISTS task_budgets (
    task_id TEXT PRIMARY KEY,
    client_id TEXT NOT NULL,
    budget_fen BIGINT NOT NULL CHECK (budget_fen > 0),
    spent_fen BIGINT NOT NULL DEFAULT 0 CHECK (spent_fen >= 0 AND spent_fen <= budget_fen),
    settled_fen BIGINT NOT NULL DEFAULT 0 CHECK (settled_fen >= 0 AND settled_fen <= budget_fen),
    platform_fee_cap_fen BIGINT NOT NULL CHECK (platform_fee_cap_fen >= 0),
    platform_fee_charged_fen BIGINT NOT NULL DEFAULT 0
        CHECK (platform_fee_charged_fen >= 0 AND platform_fee_charged_fen <= platform_fee_cap_fen),
    exhausted_at TEXT,
    refunded_at TEXT
);
CREATE TABLE IF NOT EXISTS budget_accruals (
    task_id TEXT NOT NULL REFERENCES task_budgets (task_id),
    event_id TEXT NOT NULL,
    content_id TEXT NOT NULL,
    requested_count BIGINT NOT NULL CHECK (requested_count >= 0),
    price_fen BIGINT NOT NULL CHECK (price_fen >= 0),
    granted_count BIGINT NOT NULL CHECK (granted_count >= 0 AND granted_count <= requested_count),
    granted_fen BIGINT NOT NULL CHECK (granted_fen = granted_count * price_fen),
    occurred_at TEXT,
    released INTEGER NOT NULL DEFAULT 0 CHECK (released IN (0, 1)),
    PRIMARY KEY (task_id, event_id)
);
-- How each piece of content of a task closed, numbered per task in the order of settlement: the task reads it
-- from its last number (`task_closures`) instead of being sent a message by every piece (docs/bench.md 2b).
CREATE TABLE IF NOT EXISTS content_closures (
    task_id TEXT NOT NULL REFERENCES task_budgets (task_id),
    seq BIGINT NOT NULL CHECK (seq > 0),
    content_id TEXT NOT NULL,
    outcome TEXT NOT NULL CHECK (outcome IN ('settled', 'closed')),
    fee_fen BIGINT NOT NULL CHECK (fee_fen >= 0),
    platform_fee_fen BIGINT NOT NULL CHECK (platform_fee_fen >= 0),
    closed_at TEXT NOT NULL,
    PRIMARY KEY (task_id, seq),
    UNIQUE (task_id, content_id)
);
CREATE TABLE IF NOT EXISTS operations (
    key TEXT PRIMARY KEY,
    result_json TEXT,
    created_at TEXT NOT NULL
);
"""
_SQLITE_IMMUTABLE = """
CREATE TRIGGER IF NOT EXISTS transfers_refuse_update BEFORE UPDATE ON transfers
BEGIN SELECT RAISE(ABORT, 'ledger transfers are immutable: post a correction'); END;
CREATE TRIGGER IF NOT EXISTS transfers_refuse_delete BEFORE DELETE ON transfers
BEGIN SELECT RAISE(ABORT, 'ledger transfers are immutable: post a correction'); END;
"""
_POSTGRESQL_IMMUTABLE = """
CREATE OR REPLACE FUNCTION ledger_refuse_transfer_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'ledger transfers are immutable: post a correction (% refused)', TG_OP
        USING ERRCODE = 'integrity_constraint_violation';
END $$;
DO $$ BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_trigger WHERE tgname = 'transfers_immutable'
                   AND tgrelid = 'transfers'::regclass) THEN
        CREATE TRIGGER transfers_immutable BEFORE UPDATE OR DELETE ON transfers
            FOR EACH ROW EXECUTE FUNCTION ledger_refuse_transfer_change();
    END IF;
END $$;
"""
_TRANSFER_COLUMNS = (
    "id, business_key, debit_account, credit_account, amount_fen, kind, memo, created_at, pending_id, corrects_id,"
    " status"
)
_POSTED = "('posted', 'posted_pending')"


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
        """The values of _TRANSFER_COLUMNS (not dataclasses.astuple: it deep-copies, a tenth of a posting's time)."""
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



class Ledger(HeldContent):
    def __init__(self, db: Database) -> None:
        self.db = db
        db.ensure_schema(_SCHEMA + HOLDS_SCHEMA + _SQLITE_IMMUTABLE, _SCHEMA + HOLDS_SCHEMA + _POSTGRESQL_IMMUTABLE)
        with db.transaction() as tx:  # R-14 for database files made before it: idempotent, touches 0 rows after
            tx.execute("UPDATE accounts SET may_go_negative = 1 WHERE may_go_negative = 0"
                       " AND substr(name, 1, ?) = ?", (len("platform:"), "platform:"))

    @classmethod
    def open(cls, dsn: str | None = None) -> Ledger:
        return cls(Database(dsn or default_dsn()))

    # ---- primitives -------------------------------------------------------------------------------------------

    def transfer(self, business_key: str, debit: str, credit: str, amount_fen: int, kind: str,
                 memo: str = "") -> Transfer:
        with self.db.transaction() as tx:
            return self._post(tx, self._new(business_key, debit, credit, amount_fen, kind, memo, "posted"))

    def hold(self, business_key: str, debit: str, credit: str, amount_fen: int, memo: str = "") -> Transfer:
        """Reserves money: the debit account's available balance drops now, nothing is posted yet."""
        with self.db.transaction() as tx:
            return self._post(tx, self._new(business_key, debit, credit, amount_fen, "hold", memo, "pending"))

    def post_pending(self, business_key: str, pending_business_key: str, amount_fen: int | None = None,
                     memo: str = "") -> Transfer:
        """Posts a hold, whole or in part (`amount_fen` below the hold); the rest of the hold is released."""
        with self.db.transaction() as tx:
            pending = self._pending(tx, pending_business_key)
            amount = pending.amount_fen if amount_fen is None else _fen(amount_fen, "amount_fen", positive=True)
            if amount > pending.amount_fen:
                raise ValueError(f"cannot post {amount} fen of a {pending.amount_fen} fen hold")
            asked = self._new(business_key, pending.debit_account, pending.credit_account, amount, "post", memo,
                              "posted_pending", pending_id=pending.id)
            return self._post(tx, asked, resolves=pending)

    def void_pending(self, business_key: str, pending_business_key: str, memo: str = "") -> Transfer:
        with self.db.transaction() as tx:
            pending = self._pending(tx, pending_business_key)
            asked = self._new(business_key, pending.debit_account, pending.credit_account, pending.amount_fen,
                              "void", memo, "voided_pending", pending_id=pending.id)
            return self._post(tx, asked, resolves=pending)

    def correct(self, business_key: str, original_business_key: str, amount_fen: int | None = None,
                memo: str = "") -> Transfer:
        """Reverses (part of) a posted transfer with a new, opposite transfer; never more than was posted."""
        with self.db.transaction() as tx:
            original = self._find(tx, transfer_id(original_business_key))
            if original is None or original.status not in ("posted", "posted_pending"):
                raise UnknownTransfer(f"no posted transfer {original_business_key!r} to correct")
            self._lock_accounts(tx, [original.debit_account, original.credit_account])
            row = tx.fetchone("SELECT CAST(COALESCE(SUM(amount_fen), 0) AS BIGINT) FROM transfers"
                              " WHERE corrects_id = ? AND id <> ?", (original.id, transfer_id(business_key)))
            left = original.amount_fen - int(row[0] if row else 0)
            amount = left if amount_fen is None else _fen(amount_fen, "amount_fen", positive=True)
            asked = self._new(business_key, original.credit_account, original.debit_account, amount, "correction",
                              memo, "posted", corrects_id=original.id)
            existing = self._find(tx, asked.id)
            if existing is not None:
                return existing.replayed(asked)
            if amount > left:
                raise ValueError(f"{original_business_key!r} has {left} fen left to correct, {amount} asked")
            return self._post(tx, asked)

    # ---- money operations of a task ---------------------------------------------------------------------------

    def deposit(self, deposit_id: str, client_id: str, amount_fen: int) -> Transfer:
        return self.transfer(f"deposit:{deposit_id}", WORLD_DEPOSITS, _client_available(client_id), amount_fen,
                             "deposit")

    def freeze(self, task_id: str, client_id: str, budget_fen: int, platform_fee_fen: int) -> dict[str, Any]:
        """AM-3: moves budget + platform fee from the client's available balance into the task's escrow and opens
        the task's budget counter. Raises InsufficientFunds (and writes nothing) if the client cannot cover it."""
        budget = _fen(budget_fen, "budget_fen", positive=True)
        fee = _fen(platform_fee_fen, "platform_fee_fen", positive=False)
        with self.db.transaction() as tx:
            moved = self._post(tx, self._new(f"freeze:{task_id}", _client_available(client_id), _escrow(task_id),
                                             budget + fee, "freeze", f"budget {budget} + platform fee {fee}",
                                             "posted"))
            if not moved.duplicate:
                tx.execute("INSERT INTO task_budgets (task_id, client_id, budget_fen, platform_fee_cap_fen)"
                           " VALUES (?, ?, ?, ?)", (task_id, client_id, budget, fee))
            first = self._budget_row(tx, task_id)
        return {"task_id": task_id, "client_id": first["client_id"], "transfer_id": moved.id,
                "frozen_fen": moved.amount_fen, "budget_fen": first["budget_fen"],
                "platform_fee_cap_fen": first["platform_fee_cap_fen"], "duplicate": moved.duplicate,
                "mismatch": moved.mismatch}

    def settle(self, task_id: str, content_id: str, payee_account: str, fee_fen: int,
               platform_fee_fen: int, outcome: ClosureOutcome = "settled") -> dict[str, Any]:
        """AM-12: pays the fee to the payee and the platform fee (capped at what was frozen for it) to revenue,
        out of escrow, in one transaction, and records the piece's closure (`outcome`: settled, or closed for a
        disposed piece) as the task's next in `content_closures`. A repeat returns the first settlement."""
        if outcome not in ("settled", "closed"):
            raise ValueError(f"outcome must be 'settled' or 'closed', got {outcome!r}")
        fee = _fen(fee_fen, "fee_fen", positive=False)
        platform_fee_asked = _fen(platform_fee_fen, "platform_fee_fen", positive=False)
        if not re.fullmatch(r"(creator|agency):[^:\s]+:payable", payee_account):
            raise ValueError(f"payee_account must be creator:{{id}}:payable or agency:{{id}}:payable,"
                             f" got {payee_account!r}")
        key = f"settle:{task_id}:{content_id}"

        def apply(tx: Tx) -> dict[str, Any]:
            budget = self._open_budget(tx, task_id)
            if budget["settled_fen"] + fee > budget["budget_fen"]:
                raise BudgetExceeded(f"task {task_id}: settling {fee} fen on top of {budget['settled_fen']} fen"
                                     f" passes the budget of {budget['budget_fen']} fen")
            # the platform fee is the piece's part of 10% of the task's cumulative fees (the request's own
            # 10% is kept as `platform_fee_requested_fen`); this row is locked, so concurrent settlements of the
            # task take their parts one after another and the total is half_up(10% x the task's fees).
            platform_fee = min(platform_fee_of_piece(budget["settled_fen"], fee, budget["platform_fee_charged_fen"]),
                               budget["platform_fee_cap_fen"] - budget["platform_fee_charged_fen"])
            escrow = _escrow(task_id)
            self._lock_accounts(tx, [escrow, payee_account, PLATFORM_REVENUE])
            self._require_available(tx, escrow, fee + platform_fee)
            if fee:
                self._post(tx, self._new(f"{key}:fee", escrow, payee_account, fee, "settle_fee", content_id, "posted"))
            if platform_fee:
                self._post(tx, self._new(f"{key}:platform", escrow, PLATFORM_REVENUE, platform_fee,
                                         "settle_platform_fee", content_id, "posted"))
            tx.execute("UPDATE task_budgets SET settled_fen = settled_fen + ?,"
                       " platform_fee_charged_fen = platform_fee_charged_fen + ? WHERE task_id = ?",
                       (fee, platform_fee, task_id))
            # The task's budget row is locked (PostgreSQL) or this is the only writer (SQLite): settlements of
            # one task take their numbers one at a time, in commit order, so a reader never skips one.
            row = tx.fetchone("SELECT CAST(COALESCE(MAX(seq), 0) AS BIGINT) FROM content_closures WHERE task_id = ?",
                              (task_id,))
            seq = int(row[0]) + 1 if row else 1
            tx.execute("INSERT INTO content_closures (task_id, seq, content_id, outcome, fee_fen, platform_fee_fen,"
                       " closed_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                       (task_id, seq, content_id, outcome, fee, platform_fee, _utc_now()))
            return {"task_id": task_id, "content_id": content_id, "payee_account": payee_account, "fee_fen": fee,
                    "platform_fee_fen": platform_fee, "platform_fee_requested_fen": platform_fee_asked,
                    "outcome": outcome, "closure_seq": seq}

        return self._once(key, apply)

    def refund(self, task_id: str, client_id: str) -> dict[str, Any]:
        """AM-13: returns everything left in the task's escrow to the client and closes the task's money.
        A repeat, however late, returns the first refund."""

        def apply(tx: Tx) -> dict[str, Any]:
            budget = self._open_budget(tx, task_id)
            if budget["client_id"] != client_id:
                raise LedgerError(f"task {task_id} was frozen for client {budget['client_id']}, not {client_id}")
            escrow, client = _escrow(task_id), _client_available(client_id)
            self._lock_accounts(tx, [escrow, client])
            left = self._account(tx, escrow).available_fen
            if left:
                self._post(tx, self._new(f"refund:{task_id}", escrow, client, left, "refund", "", "posted"))
            tx.execute("UPDATE task_budgets SET refunded_at = ? WHERE task_id = ?", (_utc_now(), task_id))
            return {"task_id": task_id, "client_id": client_id, "refunded_fen": left}

        return self._once(f"refund:{task_id}", apply)

    def task_closures(self, task_id: str, after_seq: int = 0, limit: int = 1000) -> list[Closure]:
        """The pieces of `task_id` that closed after number `after_seq`, in order, at most `limit` of them."""
        if limit < 1:
            raise ValueError(f"limit must be at least 1, got {limit}")
        with self.db.transaction() as tx:
            self._budget_row(tx, task_id)
            rows = tx.fetchall("SELECT seq, content_id, outcome, fee_fen, platform_fee_fen, closed_at"
                               " FROM content_closures WHERE task_id = ? AND seq > ? ORDER BY seq LIMIT ?",
                               (task_id, after_seq, limit))
        return [Closure(int(r[0]), r[1], r[2], int(r[3]), int(r[4]), r[5]) for r in rows]

    def task_money(self, task_id: str) -> dict[str, Any]:
        """Where a task's money is (R-4): frozen = paid to creators + platform fees + refunded + escrow balance."""
        escrow = _escrow(task_id)
        with self.db.transaction() as tx:
            budget = self._budget_row(tx, task_id)
            flows = tx.fetchall(f"SELECT debit_account, credit_account, CAST(SUM(amount_fen) AS BIGINT)"
                                f" FROM transfers WHERE (debit_account = ? OR credit_account = ?)"
                                f" AND status IN {_POSTED} GROUP BY debit_account, credit_account",
                                (escrow, escrow))
            balance = self._account(tx, escrow).balance_fen
        money = {"frozen_fen": 0, "paid_to_creators_fen": 0, "platform_fees_fen": 0, "refunded_fen": 0}
        for debit, credit, total in flows:
            outgoing = debit == escrow
            other = credit if outgoing else debit
            if other.startswith("client:"):
                money["refunded_fen" if outgoing else "frozen_fen"] += int(total)
            else:
                bucket = "platform_fees_fen" if other == PLATFORM_REVENUE else "paid_to_creators_fen"
                money[bucket] += int(total) if outgoing else -int(total)
        return {"task_id": task_id, "budget_fen": budget["budget_fen"], "spent_fen": budget["spent_fen"],
                "remaining_fen": budget["budget_fen"] - budget["spent_fen"], "exhausted_at": budget["exhausted_at"],
                "refunded_at": budget["refunded_at"], **money, "escrow_balance_fen": balance}

    # ---- the budget counter (AM-9, AM-10, R-3) ----------------------------------------------------------------

    def accrue(self, task_id: str, content_id: str, event_id: str, count: int, price_fen: int,
               occurred_at: datetime) -> Accrual:
        item = AccrualItem(event_id=event_id, count=count, price_fen=price_fen, occurred_at=occurred_at)
        return self.accrue_many(task_id, content_id, [item])[0]

    def accrue_many(self, task_id: str, content_id: str, items: Sequence[AccrualItem]) -> list[Accrual]:
        """Grants each batch the whole conversions the remaining budget pays for, in the order given, in one
        transaction. The first batch that cannot be paid in full, or that spends the last fen, marks the budget
        exhausted (AM-10: the task period ends then) at the latest occurred_at of every batch of the task granted
        so far and not given back, this one included (R-3): no granted batch lies after the end, so the end
        releases none. Once exhausted the instant stays. A repeated event_id gets its first grant."""
        for item in items:
            _fen(item.count, "count", positive=False)
            _fen(item.price_fen, "price_fen", positive=True)
            _aware(item.occurred_at, "occurred_at")
        results: list[Accrual] = []
        with self.db.transaction() as tx:
            budget = self._open_budget(tx, task_id)
            spent, exhausted_at = budget["spent_fen"], budget["exhausted_at"]
            for item in items:
                first = tx.fetchone("SELECT granted_count, granted_fen, released FROM budget_accruals"
                                    " WHERE task_id = ? AND event_id = ?", (task_id, item.event_id))
                duplicate = first is not None
                if first is None:
                    granted = min(item.count, (budget["budget_fen"] - spent) // item.price_fen)
                    spent += granted * item.price_fen
                    tx.execute("INSERT INTO budget_accruals (task_id, event_id, content_id, requested_count,"
                               " price_fen, granted_count, granted_fen, occurred_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                               (task_id, item.event_id, content_id, item.count, item.price_fen, granted,
                                granted * item.price_fen, item.occurred_at.isoformat()))
                    if exhausted_at is None and (granted < item.count or spent == budget["budget_fen"]):
                        exhausted_at = self._last_granted_at(tx, task_id) or item.occurred_at.isoformat()
                    first = (granted, granted * item.price_fen, 0)
                results.append(Accrual(item.event_id, int(first[0]), int(first[1]), bool(first[2]),
                                       duplicate=duplicate,
                                       spent_fen=spent, remaining_fen=budget["budget_fen"] - spent,
                                       exhausted_at=exhausted_at))
            tx.execute("UPDATE task_budgets SET spent_fen = ?, exhausted_at = ? WHERE task_id = ?",
                       (spent, exhausted_at, task_id))
        return results

    @staticmethod
    def _last_granted_at(tx: Tx, task_id: str) -> str | None:
        """R-3: the instant of the last conversion the budget paid for (offsets differ: compared as instants)."""
        rows = tx.fetchall("SELECT occurred_at FROM budget_accruals WHERE task_id = ? AND granted_count > 0"
                           " AND released = 0 AND occurred_at IS NOT NULL", (task_id,))
        return max((r[0] for r in rows), key=datetime.fromisoformat, default=None)

    def release(self, task_id: str, event_id: str) -> int:
        return self.release_many(task_id, [event_id])[0].released_fen

    def release_many(self, task_id: str, event_ids: Sequence[str]) -> list[Release]:
        """R-1: gives voided batches back to the budget, once each. An event not accrued yet is recorded as void,
        so that if it arrives later it is granted nothing. The exhaustion instant stays: the period has ended."""
        results: list[Release] = []
        with self.db.transaction() as tx:
            self._open_budget(tx, task_id)
            for event_id in event_ids:
                row = tx.fetchone("SELECT granted_fen, released FROM budget_accruals WHERE task_id = ? AND"
                                  " event_id = ?", (task_id, event_id))
                if row is None:
                    tx.execute("INSERT INTO budget_accruals (task_id, event_id, content_id, requested_count,"
                               " price_fen, granted_count, granted_fen, released) VALUES (?, ?, '', 0, 0, 0, 0, 1)",
                               (task_id, event_id))
                    results.append(Release(event_id, 0, accrued=False))
                    continue
                given_back = 0 if row[1] else int(row[0])
                tx.execute("UPDATE budget_accruals SET released = 1 WHERE task_id = ? AND event_id = ?",
                           (task_id, event_id))
                tx.execute("UPDATE task_budgets SET spent_fen = spent_fen - ? WHERE task_id = ?",
                           (given_back, task_id))
                results.append(Release(event_id, given_back, accrued=True))
        return results

    # ---- reading, for operators -------------------------------------------------------------------------------

    def balance(self, account: str) -> AccountBalance:
        with self.db.transaction() as tx:
            return self._account(tx, account)

    def accounts(self, prefix: str = "") -> list[AccountBalance]:
        with self.db.transaction() as tx:
            rows = tx.fetchall("SELECT name, may_go_negative, debits_posted, credits_posted, debits_pending,"
                               " credits_pending FROM accounts WHERE substr(name, 1, ?) = ? ORDER BY name",
                               (len(prefix), prefix))
        return [AccountBalance(r[0], bool(r[1]), *(int(v) for v in r[2:])) for r in rows]

    def transfers(self, account_prefix: str | None = None, business_key_prefix: str | None = None,
                  limit: int = 1000) -> list[Transfer]:
        where, params = "1 = 1", []
        if account_prefix is not None:
            where += (" AND (substr(debit_account, 1, ?) = ? OR substr(credit_account, 1, ?) = ?)")
            params += [len(account_prefix), account_prefix, len(account_prefix), account_prefix]
        if business_key_prefix is not None:
            where += " AND substr(business_key, 1, ?) = ?"
            params += [len(business_key_prefix), business_key_prefix]
        with self.db.transaction() as tx:
            rows = tx.fetchall(f"SELECT {_TRANSFER_COLUMNS} FROM transfers WHERE {where}"
                               f" ORDER BY created_at, id LIMIT ?", (*params, limit))
        return [self._transfer(row) for row in rows]

    def conservation_total(self) -> int:
        with self.db.transaction() as tx:
            row = tx.fetchone("SELECT CAST(COALESCE(SUM(credits_posted - debits_posted), 0) AS BIGINT)"
                              " FROM accounts")
        return int(row[0]) if row else 0

    def check_conservation(self) -> None:
        """Raises ConservationBroken unless the accounts sum to 0 and every account's four totals equal what its
        transfers say (the journal and the balances agree)."""
        with self.db.transaction() as tx:
            accounts = {r[0]: tuple(int(v) for v in r[1:]) for r in tx.fetchall(
                "SELECT name, debits_posted, credits_posted, debits_pending, credits_pending FROM accounts")}
            journal = {name: [0, 0, 0, 0] for name in accounts}
            for debit, credit, amount, status, resolved in tx.fetchall(
                    "SELECT t.debit_account, t.credit_account, t.amount_fen, t.status,"
                    " (SELECT COUNT(*) FROM transfers r WHERE r.pending_id = t.id) FROM transfers t"):
                if status in ("posted", "posted_pending"):
                    journal[debit][0] += int(amount)
                    journal[credit][1] += int(amount)
                elif status == "pending" and not resolved:
                    journal[debit][2] += int(amount)
                    journal[credit][3] += int(amount)
        total = sum(credits - debits for debits, credits, _, _ in accounts.values())
        disagreeing = sorted(name for name in accounts if tuple(journal[name]) != accounts[name])
        if total != 0 or disagreeing:
            raise ConservationBroken(f"sum of balances {total} fen; accounts disagreeing with the journal:"
                                     f" {disagreeing}")

    # ---- internals --------------------------------------------------------------------------------------------

    def _new(self, business_key: str, debit: str, credit: str, amount_fen: int, kind: str, memo: str,
             status: Status, pending_id: str | None = None, corrects_id: str | None = None) -> Transfer:
        if not business_key:
            raise ValueError("business_key must not be empty")
        _account_name(debit), _account_name(credit)
        if debit == credit:
            raise ValueError(f"a transfer needs two accounts, got {debit!r} twice")
        return Transfer(transfer_id(business_key), business_key, debit, credit,
                        _fen(amount_fen, "amount_fen", positive=True), kind, memo, _utc_now(), pending_id,
                        corrects_id, status)

    def _post(self, tx: Tx, asked: Transfer, resolves: Transfer | None = None) -> Transfer:
        if tx.dialect == "sqlite":
            return self._post_sole_writer(tx, asked, resolves)
        self._lock_accounts(tx, [asked.debit_account, asked.credit_account])
        existing = self._find(tx, asked.id)
        if existing is not None:
            return existing.replayed(asked)
        if resolves is not None:
            resolution = tx.fetchone("SELECT business_key FROM transfers WHERE pending_id = ?", (resolves.id,))
            if resolution is not None:
                raise PendingAlreadyResolved(resolves.business_key, resolution[0])
        if asked.status in ("posted", "pending"):
            self._require_available(tx, asked.debit_account, asked.amount_fen)
        inserted = tx.execute(
            f"INSERT INTO transfers ({_TRANSFER_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
            " ON CONFLICT DO NOTHING", asked.row())
        if not inserted:  # a concurrent transaction posted this key (or resolved this hold) first
            existing = self._find(tx, asked.id)
            if existing is None and resolves is not None:
                raise PendingAlreadyResolved(resolves.business_key, "a concurrent resolution")
            if existing is None:
                raise LedgerError(f"transfer {asked.business_key!r} collided without a row")
            return existing.replayed(asked)
        self._move_balances(tx, asked, resolves)
        return asked

    def _post_sole_writer(self, tx: Tx, asked: Transfer, resolves: Transfer | None) -> Transfer:
        """_post on SQLite in 4 statements instead of 9 (docs/bench.md, "Limits found" 8). `BEGIN IMMEDIATE` has
        made this transaction the only writer, so nothing changes between its statements: the transfer is inserted
        first and its UNIQUE id / business key / pending_id say whether the key (or the hold's resolution) exists
        already, and the accounts' CHECK `available_not_negative` refuses an overdraft (the transaction then rolls
        back whole, the insert with it) and is then explained as InsufficientFunds. The same guarantees as the
        PostgreSQL path, held by the same constraints."""
        self._lock_accounts(tx, [asked.debit_account, asked.credit_account])
        if not tx.execute(f"INSERT INTO transfers ({_TRANSFER_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
                          " ON CONFLICT DO NOTHING", asked.row()):
            existing = self._find(tx, asked.id)
            if existing is not None:
                return existing.replayed(asked)
            if resolves is not None:  # the hold's pending_id is taken: resolved under another key
                resolution = tx.fetchone("SELECT business_key FROM transfers WHERE pending_id = ?", (resolves.id,))
                raise PendingAlreadyResolved(resolves.business_key, resolution[0] if resolution else "another key")
            raise LedgerError(f"transfer {asked.business_key!r} collided without a row")
        try:
            self._move_balances(tx, asked, resolves)
        except IntegrityError as error:
            if "available_not_negative" in str(error):  # say why, with the balance (InsufficientFunds)
                self._require_available(tx, asked.debit_account, asked.amount_fen)
            raise
        return asked

    @staticmethod
    def _move_balances(tx: Tx, asked: Transfer, resolves: Transfer | None) -> None:
        """The two accounts' counters after posting `asked` (and releasing the hold it resolves): debit first, so
        that an overdraft is refused by the debit account's CHECK before the credit moves."""
        released = resolves.amount_fen if resolves is not None else 0
        posted = asked.amount_fen if asked.status in ("posted", "posted_pending") else 0
        pending = asked.amount_fen if asked.status == "pending" else 0
        tx.execute("UPDATE accounts SET debits_posted = debits_posted + ?, debits_pending = debits_pending + ?"
                   " WHERE name = ?", (posted, pending - released, asked.debit_account))
        tx.execute("UPDATE accounts SET credits_posted = credits_posted + ?, credits_pending = credits_pending + ?"
                   " WHERE name = ?", (posted, pending - released, asked.credit_account))

    def _lock_accounts(self, tx: Tx, names: Sequence[str]) -> None:
        """Creates the accounts that do not exist yet and, on PostgreSQL, locks them in name order. On SQLite one
        statement: `BEGIN IMMEDIATE` already serializes writers, there is nothing to lock."""
        if tx.dialect == "sqlite":
            ordered, now = sorted(set(names)), _utc_now()
            tx.execute("INSERT INTO accounts (name, may_go_negative, created_at) VALUES "
                       + ", ".join(["(?, ?, ?)"] * len(ordered)) + " ON CONFLICT DO NOTHING",
                       [v for name in ordered for v in (name, int(may_go_negative(name)), now)])
            return
        for name in sorted(set(names)):
            tx.execute("INSERT INTO accounts (name, may_go_negative, created_at) VALUES (?, ?, ?)"
                       " ON CONFLICT DO NOTHING", (name, int(may_go_negative(name)), _utc_now()))
            tx.fetchone("SELECT name FROM accounts WHERE name = ?", (name,), for_update=True)

    def _require_available(self, tx: Tx, account: str, needed_fen: int) -> None:
        state = self._account(tx, account)
        if not state.may_go_negative and state.available_fen < needed_fen:
            raise InsufficientFunds(account, state.available_fen, needed_fen)

    def _account(self, tx: Tx, name: str) -> AccountBalance:
        row = tx.fetchone("SELECT may_go_negative, debits_posted, credits_posted, debits_pending, credits_pending"
                          " FROM accounts WHERE name = ?", (name,))
        if row is None:
            return AccountBalance(name, may_go_negative(name), 0, 0, 0, 0)
        return AccountBalance(name, bool(row[0]), *(int(v) for v in row[1:]))

    def _find(self, tx: Tx, id_: str) -> Transfer | None:
        row = tx.fetchone(f"SELECT {_TRANSFER_COLUMNS} FROM transfers WHERE id = ?", (id_,))
        return None if row is None else self._transfer(row)

    @staticmethod
    def _transfer(row: tuple[Any, ...]) -> Transfer:
        return Transfer(row[0], row[1], row[2], row[3], int(row[4]), row[5], row[6], row[7], row[8], row[9], row[10])

    def _pending(self, tx: Tx, pending_business_key: str) -> Transfer:
        pending = self._find(tx, transfer_id(pending_business_key))
        if pending is None or pending.status != "pending":
            raise UnknownTransfer(f"no pending transfer {pending_business_key!r}")
        return pending

    def _budget_row(self, tx: Tx, task_id: str, *, for_update: bool = False) -> dict[str, Any]:
        row = tx.fetchone("SELECT client_id, budget_fen, spent_fen, settled_fen, platform_fee_cap_fen,"
                          " platform_fee_charged_fen, exhausted_at, refunded_at FROM task_budgets WHERE task_id = ?",
                          (task_id,), for_update=for_update)
        if row is None:
            raise UnknownTask(f"task {task_id} has no frozen budget")
        names = ("client_id", "budget_fen", "spent_fen", "settled_fen", "platform_fee_cap_fen",
                 "platform_fee_charged_fen", "exhausted_at", "refunded_at")
        return {name: int(v) if name.endswith("_fen") else v for name, v in zip(names, row)}

    def _open_budget(self, tx: Tx, task_id: str) -> dict[str, Any]:
        budget = self._budget_row(tx, task_id, for_update=True)
        if budget["refunded_at"] is not None:
            raise TaskClosed(f"task {task_id} was refunded at {budget['refunded_at']}; its money is closed")
        return budget

    def _once(self, key: str, apply: Callable[[Tx], dict[str, Any]]) -> dict[str, Any]:
        """Runs a compound operation once per key: the first caller claims the key, a concurrent caller waits for
        it (PostgreSQL blocks on the uncommitted key) and then reads the recorded result."""
        with self.db.transaction() as tx:
            claimed = tx.execute("INSERT INTO operations (key, created_at) VALUES (?, ?) ON CONFLICT DO NOTHING",
                                 (key, _utc_now()))
            if not claimed:
                row = tx.fetchone("SELECT result_json FROM operations WHERE key = ?", (key,))
                return {**json.loads(row[0] if row else "{}"), "duplicate": True}
            result = apply(tx)
            tx.execute("UPDATE operations SET result_json = ? WHERE key = ?", (json.dumps(result), key))
        return {**result, "duplicate": False}




@contextmanager
def _as_application_errors() -> Iterator[None]:
    """Refusals are final: retrying an activity that lacks funds or breaks a rule gives the same answer."""
    try:
        yield
    except InsufficientFunds as error:
        details = {"account": error.account, "available_fen": error.available_fen, "needed_fen": error.needed_fen}
        raise ApplicationError(str(error), details, type=INSUFFICIENT_FUNDS, non_retryable=True) from error
    except (LedgerError, ValueError) as error:
        raise ApplicationError(str(error), type=type(error).__name__, non_retryable=True) from error


# Money movements write one line each; the worker's log configuration adds the activity's workflow and business ids.
log = BoundLog(name="xingtu.ledger")


class LedgerActivities:
    def __init__(self, ledger: Ledger) -> None:
        self.ledger = ledger

    @activity.defn(name=port.FREEZE.name)
    def freeze(self, request: FreezeRequest) -> FreezeResult:
        with _as_application_errors():
            result = FreezeResult(**self.ledger.freeze(request.task_id, request.client_id, request.budget_fen,
                                                       request.platform_fee_fen))
        log.info("ledger frozen", client_id=request.client_id, frozen_fen=result.frozen_fen)
        return result

    @activity.defn(name=port.DEPOSIT.name)
    def deposit(self, request: DepositRequest) -> DepositResult:
        with _as_application_errors():
            moved = self.ledger.deposit(request.deposit_id, request.client_id, request.amount_fen)
        return DepositResult(transfer_id=moved.id, amount_fen=moved.amount_fen, duplicate=moved.duplicate,
                             mismatch=moved.mismatch)

    @activity.defn(name=port.ACCRUE.name)
    def accrue(self, request: AccrueRequest) -> AccrueResult:
        with _as_application_errors():
            accruals = self.ledger.accrue_many(request.task_id, request.content_id, request.items)
        last = accruals[-1]
        return AccrueResult(
            results=[AccrualGrant(event_id=a.event_id, granted_count=a.granted_count, granted_fen=a.granted_fen,
                                  released=a.released, duplicate=a.duplicate) for a in accruals],
            spent_fen=last.spent_fen, remaining_fen=last.remaining_fen,
            exhausted_at=None if last.exhausted_at is None else datetime.fromisoformat(last.exhausted_at))

    @activity.defn(name=port.RELEASE.name)
    def release(self, request: ReleaseRequest) -> ReleaseResult:
        with _as_application_errors():
            released = self.ledger.release_many(request.task_id, request.event_ids)
        return ReleaseResult(results=[ReleasedEvent(**dataclasses.asdict(r)) for r in released],
                             released_fen=sum(r.released_fen for r in released))

    @activity.defn(name=port.SETTLE.name)
    def settle(self, request: SettleRequest) -> SettleResult:
        with _as_application_errors():
            result = SettleResult(**self.ledger.settle(request.task_id, request.content_id, request.payee_account,
                                                       request.fee_fen, request.platform_fee_fen,
                                                       request.outcome))
        log.info("ledger settled", payee_account=request.payee_account, fee_fen=result.fee_fen,
                 platform_fee_fen=result.platform_fee_fen)
        return result

    @activity.defn(name=port.REFUND.name)
    def refund(self, request: RefundRequest) -> RefundResult:
        with _as_application_errors():
            result = RefundResult(**self.ledger.refund(request.task_id, request.client_id))
        log.info("ledger refunded", client_id=request.client_id, refunded_fen=result.refunded_fen)
        return result

    @activity.defn(name=port.TASK_CLOSURES.name)
    def task_closures(self, request: TaskClosuresRequest) -> TaskClosuresResult:
        """Read-only: the task's pieces that closed after `after_seq` (MountTaskWorkflow reads them on a timer)."""
        with _as_application_errors():
            closures = self.ledger.task_closures(request.task_id, request.after_seq, request.limit)
            with self.ledger.db.transaction() as tx:
                held = self.ledger.open_holds(tx, request.task_id)
        return TaskClosuresResult(
            closures=[ContentClosure(seq=c.seq, content_id=c.content_id, outcome=c.outcome, fee_fen=c.fee_fen,
                                     platform_fee_fen=c.platform_fee_fen) for c in closures],
            last_seq=closures[-1].seq if closures else request.after_seq, held_content_ids=held)

    @activity.defn(name=port.HOLD_CONTENT.name)
    def hold_content(self, request: HoldContentRequest) -> HoldContentResult:
        """AM-13: a piece's settlement is held (dispute or penalty); its task keeps a reserve for it."""
        with _as_application_errors():
            recorded = self.ledger.hold_content(request.task_id, request.content_id, request.reason,
                                                request.held_at)
        return HoldContentResult(task_id=request.task_id, content_id=request.content_id, recorded=recorded)

    @activity.defn(name=port.REFUND_PART.name)
    def refund_part(self, request: RefundPartRequest) -> RefundPartResult:
        with _as_application_errors():
            result = RefundPartResult(**self.ledger.refund_part(request.task_id, request.client_id, request.part))
        log.info("ledger refunded a part", client_id=request.client_id, part=request.part,
                 refunded_fen=result.refunded_fen, reserve_fen=result.reserve_fen)
        return result

    @activity.defn(name=port.TASK_MONEY.name)
    def task_money(self, request: TaskMoneyRequest) -> TaskMoney:
        with _as_application_errors():
            return TaskMoney(**self.ledger.task_money(request.task_id))

    def all(self) -> list[Callable[..., Any]]:
        """The activities to register on a worker."""
        return [self.freeze, self.deposit, self.accrue, self.release, self.settle, self.refund, self.task_closures,
                self.task_money, self.hold_content, self.refund_part]
