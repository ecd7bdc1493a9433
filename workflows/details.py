"""A workflow's current details in the Temporal UI (markdown): its one-line summary first (stage, what it waits
for, its next deadline in +08:00), then its money and its counts, from the same view its `state` query answers
(contract/views.py). An escalation is put before all of it, with what to do (escalation.Stalls)."""

from __future__ import annotations

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from workflows.contract.money import PieceMoney, TaskMoney
    from workflows.contract.views import PieceCounts
    from workflows.rules.clock import business_time


def fen(amount: int) -> str:
    return f"{amount:,}"


def task_money_line(m: TaskMoney) -> str:
    line = (f"**Money** (fen): frozen {fen(m.frozen_fen)} · accrued {fen(m.accrued_fen)} (held {fen(m.held_fen)})"
            f" · paid {fen(m.paid_fen)} · platform fees {fen(m.platform_fees_fen)} · refunded {fen(m.refunded_fen)}"
            f" · refund to come {fen(m.refund_to_come_fen)}")
    if m.refund_expected_at is not None and m.refund_to_come_fen:
        line += f", not before {business_time(m.refund_expected_at)}"
    if m.as_of is not None:
        line += f" (ledger read {business_time(m.as_of)})"
    return line


def piece_money_line(m: PieceMoney) -> str:
    if m.paid_fen or m.platform_fee_fen:
        return (f"**Money** (fen): paid {fen(m.paid_fen)} to {m.payee_account} · platform fee "
                f"{fen(m.platform_fee_fen)}")
    return f"**Money** (fen): accrued {fen(m.accrued_fen)} (held {fen(m.held_fen)}) for {m.payee_account}"


def counts_line(p: PieceCounts, creators: int) -> str:
    return (f"**Pieces**: {p.mounted} mounted · {p.open} open · {p.settled} settled · {p.closed} closed unpaid · "
            f"{p.held} held · {creators} creator(s) joined")


def lines(*parts: str) -> str:
    """The summary and the lines under it, as markdown paragraphs."""
    return "\n\n".join(part for part in parts if part)
