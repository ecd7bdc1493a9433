"""What a violation case does to tasks (R-12) and to standing freezes (AM-22): a mixin of ViolationCaseWorkflow.

- A freeze of the creator's in-flight tasks tells every piece the creator has had mounted (the penalty register
  lists them, in pages: bounded fan-out) that conversions stop counting from the notice; when it ends the pieces
  are told again: withdrawn (appeal upheld: what came during it counts) or ended (its end, or an operator's lift).
- A removal from a task (清退) unmounts the creator's pieces in that task (the task's `remove_creator`), or cancels
  a removed client's task (AM-7); an upheld appeal lets the creator join again. A cancelled task stays cancelled.
- AM-22: after a rejected appeal (or none) a freeze stands until the end the penalty set or an operator's
  `lift_freeze` with a reason; settlements the case holds are released once no penalty of it holds them.
Cases started before this (state `freezes_stand` false) keep the old behaviour on replay.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from ports import penalties
    from ports.penalties import ActOnTaskRequest, PenaltyAction, PenaltyEffect, SignalPiecesRequest
    from ports.port import ActivityPort
    from workflows.contract import violation_case as c
    from workflows.contract.common import public_view
    from workflows.contract.mounted_content import CountingFrozen, CountingResumed
    from workflows.rules.clock import business_time
    from workflows.rules.penalties import HOLDS_SETTLEMENTS, PartyKind, liftable

from workflows.refusals import FREEZE_LIFT_REFUSED, refused

STANDING = (c.PenaltyStatus.IN_FORCE, c.PenaltyStatus.FINAL)


class CaseEffects:
    s: c.ViolationCaseState

    async def _penalty_activity(self, port: ActivityPort[PenaltyAction, PenaltyEffect], penalty: c.PenaltyRecord,
                                at: datetime, reason: str | None = None) -> PenaltyEffect:
        raise NotImplementedError

    async def _release_held_settlements(self, outcome: Literal["paid", "deducted"]) -> None:
        raise NotImplementedError

    def _changed(self) -> None:
        raise NotImplementedError

    # ---------------------------------------------------------------- lift_freeze (AM-22)
    @workflow.update(name="lift_freeze")
    async def lift_freeze(self, request: c.LiftFreezeRequest) -> c.ViolationCaseView:
        """AM-22: an operator lifts a standing freeze with a reason; answered once the run loop has lifted it."""
        if (penalty := self._penalty(request.penalty_id)) is None:  # the validator refused it already
            raise refused(FREEZE_LIFT_REFUSED, f"penalty_id: case {self.s.case_id} has no penalty "
                          f"{request.penalty_id}")
        penalty.lift_requested_at, penalty.lifted_by = workflow.now(), request.operator_id
        penalty.lift_reason = request.reason
        self._changed()
        await workflow.wait_condition(lambda: penalty.status not in STANDING and penalty.ended_at is not None)
        return public_view(c.ViolationCaseView, self.s)

    @lift_freeze.validator
    def validate_lift_freeze(self, request: c.LiftFreezeRequest) -> None:
        s, penalty = self.s, self._penalty(request.penalty_id)
        if penalty is None:
            raise refused(FREEZE_LIFT_REFUSED,
                          f"penalty_id: case {s.case_id} has no penalty {request.penalty_id} (it has "
                          f"{', '.join(p.penalty_id for p in s.penalties)})")
        if not s.freezes_stand:
            raise refused(FREEZE_LIFT_REFUSED,
                          f"case {s.case_id} started before freezes could be lifted: its freezes end with it")
        if not liftable(penalty.kind, penalty.deduct_when_final):
            raise refused(FREEZE_LIFT_REFUSED, f"penalty_id: {penalty.penalty_id} is {penalty.kind.value}"
                          f"{' marked to be deducted' if penalty.deduct_when_final else ''}: only a freeze "
                          "(freeze_fees not marked to be deducted, freeze_in_flight_tasks) can be lifted")
        if penalty.lift_requested_at is not None:
            raise refused(FREEZE_LIFT_REFUSED, f"penalty_id: {penalty.penalty_id} was lifted by {penalty.lifted_by} at "
                                               f"{business_time(penalty.lift_requested_at)}: {penalty.lift_reason}")
        if penalty.status not in STANDING:
            ended = f" at {business_time(penalty.ended_at)}" if penalty.ended_at else ""
            raise refused(FREEZE_LIFT_REFUSED,
                          f"penalty_id: {penalty.penalty_id} is {penalty.status.value}{ended}: nothing to lift")

    async def _apply_lifts(self) -> None:
        for penalty in self.s.penalties:
            if penalty.lift_requested_at is not None and penalty.status in STANDING:
                now = workflow.now()
                # Pieces first: one whose window closes meanwhile is still held, and settles without the freeze.
                await self._freeze_ended(penalty, now, withdrawn=False)
                await self._penalty_activity(penalties.LIFT, penalty, now, penalty.lift_reason)
                penalty.status = c.PenaltyStatus.LIFTED
                await self._release_if_nothing_holds()
                penalty.ended_at = now  # after the release: lift_freeze answers with the settlements released

    # ---------------------------------------------------------------- acting on tasks
    async def _act_at_notice(self, penalty: c.PenaltyRecord) -> None:
        s = self.s
        if penalty.kind is c.PenaltyKind.FREEZE_IN_FLIGHT_TASKS and s.party_kind is PartyKind.CREATOR:
            await self._tell_pieces("counting_frozen", CountingFrozen(
                case_id=s.case_id, penalty_id=penalty.penalty_id, frozen_at=s.notice_at))
        elif penalty.kind is c.PenaltyKind.REMOVE_FROM_TASK and penalty.task_id is not None:
            await self._act_on_task(penalty.task_id,
                                    "remove" if s.party_kind is PartyKind.CREATOR else "cancel", s.notice_at)

    async def _undo_at_withdrawal(self, penalty: c.PenaltyRecord, at: datetime) -> None:
        """R-12: the decision withdrawn as if it had not been made (a cancelled task stays cancelled)."""
        if penalty.kind is c.PenaltyKind.FREEZE_IN_FLIGHT_TASKS:
            await self._freeze_ended(penalty, at, withdrawn=True)
        elif (penalty.kind is c.PenaltyKind.REMOVE_FROM_TASK and penalty.task_id is not None
              and self.s.party_kind is PartyKind.CREATOR):
            await self._act_on_task(penalty.task_id, "reinstate", at)

    async def _freeze_ended(self, penalty: c.PenaltyRecord, at: datetime, *, withdrawn: bool) -> None:
        s = self.s
        if penalty.kind is c.PenaltyKind.FREEZE_IN_FLIGHT_TASKS and s.party_kind is PartyKind.CREATOR:
            await self._tell_pieces("counting_resumed", CountingResumed(
                case_id=s.case_id, penalty_id=penalty.penalty_id, resumed_at=at, withdrawn=withdrawn))

    async def _tell_pieces(self, signal: Literal["counting_frozen", "counting_resumed"],
                           payload: CountingFrozen | CountingResumed) -> None:
        after = ""
        while True:
            page = await penalties.SIGNAL_PIECES(
                SignalPiecesRequest(creator_id=self.s.party_id, signal=signal, after=after,
                                    frozen=payload if isinstance(payload, CountingFrozen) else None,
                                    resumed=payload if isinstance(payload, CountingResumed) else None),
                summary=f"{signal} to the pieces of creator {self.s.party_id} after {after or 'the first'}")
            if not page.more:
                return
            after = page.last

    async def _act_on_task(self, task_id: str, action: Literal["remove", "reinstate", "cancel"],
                           at: datetime) -> None:
        s = self.s
        result = await penalties.ACT_ON_TASK(
            ActOnTaskRequest(case_id=s.case_id, party_id=s.party_id, task_id=task_id, action=action, at=at),
            summary=f"{action} {s.party_kind.value} {s.party_id} in task {task_id}")
        workflow.logger.info("case %s, task %s: %s", s.case_id, task_id, result.outcome)

    # ---------------------------------------------------------------- holds (AM-19, AM-22, R-12)
    def _holds_standing(self) -> bool:
        return any(p.kind in HOLDS_SETTLEMENTS and p.status in STANDING for p in self.s.penalties)

    def _standing_freezes(self) -> list[c.PenaltyRecord]:
        if not self.s.freezes_stand:
            return []
        return [p for p in self.s.penalties if p.status in STANDING and liftable(p.kind, p.deduct_when_final)]

    async def _release_if_nothing_holds(self) -> None:
        if self.s.freezes_stand and not self._holds_standing():
            await self._release_held_settlements("paid")

    def _penalty(self, penalty_id: str) -> c.PenaltyRecord | None:
        return next((p for p in self.s.penalties if p.penalty_id == penalty_id), None)
