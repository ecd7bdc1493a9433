"""Public contract of XingguangTaskWorkflow (`xg-task:{task_id}`), one piece of content: the updates that choose its
creator, review its content and decide its objections and data disputes (XG-4, XG-5, XG-6, R-5), the billable-event
signals (R-1), and the release of a settlement a violation case held (R-13). The task's own commands are in
xingguang.py, its state and result in xingguang_state.py.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from workflows.contract.common import (
    ContractModel,
    Count,
    Fen,
    Identifier,
    Instant,
    PositiveFen,
    Text,
)
from workflows.contract.names import xingguang_task_id
from workflows.contract.xingguang import Reason


# ---------------------------------------------------------------- pieces (XG-4, XG-5, XG-6, R-5)
class SelectCreatorRequest(ContractModel):
    provider_id: Identifier
    piece_id: Identifier
    creator_id: Identifier
    creator_earnings_fen: PositiveFen


class SubmitContentRequest(ContractModel):
    creator_id: Identifier
    piece_id: Identifier
    content_id: Identifier


class ProviderReviewRequest(ContractModel):
    provider_id: Identifier
    piece_id: Identifier
    approved: bool
    reason: Text = ""


class ClientReviewRequest(ContractModel):
    client_id: Identifier
    piece_id: Identifier
    approved: bool
    reason: Text = ""


class RaiseObjectionRequest(ContractModel):
    client_id: Identifier
    piece_id: Identifier
    reason: Reason


class DecideObjectionRequest(ContractModel):
    """Upheld: the piece stops promoting and settles at these amounts (0 up to what it earned). Dismissed: it goes
    on."""

    operator_id: Identifier
    piece_id: Identifier
    upheld: bool
    creator_earnings_fen: Fen = 0
    promotion_spend_fen: Fen = 0
    note: Reason


class BillableEventBatch(ContractModel):
    """R-1 for XG-6: a batch from the platform's statistics; `event_id` unique, cheating never bills."""

    event_id: Identifier
    piece_id: Identifier
    count: Count
    occurred_at: Instant
    cheating: bool = False


class VoidBillableEvents(ContractModel):
    event_id: Identifier
    reason: Reason


class RaiseDataDisputeRequest(ContractModel):
    client_id: Identifier
    piece_id: Identifier
    reason: Reason


class ResolveDataDisputeRequest(ContractModel):
    operator_id: Identifier
    piece_id: Identifier
    billable_events: Count = Field(description="the corrected number of billable events of the piece")
    note: Reason


class PieceSettlementReleased(ContractModel):
    """R-13 / AM-22: sent by a violation case (through `penalties.release_held`) when its outcome releases the
    settlement of piece `piece_id` it held: `paid` pays it; `deducted` pays it and deducts the creator earnings as a
    penalty (the case deducted all of the party's unwithdrawn fees)."""

    piece_id: Identifier
    case_id: Identifier
    outcome: Literal["paid", "deducted"]
    released_at: Instant

def piece_hold_key(task_id: str, piece_id: str) -> str:
    """R-13: the penalty register keys held settlements by workflow id; a task's pieces share one workflow, so a
    held piece is `xg-task:{task_id}#{piece_id}` ('#' is in no Identifier, so the key splits back unambiguously)."""
    return f"{xingguang_task_id(task_id)}#{piece_id}"


def piece_of_hold_key(key: str) -> tuple[str, str] | None:
    """(the task's workflow id, the piece id) of a key made by `piece_hold_key`; None for any other key."""
    workflow_id, sep, piece_id = key.rpartition("#")
    if not sep or not workflow_id.startswith(xingguang_task_id("")):
        return None
    return workflow_id, piece_id
