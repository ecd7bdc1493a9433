"""ViolationCaseWorkflow (`violation:{case_id}`): penalties for cheating, their appeal and outcome (AM-18..AM-22).

Every penalty takes effect when the notice is issued (AM-19) through the directory and the ledger. The party may
appeal within 7 days of the notice, half-open (AM-20); not appealed, the case becomes final (a freeze marked to be
deducted is deducted). An appeal is answered within 7 working days (AM-21) or escalated; `mark_complex` lifts that
deadline and the case stays listed as `appeal_complex`. Upheld: every penalty is withdrawn and the settlements held
while the creator's fees were frozen are paid; rejected: final (AM-22). Timed restrictions end at their `until_at`;
a freeze stands after finality until its `until_at` or an operator's `lift_freeze` (AM-22). What a case does to
tasks (R-12) is in workflows/case_effects.py.
All changes to the world happen in the run loop, one at a time; handlers record and wake it.
"""

from __future__ import annotations

import contextlib
from datetime import datetime
from typing import Literal

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from ports import penalties
    from ports.penalties import PenaltyAction, PenaltyEffect, ReleaseHeldRequest
    from ports.port import ActivityPort
    from workflows.contract import violation_case as c
    from workflows.contract.common import public_view
    from workflows.contract.names import SA, VIOLATION_CASE_WORKFLOW, violation_case_id
    from workflows.contract.views import RunInfo
    from workflows.rules.clock import business_time, with_deadline
    from workflows.rules.penalties import (
        TIMED,
        PartyKind,
        appeal_refusal,
        appeal_window_closes_at,
        deducts_all_fees,
        liftable,
        penalty_problems,
    )
    from workflows.rules.working_days import APPEAL_ANSWER_WORKING_DAYS

from workflows import details, metrics
from workflows.case_effects import CaseEffects
from workflows.common import (
    RunLength,
    continue_as_new_when_handlers_done,
    run_info,
    stage_attributes,
    until,
    wait_summary,
)
from workflows.deadlines import working_days_deadline
from workflows.escalation import Stalls
from workflows.refusals import APPEAL_REFUSED, refused

ENDED = (c.PenaltyStatus.WITHDRAWN, c.PenaltyStatus.EXPIRED, c.PenaltyStatus.DEDUCTED, c.PenaltyStatus.RELEASED,
         c.PenaltyStatus.LIFTED)
OPEN_APPEAL = (c.CaseStage.APPEALED, c.CaseStage.APPEAL_COMPLEX)
# Cases that record this marker act on tasks and keep freezes standing after finality (AM-22).
FREEZES_STAND_PATCH = "r-12-penalties-act-on-tasks-am-22-freezes-stand"


