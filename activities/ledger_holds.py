"""Held pieces and partial refunds of a mount task in the ledger (SPEC AM-13 and its Reading, R-4).

A piece whose settlement is held (a fee dispute, AM-17; a penalty freezing its creator's fees, AM-19) records a
hold row here when it starts waiting; the hold is open until the piece's closure is written (content_closures).
The task reads the open holds with its closures (one look, no message per piece) and, once the period has ended
and every piece that is not held is closed, refunds in parts: each part returns everything in escrow except the
reserve the held pieces may still cost (workflows/rules/fees.refund_reserve), computed here in the transaction
that locks the task's budget row, so no settlement can slip between the reserve and the refund.

The reserve counts the budget still free only while a piece is held by a fee dispute (an operator's resolution may
raise its fee up to what the budget allows, AM-17). Reserving it for every held piece, as the Reading's words say,
would refund nothing early at all: escrow = held accrued fees + free budget + the platform fee on them, always.
So with no dispute open, a part refunds the free budget too and closes it to new grants (a late batch of a held
piece then counts nothing), which is what the seed says of a task whose period ended: unspent money goes back.

A mixin of activities.ledger.Ledger (this module does not import it: ledger.py includes HOLDS_SCHEMA).
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from ports.ledger import HoldReason
from workflows.rules.fees import refund_reserve

if TYPE_CHECKING:
    from activities.db import Tx

# Held pieces listed in one answer; a task with more reads its refund's reserve right anyway (the ledger sums them).
HELD_LISTED = 1_000

HOLDS_SCHEMA = """
CREATE TABLE IF NOT EXISTS content_holds (
    task_id TEXT NOT NULL REFERENCES task_budgets (task_id),
    content_id TEXT NOT NULL,
    reason TEXT NOT NULL CHECK (reason IN ('dispute', 'penalty')),
    held_at TEXT NOT NULL,
    PRIMARY KEY (task_id, content_id)
);
"""
_OPEN_HOLDS = ("FROM content_holds h WHERE h.task_id = ? AND NOT EXISTS (SELECT 1 FROM content_closures k"
               " WHERE k.task_id = h.task_id AND k.content_id = h.content_id)")


class HeldContent:
    """Ledger methods for held pieces and partial refunds (mixed into Ledger, which provides the internals)."""

    db: Any
    _open_budget: Any
    _budget_row: Any
    _lock_accounts: Any
    _account: Any
    _post: Any
    _new: Any
    _once: Any

    def hold_content(self, task_id: str, content_id: str, reason: HoldReason, held_at: datetime) -> bool:
        """Records that `content_id`'s settlement is held; True if this call recorded it (a repeat changes
        nothing). A piece already closed is not held."""
        if reason not in ("dispute", "penalty"):
            raise ValueError(f"reason must be 'dispute' or 'penalty', got {reason!r}")
        if held_at.tzinfo is None:
            raise ValueError(f"held_at must be timezone-aware, got {held_at!r}")
        with self.db.transaction() as tx:
            self._budget_row(tx, task_id)
            return bool(tx.execute("INSERT INTO content_holds (task_id, content_id, reason, held_at)"
                                   " VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING",
                                   (task_id, content_id, reason, held_at.isoformat())))

    def open_holds(self, tx: Tx, task_id: str, limit: int = HELD_LISTED) -> list[str]:
        """The task's held pieces that have not closed yet, by content id."""
        return [r[0] for r in tx.fetchall(f"SELECT h.content_id {_OPEN_HOLDS} ORDER BY h.content_id LIMIT ?",
                                          (task_id, limit))]

    def refund_part(self, task_id: str, client_id: str, part: int) -> dict[str, Any]:
        """AM-13: refunds part `part` of the task's escrow: everything but the reserve of its open holds. Once per
        part: a repeat, however late, returns the first answer. The task's money stays open (the held pieces
        settle from the reserve); the last refund (Ledger.refund) closes it."""
        if type(part) is not int or part < 1:
            raise ValueError(f"part must be a whole number from 1, got {part!r}")
        key = f"refund:{task_id}:part:{part}"

        def apply(tx: Tx) -> dict[str, Any]:
            budget = self._open_budget(tx, task_id)
            if budget["client_id"] != client_id:
                raise ValueError(f"task {task_id} was frozen for client {budget['client_id']}, not {client_id}")
            held = tx.fetchone("SELECT CAST(COALESCE(SUM(a.granted_fen), 0) AS BIGINT) FROM budget_accruals a"
                               " WHERE a.task_id = ? AND a.released = 0 AND a.content_id IN"
                               f" (SELECT h.content_id {_OPEN_HOLDS})", (task_id, task_id))
            held_fen = int(held[0]) if held else 0
            free = budget["budget_fen"] - budget["spent_fen"]
            disputed = tx.fetchone(f"SELECT COUNT(*) {_OPEN_HOLDS} AND h.reason = 'dispute'", (task_id,))
            if free and not (disputed and int(disputed[0])):
                # Only an operator's resolution of a fee dispute may pay a held piece more than it accrued (AM-17);
                # with none open, the budget still free is refunded and closed to new grants here, in the same
                # transaction (an entry of the budget counter), so no late batch can claim money already returned.
                tx.execute("INSERT INTO budget_accruals (task_id, event_id, content_id, requested_count, price_fen,"
                           " granted_count, granted_fen) VALUES (?, ?, '', ?, 1, ?, ?)",
                           (task_id, key, free, free, free))
                tx.execute("UPDATE task_budgets SET spent_fen = spent_fen + ? WHERE task_id = ?", (free, task_id))
                closed_fen, free = free, 0
            else:
                closed_fen = 0
            reserve = refund_reserve(held_fen, free, budget["settled_fen"], budget["platform_fee_charged_fen"])
            escrow, client = f"task:{task_id}:escrow", f"client:{client_id}:available"
            self._lock_accounts(tx, [escrow, client])
            amount = max(0, self._account(tx, escrow).available_fen - reserve)
            held_ids = self.open_holds(tx, task_id)
            if amount:
                self._post(tx, self._new(key, escrow, client, amount, "refund",
                                         f"part {part}: {reserve} fen kept for {len(held_ids)} held piece(s)",
                                         "posted"))
            return {"task_id": task_id, "client_id": client_id, "part": part, "refunded_fen": amount,
                    "reserve_fen": reserve, "held_accrued_fen": held_fen, "budget_closed_fen": closed_fen,
                    "held_content_ids": held_ids}

        result: dict[str, Any] = self._once(key, apply)
        return result
