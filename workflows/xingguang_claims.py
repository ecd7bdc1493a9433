"""Claims against the platform and penalties on the client of a Xingguang task (XG-7, XG-8, XG-10, R-14), as a base
class of XingguangTaskWorkflow. A rule refuses with the same type whether the validator or the handler finds it
(CompensationRefused, PenaltyRefused), so a caller handles one type per rule family."""

from __future__ import annotations

import asyncio
from datetime import datetime

from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from activities.xg_ledger import XgCompensateRequest, XgFreezeBalanceRequest, XgMoveResult
    from workflows.contract import xingguang as c
    from workflows.rules.clock import business_time
    from workflows.rules.xingguang_money import damages_cap, damages_payable

from workflows.escalation import Stalls
from workflows.xingguang_piece import WorkflowBase, refused

# workflow.patched id: a claim is judged by the task's record of pauses, in the handler as in the validator (XG-7).
CLAIMS_PATCH = "xg-claims-judged-by-record"


def pause_overlaps(pauses: list[c.PauseRecord], start: datetime, end: datetime) -> c.PauseRecord | None:
    """XG-7: the first compliance pause (of the task or one of its pieces) that overlaps [start, end)."""
    for pause in pauses:
        if pause.kind != "compliance":
            continue
        until = pause.resumed_at or pause.cancelled_at
        if pause.paused_at < end and (until is None or start < until):
            return pause
    return None


