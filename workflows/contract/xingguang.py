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

The models are in three modules: this one (the task's commands and their answers: order, materials, provider,
pause, termination, compensation, penalties), xingguang_pieces.py (the commands and signals about one piece of
content) and xingguang_state.py (the start input, the `state` query, the task's status and result).
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

from pydantic import Field

from workflows.contract.common import (
    ContractModel,
    Fen,
    Identifier,
    Instant,
    PositiveFen,
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


# The workflow id of a Xingguang task, `xg-task:{task_id}` (one definition, in names.py).
xg_task_workflow_id = xingguang_task_id
