"""The ledger as the workflows see it (activities/ledger.py implements it): freezing a task's budget, accruing
conversions against it, settling pieces, refunding (whole, or in parts while pieces are held: AM-13), and reading
where a task's money is. Amounts are integer fen (strict: a float or a bool is refused before any money moves)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from ports.port import ActivityPort
from workflows.contract.money import TaskMoney as MoneyPicture

# How a piece of content closed (AM-12, AM-13): settled (paid what it earned) or closed (disposed of, AM-16).
ClosureOutcome = Literal["settled", "closed"]
# Why a piece's settlement is held (AM-13): a fee dispute (AM-17) or a penalty freezing its creator's fees (AM-19).
HoldReason = Literal["dispute", "penalty"]
# The error type of a refusal for lack of money (activities raise it non-retryable; workflows answer it).
INSUFFICIENT_FUNDS = "InsufficientFunds"

Fen = Annotated[int, Field(strict=True, ge=0)]
PositiveFen = Annotated[int, Field(strict=True, gt=0)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class FreezeRequest(_Model):
    task_id: str = Field(min_length=1)
    client_id: str = Field(min_length=1)
    budget_fen: PositiveFen
    platform_fee_fen: Fen  # 10% of the budget, half-up, computed by workflows/rules


class FreezeResult(_Model):
    task_id: str
    client_id: str
    transfer_id: str
    frozen_fen: int
    budget_fen: int
    platform_fee_cap_fen: int
    duplicate: bool
    mismatch: bool  # a repeat asked for other amounts; the first freeze stands


class DepositRequest(_Model):
    deposit_id: str = Field(min_length=1)
    client_id: str = Field(min_length=1)
    amount_fen: PositiveFen


class DepositResult(_Model):
    transfer_id: str
    amount_fen: int
    duplicate: bool
    mismatch: bool


class AccrualItem(_Model):
    event_id: str = Field(min_length=1)
    count: Annotated[int, Field(strict=True, ge=0)]
    price_fen: PositiveFen
    occurred_at: AwareDatetime


class AccrueRequest(_Model):
    task_id: str = Field(min_length=1)
    content_id: str = Field(min_length=1)
    items: list[AccrualItem] = Field(min_length=1)


class AccrualGrant(_Model):
    event_id: str
    granted_count: int
    granted_fen: int
    released: bool
    duplicate: bool


class AccrueResult(_Model):
    results: list[AccrualGrant]
    spent_fen: int
    remaining_fen: int
    exhausted_at: AwareDatetime | None  # AM-10, R-3: the latest occurred_at granted when the budget was used up


class ReleaseRequest(_Model):
    task_id: str = Field(min_length=1)
    event_ids: list[str] = Field(min_length=1)


class ReleasedEvent(_Model):
    event_id: str
    released_fen: int
    accrued: bool


class ReleaseResult(_Model):
    results: list[ReleasedEvent]
    released_fen: int


class SettleRequest(_Model):
    task_id: str = Field(min_length=1)
    content_id: str = Field(min_length=1)
    payee_account: str  # creator:{id}:payable, or agency:{id}:payable for an MCN creator
    fee_fen: Fen
    platform_fee_fen: Fen
    outcome: ClosureOutcome = "settled"


class SettleResult(_Model):
    task_id: str
    content_id: str
    payee_account: str
    fee_fen: int
    platform_fee_fen: int  # actually charged: never past the platform fee frozen for the task
    platform_fee_requested_fen: int
    duplicate: bool
    outcome: ClosureOutcome = "settled"
    closure_seq: int | None = None  # the closure's number in the task (None: settled before closures were kept)


class TaskClosuresRequest(_Model):
    task_id: str = Field(min_length=1)
    after_seq: Annotated[int, Field(strict=True, ge=0)] = 0
    limit: Annotated[int, Field(strict=True, ge=1, le=5_000)] = 1_000


class ContentClosure(_Model):
    seq: int
    content_id: str
    outcome: ClosureOutcome
    fee_fen: int
    platform_fee_fen: int


class TaskClosuresResult(_Model):
    closures: list[ContentClosure]
    last_seq: int  # the number to read after next time (after_seq when nothing new closed)
    held_content_ids: list[str] = []  # AM-13: pieces whose settlement is held and that have not closed
    # The task's money picture at this read (absent from answers recorded before it was added).
    money: MoneyPicture | None = None


class RefundRequest(_Model):
    task_id: str = Field(min_length=1)
    client_id: str = Field(min_length=1)


class RefundResult(_Model):
    task_id: str
    client_id: str
    refunded_fen: int
    duplicate: bool


class TaskMoneyRequest(_Model):
    task_id: str = Field(min_length=1)


class TaskMoney(_Model):
    """The task's budget counter, its escrow, and its money picture under the names of
    workflows/contract/money.TaskMoney (read in one transaction: they add up to the fen)."""

    # Answers recorded before the money picture carried `paid_to_creators_fen` (now `paid_fen`): still read.
    model_config = ConfigDict(extra="ignore", frozen=True)

    task_id: str
    budget_fen: int
    spent_fen: int
    remaining_fen: int
    exhausted_at: AwareDatetime | None
    refunded_at: AwareDatetime | None
    escrow_balance_fen: int
    frozen_fen: int
    accrued_fen: int = 0
    platform_fee_on_accrued_fen: int = 0
    paid_fen: int = 0
    platform_fees_fen: int
    held_fen: int = 0
    refunded_fen: int
    refund_to_come_fen: int = 0

    def picture(self) -> MoneyPicture:
        return MoneyPicture(**{k: getattr(self, k) for k in MoneyPicture.model_fields if hasattr(self, k)})


class HoldContentRequest(_Model):
    task_id: str = Field(min_length=1)
    content_id: str = Field(min_length=1)
    reason: HoldReason
    held_at: AwareDatetime


class HoldContentResult(_Model):
    task_id: str
    content_id: str
    recorded: bool  # False: a repeat, or the piece was held already


class RefundPartRequest(_Model):
    task_id: str = Field(min_length=1)
    client_id: str = Field(min_length=1)
    part: Annotated[int, Field(strict=True, ge=1)]


class RefundPartResult(_Model):
    task_id: str
    client_id: str
    part: int
    refunded_fen: int
    reserve_fen: int  # kept in escrow for the held pieces (AM-13)
    held_accrued_fen: int
    budget_closed_fen: int  # budget still free, refunded in this part and no longer granted to any batch
    held_content_ids: list[str]
    duplicate: bool


FREEZE = ActivityPort[FreezeRequest, FreezeResult]("ledger.freeze", FreezeResult)
DEPOSIT = ActivityPort[DepositRequest, DepositResult]("ledger.deposit", DepositResult)
ACCRUE = ActivityPort[AccrueRequest, AccrueResult]("ledger.accrue", AccrueResult)
RELEASE = ActivityPort[ReleaseRequest, ReleaseResult]("ledger.release", ReleaseResult)
SETTLE = ActivityPort[SettleRequest, SettleResult]("ledger.settle", SettleResult)
REFUND = ActivityPort[RefundRequest, RefundResult]("ledger.refund", RefundResult)
TASK_CLOSURES = ActivityPort[TaskClosuresRequest, TaskClosuresResult]("ledger.task_closures", TaskClosuresResult)
TASK_MONEY = ActivityPort[TaskMoneyRequest, TaskMoney]("ledger.task_money", TaskMoney)
HOLD_CONTENT = ActivityPort[HoldContentRequest, HoldContentResult]("ledger.hold_content", HoldContentResult)
REFUND_PART = ActivityPort[RefundPartRequest, RefundPartResult]("ledger.refund_part", RefundPartResult)
