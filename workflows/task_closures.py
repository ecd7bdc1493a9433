"""The end of a mount task (AM-7, AM-13), a part of MountTaskWorkflow (mount_task.py): the period ends (at its end,
when the budget is used up, or by `cancel`), the pieces are told, their closures are read from the ledger
(ClosureLooks, or RegisterLooks with the register in the database) or, for pieces started before that, arrive as
`content_closed`; held pieces are refunded around in parts, and the rest is refunded when every piece has closed."""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable
from datetime import datetime

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from ports import fanout, ledger
    from ports.fanout import SignalContentsRequest
    from ports.ledger import RefundRequest, TaskClosuresRequest
    from workflows.contract import mount_task as c
    from workflows.contract.mounted_content import ContentRevoked, TaskPeriodEnded
    from workflows.rules.clock import business_time

from workflows import metrics, partial_refunds
from workflows import task_register as reg
from workflows.closure_looks import ClosureLooks
from workflows.common import RunLength, stage_attributes, until, wait_summary
from workflows.escalation import Stalls
from workflows.refusals import CANCEL_REFUSED, refused

# Pieces are told of the end of the period in batches of this size (one activity each).
FANOUT_BATCH = 500
# Closures read from the ledger in one activity call (~100 bytes each).
CLOSURE_PAGE = 1_000
# A look costs ~11 history events (activity, timer, workflow tasks), a message ~7: it counts as two.
CLOSURE_LOOK_MESSAGES = 2


