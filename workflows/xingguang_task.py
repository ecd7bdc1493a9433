"""XingguangTaskWorkflow (`xg-task:{task_id}`): one Xingguang joint-placement task from order to settlement (R-5).

Stages: draft -> materials_review -> awaiting_provider -> in_progress -> settling -> closed (or stopped on an R-11
fault, then settling once every piece is decided). Pieces of content live in this workflow's state: a task's pieces
are chosen one by one by its service provider (tens, not thousands), every rule that spans pieces (the placement
budget, pauses of the whole task, a stop, the refund) is then one deterministic decision, and the only unbounded
inflow, billable-event batches, is bounded per run by continue-as-new (DESIGN "Limits").

The loop: apply what time decides (workflows/rules/xingguang_lifecycle.advance), run the money that fell due,
sleep until the next deadline or the next message. Handlers validate, change state and wake the loop.
"""

from __future__ import annotations

import asyncio
import contextlib
from datetime import datetime, timedelta

from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from ports import xg_ledger
    from ports.ledger import INSUFFICIENT_FUNDS
    from ports.xg_ledger import XgFreezeRequest
    from workflows.contract import xingguang as c
    from workflows.contract import xingguang_state as cs
    from workflows.contract.names import SA, XINGGUANG_TASK_WORKFLOW
    from workflows.rules import xingguang_lifecycle as life
    from workflows.rules.clock import business_time
    from workflows.rules.xingguang_money import delay_fee_limit, frozen_at_order
    from workflows.rules.xingguang_order import order_problems
    from workflows.rules.xingguang_windows import changes_due_at, pause_notice_problems

from workflows import metrics
from workflows.common import (
    RunLength,
    continue_as_new_when_handlers_done,
    stage_attributes,
    until,
)
from workflows.escalation import Stalls
from workflows.refusals import refused
from workflows.xingguang_claims import ClaimMessages
from workflows.xingguang_money_steps import MoneySteps
from workflows.xingguang_piece import PieceMessages

DRAFT_TTL = timedelta(hours=1)
# workflow.patched id: one durable timer per deadline instead of one per wait (fewer history events).
ONE_TIMER_PATCH = "xg-one-timer-per-deadline"


