"""Public contract of XingguangTaskWorkflow (`xg-task:{task_id}`): XG-1..XG-11, R-5, R-8, R-9, R-11.

One workflow per Xingguang task; its pieces of content live in its state (see workflows/xingguang_task.py for why).
Messages (all on `xg-task:{task_id}`):

  updates  order (update-with-start), review_materials, assign_provider, select_creator, submit_content,
           provider_review, client_review, raise_objection, decide_objection, raise_data_dispute,
           resolve_data_dispute, pause, respond_to_pause, cancel_after_pause, record_violation, submit_fix_proof,
           decide_piece, compensate, penalize
  signals  report_billable_events (R-1 batches from the platform's statistics), void_billable_events,
           settlement_released (R-13: a violation case releases a piece's settlement it held)
  query    state

After the task closed, `compensate` goes to XingguangClaimsWorkflow (`xg-claims:{task_id}`, update-with-start):
the same request and result, the same cap, counting what was already paid (R-14).

Field names are snake_case; amounts are integer fen ending `_fen`; instants end `_at` (ISO-8601 with offset);
rates are basis points ending `_bp` (1 bp = 0.01%).
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated, Literal

from pydantic import Field

from workflows.contract.common import (
    ContractModel,
    Count,
    Fen,
    Identifier,
    Instant,
    PositiveFen,
    StateModel,
    Text,
)
from workflows.contract.names import xingguang_task_id

RateBp = Annotated[int, Field(strict=True, ge=0, le=10_000)]
Reason = Annotated[str, Field(min_length=1, max_length=2000)]


# ---------------------------------------------------------------- order (XG-1, XG-2, R-8)
class OrderRequest(ContractModel):
    """XG-1. Fields the order requires may be left out here: the refusal then names each missing one."""

    task_id: Identifier
    client_id: Identifier
    content_requirements: Text | None = Field(None, description="guidance for creators, not binding (XG 三2)")
    targeting_labels: list[Annotated[str, Field(max_length=200)]] | None = Field(
        None, max_length=500, description="audience labels; the privacy annex forbids some categories (XG-2)")
    placement_budget_fen: Fen | None = Field(None, description="promotion spend never passes it (R-8)")
    unit_price_fen: Fen | None = Field(None, description="price per billable event")
    billing_start_at: Instant | None = None
    billing_end_at: Instant | None = None
    creator_earnings_budget_fen: Fen | None = Field(None, description="the sum of agreed creator earnings (R-8)")
    platform_fee_rate_bp: RateBp | None = Field(None, description="on creator earnings + promotion spend")
    platform_fee_waiver: Text | None = Field(None, description="the promotion that waives the platform fee, if any")
    provider_fee_rate_bp: RateBp | None = Field(None, description="of creator earnings, paid by the platform")
    client_confirms_content: bool | None = None
    client_review_hours: int | None = Field(None, strict=True, ge=0, le=24 * 90,
                                            description="the client's review deadline after provider approval")


class OrderTerms(ContractModel):
    """The accepted money terms (R-8): what was frozen and how."""

    placement_budget_fen: Fen
    creator_earnings_budget_fen: Fen
    platform_fee_rate_bp: RateBp
    platform_fee_waived: bool
    platform_fee_waiver: str | None
    platform_fee_frozen_fen: Fen
    provider_fee_rate_bp: RateBp
    frozen_fen: Fen


class OrderResult(ContractModel):
    task_id: str
    ordered_at: Instant
    terms: OrderTerms
    freeze_transfer_id: str


class XingguangTaskInput(ContractModel):
    """Start input. The task starts as a draft and is ordered by the `order` update (update-with-start)."""

    task_id: Identifier
    carried_state: XingguangTaskState | None = None


# ---------------------------------------------------------------- materials, provider (XG-1, XG-3)
class MaterialKind(StrEnum):
    QUALIFICATION = "qualification"
    COMPONENT = "component"
    LINK = "link"


class MaterialVerdict(ContractModel):
    kind: MaterialKind
    item_id: Identifier
    approved: bool
    reason: Text = ""


class ReviewMaterialsRequest(ContractModel):
    operator_id: Identifier
    verdicts: list[MaterialVerdict] = Field(min_length=1, max_length=200)


class AssignProviderRequest(ContractModel):
    operator_id: Identifier
    provider_id: Identifier


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


# ---------------------------------------------------------------- pause (XG-7, R-9)
class PauseRequest(ContractModel):
    """XG-7. The deadline for changes runs from the client's receipt of the notice: the workflow computes it as
    receipt + `changes_within_days` x 24 h (the last valid instant one second before)."""

    operator_id: Identifier
    pause_id: Identifier
    piece_id: Identifier | None = Field(None, description="one piece (its content) or, if absent, the whole task")
    reason: Reason
    notice_sent_at: Instant | None = Field(None, description="when the notice was sent (required)")
    notice_received_at: Instant | None = Field(
        None, description="when the client received it, if the client proves a later receipt; absent: received "
                          "when sent (JG 十二: a notice is delivered on the day it is sent)")
    changes_within_days: int | None = Field(None, strict=True, ge=1, le=90,
                                            description="days for changes from the receipt (required)")
    changes_due_at: Instant | None = Field(
        None, description="not accepted any more (the workflow computes the deadline); kept so that pauses "
                          "recorded before read back")


class RespondToPauseRequest(ContractModel):
    client_id: Identifier
    pause_id: Identifier
    changes_made: bool = Field(description="true: the changes are made (resume); false: the client refuses")
    note: Text = ""
    late_changes_accepted_by: Identifier | None = Field(
        None, description="an operator who accepts changes made after the deadline (the platform may, not must, "
                          "cancel: XG-7)")


class CancelAfterPauseRequest(ContractModel):
    """R-9: after a refusal or a missed deadline. The delay-period task service fee is at most what remains."""

    operator_id: Identifier
    pause_id: Identifier
    delay_fee_fen: Fen = 0
    delay_fee_reason: Text = ""


# ---------------------------------------------------------------- termination (XG-8, R-9, R-11)
class TerminationCause(StrEnum):
    """The nine events of XG 十2, in the source's order."""

    INVALID_QUALIFICATIONS = "invalid_qualifications"  # (1)
    BILLING_OVER_BALANCE_SHORT_OR_CANCELLED = "billing_over_balance_short_or_cancelled"  # (2) ordinary end
    CONTENT_DELETED_OR_NON_PUBLIC = "content_deleted_or_non_public"  # (3) one piece
    COMPONENT_OR_LANDING_PAGE_FAULT = "component_or_landing_page_fault"  # (4)
    INFRINGEMENT_COMPLAINT_OR_LAWSUIT = "infringement_complaint_or_lawsuit"  # (5)
    CHEATING_BYPASS_OR_LAUNDERING = "cheating_bypass_or_laundering"  # (6)
    ILLEGAL_OR_NEGATIVE_EVENT = "illegal_or_negative_event"  # (7)
    LAWSUIT_BETWEEN_PARTIES = "lawsuit_between_parties"  # (8)
    OTHER_VIOLATION = "other_violation"  # (9)


