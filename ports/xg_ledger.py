"""The money of Xingguang tasks (R-8, R-9, XG-8, XG-10) as the workflows see it: freezing an order, settling a
piece, charging, refunding, compensating, freezing a balance, and claiming and voiding billable-event batches (R-1).
The amounts are computed by the workflow (workflows/rules/xingguang_money.py); each call is idempotent by its
business keys."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from ports.ledger import Fen, PositiveFen
from ports.port import ActivityPort


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class XgFreezeRequest(_Model):
    task_id: str = Field(min_length=1)
    client_id: str = Field(min_length=1)
    amount_fen: PositiveFen


class XgFreezeResult(_Model):
    transfer_id: str
    frozen_fen: int
    duplicate: bool
    mismatch: bool


class XgSettleRequest(_Model):
    task_id: str = Field(min_length=1)
    piece_id: str = Field(min_length=1)
    payee_account: str
    creator_earnings_fen: Fen
    promotion_spend_fen: Fen
    platform_fee_fen: Fen
    provider_id: str | None = None
    provider_fee_fen: Fen = 0


class XgSettleResult(_Model):
    task_id: str
    piece_id: str
    creator_earnings_fen: int
    promotion_spend_fen: int
    platform_fee_fen: int
    provider_fee_fen: int
    transfer_ids: list[str]


class XgChargeRequest(_Model):
    """Escrow to platform revenue: the R-9 delay-period task service fee."""

    task_id: str = Field(min_length=1)
    charge_id: str = Field(min_length=1)
    amount_fen: PositiveFen
    reason: str = Field(min_length=1)


class XgChargeResult(_Model):
    transfer_id: str
    amount_fen: int


class XgRefundRequest(_Model):
    """R-8 / R-9: the task's remainder, less recorded XG-8 deductions, back to the client."""

    task_id: str = Field(min_length=1)
    client_id: str = Field(min_length=1)
    deduction_fen: Fen = 0
    deduction_reason: str = ""


class XgRefundResult(_Model):
    deducted_fen: int
    refunded_fen: int


class XgCompensateRequest(_Model):
    """XG-10: the platform pays the client out of its revenue."""

    task_id: str = Field(min_length=1)
    compensation_id: str = Field(min_length=1)
    client_id: str = Field(min_length=1)
    amount_fen: PositiveFen
    memo: str = ""


class XgFreezeBalanceRequest(_Model):
    """XG-8: a hold on the client's available balance, with its recorded reason."""

    task_id: str = Field(min_length=1)
    penalty_id: str = Field(min_length=1)
    client_id: str = Field(min_length=1)
    amount_fen: PositiveFen
    reason: str = Field(min_length=1)


class XgMoveResult(_Model):
    transfer_id: str
    amount_fen: int
    duplicate: bool


class EventRef(_Model):
    event_id: str = Field(min_length=1)
    piece_id: str = ""


class ClaimEventsRequest(_Model):
    """Claim batches as first seen (R-1: a batch reported twice counts once)."""

    task_id: str = Field(min_length=1)
    op_key: str = Field(min_length=1)
    events: list[EventRef] = Field(min_length=1)


class ClaimedEvent(_Model):
    event_id: str
    status: Literal["new", "duplicate", "voided"]


class ClaimEventsResult(_Model):
    events: list[ClaimedEvent]


class EventGrant(_Model):
    event_id: str
    billed_events: Annotated[int, Field(strict=True, ge=0)]


class RecordGrantsRequest(_Model):
    task_id: str = Field(min_length=1)
    grants: list[EventGrant] = Field(min_length=1)


class VoidEventsRequest(_Model):
    """R-1: void batches by event id; a batch not seen yet is recorded as void and never bills."""

    task_id: str = Field(min_length=1)
    op_key: str = Field(min_length=1)
    event_ids: list[str] = Field(min_length=1)


class VoidedEvent(_Model):
    event_id: str
    piece_id: str  # "" when the batch had not arrived
    billed_events: int  # what this void takes back (0 for an unknown or already voided batch)


class VoidEventsResult(_Model):
    events: list[VoidedEvent]


FREEZE = ActivityPort[XgFreezeRequest, XgFreezeResult]("xg_ledger.freeze", XgFreezeResult)
SETTLE_PIECE = ActivityPort[XgSettleRequest, XgSettleResult]("xg_ledger.settle_piece", XgSettleResult)
CHARGE = ActivityPort[XgChargeRequest, XgChargeResult]("xg_ledger.charge", XgChargeResult)
REFUND = ActivityPort[XgRefundRequest, XgRefundResult]("xg_ledger.refund", XgRefundResult)
COMPENSATE = ActivityPort[XgCompensateRequest, XgMoveResult]("xg_ledger.compensate", XgMoveResult)
FREEZE_BALANCE = ActivityPort[XgFreezeBalanceRequest, XgMoveResult]("xg_ledger.freeze_balance", XgMoveResult)
CLAIM_EVENTS = ActivityPort[ClaimEventsRequest, ClaimEventsResult]("xg_ledger.claim_events", ClaimEventsResult)
RECORD_GRANTS = ActivityPort[RecordGrantsRequest, None]("xg_ledger.record_grants", None)
VOID_EVENTS = ActivityPort[VoidEventsRequest, VoidEventsResult]("xg_ledger.void_events", VoidEventsResult)