@workflow.defn(name=XINGGUANG_TASK_WORKFLOW)
class XingguangTaskWorkflow(PieceMessages, ClaimMessages, MoneySteps):
    @workflow.init
    def __init__(self, input: cs.XingguangTaskInput) -> None:
        self.s = input.carried_state or cs.XingguangTaskState(task_id=input.task_id)
        self._ordering = False
        self._wake = False
        self._compensating = asyncio.Lock()
        self._stalls = Stalls("xingguang")
        self._timer: asyncio.Task[None] | None = None
        self._timer_at: datetime | None = None

    # ---------------------------------------------------------------- run
    @workflow.run
    async def run(self, input: cs.XingguangTaskInput) -> cs.TaskResult:
        s = self.s
        self._run_length = RunLength()
        if s.stage is cs.TaskStage.DRAFT:
            expires = f"draft expires unordered {business_time(workflow.now() + DRAFT_TTL)}"
            workflow.set_current_details(f"xg task {s.task_id}: draft, waiting for the order update; {expires}")
            try:
                await workflow.wait_condition(lambda: s.stage is not cs.TaskStage.DRAFT and not self._ordering,
                                              timeout=DRAFT_TTL, timeout_summary=expires)
            except TimeoutError:
                s.stage = cs.TaskStage.NOT_ORDERED
                raise refused("TaskNotOrdered", [f"task {s.task_id} was not ordered within {DRAFT_TTL}",
                                                 *s.last_refusal]) from None
        while s.stage is not cs.TaskStage.CLOSED:
            await self._apply_data()
            self._tick()
            if await self._run_due_money():
                break
            await self._wait_for_next_deadline_or_message()
            await self._continue_as_new_if_due()
        await workflow.wait_condition(workflow.all_handlers_finished)
        return self._result()

    async def _wait_for_next_deadline_or_message(self) -> None:
        s = self.s
        next_at, what = life.next_deadline(s, workflow.now())
        self._wake = False
        if workflow.patched(ONE_TIMER_PATCH):
            self._arm_timer(next_at, what)
            await workflow.wait_condition(
                lambda: self._wake or self._timer_fired() or self._run_length.reached(s.messages_this_run))
            return
        # Before ONE_TIMER_PATCH (histories recorded then still replay): a fresh timer at every wait.
        with contextlib.suppress(TimeoutError):  # the deadline came first
            await workflow.wait_condition(
                lambda: self._wake or self._run_length.reached(s.messages_this_run),
                timeout=until(next_at) if next_at else None,
                timeout_summary=f"{what} {business_time(next_at)}" if next_at else None,
            )

    def _arm_timer(self, at: datetime | None, what: str) -> None:
        """One durable timer for the next deadline, replaced only when that deadline changes (a message that does
        not move it costs no timer events in the history)."""
        if at == self._timer_at and self._timer is not None and not self._timer.done():
            return
        if self._timer is not None and not self._timer.done():
            self._timer.cancel()
        self._timer_at, self._timer = at, None
        if at is not None:
            self._timer = asyncio.create_task(workflow.sleep(until(at), summary=f"{what} {business_time(at)}"))

    def _timer_fired(self) -> bool:
        return self._timer is not None and self._timer.done()

    def _tick(self) -> None:
        """Apply what time decides now and show where the task stands."""
        s, was_escalated = self.s, self.s.escalated
        life.advance(s, workflow.now())
        metrics.escalation("xingguang", was_escalated, s.escalated)
        next_at, what = life.next_deadline(s, workflow.now())
        counts: dict[str, int] = {}
        for piece in s.pieces.values():
            counts[piece.stage.value] = counts.get(piece.stage.value, 0) + 1
        pieces = ", ".join(f"{n} {stage}" for stage, n in sorted(counts.items())) or "no pieces"
        paused = " (paused)" if s.paused else ""
        waiting = f"; next: {what} {business_time(next_at)}" if next_at else ""
        escalated = f"; ESCALATED: {s.escalation_reasons[0]}" if s.escalated else ""
        workflow.set_current_details(self._stalls.details(
            f"xg task {s.task_id}: {s.stage.value}{paused}; {pieces}{self._holds_details()}{waiting}{escalated}",
            s.escalated))
        stage_attributes(("paused" if s.paused else s.stage.value), next_at, s.escalated or self._stalls.escalated)

    # ---------------------------------------------------------------- order (XG-1, XG-2, R-8)
    @workflow.update(name="order")
    async def order(self, request: c.OrderRequest) -> c.OrderResult:
        s = self.s
        if s.result is not None:
            return s.result
        self._ordering = True
        try:
            assert request.placement_budget_fen is not None and request.creator_earnings_budget_fen is not None
            assert request.provider_fee_rate_bp is not None
            waived = bool(request.platform_fee_waiver and request.platform_fee_waiver.strip())
            rate = 0 if waived else (request.platform_fee_rate_bp or 0)
            fee, total = frozen_at_order(request.placement_budget_fen, request.creator_earnings_budget_fen, rate,
                                         waived)
            try:
                freeze = await xg_ledger.FREEZE(XgFreezeRequest(task_id=s.task_id, client_id=request.client_id,
                                                                amount_fen=total))
            except ActivityError as err:
                if isinstance(err.cause, ApplicationError) and err.cause.type == INSUFFICIENT_FUNDS:
                    s.last_refusal = [(f"balance does not cover the order's freeze of {total} fen (placement "
                                      f"budget + creator earnings budget + platform fee {fee}): {err.cause.message}")]
                    raise refused("OrderRefused", s.last_refusal) from None
                raise
            terms = c.OrderTerms(
                placement_budget_fen=request.placement_budget_fen,
                creator_earnings_budget_fen=request.creator_earnings_budget_fen, platform_fee_rate_bp=rate,
                platform_fee_waived=waived, platform_fee_waiver=request.platform_fee_waiver if waived else None,
                platform_fee_frozen_fen=fee, provider_fee_rate_bp=request.provider_fee_rate_bp,
                frozen_fen=freeze.frozen_fen)
            s.order, s.client_id, s.frozen_fen = request, request.client_id, freeze.frozen_fen
            s.billing_start_at, s.billing_end_at = request.billing_start_at, request.billing_end_at
            s.result = c.OrderResult(task_id=s.task_id, ordered_at=workflow.now(), terms=terms,
                                     freeze_transfer_id=freeze.transfer_id)
            s.stage, s.last_refusal = cs.TaskStage.MATERIALS_REVIEW, []
            metrics.task_published("xingguang", freeze.frozen_fen)
            workflow.upsert_search_attributes([SA.CLIENT_ID.value_set(request.client_id)])
            self._changed()
            return s.result
        finally:
            self._ordering = False

    @order.validator
    def validate_order(self, request: c.OrderRequest) -> None:
        s = self.s
        if request.task_id != s.task_id:
            raise refused("OrderRefused", [(f"task_id: {request.task_id} does not match this workflow's task "
                                           f"{s.task_id}")])
        if s.result is not None:
            if s.order != request:
                raise refused("OrderRefused", [f"task {s.task_id} is already ordered with different terms"])
            return
        if s.stage is not cs.TaskStage.DRAFT or self._ordering:
            raise refused("OrderRefused", [f"task {s.task_id} is being ordered by another call; retry to read "
                                           "its answer" if self._ordering else f"task {s.task_id} is {s.stage}"])
        problems = order_problems(request, workflow.now())
        if problems:
            raise refused("OrderRefused", problems)  # validators change nothing: the refusal is the answer

    # ---------------------------------------------------------------- materials and provider (XG-1, XG-3)
    @workflow.update(name="review_materials")
    def review_materials(self, request: c.ReviewMaterialsRequest) -> cs.TaskStatus:
        s = self.s
        s.materials = list(request.verdicts)
        refusals = [f"{v.kind.value} {v.item_id}: {v.reason}" for v in request.verdicts if not v.approved]
        if refusals:
            # XG-1: the platform refuses the materials; nothing was made, everything frozen goes back.
            s.materials_refused, s.end_reason = True, "materials refused: " + "; ".join(refusals)
            life.start_settling(s)
        else:
            s.stage = cs.TaskStage.AWAITING_PROVIDER
        self._changed()
        return self._status()

    @review_materials.validator
    def validate_review_materials(self, request: c.ReviewMaterialsRequest) -> None:
        self._require(self.s.stage is cs.TaskStage.MATERIALS_REVIEW,
                      f"task {self.s.task_id} is {self.s.stage.value}, not materials_review")
        missing = [f"verdicts[{i}].reason" for i, v in enumerate(request.verdicts)
                   if not v.approved and not v.reason.strip()]
        self._require(not missing, f"{', '.join(missing)}: required when refusing a material")

    @workflow.update(name="assign_provider")
    def assign_provider(self, request: c.AssignProviderRequest) -> cs.TaskStatus:
        self.s.provider_id, self.s.stage = request.provider_id, cs.TaskStage.IN_PROGRESS
        self._changed()
        return self._status()

    @assign_provider.validator
    def validate_assign_provider(self, request: c.AssignProviderRequest) -> None:
        self._require(self.s.stage is cs.TaskStage.AWAITING_PROVIDER,
                      f"task {self.s.task_id} is {self.s.stage.value}, not awaiting_provider")

    # ---------------------------------------------------------------- compliance pause (XG-7, R-9)
    @workflow.update(name="pause")
    def pause(self, request: c.PauseRequest) -> cs.PauseRecord:
        if (existing := self._pause(request.pause_id)) is not None:
            return existing
        received = request.notice_received_at or request.notice_sent_at
        due = request.changes_due_at  # as recorded by pauses before the workflow computed it
        if received is not None and request.changes_within_days is not None:
            due = changes_due_at(received, request.changes_within_days)
        record = cs.PauseRecord(pause_id=request.pause_id, piece_id=request.piece_id, reason=request.reason,
                                paused_at=workflow.now(), changes_due_at=due, notice_sent_at=request.notice_sent_at,
                                notice_received_at=received, changes_within_days=request.changes_within_days)
        self.s.pauses.append(record)
        self._changed()
        return record

    @pause.validator
    def validate_pause(self, request: c.PauseRequest) -> None:
        if self._pause(request.pause_id) is not None:
            return
        self._require(self.s.stage is cs.TaskStage.IN_PROGRESS and self.s.promotion_stopped_at is None,
                      f"task {self.s.task_id} is {self.s.stage.value}: only a task in progress is paused")
        if request.piece_id is not None:
            self._piece(request.piece_id, *life.BEFORE_PUBLICATION, cs.PieceStage.PUBLISHED)
        problems = pause_notice_problems(request, workflow.now())
        if problems:
            raise refused("PauseRefused", problems)

    @workflow.update(name="respond_to_pause")
    def respond_to_pause(self, request: c.RespondToPauseRequest) -> cs.PauseRecord:
        record = self._pause(request.pause_id)
        assert record is not None
        if request.changes_made:
            record.resumed_at = workflow.now()
            if record.changes_due_at is not None and record.resumed_at >= record.changes_due_at:
                record.late_changes_accepted_by = request.late_changes_accepted_by
        else:
            record.refused_at = workflow.now()
        self._changed()
        return record

    @respond_to_pause.validator
    def validate_respond_to_pause(self, request: c.RespondToPauseRequest) -> None:
        record = self._pause(request.pause_id)
        self._require(record is not None and record.kind == "compliance", f"pause_id: no pause {request.pause_id}")
        assert record is not None and record.changes_due_at is not None
        self._require(request.client_id == self.s.client_id,
                      f"client_id: {request.client_id} is not the client of task {self.s.task_id}")
        self._require(life.open_pause(record), f"pause {record.pause_id} is already answered")
        self._require(not request.changes_made or workflow.now() < record.changes_due_at
                      or request.late_changes_accepted_by is not None,
                      f"the deadline for changes passed at {business_time(record.changes_due_at)}: the platform "
                      "may cancel the task, or an operator may accept the late changes (XG-7)")

    @workflow.update(name="cancel_after_pause")
    def cancel_after_pause(self, request: c.CancelAfterPauseRequest) -> cs.TaskStatus:
        s, now = self.s, workflow.now()
        record = self._pause(request.pause_id)
        assert record is not None
        record.cancelled_at = now
        record.deadline_missed = record.refused_at is None
        s.delay_fee_fen, s.delay_fee_reason = request.delay_fee_fen, request.delay_fee_reason or None
        s.end_reason = (f"cancelled after pause {record.pause_id}: "
                        f"{'changes refused' if record.refused_at else 'deadline for changes missed'}")
        life.cancel_for_delay(s, now)
        self._changed()
        return self._status()

    @cancel_after_pause.validator
    def validate_cancel_after_pause(self, request: c.CancelAfterPauseRequest) -> None:
        s, record = self.s, self._pause(request.pause_id)
        self._require(record is not None and record.kind == "compliance", f"pause_id: no pause {request.pause_id}")
        assert record is not None and record.changes_due_at is not None
        self._require(s.stage in life.RUNNING and record.cancelled_at is None,
                      f"task {s.task_id} is {s.stage.value}: nothing to cancel")
        self._require(record.refused_at is not None or (record.resumed_at is None
                                                        and workflow.now() >= record.changes_due_at),
                      f"pause {record.pause_id}: the client has until {business_time(record.changes_due_at)} and "
                      "has not refused; a task is cancelled only after a refusal or a missed deadline (XG-7)")
        limit = delay_fee_limit(s.frozen_fen, life.committed_fen(s))
        self._require(request.delay_fee_fen <= limit,
                      f"delay_fee_fen: {request.delay_fee_fen} is above what remains frozen ({limit} fen) (R-9)")
        self._require(request.delay_fee_fen == 0 or bool(request.delay_fee_reason.strip()),
                      "delay_fee_reason: required with a delay fee (R-9)")

    def _pause(self, pause_id: str) -> cs.PauseRecord | None:
        return next((p for p in self.s.pauses if p.pause_id == pause_id), None)

    # ---------------------------------------------------------------- termination events (XG-8, R-11, R-9)
    @workflow.update(name="record_violation")
    def record_violation(self, request: c.RecordViolationRequest) -> cs.TaskStatus:
        s, now = self.s, workflow.now()
        if any(v.violation_id == request.violation_id for v in s.violations):
            return self._status()
        cause = request.cause
        decision: c.ViolationDecision | None = None
        if cause is c.TerminationCause.BILLING_OVER_BALANCE_SHORT_OR_CANCELLED:
            s.promotion_stopped_at, s.end_reason = now, f"ordinary end: {request.note}"
            life.end_pauses(s, now)
        elif cause is c.TerminationCause.CONTENT_DELETED_OR_NON_PUBLIC:
            assert request.piece_id is not None
            piece = s.pieces[request.piece_id]
            if piece.stage is cs.PieceStage.PUBLISHED:
                life.end_promotion(piece, now)
            piece.decision_needed = True
        else:
            decision = request.decision
            if decision is c.ViolationDecision.STOP:
                s.end_reason = f"stopped: {cause.value}: {request.note}"
                life.stop(s, now)
            else:
                s.pauses.append(cs.PauseRecord(pause_id=request.violation_id, piece_id=None, kind="fix",
                                               reason=f"{cause.value}: {request.note}", paused_at=now,
                                               changes_due_at=None))
        s.violations.append(cs.ViolationRecord(violation_id=request.violation_id, cause=cause, note=request.note,
                                               piece_id=request.piece_id, decision=decision, recorded_at=now))
        self._changed()
        return self._status()

    @record_violation.validator
    def validate_record_violation(self, request: c.RecordViolationRequest) -> None:
        s = self.s
        if any(v.violation_id == request.violation_id for v in s.violations):
            return
        self._require(s.stage in life.RUNNING, f"task {s.task_id} is {s.stage.value}: no in-flight task to stop")
        if request.cause is c.TerminationCause.CONTENT_DELETED_OR_NON_PUBLIC:
            self._require(request.piece_id is not None, "piece_id: required for content deleted or made non-public")
            assert request.piece_id is not None
            self._piece(request.piece_id, cs.PieceStage.PUBLISHED, cs.PieceStage.PUBLICITY)

    @workflow.update(name="submit_fix_proof")
    def submit_fix_proof(self, request: c.SubmitFixProofRequest) -> cs.TaskStatus:
        now = workflow.now()
        violation = next(v for v in self.s.violations if v.violation_id == request.violation_id)
        violation.proof, violation.resumed_at = f"{request.proof} (by {request.submitted_by})", now
        hold = self._pause(request.violation_id)
        assert hold is not None
        hold.resumed_at = now
        self._changed()
        return self._status()

    @submit_fix_proof.validator
    def validate_submit_fix_proof(self, request: c.SubmitFixProofRequest) -> None:
        violation = next((v for v in self.s.violations if v.violation_id == request.violation_id), None)
        self._require(violation is not None and violation.decision is c.ViolationDecision.CONTINUE_AFTER_FIX
                      and violation.resumed_at is None,
                      f"violation_id: {request.violation_id} is not waiting for proof of a fix")

    @workflow.query(name="state")
    def state(self) -> cs.XingguangTaskState:
        return self.s

    # ---------------------------------------------------------------- internals
    async def _continue_as_new_if_due(self) -> None:
        if self._run_length.due(self.s.messages_this_run):
            def carry() -> cs.XingguangTaskInput:
                self.s.messages_this_run = 0
                return cs.XingguangTaskInput(task_id=self.s.task_id, carried_state=self.s)  # with pending batches

            await continue_as_new_when_handlers_done(carry, self._apply_data)

    def _status(self) -> cs.TaskStatus:
        s = self.s
        return cs.TaskStatus(task_id=s.task_id, stage=s.stage, applied_at=workflow.now(), paused=s.paused,
                             escalated=s.escalated, escalation_reasons=s.escalation_reasons,
                             promotion_stopped_at=s.promotion_stopped_at,
                             promotion_due_to_end_at=s.promotion_due_to_end_at, next_deadline_at=s.next_deadline_at,
                             end_reason=s.end_reason)

    def _result(self) -> cs.TaskResult:
        s = self.s
        return cs.TaskResult(
            task_id=s.task_id, stage=s.stage, end_reason=s.end_reason, frozen_fen=s.frozen_fen,
            paid_to_creators_fen=s.paid_to_creators_fen, promotion_spend_fen=s.promotion_spend_fen,
            platform_fees_fen=s.platform_fees_fen, provider_fees_fen=s.provider_fees_fen,
            delay_fee_fen=s.delay_fee_fen, deducted_fen=s.deducted_fen, refunded_fen=s.refunded_fen, order=s.result,
            pauses=s.pauses,
            pieces={pid: p.settlement for pid, p in s.pieces.items() if p.settlement is not None})