class ViolationDecision(StrEnum):
    STOP = "stop"
    CONTINUE_AFTER_FIX = "continue_after_fix"


class RecordViolationRequest(ContractModel):
    """R-11. Ordinary ends ignore `decision`; a content cause names its piece; a fault stops or continues."""

    operator_id: Identifier
    violation_id: Identifier
    cause: TerminationCause
    note: Reason
    piece_id: Identifier | None = None
    decision: ViolationDecision = ViolationDecision.STOP


class SubmitFixProofRequest(ContractModel):
    violation_id: Identifier
    submitted_by: Identifier
    proof: Reason


class DecidePieceRequest(ContractModel):
    """R-9 on a stop: settle the piece (its earnings and the promotion billed) or decline (earnings withheld)."""

    operator_id: Identifier
    piece_id: Identifier
    settle: bool
    note: Reason


# ---------------------------------------------------------------- compensation, penalties (XG-8, XG-10)
class CompensationKind(StrEnum):
    DELIVERY_ANOMALY = "delivery_anomaly"  # equal value under the policy of the day
    DAMAGES = "damages"  # platform breach: min(loss, floor(20% x order amount))


class AnomalyCause(StrEnum):
    PLATFORM_FAULT = "platform_fault"
    COMPLIANCE_PAUSE = "compliance_pause"  # XG-7: not the platform's fault, no compensation
    ANNOUNCED_SERVICE_CHANGE = "announced_service_change"  # XG 九1: not an anomaly