@workflow.defn(name=VIOLATION_CASE_WORKFLOW)
class ViolationCaseWorkflow(CaseEffects):
    @workflow.init
    def __init__(self, input: c.ViolationCaseInput) -> None:
        self.s = input.carried_state or c.ViolationCaseState(
            case_id=input.case_id, party_kind=input.party_kind, party_id=input.party_id, violation=input.violation,
            issued_by=input.issued_by, notice_at=input.notice_at,
            appeal_window_closes_at=appeal_window_closes_at(input.notice_at),
            penalties=[c.PenaltyRecord(penalty_id=f"p{i}", kind=p.kind, until_at=p.until_at, amount_fen=p.amount_fen,
                                       deduct_when_final=p.deduct_when_final, points=p.points, task_id=p.task_id)
                       for i, p in enumerate(input.penalties, start=1)],
        )
        self._wake = False

    # ---------------------------------------------------------------- run
    @workflow.run
    async def run(self, input: c.ViolationCaseInput) -> c.ViolationCaseResult:
        s = self.s
        self._run_length = RunLength()
        self._stalls = Stalls("violation")  # penalty money that cannot move is escalated
        problems = [f"penalties[{i}].{p}" for i, pen in enumerate(input.penalties) for p in penalty_problems(
            input.party_kind, pen.kind, until_at=pen.until_at, amount_fen=pen.amount_fen, points=pen.points,
            deduct_when_final=pen.deduct_when_final, notice_at=input.notice_at, task_id=pen.task_id)]
        if problems:
            raise refused("PenaltyNoticeRefused", problems)
        if not s.freezes_stand and workflow.patched(FREEZES_STAND_PATCH):
            s.freezes_stand = True
        key = SA.CREATOR_ID if s.party_kind is PartyKind.CREATOR else SA.CLIENT_ID
        workflow.upsert_search_attributes([key.value_set(s.party_id)])
        await self._apply_penalties()  # AM-19: at notice; an appeal does not suspend them
        while s.stage is not c.CaseStage.CLOSED and s.stage is not c.CaseStage.WITHDRAWN:
            await self._act_on_what_is_due()
            if s.stage in (c.CaseStage.CLOSED, c.CaseStage.WITHDRAWN):
                break
            self._show()
            await self._wait_for_change_or(s.next_deadline_at)
            if self._run_length.due(s.messages_this_run):
                await continue_as_new_when_handlers_done(lambda: self._carry(input))
        self._show()
        await workflow.wait_condition(workflow.all_handlers_finished)
        return c.ViolationCaseResult(case_id=s.case_id, stage=s.stage, penalties=s.penalties, appeal=s.appeal,
                                     deducted_fen=sum(p.deducted_fen for p in s.penalties), closed_at=workflow.now())

    def _carry(self, input: c.ViolationCaseInput) -> c.ViolationCaseInput:
        s = self.s
        s.messages_this_run = 0
        return c.ViolationCaseInput(
            case_id=s.case_id, party_kind=s.party_kind, party_id=s.party_id, notice_at=s.notice_at,
            violation=s.violation, penalties=input.penalties, issued_by=s.issued_by, carried_state=s)

    async def _wait_for_change_or(self, deadline: datetime | None) -> None:
        s = self.s
        self._wake = False
        with contextlib.suppress(TimeoutError):  # the deadline came first
            # The timeout ends the wait at the deadline; legacy runs also compared workflow.now() in the predicate,
            # which, like the server's suggestion, must not be read there (common.RunLength).
            await workflow.wait_condition(
                lambda: self._wake or self._run_length.reached(s.messages_this_run)
                or (self._run_length.legacy and deadline is not None and workflow.now() >= deadline),
                timeout=None if deadline is None else until(deadline),
                timeout_summary=None if deadline is None else wait_summary(s.next_deadline or "the next deadline",
                                                                           deadline))

    async def _act_on_what_is_due(self) -> None:
        s, now = self.s, workflow.now()
        await self._expire_timed_restrictions()
        await self._apply_lifts()
        appeal = s.appeal
        if s.stage is c.CaseStage.IN_FORCE and appeal is None and now >= s.appeal_window_closes_at:
            await self._make_final(f"not appealed by {business_time(s.appeal_window_closes_at)}")
        elif s.stage in OPEN_APPEAL and appeal is not None:
            if appeal.decision == "upheld":
                await self._withdraw_all()
            elif appeal.decision == "rejected":
                await self._make_final("appeal rejected")
            elif (not appeal.complex and not s.escalated and appeal.answer_due_at is not None
                  and now >= appeal.answer_due_at):
                self._escalate(f"appeal of {business_time(appeal.appealed_at)} unanswered past "
                               f"{business_time(appeal.answer_due_at)} (7 working days, AM-21)")
        if s.stage is c.CaseStage.FINAL and not self._timed_restrictions_left() and not self._standing_freezes():
            s.stage = c.CaseStage.CLOSED
        self._plan_next_deadline()

    # ---------------------------------------------------------------- messages
    @workflow.update(name="appeal")
    async def appeal(self, request: c.AppealRequest) -> c.AppealReceipt:
        """AM-20: the penalized party appeals within 7 days of the notice; the answer is due in 7 working days."""
        s = self.s
        now = workflow.now()
        s.appeal = appeal = c.AppealRecord(appealed_at=now, reason=request.reason)
        s.stage = c.CaseStage.APPEALED
        metrics.dispute_raised("violation", "appeal")
        self._changed()
        due, problem = await working_days_deadline(now, APPEAL_ANSWER_WORKING_DAYS,
                                                   f"appeal answer {violation_case_id(s.case_id)}")
        appeal.answer_due_at, appeal.calendar_problem = due, problem
        if problem is not None and appeal.decision is None and not appeal.complex:
            self._escalate(f"no answer deadline could be set for the appeal: {problem}")
        # Planned here too (state only, no command): the run loop plans it once the penalties of a case that has
        # just started are applied, and until then `state` would show no deadline for an appeal already received.
        self._plan_next_deadline()
        self._changed()
        return c.AppealReceipt(case_id=s.case_id, appealed_at=now, answer_due_at=due, escalated=s.escalated)

    @appeal.validator
    def validate_appeal(self, request: c.AppealRequest) -> None:
        s = self.s
        if request.party_id != s.party_id:
            raise refused(APPEAL_REFUSED,
                          f"party_id: {request.party_id} is not the penalized party of case {s.case_id}")
        if s.appeal is not None:
            raise refused(APPEAL_REFUSED,
                          f"case {s.case_id} was already appealed at {business_time(s.appeal.appealed_at)}")
        problem = appeal_refusal(s.notice_at, workflow.now())
        if problem is None and s.stage is not c.CaseStage.IN_FORCE:
            problem = f"case {s.case_id} is {s.stage.value}: nothing to appeal"
        if problem is not None:
            raise refused(APPEAL_REFUSED, problem)

    @workflow.update(name="decide_appeal")
    async def decide_appeal(self, request: c.DecideAppealRequest) -> c.ViolationCaseView:
        """AM-22: upheld withdraws every penalty (held settlements paid); rejected makes the case final."""
        s = self.s
        if (appeal := s.appeal) is None:  # the validator refused it already
            raise refused(APPEAL_REFUSED, f"case {s.case_id} has no appeal waiting for a decision")
        appeal.decision, appeal.decided_at = request.decision, workflow.now()
        appeal.decided_by, appeal.note = request.operator_id, request.note
        metrics.dispute_resolved("violation", "appeal")
        self._changed()
        # The run loop applies the outcome; answer once it has, so the operator sees what it did.
        await workflow.wait_condition(lambda: s.stage not in OPEN_APPEAL)
        return public_view(c.ViolationCaseView, self.s)

    @decide_appeal.validator
    def validate_decide_appeal(self, request: c.DecideAppealRequest) -> None:
        s = self.s
        if s.appeal is not None and s.appeal.decision is not None:  # a repeat: named as such
            raise refused(APPEAL_REFUSED, f"the appeal of case {s.case_id} was already decided: {s.appeal.decision}")
        if s.appeal is None or s.stage not in OPEN_APPEAL:
            raise refused(APPEAL_REFUSED,
                          f"case {s.case_id} has no appeal waiting for a decision (stage {s.stage.value})")

    @workflow.update(name="mark_complex")
    def mark_complex(self, request: c.MarkComplexRequest) -> c.ViolationCaseView:
        """AM-21: lifts the 7-working-day deadline; the case stays listed (stage appeal_complex)."""
        s = self.s
        if (appeal := s.appeal) is None:  # the validator refused it already
            raise refused(APPEAL_REFUSED, f"case {s.case_id} has no appeal to mark complex")
        appeal.complex, appeal.marked_complex_at = True, workflow.now()
        appeal.marked_complex_by, appeal.complex_note = request.operator_id, request.note
        s.stage = c.CaseStage.APPEAL_COMPLEX
        metrics.escalation("violation", s.escalated, False)
        s.escalated, s.escalation_reason = False, None
        self._plan_next_deadline()
        self._changed()
        self._show()
        return public_view(c.ViolationCaseView, self.s)

    @mark_complex.validator
    def validate_mark_complex(self, request: c.MarkComplexRequest) -> None:
        s = self.s
        if s.appeal is not None and s.appeal.complex and s.appeal.marked_complex_at is not None:  # a repeat
            raise refused(APPEAL_REFUSED, f"the appeal of case {s.case_id} was already marked complex at "
                                          f"{business_time(s.appeal.marked_complex_at)}")
        if s.stage is not c.CaseStage.APPEALED or s.appeal is None or s.appeal.decision is not None:
            raise refused(APPEAL_REFUSED,
                          f"case {s.case_id} has no undecided appeal to mark complex (stage {s.stage.value})")

    @workflow.query(name="state")
    def state(self) -> c.ViolationCaseView:
        """Penalties and their status, the appeal, every deadline, and whether it is escalated."""
        return public_view(c.ViolationCaseView, self.s)

    @workflow.query(name="run")
    def run_info(self) -> RunInfo:
        """How far this run is towards continuing as new: the messages it counted, and its bound."""
        return run_info(self.s.messages_this_run, getattr(self, "_run_length", None))

    # ---------------------------------------------------------------- acting on the world
    async def _apply_penalties(self) -> None:
        for penalty in self.s.penalties:
            if penalty.status is c.PenaltyStatus.PENDING:
                effect = await self._penalty_activity(penalties.APPLY, penalty, self.s.notice_at)
                if self.s.freezes_stand:
                    await self._act_at_notice(penalty)
                penalty.status, penalty.applied_at, penalty.frozen_fen = (
                    c.PenaltyStatus.IN_FORCE, self.s.notice_at, effect.frozen_fen)

    async def _withdraw_all(self) -> None:
        """AM-22 upheld: every penalty withdrawn, held settlements paid."""
        s, now = self.s, workflow.now()
        for penalty in s.penalties:
            if penalty.status not in ENDED:
                if s.freezes_stand:  # tasks and pieces first, while the register still holds their settlements
                    await self._undo_at_withdrawal(penalty, now)
                await self._penalty_activity(penalties.WITHDRAW, penalty, now)
                penalty.status, penalty.ended_at = c.PenaltyStatus.WITHDRAWN, now
        metrics.escalation("violation", s.escalated, False)
        s.escalated, s.escalation_reason = False, None
        await self._release_held_settlements("paid")
        s.stage, s.withdrawn_at = c.CaseStage.WITHDRAWN, now

    async def _make_final(self, why: str) -> None:
        """AM-20/AM-22: penalties stand; a freeze marked to deduct is deducted; other freezes stand until their
        until_at or an operator's lift (cases before FREEZES_STAND_PATCH unfroze them here)."""
        s, now = self.s, workflow.now()
        workflow.logger.info("case %s final: %s", s.case_id, why)
        deduct_held = False
        for penalty in s.penalties:
            if penalty.status in ENDED:
                continue
            if s.freezes_stand and liftable(penalty.kind, penalty.deduct_when_final):
                penalty.status = c.PenaltyStatus.FINAL
                continue
            effect = await self._penalty_activity(penalties.FINALIZE, penalty, now)
            if penalty.kind in (c.PenaltyKind.FREEZE_FEES, c.PenaltyKind.DEDUCT_FEES):
                deducted = deducts_all_fees(penalty.kind, penalty.amount_fen, penalty.deduct_when_final)
                deduct_held = deduct_held or deducted
                marked = penalty.kind is c.PenaltyKind.DEDUCT_FEES or penalty.deduct_when_final
                penalty.status = c.PenaltyStatus.DEDUCTED if marked else c.PenaltyStatus.RELEASED
                penalty.deducted_fen, penalty.ended_at = effect.deducted_fen, now
            else:
                penalty.status = c.PenaltyStatus.FINAL
        metrics.escalation("violation", s.escalated, False)
        s.escalated, s.escalation_reason = False, None
        if deduct_held or not s.freezes_stand or not self._holds_standing():
            await self._release_held_settlements("deducted" if deduct_held else "paid")
        s.stage, s.final_at = c.CaseStage.FINAL, now

    async def _expire_timed_restrictions(self) -> None:
        now = workflow.now()
        for penalty in self.s.penalties:
            if (penalty.kind in TIMED and penalty.until_at is not None and penalty.until_at <= now
                    and penalty.status in (c.PenaltyStatus.IN_FORCE, c.PenaltyStatus.FINAL)):
                if self.s.freezes_stand:  # pieces first, while the register still holds their settlements
                    await self._freeze_ended(penalty, penalty.until_at, withdrawn=False)
                await self._penalty_activity(penalties.EXPIRE, penalty, penalty.until_at)
                penalty.status, penalty.ended_at = c.PenaltyStatus.EXPIRED, penalty.until_at
                await self._release_if_nothing_holds()

    async def _release_held_settlements(self, outcome: Literal["paid", "deducted"]) -> None:
        """Bounded batches: each call signals at most a batch of held content workflows."""
        s = self.s
        if s.party_kind is not PartyKind.CREATOR or s.held_settlements.done:
            return
        while True:
            result = await penalties.RELEASE_HELD(
                ReleaseHeldRequest(case_id=s.case_id, outcome=outcome, at=workflow.now()))
            held = s.held_settlements
            held.passed_to_other_cases += result.passed_on
            if outcome == "deducted":
                held.deducted += result.released
            else:
                held.released += result.released
            if not result.more:
                break
        s.held_settlements.done = True

    async def _penalty_activity(self, port: ActivityPort[PenaltyAction, PenaltyEffect], penalty: c.PenaltyRecord,
                                at: datetime, reason: str | None = None) -> PenaltyEffect:
        s = self.s
        return await self._stalls.call(
            f"{port.name.split('.')[1]} of penalty {penalty.penalty_id} ({penalty.kind.value})", port,
            PenaltyAction(case_id=s.case_id, penalty_id=penalty.penalty_id, party_kind=s.party_kind,
                          party_id=s.party_id, kind=penalty.kind, until_at=penalty.until_at,
                          amount_fen=penalty.amount_fen, deduct_when_final=penalty.deduct_when_final,
                          points=penalty.points, at=at, task_id=penalty.task_id, reason=reason,
                          acts_on_tasks=s.freezes_stand))

    # ---------------------------------------------------------------- deadlines and visibility
    def _timed_restrictions_left(self) -> list[c.PenaltyRecord]:
        return [p for p in self.s.penalties if p.kind in TIMED and p.until_at is not None
                and p.status in (c.PenaltyStatus.IN_FORCE, c.PenaltyStatus.FINAL)]

    def _plan_next_deadline(self) -> None:
        s = self.s
        candidates: list[tuple[datetime, str]] = [(p.until_at, f"{p.penalty_id} {p.kind.value} ends")
                                                  for p in self._timed_restrictions_left() if p.until_at]
        if s.stage is c.CaseStage.IN_FORCE and s.appeal is None:
            candidates.append((s.appeal_window_closes_at, "appeal window closes"))
        appeal = s.appeal
        if (s.stage is c.CaseStage.APPEALED and appeal is not None and appeal.answer_due_at is not None
                and not s.escalated):
            candidates.append((appeal.answer_due_at, "appeal answer due"))
        at, what = min(candidates, default=(None, None))
        s.next_deadline_at, s.next_deadline = at, what

    def _escalate(self, why: str) -> None:
        s = self.s
        metrics.escalation("violation", s.escalated, True)
        s.escalated = True
        s.escalation_reason = f"ESCALATED: violation case {s.case_id} ({s.party_kind.value} {s.party_id}): {why}"
        workflow.logger.warning(s.escalation_reason)
        self._plan_next_deadline()

    def _changed(self) -> None:
        self.s.messages_this_run += 1
        self._wake = True

    def _show(self) -> None:
        s = self.s
        appeal = s.appeal
        where = {
            c.CaseStage.IN_FORCE: f"penalties in force; appeal window open until "
                                  f"{business_time(s.appeal_window_closes_at)}",
            c.CaseStage.APPEALED: "appeal waiting for an answer" + (
                f" by {business_time(appeal.answer_due_at)}" if appeal and appeal.answer_due_at else ""),
            c.CaseStage.APPEAL_COMPLEX: "appeal marked complex: no answer deadline" + (
                f" (was {business_time(appeal.answer_due_at)})" if appeal and appeal.answer_due_at else ""),
            c.CaseStage.FINAL: "final; timed restrictions or freezes still standing",
            c.CaseStage.WITHDRAWN: "appeal upheld: every penalty withdrawn",
            c.CaseStage.CLOSED: "final and closed",
        }[s.stage]
        prefix = f"{s.escalation_reason} | " if s.escalated and s.escalation_reason else ""
        frozen, deducted = sum(p.frozen_fen for p in s.penalties), sum(p.deducted_fen for p in s.penalties)
        held = s.held_settlements
        to_do = (f"**What to do**: answer the appeal: `python -m starter penalty-decide {s.case_id} --decision "
                 f"upheld|rejected --operator-id ID --note TEXT`, or `penalty-mark-complex`" if s.escalated else "")
        workflow.set_current_details(self._stalls.details(details.lines(with_deadline(
            f"{prefix}case {s.case_id} ({s.party_kind.value} {s.party_id}): {where}", s.next_deadline or "deadline",
            s.next_deadline_at),
            f"**Money** (fen): frozen {details.fen(frozen)} · deducted {details.fen(deducted)} · held settlements "
            f"released {held.released}, deducted {held.deducted}; **Penalties**: {len(s.penalties)}", to_do),
            s.escalated))
        stage_attributes(s.stage.value, s.next_deadline_at, s.escalated or self._stalls.escalated)