class ClaimMessages(WorkflowBase):
    _compensating: asyncio.Lock
    _stalls: Stalls

    # ---------------------------------------------------------------- compensation (XG-10, R-14)
    @workflow.update(name="compensate")
    async def compensate(self, request: c.CompensateRequest) -> c.CompensationResult:
        # One compensation at a time: two damages that each fit the cap must not pass it together.
        async with self._compensating:
            return await self._compensate(request)

    async def _compensate(self, request: c.CompensateRequest) -> c.CompensationResult:
        s = self.s
        assert s.client_id is not None and request.amount_fen is not None
        if (done := self._compensation(request.compensation_id)) is not None:
            return done
        # Again, now that no other compensation is running. Runs before CLAIMS_PATCH re-checked the cause and the cap
        # only (their histories replay so).
        problems = self._compensation_problems(request, workflow.patched(CLAIMS_PATCH))
        if problems:
            raise refused("CompensationRefused", problems)
        try:
            await self._stalls.run(
                f"compensation {request.compensation_id}", "xg_ledger.compensate",
                XgCompensateRequest(task_id=s.task_id, compensation_id=request.compensation_id, client_id=s.client_id,
                                    amount_fen=request.amount_fen, memo=f"{request.kind.value}: {request.note}"),
                XgMoveResult, refusals=True)
        except ActivityError as err:
            if isinstance(err.cause, ApplicationError) and err.cause.non_retryable:
                raise refused("CompensationRefused", [err.cause.message]) from None
            raise
        policy = f" under policy {request.policy}" if request.policy else ""
        s.compensations.append(c.MoneyRecord(kind=request.kind.value, ref_id=request.compensation_id,
                                             amount_fen=request.amount_fen, reason=f"{request.note}{policy}",
                                             at=workflow.now()))
        self._changed()
        result = self._compensation(request.compensation_id)
        assert result is not None
        return result

    @compensate.validator
    def validate_compensate(self, request: c.CompensateRequest) -> None:
        if self._compensation(request.compensation_id) is not None:
            return
        problems = self._compensation_problems(request)
        if problems:
            raise refused("CompensationRefused", problems)

    def _compensation_problems(self, request: c.CompensateRequest, by_record: bool = True) -> list[str]:
        s = self.s
        if s.result is None or s.stage is c.TaskStage.CLOSED:
            return [f"task {s.task_id} is {s.stage.value}: no order to compensate"]
        start, end = request.period_start_at, request.period_end_at
        if by_record and (start is None or end is None or not start < end):
            return [("period_start_at, period_end_at: required, start before end: the period of the anomaly or "
                    "breach the claim is about (a pause delay earns nothing: XG-7)")]
        if by_record and start is not None and end is not None and (
                pause := pause_overlaps(s.pauses, start, end)) is not None:
            until = pause.resumed_at or pause.cancelled_at
            return [(f"the claim's period {business_time(start)} to {business_time(end)} overlaps compliance pause "
                    f"{pause.pause_id} (from {business_time(pause.paused_at)}"
                    f"{f' to {business_time(until)}' if until else ', still open'}): a pause delay is not the "
                    "platform's fault and earns no compensation, whatever the cause named (XG-7, XG-10)")]
        if request.cause is not c.AnomalyCause.PLATFORM_FAULT:
            return [(f"cause: {request.cause.value} is not a delivery anomaly the platform caused: no compensation "
                    "(XG-7, XG-10)")]
        if request.kind is c.CompensationKind.DELIVERY_ANOMALY:
            if not request.policy.strip():
                return ["policy: required for a delivery anomaly (XG-10)"]
            if request.amount_fen is None:
                return [f"amount_fen: required: the equal value under policy {request.policy} (XG-10)"]
            return []
        paid = sum(r.amount_fen for r in s.compensations if r.kind == c.CompensationKind.DAMAGES.value)
        cap = damages_cap(s.frozen_fen)
        basis = (f"damages are capped at {cap} fen (20% of the order amount {s.frozen_fen} fen, rounded down), "
                 f"{paid} fen already paid")
        if request.loss_fen is None:
            return [f"loss_fen: required for damages (XG-10); at most {max(cap - paid, 0)} fen may be paid: {basis}"]
        limit = damages_payable(request.loss_fen, s.frozen_fen, paid)
        if request.amount_fen is None:
            return [f"amount_fen: required; at most {limit} fen may be paid: {basis}, loss {request.loss_fen} fen"]
        if request.amount_fen > limit:
            return [(f"amount_fen: {request.amount_fen} is above what may be paid ({limit} fen): {basis}, loss "
                    f"{request.loss_fen} fen")]
        return []

    def _compensation(self, compensation_id: str) -> c.CompensationResult | None:
        for record in self.s.compensations:
            if record.ref_id == compensation_id:
                kind = c.CompensationKind(record.kind)
                return c.CompensationResult(
                    compensation_id=record.ref_id, kind=kind, paid_fen=record.amount_fen, paid_at=record.at,
                    cap_fen=damages_cap(self.s.frozen_fen) if kind is c.CompensationKind.DAMAGES else None)
        return None

    # ---------------------------------------------------------------- penalties on the client (XG-8)
    @workflow.update(name="penalize")
    async def penalize(self, request: c.PenalizeRequest) -> c.PenaltyResult:
        s = self.s
        assert s.client_id is not None
        if (done := self._penalty(request.penalty_id)) is not None:
            return done
        if request.action is c.PenaltyAction.FREEZE:
            try:
                await self._stalls.run(
                    f"freeze {request.penalty_id}", "xg_ledger.freeze_balance",
                    XgFreezeBalanceRequest(task_id=s.task_id, penalty_id=request.penalty_id, client_id=s.client_id,
                                           amount_fen=request.amount_fen, reason=request.reason),
                    XgMoveResult, refusals=True)
            except ActivityError as err:
                if isinstance(err.cause, ApplicationError) and err.cause.non_retryable:
                    raise refused("PenaltyRefused", [err.cause.message]) from None
                raise
            if (done := self._penalty(request.penalty_id)) is not None:
                return done  # a concurrent call with this id recorded it (the hold itself is idempotent)
        else:
            s.deduction_requested_fen += request.amount_fen
        s.penalties.append(c.MoneyRecord(kind=request.action.value, ref_id=request.penalty_id,
                                         amount_fen=request.amount_fen, reason=request.reason, at=workflow.now()))
        self._changed()
        result = self._penalty(request.penalty_id)
        assert result is not None
        return result

    @penalize.validator
    def validate_penalize(self, request: c.PenalizeRequest) -> None:
        if self._penalty(request.penalty_id) is None and (self.s.result is None
                                                           or self.s.stage is c.TaskStage.CLOSED):
            raise refused("PenaltyRefused", [(f"task {self.s.task_id} is {self.s.stage.value}: nothing to deduct or "
                                             "freeze against")])

    def _penalty(self, penalty_id: str) -> c.PenaltyResult | None:
        return next((c.PenaltyResult(penalty_id=r.ref_id, action=c.PenaltyAction(r.kind), amount_fen=r.amount_fen,
                                     recorded_at=r.at) for r in self.s.penalties if r.ref_id == penalty_id), None)