class TaskClosures:
    s: c.MountTaskState
    _stalls: Stalls
    _run_length: RunLength
    _looks: ClosureLooks | reg.RegisterLooks | None
    _look_at: datetime | None

    def _show(self, details: str, next_deadline_at: datetime | None) -> None:
        raise NotImplementedError

    def _describe(self, waiting_for: str, deadline: str, at: datetime | None) -> None:
        raise NotImplementedError

    def _continue_as_new_if_due(self) -> Awaitable[None]:
        raise NotImplementedError

    def _result(self) -> c.TaskResult:
        raise NotImplementedError

    # ---------------------------------------------------------------- cancel (AM-7)
    @workflow.update(name="cancel")
    def cancel(self, request: c.CancelRequest) -> c.TaskResult:
        self.s.cancel_reason = f"{request.reason} (by {request.requested_by})"
        self._end(workflow.now(), c.EndReason.CANCELLED)
        return self._result()

    @cancel.validator
    def validate_cancel(self, request: c.CancelRequest) -> None:
        s = self.s
        if s.end_reason is c.EndReason.CANCELLED and s.ended_at is not None:
            raise refused(CANCEL_REFUSED, f"task {s.task_id} was already cancelled at {business_time(s.ended_at)}: "
                                          f"{s.cancel_reason}")
        if self.s.stage is not c.TaskStage.PUBLISHED:
            raise refused(CANCEL_REFUSED, f"task {self.s.task_id} cannot be cancelled: it is {self.s.stage.value}")

    # ---------------------------------------------------------------- from content workflows
    @workflow.signal(name="budget_exhausted")
    def budget_exhausted(self, signal: c.BudgetExhaustedSignal) -> None:
        """AM-10 / R-3: the ledger's budget counter reached the budget at `exhausted_at`."""
        self.s.messages_this_run += 1
        if self.s.stage is c.TaskStage.PUBLISHED:
            self._end(signal.exhausted_at, c.EndReason.BUDGET_USED_UP)

    @workflow.signal(name="content_closed")
    def content_closed(self, signal: c.ContentClosedSignal) -> None:
        """Sent by pieces that started before CLOSURE_IN_LEDGER (mounted_content.py); newer ones only write it to
        the ledger. The same closure read both ways counts once."""
        self.s.messages_this_run += 1
        if self.s.register_in_db:  # its pieces write their closures to the ledger only, and are read from there
            workflow.logger.warning("content_closed from %s ignored: read from the ledger", signal.content_id)
            return
        self._piece_closed(signal.content_id, signal.settled, signal.fee_fen, signal.platform_fee_fen)

    def _end(self, ended_at: datetime, reason: c.EndReason) -> None:
        """AM-7: the task period ends; no new mounts; pieces are told (and unmount) in the run loop."""
        s = self.s
        s.stage, s.ended_at, s.end_reason = c.TaskStage.ENDED, ended_at, reason
        self._show(f"ended ({reason.value}) at {business_time(ended_at)}", None)

    async def _tell_pieces_the_period_ended(self) -> None:
        s = self.s
        assert s.ended_at is not None and s.end_reason is not None
        if s.register_in_db:
            if s.end_notified_count < s.pieces_count:
                await reg.tell_open_pieces(s, "task_period_ended", TaskPeriodEnded(
                    ended_at=s.ended_at, reason=s.end_reason.value).model_dump(mode="json"))
            return
        content_ids = list(s.pieces)
        while s.end_notified_count < len(content_ids):
            batch = [cid for cid in content_ids[s.end_notified_count:s.end_notified_count + FANOUT_BATCH]
                     if s.pieces[cid].status in ("mounted", "unmounted")]
            await self._signal_pieces(batch, "task_period_ended",
                                      TaskPeriodEnded(ended_at=s.ended_at, reason=s.end_reason.value))
            s.end_notified_count += FANOUT_BATCH

    async def _signal_pieces(self, content_ids: list[str], signal: str, payload: ContentRevoked | TaskPeriodEnded
                             ) -> None:
        for start in range(0, len(content_ids), FANOUT_BATCH):
            await fanout.SIGNAL_CONTENTS(
                SignalContentsRequest(task_id=self.s.task_id, content_ids=content_ids[start:start + FANOUT_BATCH],
                                      signal=signal, payload=payload.model_dump(mode="json")))

    def _piece_closed(self, content_id: str, settled: bool, fee_fen: int, platform_fee_fen: int) -> None:
        s = self.s
        piece = s.pieces.get(content_id)
        if piece is None:
            workflow.logger.warning("closure of content %s, which is not mounted in task %s: ignored",
                                    content_id, s.task_id)
            return
        if piece.status in ("settled", "closed"):
            return  # read again, or reported both by signal and in the ledger
        piece.status = "settled" if settled else "closed"
        piece.fee_fen, piece.platform_fee_fen = fee_fen, platform_fee_fen
        s.paid_to_creators_fen += fee_fen
        s.platform_fees_fen += platform_fee_fen
        s.pieces_open -= 1

    async def _wait_for_closures_in_the_ledger(self, published: c.Published) -> None:
        """AM-13 waits for every piece to settle or close: the task reads that from the ledger (ClosureLooks)."""
        s = self.s
        self._looks = self._new_looks(published)  # the windows as the end of the task cut them
        self._look_at = workflow.now()
        shown_deadline: datetime | None = None
        while s.pieces_open > 0:
            if self._look_at is not None and workflow.now() >= self._look_at:
                await self._look_at_closures()
                if s.pieces_open == 0:
                    break
                open_not_held = self._looks.open_not_held if isinstance(self._looks, reg.RegisterLooks) else None
                # AM-13: held pieces do not keep the rest frozen
                await partial_refunds.refund_part_if_due(s, self._stalls, open_not_held)
            assert self._look_at is not None
            next_window = self._looks.next_window(workflow.now())
            if next_window != shown_deadline:
                stage_attributes(s.stage.value, next_window)
                shown_deadline = next_window
            self._describe(
                f"ended ({s.end_reason}): waiting for {s.pieces_open} of {self._pieces()} "
                f"piece(s) to settle ({s.closures_read_seq} closure(s) read from the ledger"
                f"{partial_refunds.describe(s)}); next look at the ledger {business_time(self._look_at)}",
                "publicity window closes", next_window)
            with contextlib.suppress(TimeoutError):  # time to look
                await workflow.wait_condition(
                    lambda: s.pieces_open == 0 or self._run_length.reached(s.messages_this_run),
                    timeout=until(self._look_at),
                    timeout_summary=wait_summary("the next look at the ledger for closed pieces", self._look_at))
            await self._continue_as_new_if_due()

    async def _look_at_closures(self) -> None:
        assert self._looks is not None
        found = await self._read_closures()
        self._look_at = await self._next_look(found)

    def _new_looks(self, published: c.Published) -> ClosureLooks | reg.RegisterLooks:
        return reg.RegisterLooks(self.s, published) if self.s.register_in_db else ClosureLooks(self.s, published)

    async def _next_look(self, found: int) -> datetime | None:
        if isinstance(self._looks, reg.RegisterLooks):
            return await self._looks.next_look(workflow.now(), found)
        assert self._looks is not None
        return self._looks.next_look(workflow.now(), found)

    def _pieces(self) -> int:
        return self.s.pieces_count if self.s.register_in_db else len(self.s.pieces)

    async def _read_closures(self) -> int:
        """Reads the closures written since the last one read; returns how many there were."""
        s = self.s
        read = 0
        while True:
            page = await ledger.TASK_CLOSURES(
                TaskClosuresRequest(task_id=s.task_id, after_seq=s.closures_read_seq, limit=CLOSURE_PAGE))
            for closure in page.closures:
                if s.register_in_db:
                    reg.closed(s, closure.outcome == "settled", closure.fee_fen, closure.platform_fee_fen)
                    continue
                self._piece_closed(closure.content_id, closure.outcome == "settled", closure.fee_fen,
                                   closure.platform_fee_fen)
            s.closures_read_seq, s.closures_read_at = page.last_seq, workflow.now()
            s.held_content_ids = page.held_content_ids
            if page.money is not None:
                s.money = page.money.model_copy(update={"as_of": workflow.now()})
            s.messages_this_run += CLOSURE_LOOK_MESSAGES
            read += len(page.closures)
            if len(page.closures) < CLOSURE_PAGE:
                return read

    async def _refund(self, published: c.Published) -> None:
        """AM-13: every piece settled or closed; whatever is still frozen goes back to the client."""
        s = self.s
        refund = await self._stalls.call("refund", ledger.REFUND, RefundRequest(task_id=s.task_id,
                                                                                client_id=published.client_id))
        partial_refunds.record_final_refund(s, refund.refunded_fen)
        s.spent_fen = s.paid_to_creators_fen
        metrics.task_refunded("mount", refund.refunded_fen)
        s.stage = c.TaskStage.REFUNDED
        self._show(f"refunded {s.refunded_fen} fen to client {published.client_id} in {len(s.refund_parts)} "
                   "part(s)", None)
