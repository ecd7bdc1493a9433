"""Claims against the platform and penalties on the client of a Xingguang task (XG-7, XG-8, XG-10, R-14), as a base
class of XingguangTaskWorkflow. A rule refuses with the same type whether the validator or the handler finds it
(CompensationRefused, PenaltyRefused), so a caller handles one type per rule family."""

from __future__ import annotations

import asyncio

from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from ports import xg_ledger
    from ports.xg_ledger import XgCompensateRequest, XgFreezeBalanceRequest
    from workflows.contract import xingguang as c
    from workflows.contract import xingguang_state as cs
    from workflows.rules.xingguang_claims import claim_problems, pause_spans
    from workflows.rules.xingguang_money import damages_cap

from workflows.escalation import Stalls
from workflows.refusals import refused
from workflows.xingguang_piece import WorkflowBase

# workflow.patched id: a claim is judged by the task's record of pauses, in the handler as in the validator (XG-7).
CLAIMS_PATCH = "xg-claims-judged-by-record"


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
        if (client_id := s.client_id) is None or (amount_fen := request.amount_fen) is None:  # the validator refused
            raise refused("CompensationRefused", [f"task {s.task_id} is not ordered" if client_id is None
                                                  else "amount_fen: required"])
        if (done := self._compensation(request.compensation_id)) is not None:
            return done
        # Again, now that no other compensation is running. Runs before CLAIMS_PATCH re-checked the cause and the cap
        # only (their histories replay so).
        problems = self._compensation_problems(request, workflow.patched(CLAIMS_PATCH))
        if problems:
            raise refused("CompensationRefused", problems)
        try:
            await self._stalls.call(
                f"compensation {request.compensation_id}", xg_ledger.COMPENSATE,
                XgCompensateRequest(task_id=s.task_id, compensation_id=request.compensation_id, client_id=client_id,
                                    amount_fen=amount_fen, memo=f"{request.kind.value}: {request.note}"),
                refusals=True)
        except ActivityError as err:
            if isinstance(err.cause, ApplicationError) and err.cause.non_retryable:
                raise refused("CompensationRefused", [err.cause.message]) from None
            raise
        policy = f" under policy {request.policy}" if request.policy else ""
        record = cs.MoneyRecord(kind=request.kind.value, ref_id=request.compensation_id, amount_fen=amount_fen,
                                reason=f"{request.note}{policy}", at=workflow.now())
        s.compensations.append(record)
        self._changed()
        return self._compensation_result(record)

    @compensate.validator
    def validate_compensate(self, request: c.CompensateRequest) -> None:
        if self._compensation(request.compensation_id) is not None:
            return
        problems = self._compensation_problems(request)
        if problems:
            raise refused("CompensationRefused", problems)

    def _compensation_problems(self, request: c.CompensateRequest, by_record: bool = True) -> list[str]:
        s = self.s
        if s.result is None or s.stage is cs.TaskStage.CLOSED:
            return [f"task {s.task_id} is {s.stage.value}: no order to compensate"]
        paid = sum(r.amount_fen for r in s.compensations if r.kind == c.CompensationKind.DAMAGES.value)
        return claim_problems(request, pause_spans(s.pauses) if by_record else None, s.frozen_fen, paid)

    def _compensation(self, compensation_id: str) -> c.CompensationResult | None:
        return next((self._compensation_result(record) for record in self.s.compensations
                     if record.ref_id == compensation_id), None)

    def _compensation_result(self, record: cs.MoneyRecord) -> c.CompensationResult:
        kind = c.CompensationKind(record.kind)
        return c.CompensationResult(
            compensation_id=record.ref_id, kind=kind, paid_fen=record.amount_fen, paid_at=record.at,
            cap_fen=damages_cap(self.s.frozen_fen) if kind is c.CompensationKind.DAMAGES else None)

    # ---------------------------------------------------------------- penalties on the client (XG-8)
    @workflow.update(name="penalize")
    async def penalize(self, request: c.PenalizeRequest) -> c.PenaltyResult:
        s = self.s
        if (client_id := s.client_id) is None:  # the validator refused it already (an ordered task has a client)
            raise refused("PenaltyRefused", [f"task {s.task_id} is not ordered"])
        if (done := self._penalty(request.penalty_id)) is not None:
            return done
        if request.action is c.PenaltyAction.FREEZE:
            try:
                await self._stalls.call(
                    f"freeze {request.penalty_id}", xg_ledger.FREEZE_BALANCE,
                    XgFreezeBalanceRequest(task_id=s.task_id, penalty_id=request.penalty_id, client_id=client_id,
                                           amount_fen=request.amount_fen, reason=request.reason),
                    refusals=True)
            except ActivityError as err:
                if isinstance(err.cause, ApplicationError) and err.cause.non_retryable:
                    raise refused("PenaltyRefused", [err.cause.message]) from None
                raise
            if (done := self._penalty(request.penalty_id)) is not None:
                return done  # a concurrent call with this id recorded it (the hold itself is idempotent)
        else:
            s.deduction_requested_fen += request.amount_fen
        record = cs.MoneyRecord(kind=request.action.value, ref_id=request.penalty_id, amount_fen=request.amount_fen,
                                reason=request.reason, at=workflow.now())
        s.penalties.append(record)
        self._changed()
        return self._penalty_result(record)

    @penalize.validator
    def validate_penalize(self, request: c.PenalizeRequest) -> None:
        if self._penalty(request.penalty_id) is None and (self.s.result is None
                                                           or self.s.stage is cs.TaskStage.CLOSED):
            raise refused("PenaltyRefused", [(f"task {self.s.task_id} is {self.s.stage.value}: nothing to deduct or "
                                             "freeze against")])

    def _penalty(self, penalty_id: str) -> c.PenaltyResult | None:
        return next((self._penalty_result(r) for r in self.s.penalties if r.ref_id == penalty_id), None)

    @staticmethod
    def _penalty_result(r: cs.MoneyRecord) -> c.PenaltyResult:
        return c.PenaltyResult(penalty_id=r.ref_id, action=c.PenaltyAction(r.kind), amount_fen=r.amount_fen,
                               recorded_at=r.at)
