"""Public contract of MountedContentWorkflow (`mount-content:{task_id}:{content_id}`): AM-6, AM-8..AM-12,
AM-14..AM-17, AM-19, AM-22, R-1..R-3."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Literal

from pydantic import Field
from pydantic.json_schema import SkipJsonSchema

from workflows.contract.common import ContractModel, Count, Fen, Identifier, Instant, StateModel, Text


class MountedContentInput(ContractModel):
    task_id: Identifier
    content_id: Identifier
    creator_id: Identifier
    client_id: Identifier
    payee_account: str
    price_fen: Fen
    mounted_at: Instant
    task_period_end_at: Instant
    # Set only when the workflow continues as new.
    # Private: set only when the run continues as new, so not in the published schema (it may change freely).
    carried_state: SkipJsonSchema[MountedContentState | None] = None


class ConversionBatch(ContractModel):
    """R-1: one batch of conversions reported by the main site. `event_id` is unique; a repeat counts once."""

    event_id: Identifier
    content_id: Identifier
    count: Count
    occurred_at: Instant
    cheating: bool = False


class VoidConversions(ContractModel):
    """R-1: the platform voids an earlier batch (cheating found later) until the piece is settled."""

    event_id: Identifier
    reason: Text = Field(min_length=1)


class VisibilityKind(StrEnum):
    DELETED = "deleted"
    MADE_NON_PUBLIC = "made_non_public"


class VisibilityLost(ContractModel):
    """AM-16: the creator deleted the content or made it non-public at `occurred_at`."""

    kind: VisibilityKind
    occurred_at: Instant


class DisposalReason(StrEnum):
    FAILED_REVIEW = "failed_review"
    TAKEN_DOWN = "taken_down"
    PERSONAL_PAGE_ONLY = "personal_page_only"


class PlatformDisposal(ContractModel):
    """AM-16: the platform disposed of the content for the creator's own violation: no fee for this piece."""

    reason: DisposalReason
    occurred_at: Instant
    note: Text = ""


class ContentRevoked(ContractModel):
    """Sent by the task: the creator revoked this piece (AM-14) or all authorization (AM-15)."""

    revoked_at: Instant
    scope: Literal["content", "all"]


class TaskPeriodEnded(ContractModel):
    """Sent by the task: its period ended at `ended_at` (AM-7, AM-10); nothing counts from then on."""

    ended_at: Instant
    reason: str


class RaiseDisputeRequest(ContractModel):
    """AM-11: the client of the task or the creator of this content disputes the fee, from the mount until the
    publicity window closes; each party may have one dispute open at a time."""

    raised_by: Literal["client", "creator"]
    party_id: Identifier
    reason: Text = Field(min_length=1)


class DisputeReceipt(ContractModel):
    dispute_id: str
    raised_at: Instant
    fee_fen: Fen  # the fee disputed
    publicity_window_closes_at: Instant
    resolution_due_at: Instant | None  # 7 working days (AM-17); None when the calendar could not count it
    escalated: bool


class ResolveDisputeRequest(ContractModel):
    """AM-17: an operator settles the dispute on `amount_fen` (the original fee or a corrected one)."""

    dispute_id: Identifier
    operator_id: Identifier
    amount_fen: Fen
    note: Text = Field(min_length=1)


class DisputeResolution(ContractModel):
    dispute_id: str
    resolved_at: Instant
    fee_before_fen: Fen
    amount_fen: Fen  # what settlement pays
    budget_adjustment_fen: int  # + accrued to / - released from the task's budget counter


class SettlementReleased(ContractModel):
    """Sent by a violation case when its outcome releases a settlement it held (AM-22): `paid` pays the fee;
    `deducted` pays it and deducts it as a penalty (the case deducted all of the creator's unwithdrawn fees)."""

    case_id: Identifier
    outcome: Literal["paid", "deducted"]
    released_at: Instant


class CountingFrozen(ContractModel):
    """R-12: sent by a violation case that freezes the creator's in-flight tasks: conversions from `frozen_at` do
    not count while the freeze stands, and the piece's settlement is held (AM-19)."""

    case_id: Identifier
    penalty_id: Identifier
    frozen_at: Instant


class CountingResumed(ContractModel):
    """R-12: the freeze ended. `withdrawn` (appeal upheld): as if it had never been, conversions during it count;
    otherwise (its end reached, or lifted by an operator) counting resumes at `resumed_at` and those during it
    never count."""

    case_id: Identifier
    penalty_id: Identifier
    resumed_at: Instant
    withdrawn: bool


class ContentStage(StrEnum):
    MOUNTED = "mounted"  # billing period running, component mounted
    PUBLICITY = "publicity"  # billing period over, unmounted, window open for disputes
    DISPUTED = "disputed"  # window closed with a dispute open: settlement waits for the operator (AM-17)
    HELD = "held"  # the creator's fees are frozen by a penalty: settlement waits for the case (AM-19)
    SETTLED = "settled"
    CLOSED = "closed"  # settled at 0 because the platform disposed of the content (AM-16)


class BatchRecord(StateModel):
    count: int
    occurred_at: datetime
    cheating: bool
    counted: int = 0  # conversions granted by the budget and inside the counting interval
    fee_fen: int = 0
    voided: bool = False
    late: bool = False


