"""The ledger's activities (ports/ledger.py names them): one pydantic model in, one out; a refusal of the ledger is
a non-retryable ApplicationError of its kind (InsufficientFunds with the balance), anything else is retried."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import TYPE_CHECKING, Any

from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.ledger_model import InsufficientFunds, LedgerError
from ports import ledger as port
from ports.ledger import (
    INSUFFICIENT_FUNDS,
    AccrualGrant,
    AccrueRequest,
    AccrueResult,
    ContentClosure,
    DepositRequest,
    DepositResult,
    FreezeRequest,
    FreezeResult,
    HoldContentRequest,
    HoldContentResult,
    RefundPartRequest,
    RefundPartResult,
    RefundRequest,
    RefundResult,
    ReleasedEvent,
    ReleaseRequest,
    ReleaseResult,
    SettleRequest,
    SettleResult,
    TaskClosuresRequest,
    TaskClosuresResult,
    TaskMoney,
    TaskMoneyRequest,
)
from ports.logs import BoundLog

if TYPE_CHECKING:
    from activities.ledger import Ledger


@contextmanager
def as_refusals() -> Iterator[None]:
    """The ledger's refusals as non-retryable ApplicationErrors, for every activity that moves money: refusals are
    final, retrying an activity that lacks funds or breaks a rule gives the same answer."""
    try:
        yield
    except InsufficientFunds as error:
        details = {"account": error.account, "available_fen": error.available_fen, "needed_fen": error.needed_fen}
        raise ApplicationError(str(error), details, type=INSUFFICIENT_FUNDS, non_retryable=True) from error
    except (LedgerError, ValueError) as error:
        raise ApplicationError(str(error), type=type(error).__name__, non_retryable=True) from error


# Money movements write one line each; the worker's log configuration adds the activity's workflow and business ids.
log = BoundLog(name="xingtu.ledger")


class LedgerActivities:
    def __init__(self, ledger: Ledger) -> None:
        self.ledger = ledger

    @activity.defn(name=port.FREEZE.name)
    def freeze(self, request: FreezeRequest) -> FreezeResult:
        with as_refusals():
            result = FreezeResult(**self.ledger.freeze(request.task_id, request.client_id, request.budget_fen,
                                                       request.platform_fee_fen))
        log.info("ledger frozen", client_id=request.client_id, frozen_fen=result.frozen_fen)
        return result

    @activity.defn(name=port.DEPOSIT.name)
    def deposit(self, request: DepositRequest) -> DepositResult:
        with as_refusals():
            moved = self.ledger.deposit(request.deposit_id, request.client_id, request.amount_fen)
        return DepositResult(transfer_id=moved.id, amount_fen=moved.amount_fen, duplicate=moved.duplicate,
                             mismatch=moved.mismatch)

    @activity.defn(name=port.ACCRUE.name)
    def accrue(self, request: AccrueRequest) -> AccrueResult:
        with as_refusals():
            accruals = self.ledger.accrue_many(request.task_id, request.content_id, request.items)
        last = accruals[-1]
        return AccrueResult(
            results=[AccrualGrant(event_id=a.event_id, granted_count=a.granted_count, granted_fen=a.granted_fen,
                                  released=a.released, duplicate=a.duplicate) for a in accruals],
            spent_fen=last.spent_fen, remaining_fen=last.remaining_fen,
            exhausted_at=None if last.exhausted_at is None else datetime.fromisoformat(last.exhausted_at))

    @activity.defn(name=port.RELEASE.name)
    def release(self, request: ReleaseRequest) -> ReleaseResult:
        with as_refusals():
            released = self.ledger.release_many(request.task_id, request.event_ids)
        return ReleaseResult(results=[ReleasedEvent(**dataclasses.asdict(r)) for r in released],
                             released_fen=sum(r.released_fen for r in released))

    @activity.defn(name=port.SETTLE.name)
    def settle(self, request: SettleRequest) -> SettleResult:
        with as_refusals():
            result = SettleResult(**self.ledger.settle(request.task_id, request.content_id, request.payee_account,
                                                       request.fee_fen, request.platform_fee_fen,
                                                       request.outcome))
        log.info("ledger settled", payee_account=request.payee_account, fee_fen=result.fee_fen,
                 platform_fee_fen=result.platform_fee_fen)
        return result

    @activity.defn(name=port.REFUND.name)
    def refund(self, request: RefundRequest) -> RefundResult:
        with as_refusals():
            result = RefundResult(**self.ledger.refund(request.task_id, request.client_id))
        log.info("ledger refunded", client_id=request.client_id, refunded_fen=result.refunded_fen)
        return result

    @activity.defn(name=port.TASK_CLOSURES.name)
    def task_closures(self, request: TaskClosuresRequest) -> TaskClosuresResult:
        """Read-only: the task's pieces that closed after `after_seq` (MountTaskWorkflow reads them on a timer)."""
        with as_refusals():
            closures = self.ledger.task_closures(request.task_id, request.after_seq, request.limit)
            with self.ledger.db.transaction() as tx:
                held = self.ledger.open_holds(tx, request.task_id)
            money = TaskMoney(**self.ledger.task_money(request.task_id)).picture()
        return TaskClosuresResult(
            closures=[ContentClosure(seq=c.seq, content_id=c.content_id, outcome=c.outcome, fee_fen=c.fee_fen,
                                     platform_fee_fen=c.platform_fee_fen) for c in closures],
            last_seq=closures[-1].seq if closures else request.after_seq, held_content_ids=held, money=money)

    @activity.defn(name=port.HOLD_CONTENT.name)
    def hold_content(self, request: HoldContentRequest) -> HoldContentResult:
        """AM-13: a piece's settlement is held (dispute or penalty); its task keeps a reserve for it."""
        with as_refusals():
            recorded = self.ledger.hold_content(request.task_id, request.content_id, request.reason,
                                                request.held_at)
        return HoldContentResult(task_id=request.task_id, content_id=request.content_id, recorded=recorded)

    @activity.defn(name=port.REFUND_PART.name)
    def refund_part(self, request: RefundPartRequest) -> RefundPartResult:
        with as_refusals():
            result = RefundPartResult(**self.ledger.refund_part(request.task_id, request.client_id, request.part))
        log.info("ledger refunded a part", client_id=request.client_id, part=request.part,
                 refunded_fen=result.refunded_fen, reserve_fen=result.reserve_fen)
        return result

    @activity.defn(name=port.TASK_MONEY.name)
    def task_money(self, request: TaskMoneyRequest) -> TaskMoney:
        with as_refusals():
            return TaskMoney(**self.ledger.task_money(request.task_id))

    def all(self) -> list[Callable[..., Any]]:
        """The activities to register on a worker."""
        return [self.freeze, self.deposit, self.accrue, self.release, self.settle, self.refund, self.task_closures,
                self.task_money, self.hold_content, self.refund_part]
