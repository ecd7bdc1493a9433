"""Public contract of MountTaskWorkflow (`mount-task:{task_id}`): AM-1..AM-7, AM-13..AM-15."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any, Literal

from pydantic import Field, model_validator
from pydantic.json_schema import SkipJsonSchema

from workflows.contract.common import (
    ContractModel,
    Fen,
    Identifier,
    Instant,
    PositiveFen,
    StateModel,
    Text,
)
from workflows.contract.money import TaskMoney


class BillingRule(ContractModel):
    """Which conversion event is paid, and the price per event."""

    conversion_event: Text | None = None
    price_fen: PositiveFen | None = None


class PublishTaskRequest(ContractModel):
    """AM-2. Fields the form requires may be left out here: the refusal then names each missing one."""

    task_id: Identifier
    client_id: Identifier
    task_type: Text | None = Field(None, description='must be "submission"')
    settlement_method: Text | None = Field(None, description='must be "authorized_mount"')
    task_name: Text | None = None
    task_icon_url: Text | None = None
    header_image_url: Text | None = None
    component_id: Text | None = None
    budget_fen: Fen | None = None
    period_start_at: Instant | None = None
    period_end_at: Instant | None = None
    billing_rule: BillingRule | None = None
    public_days: int | None = Field(None, strict=True, ge=0, le=3650)


class MountTaskInput(ContractModel):
    """Start input. A task starts as a draft and is published by the `publish` update (update-with-start)."""

    task_id: Identifier
    # Set only when the workflow continues as new: the state it carries over.
    # Private: set only when the run continues as new, so not in the published schema (it may change freely).
    carried_state: SkipJsonSchema[MountTaskState | None] = None


class PublicationResult(ContractModel):
    task_id: str
    published_at: Instant
    budget_fen: Fen
    frozen_fen: Fen
    platform_fee_fen: Fen
    freeze_transfer_id: str


class JoinRequest(ContractModel):
    creator_id: Identifier


class JoinResult(ContractModel):
    creator_id: str
    joined_at: Instant
    already_joined: bool
    payee_account: str


class ReportMountRequest(ContractModel):
    """AM-6: what the main site reports for each mount."""

    content_id: Identifier
    creator_id: Identifier
    mounted_at: Instant


class MountResult(ContractModel):
    content_id: str
    content_workflow_id: str
    billing_period_ends_at: Instant


class RevokeContentRequest(ContractModel):
    creator_id: Identifier
    content_id: Identifier
    # The creator app's instant of the revocation (AM-14); within the clock skew of its receipt (as a mount's
    # instant is). Left out: the instant the platform receives it.
    revoked_at: Instant | None = None


class RevokeAllRequest(ContractModel):
    creator_id: Identifier
    revoked_at: Instant | None = None  # as RevokeContentRequest.revoked_at (AM-15)


class RevokeAuthorizationSignal(ContractModel):
    """Fire-and-forget revocation from a creator's app: no content_id means all of the creator's pieces."""

    creator_id: Identifier
    content_id: Identifier | None = None
    revoked_at: Instant | None = None  # as RevokeContentRequest.revoked_at


class RevocationResult(ContractModel):
    creator_id: str
    revoked_at: Instant
    content_ids: list[str]


class CancelRequest(ContractModel):
    reason: Text = Field(min_length=1)
    requested_by: Identifier


class TaskStage(StrEnum):
    DRAFT = "draft"
    PUBLISHED = "published"  # task period open (or not yet started)
    ENDED = "ended"  # period over; waiting for every piece to settle or close
    REFUNDED = "refunded"  # unspent escrow returned; the workflow is done
    NOT_PUBLISHED = "not_published"  # a draft that was never published


class EndReason(StrEnum):
    PERIOD_OVER = "period_over"
    BUDGET_USED_UP = "budget_used_up"
    CANCELLED = "cancelled"


class CreatorEntry(StateModel):
    creator_id: str
    payee_account: str
    joined_at: datetime
    authorization_in_force: bool = True
    revoked_all_at: datetime | None = None
    removed_by_case: str | None = None  # removed from this task (清退) by that violation case


class PieceEntry(StateModel):
    content_id: str
    creator_id: str
    mounted_at: datetime
    status: Literal["mounted", "unmounted", "settled", "closed"] = "mounted"
    revoked_at: datetime | None = None
    fee_fen: int | None = None
    platform_fee_fen: int | None = None


class RefundPart(StateModel):
    """AM-13: one part of the task's refund, posted once under `key` (its ledger business key)."""

    part: int  # 1, 2, ... in order; the last one (final) closes the task's money
    key: str
    refunded_fen: int
    refunded_at: datetime
    reserve_fen: int = 0  # kept in escrow for the pieces still held
    held_content_ids: list[str] = Field(default_factory=list)
    final: bool = False


