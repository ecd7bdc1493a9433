"""Penalties acting on the world (AM-18..AM-22, R-12, R-13) as the workflows see them: applying, ending and
lifting a penalty, holding and releasing the settlements of a creator whose fees are frozen, and acting on the
tasks and pieces a penalty reaches. Every call is idempotent by the case and penalty ids."""

from __future__ import annotations

from datetime import timedelta
from typing import Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from ports.port import ACTIVITY_TIMEOUT, ActivityPort
from workflows.contract.mounted_content import CountingFrozen, CountingResumed
from workflows.rules.penalties import PartyKind, PenaltyKind

RELEASE_BATCH = 100  # held settlements signalled per activity call (bounded fan-out)
PIECES_BATCH = 200  # pieces told of a freeze of in-flight tasks per activity call (bounded fan-out)


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class PenaltyAction(_Model):
    case_id: str = Field(min_length=1)
    penalty_id: str = Field(min_length=1)
    party_kind: PartyKind
    party_id: str = Field(min_length=1)
    kind: PenaltyKind
    until_at: AwareDatetime | None = None
    amount_fen: int | None = None
    deduct_when_final: bool = False
    points: int | None = None
    at: AwareDatetime  # the business instant of the action (notice, outcome, expiry, lift)
    task_id: str | None = None  # remove_from_task
    reason: str | None = None  # lift: the operator's reason (AM-22)
    # the case acts on tasks (FREEZES_STAND_PATCH): its freeze of in-flight tasks holds settlements.
    acts_on_tasks: bool = False


class PenaltyEffect(_Model):
    penalty_id: str
    frozen_fen: int = 0
    deducted_fen: int = 0
    released_fen: int = 0


class HoldSettlementRequest(_Model):
    creator_id: str
    workflow_id: str
    task_id: str
    content_id: str
    fee_fen: int = Field(ge=0)
    at: AwareDatetime
    # the account the settlement would pay (an MCN creator's agency): a freeze of its party holds it too.
    payee_account: str | None = None


class HoldSettlementResult(_Model):
    held: bool
    case_id: str | None


class ReleaseHeldRequest(_Model):
    case_id: str
    outcome: Literal["paid", "deducted"]
    at: AwareDatetime
    limit: int = Field(RELEASE_BATCH, ge=1, le=1000)


class ReleaseHeldResult(_Model):
    released: int
    passed_on: int  # still held, now by another case freezing the same creator
    more: bool  # call again: the batch was full


class DeductHeldRequest(_Model):
    case_id: str
    task_id: str
    content_id: str
    payee_account: str
    fee_fen: int = Field(ge=0)


class DeductHeldResult(_Model):
    deducted_fen: int


class SignalPiecesRequest(_Model):
    """R-12: tell every piece the creator has had mounted (any task) that a freeze of their in-flight tasks
    began or ended; one page of at most `limit` pieces after `after`."""

    creator_id: str
    signal: Literal["counting_frozen", "counting_resumed"]
    frozen: CountingFrozen | None = None
    resumed: CountingResumed | None = None
    after: str = ""
    limit: int = Field(PIECES_BATCH, ge=1, le=1000)


class SignalPiecesResult(_Model):
    signalled: int
    last: str  # pass as `after` for the next page
    more: bool


class ActOnTaskRequest(_Model):
    """R-12: what a removal from a task does to the task: `remove` (a creator's pieces unmounted), `reinstate`
    (appeal upheld), `cancel` (a removed client's task, AM-7)."""

    case_id: str
    party_id: str
    task_id: str
    action: Literal["remove", "reinstate", "cancel"]
    at: AwareDatetime


class ActOnTaskResult(_Model):
    outcome: str


APPLY = ActivityPort[PenaltyAction, PenaltyEffect]("penalties.apply", PenaltyEffect)
WITHDRAW = ActivityPort[PenaltyAction, PenaltyEffect]("penalties.withdraw", PenaltyEffect)
FINALIZE = ActivityPort[PenaltyAction, PenaltyEffect]("penalties.finalize", PenaltyEffect)
EXPIRE = ActivityPort[PenaltyAction, PenaltyEffect]("penalties.expire", PenaltyEffect)
LIFT = ActivityPort[PenaltyAction, PenaltyEffect]("penalties.lift", PenaltyEffect)
# The two pages of a fan-out heartbeat after each signal: a page may take minutes, a stuck one is retried.
SIGNAL_PIECES = ActivityPort[SignalPiecesRequest, SignalPiecesResult](
    "penalties.signal_pieces", SignalPiecesResult, timeout=timedelta(minutes=5), heartbeat=ACTIVITY_TIMEOUT)
ACT_ON_TASK = ActivityPort[ActOnTaskRequest, ActOnTaskResult]("penalties.act_on_task", ActOnTaskResult)
HOLD_SETTLEMENT = ActivityPort[HoldSettlementRequest, HoldSettlementResult](
    "penalties.hold_settlement", HoldSettlementResult)
RELEASE_HELD = ActivityPort[ReleaseHeldRequest, ReleaseHeldResult](
    "penalties.release_held", ReleaseHeldResult, timeout=timedelta(minutes=5), heartbeat=ACTIVITY_TIMEOUT)
DEDUCT_HELD = ActivityPort[DeductHeldRequest, DeductHeldResult]("penalties.deduct_held", DeductHeldResult)
