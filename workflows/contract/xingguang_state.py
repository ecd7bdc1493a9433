"""Public contract of XingguangTaskWorkflow (`xg-task:{task_id}`): its start input, the `state` query, the status a
task-level command answers with, and the workflow's result. The commands are in xingguang.py (the task's) and
xingguang_pieces.py (a piece's).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Literal

from pydantic import Field
from pydantic.json_schema import SkipJsonSchema

from workflows.contract.common import (
    ContractModel,
    Fen,
    Identifier,
    StateModel,
)
from workflows.contract.money import XingguangMoney
from workflows.contract.views import Progress
from workflows.contract.xingguang import (
    MaterialVerdict,
    OrderRequest,
    OrderResult,
    OrderTerms,
    TerminationCause,
    ViolationDecision,
)
from workflows.contract.xingguang_pieces import BillableEventBatch, VoidBillableEvents


# ---------------------------------------------------------------- state (query `state`)
class TaskStage(StrEnum):
    DRAFT = "draft"
    MATERIALS_REVIEW = "materials_review"  # ordered, money frozen; an operator reviews the materials
    AWAITING_PROVIDER = "awaiting_provider"
    IN_PROGRESS = "in_progress"  # pieces made, reviewed, published, promoted
    STOPPED = "stopped"  # R-11 fault stop: waiting for a decision per unsettled piece
    SETTLING = "settling"  # promotion over: pieces wait for their windows and settle
    CLOSED = "closed"  # every piece settled or closed, the rest refunded
    NOT_ORDERED = "not_ordered"


class PieceStage(StrEnum):
    SELECTED = "selected"  # creator chosen, content not submitted yet
    PROVIDER_REVIEW = "provider_review"
    REVISION = "revision"  # sent back to the creator
    CLIENT_REVIEW = "client_review"
    APPROVED = "approved"  # waiting to be published (held while paused)
    PUBLISHED = "published"  # promoted through the billing period
    PUBLICITY = "publicity"  # promotion over; data disputes until the window closes
    SETTLED = "settled"
    CLOSED = "closed"  # ended without a normal settlement (see close_reason)


class ReviewRecord(StateModel):
    by: Literal["provider", "client", "client_silence"]
    approved: bool
    reason: str = ""
    at: datetime


class CaseRecord(StateModel):
    """An objection (XG-5) or a data dispute (XG-6) waiting for an operator."""

    raised_at: datetime
    reason: str
    escalates_at: datetime
    escalated: bool = False
    decided_at: datetime | None = None
    outcome: str | None = None


class Licence(StateModel):
    """XG-11: the creator's content is licensed to the client for Xingguang placement only, long term."""

    content_id: str
    licensee_client_id: str
    scope: str = "xingguang_joint_placement_only"
    term: str = "long_term"
    granted_at: datetime


class PieceSettlementHold(StateModel):
    """R-13 / AM-19: the piece's settlement is held by violation case `case_id` (the creator's fees, or those of
    the agency it pays, are frozen) until the case releases it."""

    case_id: str
    held_at: datetime
    released_at: datetime | None = None
    outcome: Literal["paid", "deducted"] | None = None
    deducted_fen: int = 0


class PieceMoney(StateModel):
    creator_earnings_fen: int = 0
    promotion_spend_fen: int = 0
    platform_fee_fen: int = 0
    provider_fee_fen: int = 0
    payee_account: str = ""


class Piece(StateModel):
    piece_id: str
    creator_id: str
    payee_account: str
    agreed_earnings_fen: int
    stage: PieceStage = PieceStage.SELECTED
    selected_at: datetime
    content_id: str | None = None
    submitted_at: datetime | None = None
    revisions: int = 0
    reviews: list[ReviewRecord] = Field(default_factory=list)
    client_review_due_at: datetime | None = None
    approved_at: datetime | None = None
    published_at: datetime | None = None
    licence: Licence | None = None
    objection_window_closes_at: datetime | None = None
    promotion_due_to_end_at: datetime | None = None  # the current end (extended by pauses); None while paused
    content_accepted_at: datetime | None = None  # XG-5: no objection within 3 days of publication
    promotion_starts_at: datetime | None = None
    promotion_ends_at: datetime | None = None  # set when promotion stops for good
    publicity_window_closes_at: datetime | None = None
    objection: CaseRecord | None = None
    data_dispute: CaseRecord | None = None
    billable_events: int = 0
    billed_spend_fen: int = 0
    operator_amounts: PieceMoney | None = None  # an upheld objection or a resolved data dispute
    earns_full_on_cancel: bool = False  # submitted and not rejected when the task was cancelled
    decision_needed: bool = False  # an operator must settle or decline this piece
    stop_decision: Literal["settle", "decline"] | None = None
    settlement_due: bool = False
    settlement: PieceMoney | None = None
    settled_at: datetime | None = None
    close_reason: str | None = None
    settlement_hold: PieceSettlementHold | None = None  # held by a freeze of the payee's fees


class PauseRecord(StateModel):
    pause_id: str
    piece_id: str | None
    reason: str
    paused_at: datetime
    changes_due_at: datetime | None  # None for a hold waiting for proof of a fix (XG-8 "continue instead")
    notice_sent_at: datetime | None = None  # XG-7: the deadline runs from the receipt (None: recorded before)
    notice_received_at: datetime | None = None
    changes_within_days: int | None = None
    resumed_at: datetime | None = None
    refused_at: datetime | None = None
    deadline_missed: bool = False
    late_changes_accepted_by: str | None = None
    cancelled_at: datetime | None = None
    kind: Literal["compliance", "fix"] = "compliance"


