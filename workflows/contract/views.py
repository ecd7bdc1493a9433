"""What the `state` query of a mount task and of a mounted piece answers: a view published in schemas/, apart from
the state the workflow carries across continue-as-new (which is private and may change without a contract change).

Every view says what the workflow waits for, its next deadline, and any escalation with why and what to do; the
money is the money picture (money.py). The same view is what the Temporal UI shows as the workflow's current
details (workflows/details.py renders it as markdown)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from workflows.contract.common import Count, Fen, StateModel
from workflows.contract.money import BusinessInstant, PieceMoney, TaskMoney
from workflows.contract.mount_task import EndReason, PublishTaskRequest, TaskStage
from workflows.contract.mounted_content import (
    BatchRecord,
    ContentStage,
    CountingFreeze,
    DisposalReason,
    DisputeRecord,
    SettlementHold,
    SettlementRecord,
    VisibilityKind,
)

# How many of a piece's batches its view lists.
RECENT_BATCHES = 100


class Escalation(StateModel):
    """Why an operator is needed, since when, and what to do."""

    what: str
    since: BusinessInstant | None = None
    why: str
    to_do: str


class Progress(StateModel):
    """Where a workflow is: what it waits for, its next deadline, and its escalations (none when it runs alone)."""

    waiting_for: str = ""
    next_deadline: str | None = None  # what the deadline is, e.g. "publicity window closes"
    next_deadline_at: BusinessInstant | None = None
    escalations: list[Escalation] = Field(default_factory=list)

    @property
    def escalated(self) -> bool:
        return bool(self.escalations)


class RunInfo(StateModel):
    """The `run` query of a workflow that continues as new: the messages its current run has counted towards its
    bound (README "Operating it": a long-lived workflow keeps each run's history short)."""

    messages_this_run: Count
    bound: Count


class PieceCounts(StateModel):
    """A task's pieces: mounted (every one ever), open (not settled or closed yet), settled, closed without
    payment, and held (a dispute or a penalty holds their settlement, AM-13)."""

    mounted: Count = 0
    open: Count = 0
    settled: Count = 0
    closed: Count = 0
    held: Count = 0


class RefundPartView(StateModel):
    part: int
    key: str  # its business key in the ledger
    refunded_fen: Fen
    refunded_at: BusinessInstant
    reserve_fen: Fen  # kept back for the pieces still held
    held_content_ids: list[str] = Field(default_factory=list)  # the pieces the reserve is kept for
    final: bool


class MountTaskView(StateModel):
    """A mount task (the `state` query): its terms, period, money picture, piece counts and progress. The pieces
    themselves are listed page by page (`python -m starter pieces`)."""

    kind: Literal["mount-task"] = "mount-task"
    task_id: str
    stage: TaskStage
    client_id: str | None = None
    terms: PublishTaskRequest | None = None  # as published (a repeated publish with the same terms is answered)
    budget_fen: Fen = 0
    period_start_at: BusinessInstant | None = None
    period_end_at: BusinessInstant | None = None
    ended_at: BusinessInstant | None = None
    end_reason: EndReason | None = None
    cancel_reason: str | None = None
    refused_because: list[str] = Field(default_factory=list)  # why the last publish was refused
    money: TaskMoney
    pieces: PieceCounts
    creators_joined: Count = 0
    refund_parts: list[RefundPartView] = Field(default_factory=list)
    progress: Progress


class MountedContentView(StateModel):
    """A mounted piece (the `state` query): its billing period and windows, what counted, its money, disputes,
    holds and progress."""

    kind: Literal["mounted-content"] = "mounted-content"
    task_id: str
    content_id: str
    creator_id: str
    client_id: str
    payee_account: str
    price_fen: Fen
    stage: ContentStage
    mounted_at: BusinessInstant
    billing_period_ends_at: BusinessInstant
    counting_stops_at: BusinessInstant
    publicity_window_closes_at: BusinessInstant
    task_period_ended_at: BusinessInstant | None = None
    budget_exhausted_at: BusinessInstant | None = None
    revoked_at: BusinessInstant | None = None
    visibility_lost_at: BusinessInstant | None = None
    visibility_lost_kind: VisibilityKind | None = None
    disposed_at: BusinessInstant | None = None
    disposal_reason: DisposalReason | None = None
    unmounted_at: BusinessInstant | None = None
    settled_at: BusinessInstant | None = None
    counted_conversions: Count = 0
    fee_fen: Fen = 0  # what the counted conversions come to (AM-10), or what a dispute's resolution fixed
    batches_received: Count = 0
    # The latest batches recorded, by event id (at most RECENT_BATCHES, oldest first): what each one counted, and
    # whether it was voided or came late. The ledger's database has every batch and its grant (content_batches).
    recent_batches: dict[str, BatchRecord] = Field(default_factory=dict)
    batches_pending: Count = 0  # received (batches and voids), not yet recorded and counted against the budget
    late_batches: Count = 0
    agreed_fee_fen: Fen | None = None  # fixed by a dispute's resolution (AM-17)
    money: PieceMoney
    settlement: SettlementRecord | None = None  # as posted to the ledger (its transfer key included)
    disputes: list[DisputeRecord] = Field(default_factory=list)
    settlement_hold: SettlementHold | None = None
    counting_freezes: list[CountingFreeze] = Field(default_factory=list)
    escalated: bool = False  # AM-17: a dispute past its working days, or a settlement that cannot complete
    escalation_reason: str | None = None
    progress: Progress