class Published(StateModel):
    """What `publish` sets at once (AM-2): a published task has every one of these, so the code that needs them
    takes this (never optional fields of the state)."""

    client_id: str
    terms: PublishTaskRequest  # the request as published: the same request again is answered with it
    budget_fen: int
    period_start_at: datetime
    period_end_at: datetime
    price_fen: int  # billing_rule.price_fen


def published_terms(request: PublishTaskRequest) -> Published | None:
    """The terms a publication request sets; None when the form lacks one (task_form_problems names it)."""
    rule = request.billing_rule
    if (request.budget_fen is None or request.period_start_at is None or request.period_end_at is None
            or rule is None or rule.price_fen is None):
        return None
    return Published(client_id=request.client_id, terms=request, budget_fen=request.budget_fen,
                     period_start_at=request.period_start_at, period_end_at=request.period_end_at,
                     price_fen=rule.price_fen)


class MountTaskState(StateModel):
    task_id: str
    stage: TaskStage = TaskStage.DRAFT
    published: Published | None = None  # set by `publish`, with `publication`
    publication: PublicationResult | None = None
    last_refusal: list[str] = Field(default_factory=list)
    ended_at: datetime | None = None
    end_reason: EndReason | None = None
    cancel_reason: str | None = None
    budget_fen: int = 0
    frozen_fen: int = 0
    spent_fen: int = 0
    paid_to_creators_fen: int = 0
    platform_fees_fen: int = 0
    refunded_fen: int = 0
    creators: dict[str, CreatorEntry] = Field(default_factory=dict)
    pieces: dict[str, PieceEntry] = Field(default_factory=dict)
    pieces_open: int = 0
    # Runs that keep the register of creators and pieces in the database (workflows/task_register.py) leave
    # `creators` and `pieces` empty and count: pieces mounted (the register's highest number seen), closed (of
    # which settled), and creators who joined.
    register_in_db: bool = False
    pieces_count: int = 0
    pieces_closed: int = 0
    pieces_settled: int = 0
    creators_joined: int = 0
    end_notified_count: int = 0
    messages_this_run: int = 0
    # Pieces report their closure to the ledger, and the task reads it from there (not one message a piece):
    # the number of the last closure read, and when the task last looked.
    closures_read_seq: int = 0
    closures_read_at: datetime | None = None
    # AM-13: pieces whose settlement is held (a fee dispute, a penalty), as the ledger listed them at the last
    # look, and the refund in parts: refunded_fen is their total.
    held_content_ids: list[str] = Field(default_factory=list)
    refund_parts: list[RefundPart] = Field(default_factory=list)
    # The ledger's money picture at the last look (the `state` view shows it; None before the first look).
    money: TaskMoney | None = None

    @model_validator(mode="before")
    @classmethod
    def _published_from_flat_fields(cls, data: Any) -> Any:
        """Runs carried over before `published` existed hold its fields flat (request, client_id, period_start_at,
        period_end_at, all from the request): the request gives them again."""
        if isinstance(data, dict) and data.get("published") is None and data.get("request") is not None:
            terms = published_terms(PublishTaskRequest.model_validate(data["request"]))
            if terms is not None:
                data = {**data, "published": terms}
        return data


class TaskResult(ContractModel):
    task_id: str
    stage: TaskStage
    publication: PublicationResult | None
    ended_at: Instant | None
    end_reason: EndReason | None
    frozen_fen: Fen
    paid_to_creators_fen: Fen
    platform_fees_fen: Fen
    refunded_fen: Fen


# Messages the task's own content workflows send back to it (not for outside callers). ContentClosedSignal is
# only sent by pieces that started before their closures went to the ledger (mounted_content.CLOSURE_IN_LEDGER).
class ContentClosedSignal(ContractModel):
    content_id: Identifier
    fee_fen: Fen
    platform_fee_fen: Fen
    settled: bool


class BudgetExhaustedSignal(ContractModel):
    exhausted_at: Instant


# Sent by a violation case (through an activity), not for outside callers.
class CreatorRemoved(ContractModel):
    """R-12 (清退): every piece of the creator in this task is unmounted at `removed_at`; rejoining is refused
    while the case's penalty stands (the directory names the case)."""

    case_id: Identifier
    creator_id: Identifier
    removed_at: Instant


class RemovalWithdrawn(ContractModel):
    """R-12: the appeal was upheld: the creator may join again."""

    case_id: Identifier
    creator_id: Identifier


MountTaskInput.model_rebuild()