class ViolationRecord(StateModel):
    violation_id: str
    cause: TerminationCause
    note: str
    piece_id: str | None
    decision: ViolationDecision | None
    recorded_at: datetime
    proof: str | None = None
    resumed_at: datetime | None = None


class MoneyRecord(StateModel):
    kind: str
    ref_id: str
    amount_fen: int
    reason: str
    at: datetime


class XingguangTaskFacts(StateModel):
    """What a Xingguang task shows of itself (its `state` view, XingguangTaskView, adds the money picture and the
    progress): the order, the stage, the pieces, pauses, violations and claims, and every deadline."""

    task_id: str
    stage: TaskStage = TaskStage.DRAFT
    client_id: str | None = None
    order: OrderRequest | None = None
    result: OrderResult | None = None
    last_refusal: list[str] = Field(default_factory=list)
    materials: list[MaterialVerdict] = Field(default_factory=list)
    materials_refused: bool = False
    provider_id: str | None = None
    billing_start_at: datetime | None = None
    billing_end_at: datetime | None = None  # as ordered; pauses extend each piece's promotion end
    promotion_due_to_end_at: datetime | None = None  # the task's current end (extended, or stopped); None while paused
    promotion_stopped_at: datetime | None = None  # budget used up, ordinary end, cancellation, stop
    end_reason: str | None = None
    pieces: dict[str, Piece] = Field(default_factory=dict)
    batches_received: int = 0
    late_batches: int = 0
    pauses: list[PauseRecord] = Field(default_factory=list)
    violations: list[ViolationRecord] = Field(default_factory=list)
    compensations: list[MoneyRecord] = Field(default_factory=list)
    penalties: list[MoneyRecord] = Field(default_factory=list)
    delay_fee_reason: str | None = None
    deduction_requested_fen: int = 0  # XG-8: what an operator asked to deduct from the task's money
    paused: bool = False
    escalated: bool = False
    escalation_reasons: list[str] = Field(default_factory=list)
    next_deadline_at: datetime | None = None
    closed_at: datetime | None = None


@dataclass(frozen=True)
class Ordered:
    """What the `order` update sets at once (XG-1, R-8), typed: an ordered task has every one of these, so the code
    that needs them takes this (ordered(s)) instead of the facts' optional fields (which the `state` view shows)."""

    client_id: str
    order: OrderRequest
    terms: OrderTerms
    billing_start_at: datetime
    billing_end_at: datetime
    unit_price_fen: int


def ordered(s: XingguangTaskFacts) -> Ordered | None:
    """The task's order-time fields, None before the order (or if one were missing: the order form requires each)."""
    order, result = s.order, s.result
    if (s.client_id is None or order is None or result is None or s.billing_start_at is None
            or s.billing_end_at is None or order.unit_price_fen is None):
        return None
    return Ordered(client_id=s.client_id, order=order, terms=result.terms, billing_start_at=s.billing_start_at,
                   billing_end_at=s.billing_end_at, unit_price_fen=order.unit_price_fen)


class XingguangTaskState(XingguangTaskFacts):
    """What the workflow carries across continue-as-new: its facts, its money counters (shown as the money
    picture), the batches it has not claimed yet, and its own counters."""

    earnings_committed_fen: int = 0
    placement_spent_fen: int = 0
    # batches wait here until the run loop claims them in the ledger's event register (which remembers every
    # event id, so this state stays small however many batches arrive).
    pending_batches: list[BillableEventBatch] = Field(default_factory=list)
    pending_voids: list[VoidBillableEvents] = Field(default_factory=list)
    data_ops: int = 0
    delay_fee_fen: int = 0
    delay_fee_charged: bool = False
    # Money: frozen = creators + promotion spend + platform fees + delay fee + deducted + refunded
    frozen_fen: int = 0
    paid_to_creators_fen: int = 0
    promotion_spend_fen: int = 0
    platform_fees_fen: int = 0
    provider_fees_fen: int = 0
    deducted_fen: int = 0
    refunded_fen: int = 0
    messages_this_run: int = 0


class XingguangTaskView(XingguangTaskFacts):
    """A Xingguang task (the `state` query): its facts, the money picture and what it waits for."""

    kind: Literal["xg-task"] = "xg-task"
    batches_pending: int = 0  # received, not yet billed (the run bills them in order)
    money: XingguangMoney
    progress: Progress


class TaskStatus(StateModel):
    """What a task-level command answers: where the task stands right after it (the whole state is the `state`
    query; answering with it would copy every piece into the history at each command)."""

    task_id: str
    stage: TaskStage
    applied_at: datetime  # when the command took effect
    paused: bool
    escalated: bool
    escalation_reasons: list[str]
    promotion_stopped_at: datetime | None
    promotion_due_to_end_at: datetime | None
    next_deadline_at: datetime | None
    end_reason: str | None


class TaskResult(ContractModel):
    task_id: str
    stage: TaskStage
    end_reason: str | None
    frozen_fen: Fen
    paid_to_creators_fen: Fen
    promotion_spend_fen: Fen
    platform_fees_fen: Fen
    provider_fees_fen: Fen
    delay_fee_fen: Fen
    deducted_fen: Fen
    refunded_fen: Fen
    pieces: dict[str, PieceMoney]
    order: OrderResult | None = None  # the first answer to `order`, returned again to a repeated order
    # XG-10 / R-14: what a claim after close is judged by (XingguangClaimsWorkflow), besides the ledger.
    pauses: list[PauseRecord] = Field(default_factory=list)


class XingguangTaskInput(ContractModel):
    """Start input. The task starts as a draft and is ordered by the `order` update (update-with-start)."""

    task_id: Identifier
    # Private: set only when the run continues as new, so not in the published schema (it may change freely).
    carried_state: SkipJsonSchema[XingguangTaskState | None] = None