class IncomingBatch(StateModel):
    """A batch received and not yet recorded in the database (runs with the piece's batches there, issue 21);
    `late`: it came after the fee was settled or fixed by a resolution (R-2, AM-17)."""

    event_id: str
    count: int
    occurred_at: datetime
    cheating: bool
    late: bool = False


class SettlementRecord(StateModel):
    settled_at: datetime
    fee_fen: int
    platform_fee_fen: int
    payee_account: str
    transfer_key: str


class DisputeRecord(StateModel):
    dispute_id: str
    raised_by: Literal["client", "creator"]
    party_id: str
    reason: str
    raised_at: datetime
    fee_fen: int  # the fee when raised
    resolution_due_at: datetime | None = None
    calendar_problem: str | None = None
    escalated_at: datetime | None = None
    resolved_at: datetime | None = None
    resolved_by: str | None = None
    amount_fen: int | None = None
    note: str | None = None
    # The resolution as asked and as answered: the same request again is answered with it (resolutions recorded
    # before they were kept have neither, and a repeat of them is refused naming the first).
    resolution_request: ResolveDisputeRequest | None = None
    resolution: DisputeResolution | None = None


class SettlementHold(StateModel):
    case_id: str
    held_at: datetime
    released_at: datetime | None = None
    outcome: Literal["paid", "deducted"] | None = None
    deducted_fen: int = 0


class CountingFreeze(StateModel):
    case_id: str
    penalty_id: str
    frozen_at: datetime
    resumed_at: datetime | None = None  # conversions in [frozen_at, resumed_at) never count
    withdrawn: bool = False  # appeal upheld: the freeze no longer excludes anything


class MountedContentState(StateModel):
    task_id: str
    content_id: str
    creator_id: str
    client_id: str
    payee_account: str
    price_fen: int
    stage: ContentStage = ContentStage.MOUNTED
    mounted_at: datetime
    task_period_end_at: datetime
    task_period_ended_at: datetime | None = None
    budget_exhausted_at: datetime | None = None
    billing_period_ends_at: datetime
    publicity_window_closes_at: datetime
    counting_stops_at: datetime
    revoked_at: datetime | None = None
    visibility_lost_at: datetime | None = None
    visibility_lost_kind: VisibilityKind | None = None
    disposed_at: datetime | None = None
    disposal_reason: DisposalReason | None = None
    unmounted_at: datetime | None = None
    counted_conversions: int = 0
    fee_fen: int = 0
    # Runs that record `workflows.content_batches.BATCHES_PATCH` keep every batch in the database
    # (activities/content_batches.py) and only the last ones received here, for the view; older runs keep all.
    batches_in_db: bool = False
    batches: dict[str, BatchRecord] = Field(default_factory=dict)
    batches_received: int = 0  # new batches recorded in the database (batches_in_db)
    batches_seq: int = 0  # the number the database gives the next batch (its order of arrival)
    incoming: list[IncomingBatch] = Field(default_factory=list)
    incoming_voids: list[str] = Field(default_factory=list)
    # The counting interval or a freeze moved: the database's batches are judged again (released or accrued).
    rejudge: bool = False
    pending_void_ids: list[str] = Field(default_factory=list)
    # Batches received and inside the counting interval, not yet accrued against the budget in the ledger.
    pending_accrual: list[str] = Field(default_factory=list)
    late_batches: int = 0
    settlement: SettlementRecord | None = None
    messages_this_run: int = 0
    disputes: list[DisputeRecord] = Field(default_factory=list)
    # Set by a resolved dispute: settlement pays this, and conversions stop changing the fee (AM-17).
    agreed_fee_fen: int | None = None
    # Ledger budget-counter entries made by dispute resolutions (event id -> fen granted), and counted batches
    # given back to the budget because a resolution replaced them.
    fee_adjustments: dict[str, int] = Field(default_factory=dict)
    settlement_hold: SettlementHold | None = None
    # AM-13: when this piece told the ledger its settlement is held (its task keeps a reserve for it).
    hold_recorded_at: datetime | None = None
    # freezes of the creator's in-flight tasks this piece was told of.
    counting_freezes: list[CountingFreeze] = Field(default_factory=list)
    escalated: bool = False
    escalation_reason: str | None = None


class ContentResult(ContractModel):
    task_id: str
    content_id: str
    stage: ContentStage
    counted_conversions: Count
    fee_fen: Fen
    platform_fee_fen: Fen
    payee_account: str
    settled_at: Instant
    # The instant a dispute is refused with once the piece has settled (AM-11); absent in results of pieces
    # settled before it was added (the piece's `state` has it).
    publicity_window_closes_at: Instant | None = None


class LateBatch(ContractModel):
    """R-2: the answer of the Python client to a conversion batch reported after its piece settled: the batch
    changes nothing and is recorded as late (`python -m starter late`)."""

    task_id: str
    content_id: str
    event_id: str
    count: Count
    occurred_at: Instant
    cheating: bool
    settled_at: Instant
    note: str  # "late: settled at <instant +08:00>"


MountedContentInput.model_rebuild()
