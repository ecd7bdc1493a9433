"""Fee disputes of one mounted piece of content (AM-11, AM-17): who may raise one and when, and what an operator
may resolve it to. Plain functions over plain values."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from workflows.rules.clock import business_time

# The type of every refusal of a fee dispute (ApplicationError.type, details {"reasons": [...]}).
DISPUTE_REFUSED = "DisputeRefused"

Disputant = Literal["client", "creator"]


def dispute_refusal(raised_by: Disputant, party_id: str, *, client_id: str, creator_id: str, content_id: str,
                    now: datetime, publicity_window_closes_at: datetime, settled: bool) -> str | None:
    """AM-11: the client of the task or the creator of this content, until the publicity window closes.

    Reading (AM-11, 2026-12): a dispute may be raised from the mount on (the seed sets only the end of the right);
    from the window's closing instant on the fee is deemed accepted, also once the piece has settled."""
    owner = client_id if raised_by == "client" else creator_id
    if party_id != owner:
        return f"party_id: {party_id} is not the {raised_by} of content {content_id} (that is {owner})"
    if settled or now >= publicity_window_closes_at:
        return window_closed(content_id, publicity_window_closes_at)
    return None


def window_closed(content_id: str, publicity_window_closes_at: datetime) -> str:
    """The refusal of a dispute after the window closed (AM-11): it names the closing instant."""
    return (f"the publicity window of content {content_id} closed at {business_time(publicity_window_closes_at)}"
            f": the fee is deemed accepted and can no longer be disputed")


def max_resolvable_fen(agreed_fee_fen: int, budget_remaining_fen: int) -> int:
    """AM-17: never above what the budget allows: the piece's current fee plus what the task budget still has."""
    return agreed_fee_fen + max(budget_remaining_fen, 0)


def resolution_refusal(amount_fen: int, agreed_fee_fen: int, budget_remaining_fen: int) -> str | None:
    limit = max_resolvable_fen(agreed_fee_fen, budget_remaining_fen)
    if amount_fen > limit:
        return (f"amount_fen: {amount_fen} fen is above what the budget allows: at most {limit} fen (this piece's "
                f"fee {agreed_fee_fen} fen + {budget_remaining_fen} fen left in the task budget)")
    return None
