"""Compliance pauses (XG-7, R-9) and termination events (XG-8, R-11, R-9) of a Xingguang task, as a base class of
XingguangTaskWorkflow: `pause`, `respond_to_pause`, `cancel_after_pause`, `record_violation`, `submit_fix_proof`.
They change the task's record (its pauses and violations); workflows/rules/xingguang_lifecycle.py applies what the
record means for the pieces and the money."""

from __future__ import annotations

from datetime import datetime

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from workflows.contract import xingguang as c
    from workflows.contract import xingguang_state as cs
    from workflows.rules import xingguang_lifecycle as life
    from workflows.rules.clock import business_time
    from workflows.rules.repeats import cancel_after_pause_conflict
    from workflows.rules.xingguang_money import delay_fee_limit
    from workflows.rules.xingguang_windows import changes_due_at, pause_notice_problems

from workflows.refusals import XINGGUANG_STEP_REFUSED, refused
from workflows.xingguang_piece import WorkflowBase

# A cancellation sent again with the same request is answered with the first answer, and the end reason names the
# operator (before: a repeat was refused as "nothing to cancel", and the operator was not kept).
CANCEL_REPEAT_PATCH = "xg-7-cancel-repeat-answers-first"


class ControlMessages(WorkflowBase):
    # The cancellation's request and first answer, by pause id (this run's; a run continued as new compares the
    # delay fee and its reason kept in the state, and answers with the status now, applied at the cancellation).
    _cancels: dict[str, tuple[c.CancelAfterPauseRequest, cs.TaskStatus]]

    def _status(self) -> cs.TaskStatus:
        raise NotImplementedError  # XingguangTaskWorkflow's: where the task stands after a command

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
        record = self._known_pause(request.pause_id)
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
        if record is None or record.kind != "compliance" or (due_at := record.changes_due_at) is None:
            raise refused(XINGGUANG_STEP_REFUSED, f"pause_id: no pause {request.pause_id}")
        self._require(request.client_id == self.s.client_id,
                      f"client_id: {request.client_id} is not the client of task {self.s.task_id}")
        self._require(life.open_pause(record), f"pause {record.pause_id} is already answered")
        self._require(not request.changes_made or workflow.now() < due_at
                      or request.late_changes_accepted_by is not None,
                      f"the deadline for changes passed at {business_time(due_at)}: the platform "
                      "may cancel the task, or an operator may accept the late changes (XG-7)")

    @workflow.update(name="cancel_after_pause")
    def cancel_after_pause(self, request: c.CancelAfterPauseRequest) -> cs.TaskStatus:
        s, now = self.s, workflow.now()
        record = self._known_pause(request.pause_id)
        if (cancelled_at := record.cancelled_at) is not None and workflow.patched(CANCEL_REPEAT_PATCH):
            # the validator let the same request through: nothing moves
            return self._first_cancel_answer(record, cancelled_at)
        record.cancelled_at = now
        record.deadline_missed = record.refused_at is None
        s.delay_fee_fen, s.delay_fee_reason = request.delay_fee_fen, request.delay_fee_reason or None
        by = f" by {request.operator_id}" if workflow.patched(CANCEL_REPEAT_PATCH) else ""
        s.end_reason = (f"cancelled after pause {record.pause_id}{by}: "
                        f"{'changes refused' if record.refused_at else 'deadline for changes missed'}")
        life.cancel_for_delay(s, now)
        self._changed()
        status = self._status()
        self._cancels[record.pause_id] = (request, status)
        return status

    @cancel_after_pause.validator
    def validate_cancel_after_pause(self, request: c.CancelAfterPauseRequest) -> None:
        s, record = self.s, self._pause(request.pause_id)
        first = next((p for p in s.pauses if p.cancelled_at is not None), None)
        if first is not None:
            kept = self._cancels.get(first.pause_id)
            reasons = cancel_after_pause_conflict(self.s, self.s.delay_fee_fen, first, kept[0] if kept else None,
                                                  request)
            if not reasons:
                return  # the same request again: answered with the first answer
            raise refused(XINGGUANG_STEP_REFUSED, reasons)
        if record is None or record.kind != "compliance" or (due_at := record.changes_due_at) is None:
            raise refused(XINGGUANG_STEP_REFUSED, f"pause_id: no pause {request.pause_id}")
        self._require(s.stage in life.RUNNING and record.cancelled_at is None,
                      f"task {s.task_id} is {s.stage.value}: nothing to cancel")
        self._require(record.refused_at is not None or (record.resumed_at is None
                                                        and workflow.now() >= due_at),
                      f"pause {record.pause_id}: the client has until {business_time(due_at)} and "
                      "has not refused; a task is cancelled only after a refusal or a missed deadline (XG-7)")
        limit = delay_fee_limit(s.frozen_fen, life.committed_fen(s, self._ordered().terms))
        self._require(request.delay_fee_fen <= limit,
                      f"delay_fee_fen: {request.delay_fee_fen} is above what remains frozen ({limit} fen) (R-9)")
        self._require(request.delay_fee_fen == 0 or bool(request.delay_fee_reason.strip()),
                      "delay_fee_reason: required with a delay fee (R-9)")

    def _first_cancel_answer(self, record: cs.PauseRecord, cancelled_at: datetime) -> cs.TaskStatus:
        kept = self._cancels.get(record.pause_id)
        if kept is not None:
            return kept[1]
        return self._status().model_copy(update={"applied_at": cancelled_at})

    def _pause(self, pause_id: str) -> cs.PauseRecord | None:
        return next((p for p in self.s.pauses if p.pause_id == pause_id), None)

    def _known_pause(self, pause_id: str) -> cs.PauseRecord:
        """A pause a handler's validator found: narrowed typed (refused if it were missing, not asserted)."""
        if (record := self._pause(pause_id)) is None:
            raise refused(XINGGUANG_STEP_REFUSED, f"pause_id: no pause {pause_id}")
        return record

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
            if request.piece_id is None:  # the validator refused it already
                raise refused(XINGGUANG_STEP_REFUSED, "piece_id: required for content deleted or made non-public")
            piece = self._piece(request.piece_id)
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
            if request.piece_id is None:
                raise refused(XINGGUANG_STEP_REFUSED, "piece_id: required for content deleted or made non-public")
            self._piece(request.piece_id, cs.PieceStage.PUBLISHED, cs.PieceStage.PUBLICITY)

    @workflow.update(name="submit_fix_proof")
    def submit_fix_proof(self, request: c.SubmitFixProofRequest) -> cs.TaskStatus:
        now = workflow.now()
        violation = next(v for v in self.s.violations if v.violation_id == request.violation_id)
        hold = self._known_pause(request.violation_id)
        violation.proof, violation.resumed_at = f"{request.proof} (by {request.submitted_by})", now
        hold.resumed_at = now
        self._changed()
        return self._status()

    @submit_fix_proof.validator
    def validate_submit_fix_proof(self, request: c.SubmitFixProofRequest) -> None:
        violation = next((v for v in self.s.violations if v.violation_id == request.violation_id), None)
        self._require(violation is not None and violation.decision is c.ViolationDecision.CONTINUE_AFTER_FIX
                      and violation.resumed_at is None,
                      f"violation_id: {request.violation_id} is not waiting for proof of a fix")
