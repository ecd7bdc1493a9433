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
PostgreSQL transactions queue instead of deadlocking; on SQLite, `BEGIN IMMEDIATE` serializes writers. Each
operation is one transaction (a settlement too: its postings, budget row, closure and recorded answer commit
together or not at all), and on PostgreSQL a posting is one statement, a posting of its own one round trip.

The module's parts: the tables and PostgreSQL's posting functions (ledger_schema.py), the vocabulary
(ledger_model.py), postings and reading (ledger_postings.py), held pieces and partial refunds (ledger_holds.py), the
operations of a task (here), and the activities (ledger_activities.py).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from activities.db import Database, Tx, default_dsn
from activities.ledger_activities import LedgerActivities, as_refusals
from activities.ledger_holds import HeldContent
from activities.ledger_model import (
    LEDGER_NAMESPACE,
    OWN_ACCOUNT_PREFIXES,
    PLATFORM_REVENUE,
    WORLD_DEPOSITS,
    AccountBalance,
    Accrual,
    BudgetExceeded,
    Closure,
    ConservationBroken,
    InsufficientFunds,
    LedgerError,
    PendingAlreadyResolved,
    Release,
    Status,
    TaskClosed,
    Transfer,
    UnknownTask,
    UnknownTransfer,
    _aware,
    _client_available,
    _escrow,
    _fen,
    _utc_now,
    may_go_negative,
    transfer_id,
)
from activities.ledger_money import task_money_picture
from activities.ledger_postings import Postings
from activities.ledger_schema import POSTGRESQL_SCHEMA, SQLITE_SCHEMA
from ports.ledger import (
    AccrualItem,
    AccrueRequest,
    AccrueResult,
    ClosureOutcome,
    FreezeRequest,
    RefundRequest,
    RefundResult,
    ReleaseRequest,
    SettleRequest,
    SettleResult,
    TaskClosuresRequest,
    TaskMoneyRequest,
)
from workflows.rules.fees import platform_fee_of_piece

# The public names of the ledger, wherever their part lives (callers import them from here).
__all__ = [
    "LEDGER_NAMESPACE", "OWN_ACCOUNT_PREFIXES", "PLATFORM_REVENUE", "WORLD_DEPOSITS", "AccountBalance", "Accrual",
    "AccrualItem", "AccrueRequest", "AccrueResult", "BudgetExceeded", "Closure", "ClosureOutcome",
    "ConservationBroken", "FreezeRequest", "InsufficientFunds", "Ledger", "LedgerActivities", "LedgerError",
    "PendingAlreadyResolved", "RefundRequest", "RefundResult", "Release", "ReleaseRequest", "SettleRequest",
    "SettleResult", "Status", "TaskClosed", "TaskClosuresRequest", "TaskMoneyRequest", "Transfer", "UnknownTask",
    "UnknownTransfer", "as_refusals", "may_go_negative", "transfer_id",
]


class Ledger(Postings, HeldContent):
    def __init__(self, db: Database) -> None:
        self.db = db
        db.ensure_schema(SQLITE_SCHEMA, POSTGRESQL_SCHEMA)
        with db.transaction() as tx:  # R-14 for database files made before it: idempotent, touches 0 rows after
            tx.execute("UPDATE accounts SET may_go_negative = 1 WHERE may_go_negative = 0"
                       " AND substr(name, 1, ?) = ?", (len("platform:"), "platform:"))

    @classmethod
    def open(cls, dsn: str | None = None) -> Ledger:
        return cls(Database(dsn or default_dsn()))

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
            # one task take their numbers one at a time, in commit order, so a reader never skips one. The number
            # is taken and the closure written in one statement.
            row = tx.fetchone("INSERT INTO content_closures (task_id, seq, content_id, outcome, fee_fen,"
                              " platform_fee_fen, closed_at) SELECT ?, CAST(COALESCE(MAX(seq), 0) + 1 AS BIGINT),"
                              " ?, ?, CAST(? AS BIGINT), CAST(? AS BIGINT), ? FROM content_closures WHERE task_id = ?"
                              " RETURNING seq",
                              (task_id, content_id, outcome, fee, platform_fee, _utc_now(), task_id))
            if row is None:
                raise LedgerError(f"task {task_id}: the closure of {content_id} was not recorded")
            seq = int(row[0])
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
        """Where a task's money is: the money picture (activities/ledger_money.py, one transaction), its budget
        counter and its escrow balance."""
        with self.db.transaction() as tx:
            budget = self._budget_row(tx, task_id)
            balance = self._account(tx, _escrow(task_id)).balance_fen
            picture = task_money_picture(tx, task_id, budget, balance)
        return {"task_id": task_id, "budget_fen": budget["budget_fen"], "spent_fen": budget["spent_fen"],
                "remaining_fen": budget["budget_fen"] - budget["spent_fen"], "exhausted_at": budget["exhausted_at"],
                "refunded_at": budget["refunded_at"], **picture, "escrow_balance_fen": balance}

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
        with self.db.transaction() as tx:
            return self.accrue_in(tx, task_id, content_id, items)

    def accrue_in(self, tx: Tx, task_id: str, content_id: str, items: Sequence[AccrualItem]) -> list[Accrual]:
        """accrue_many inside the caller's transaction (the piece's batches are recorded in the same one)."""
        results: list[Accrual] = []
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
        with self.db.transaction() as tx:
            return self.release_in(tx, task_id, event_ids)

    def release_in(self, tx: Tx, task_id: str, event_ids: Sequence[str]) -> list[Release]:
        """release_many inside the caller's transaction."""
        results: list[Release] = []
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