class CompensateRequest(ContractModel):
    """XG-10, R-14. A claim whose period overlaps a compliance pause of the task is refused as a pause delay,
    whatever `cause` says. Without `amount_fen` the refusal names the most that may be paid."""

    operator_id: Identifier
    compensation_id: Identifier
    kind: CompensationKind
    cause: AnomalyCause
    period_start_at: Instant | None = Field(None, description="when the anomaly or breach began (required)")
    period_end_at: Instant | None = Field(None, description="when it ended (exclusive; required)")
    amount_fen: PositiveFen | None = None
    loss_fen: Fen | None = Field(None, description="damages: the client's direct, calculable loss")
    policy: Text = Field("", description="delivery anomaly: the platform policy applied")
    note: Reason


class CompensationResult(ContractModel):
    compensation_id: str
    kind: CompensationKind
    paid_fen: Fen
    cap_fen: Fen | None
    paid_at: Instant


class PenaltyAction(StrEnum):
    DEDUCT = "deduct"  # taken from the task's money before the refund
    FREEZE = "freeze"  # held on the client's available balance


class PenalizeRequest(ContractModel):
    operator_id: Identifier
    penalty_id: Identifier
    action: PenaltyAction
    amount_fen: PositiveFen
    reason: Reason


class PenaltyResult(ContractModel):
    penalty_id: str
    action: PenaltyAction
    amount_fen: Fen
    recorded_at: Instant


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


class PieceSettlementReleased(ContractModel):
    """R-13 / AM-22: sent by a violation case (through `penalties.release_held`) when its outcome releases the
    settlement of piece `piece_id` it held: `paid` pays it; `deducted` pays it and deducts the creator earnings as a
    penalty (the case deducted all of the party's unwithdrawn fees)."""

    piece_id: Identifier
    case_id: Identifier
    outcome: Literal["paid", "deducted"]
    released_at: Instant


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


class XingguangTaskState(StateModel):
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
    earnings_committed_fen: int = 0
    placement_spent_fen: int = 0
    # batches wait here until the run loop claims them in the ledger's event register (which remembers every
    # event id, so this state stays small however many batches arrive).
    pending_batches: list[BillableEventBatch] = Field(default_factory=list)
    pending_voids: list[VoidBillableEvents] = Field(default_factory=list)
    batches_received: int = 0
    late_batches: int = 0
    data_ops: int = 0
    pauses: list[PauseRecord] = Field(default_factory=list)
    violations: list[ViolationRecord] = Field(default_factory=list)
    compensations: list[MoneyRecord] = Field(default_factory=list)
    penalties: list[MoneyRecord] = Field(default_factory=list)
    delay_fee_fen: int = 0
    delay_fee_reason: str | None = None
    delay_fee_charged: bool = False
    deduction_requested_fen: int = 0
    paused: bool = False
    escalated: bool = False
    escalation_reasons: list[str] = Field(default_factory=list)
    next_deadline_at: datetime | None = None
    # Money: frozen = creators + promotion spend + platform fees + delay fee + deducted + refunded
    frozen_fen: int = 0
    paid_to_creators_fen: int = 0
    promotion_spend_fen: int = 0
    platform_fees_fen: int = 0
    provider_fees_fen: int = 0
    deducted_fen: int = 0
    refunded_fen: int = 0
    closed_at: datetime | None = None
    messages_this_run: int = 0


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


XingguangTaskInput.model_rebuild()


# The workflow id of a Xingguang task, `xg-task:{task_id}` (one definition, in names.py).
xg_task_workflow_id = xingguang_task_id


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
