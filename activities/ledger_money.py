"""A task's money picture from the ledger (workflows/contract/money.py): the figures a task's `state`, the CLI's
`ledger` and the TypeScript client all show, read in one transaction so that they add up to the fen."""

from __future__ import annotations

from typing import Any

from activities.db import Tx
from activities.ledger_holds import _OPEN_HOLDS
from activities.ledger_model import PLATFORM_REVENUE, POSTED, _escrow
from workflows.rules.fees import platform_fee_of_piece


def task_money_picture(tx: Tx, task_id: str, budget: dict[str, Any], escrow_balance_fen: int) -> dict[str, int]:
    """frozen = accrued + platform_fee_on_accrued + paid + platform_fees + refunded + refund_to_come (R-4).

    `budget` is the task's budget row (Postings._budget_row). Accrued is what the budget counter granted and no
    settlement has paid yet; the platform's part of it is charged as R-4 charges it when it settles."""
    escrow = _escrow(task_id)
    flows = tx.fetchall(f"SELECT debit_account, credit_account, CAST(SUM(amount_fen) AS BIGINT) FROM transfers"
                        f" WHERE (debit_account = ? OR credit_account = ?) AND status IN {POSTED}"
                        f" GROUP BY debit_account, credit_account", (escrow, escrow))
    money = {"frozen_fen": 0, "paid_fen": 0, "platform_fees_fen": 0, "refunded_fen": 0}
    for debit, credit, total in flows:
        outgoing = debit == escrow
        other = credit if outgoing else debit
        if other.startswith("client:"):
            money["refunded_fen" if outgoing else "frozen_fen"] += int(total)
        else:
            bucket = "platform_fees_fen" if other == PLATFORM_REVENUE else "paid_fen"
            money[bucket] += int(total) if outgoing else -int(total)
    # The budget counter's grants to pieces, less what settled; a refund part's entry that closes the free budget
    # to new grants (content_id '', ledger_holds.refund_part) is no piece's.
    closed = tx.fetchone("SELECT CAST(COALESCE(SUM(granted_fen), 0) AS BIGINT) FROM budget_accruals"
                         " WHERE task_id = ? AND content_id = '' AND released = 0", (task_id,))
    granted = budget["spent_fen"] - (int(closed[0]) if closed else 0)
    accrued = 0 if budget["refunded_at"] is not None else max(0, granted - budget["settled_fen"])
    fee_on_accrued = min(platform_fee_of_piece(budget["settled_fen"], accrued, budget["platform_fee_charged_fen"]),
                         max(0, escrow_balance_fen - accrued))
    held = tx.fetchone(f"SELECT CAST(COALESCE(SUM(a.granted_fen), 0) AS BIGINT) FROM budget_accruals a"
                       f" WHERE a.task_id = ? AND a.released = 0 AND a.content_id IN (SELECT h.content_id"
                       f" {_OPEN_HOLDS})", (task_id, task_id))
    return {**money, "accrued_fen": accrued, "platform_fee_on_accrued_fen": fee_on_accrued,
            "held_fen": min(accrued, int(held[0]) if held else 0),
            "refund_to_come_fen": max(0, escrow_balance_fen - accrued - fee_on_accrued)}
