"""MountedContentWorkflow (`mount-content:{task_id}:{content_id}`): one mounted piece of content.

Counts its conversions through its billing period (AM-8, AM-9), waits through the 3-day publicity window
(AM-11) and settles exactly once at the window's close (AM-12). The settlement records the piece's closure in the
ledger, where its task reads it (mount_task.py); pieces started before that told their task by a signal (the
settlement itself: content_settlement.py).

Fee disputes (AM-11, AM-17) and settlements held by a penalty (AM-19, AM-22) live in workflows/content_disputes.py.

Conversions arrive as signals (R-1). A piece's batches and their grants in the task's budget are kept in the ledger
(content_batches.py; R-3: in the order the ledger accepts them); when the counting interval shrinks, what falls
outside it goes back to the budget, so the fee is always what the interval allows.
"""

from __future__ import annotations

import contextlib
from datetime import datetime
from typing import Any

from temporalio import workflow
from temporalio.common import SearchAttributeUpdate

with workflow.unsafe.imports_passed_through():
    from ports import ledger
    from ports.ledger import (
        AccrualItem,
        AccrueRequest,
        ReleaseRequest,
    )
    from workflows.contract import mounted_content as c
    from workflows.contract.mount_task import BudgetExhaustedSignal, EndReason
    from workflows.contract.names import MOUNTED_CONTENT_WORKFLOW, SA, mount_task_id
    from workflows.contract.views import MountedContentView, Progress, RunInfo
    from workflows.rules.billing import (
        billing_period_end,
        counting_stops_at,
        publicity_window_closes_at,
    )
    from workflows.rules.clock import business_time, with_deadline
    from workflows.rules.counting import batch_counts

from workflows import details, metrics
from workflows.common import (
    RunLength,
    continue_as_new_when_handlers_done,
    run_info,
    stage_attributes,
    until,
    wait_summary,
)
from workflows.content_batches import BATCHES_PATCH
from workflows.content_freezes import CountingFreezes
from workflows.content_settlement import CLOSURE_IN_LEDGER, HOLD_IN_LEDGER, ContentSettlement
from workflows.escalation import Stalls
from workflows.mount_views import DISPUTE_TO_DO, content_escalations, content_view, piece_money

WAITING_STAGES = (c.ContentStage.DISPUTED, c.ContentStage.HELD)
# Runs recording it upsert `open_dispute` and `held` (issue 23 item 5; registered first: README "Search attributes").
DISPUTE_AND_HOLD_ATTRIBUTES_PATCH = "dispute-and-hold-search-attributes"
__all__ = ["CLOSURE_IN_LEDGER", "HOLD_IN_LEDGER", "WAITING_STAGES", "MountedContentWorkflow"]


@workflow.defn(name=MOUNTED_CONTENT_WORKFLOW)
class MountedContentWorkflow(ContentSettlement, CountingFreezes):
    @workflow.init
    def __init__(self, input: c.MountedContentInput) -> None:
        if input.carried_state is not None:
            self.s = input.carried_state
        else:
            billing_end = billing_period_end(input.mounted_at, input.task_period_end_at)
            self.s = c.MountedContentState(
                task_id=input.task_id, content_id=input.content_id, creator_id=input.creator_id,
                client_id=input.client_id, payee_account=input.payee_account, price_fen=input.price_fen,
                mounted_at=input.mounted_at, task_period_end_at=input.task_period_end_at,
                billing_period_ends_at=billing_end, publicity_window_closes_at=publicity_window_closes_at(billing_end),
                counting_stops_at=billing_end, batches_in_db=workflow.patched(BATCHES_PATCH),
            )
        self._budget_exhaustion_reported = False
        self._progress = Progress()
        self._stalls = Stalls("mount")  # a settlement that cannot complete is escalated
        self._wake = self._resolving = self._applying = self._interval_moved = False

    # ---------------------------------------------------------------- run
    @workflow.run
    async def run(self, input: c.MountedContentInput) -> c.ContentResult:
        s = self.s
        self._run_length = RunLength()
        while s.stage is c.ContentStage.MOUNTED:
            # A dispute may be raised from the mount on (AM-11 reading): wake when one escalates, too (AM-17).
            due = self._dispute_due_at()
            wake_at, what = ((due, "the fee dispute escalates") if due is not None and due < s.billing_period_ends_at
                             else (s.billing_period_ends_at, "the billing period ends"))
            self._show(f"mounted; billing period ends {business_time(s.billing_period_ends_at)}"
                       f"{self._dispute_details()}", wake_at)
            await self._wait_for_work_until(wake_at, what)
            await self._apply_pending_work()
            self._escalate_dispute_if_due()
            if workflow.now() >= s.billing_period_ends_at:
                await self._unmount("billing period over")
                s.stage = c.ContentStage.PUBLICITY
            await self._continue_as_new_if_due()
        while s.stage is c.ContentStage.PUBLICITY:
            due = self._dispute_due_at()
            wake_at, what = ((due, "the fee dispute escalates") if due is not None
                             and due < s.publicity_window_closes_at
                             else (s.publicity_window_closes_at, "the publicity window closes"))
            self._show(f"publicity window open until {business_time(s.publicity_window_closes_at)}"
                       f"{self._dispute_details()}", wake_at)
            await self._wait_for_work_until(wake_at, what)
            await self._apply_pending_work()
            self._escalate_dispute_if_due()
            if workflow.now() >= s.publicity_window_closes_at:
                await self._close_window()
            await self._continue_as_new_if_due()
        while s.stage in WAITING_STAGES:
            due = self._dispute_due_at() if s.stage is c.ContentStage.DISPUTED else None
            self._show(self._waiting_details(), due)
            await self._wait_for_work_until(due, "the fee dispute escalates")
            await self._apply_pending_work()
            self._escalate_dispute_if_due()
            hold = s.settlement_hold
            if (s.stage is c.ContentStage.DISPUTED and self._open_dispute() is None and not self._resolving) or (
                    s.stage is c.ContentStage.HELD and hold is not None and hold.released_at is not None):
                await self._close_window()
            await self._continue_as_new_if_due()
        await self._reconcile_all()  # batches that came after the fee was fixed are recorded as late
        await workflow.wait_condition(workflow.all_handlers_finished)
        assert s.settlement is not None
        return c.ContentResult(
            task_id=s.task_id, content_id=s.content_id, stage=s.stage, counted_conversions=s.counted_conversions,
            fee_fen=s.settlement.fee_fen, platform_fee_fen=s.settlement.platform_fee_fen,
            payee_account=s.payee_account, settled_at=s.settlement.settled_at,
            publicity_window_closes_at=s.publicity_window_closes_at,
        )

    # ---------------------------------------------------------------- messages
    @workflow.signal(name="report_conversions")
    def report_conversions(self, batch: c.ConversionBatch) -> None:
        """R-1, R-2: each batch counts once; cheating never; late (after settlement) changes nothing."""
        s = self.s
        s.messages_this_run += 1
        if batch.content_id != s.content_id:
            workflow.logger.warning("batch %s is for content %s, not %s: ignored",
                                    batch.event_id, batch.content_id, s.content_id)
            return
        if s.batches_in_db:
            self._queue_batch(batch)
            return
        if batch.event_id in s.batches:
            return
        record = c.BatchRecord(count=batch.count, occurred_at=batch.occurred_at, cheating=batch.cheating)
        s.batches[batch.event_id] = record
        if not self._fee_open():
            record.late = True
            s.late_batches += 1
            workflow.logger.info("batch %s arrived after settlement or a dispute resolution: logged as late",
                                 batch.event_id)
        elif batch.event_id in s.pending_void_ids:
            record.voided = True
        elif self._counts(record):
            self.s.pending_accrual.append(batch.event_id)

    @workflow.signal(name="void_conversions")
    def void_conversions(self, void: c.VoidConversions) -> None:
        """R-1: the platform voids a batch until the piece is settled; its conversions stop counting."""
        s = self.s
        s.messages_this_run += 1
        if not self._fee_open():
            workflow.logger.warning("void of %s after settlement or a dispute resolution ignored", void.event_id)
            return
        if s.batches_in_db:
            self._queue_void(void.event_id)
            return
        record = s.batches.get(void.event_id)
        if record is None:
            if void.event_id not in s.pending_void_ids:
                s.pending_void_ids.append(void.event_id)  # the batch may still be on its way
            return
        record.voided = True

    @workflow.signal(name="report_visibility_lost")
    def report_visibility_lost(self, event: c.VisibilityLost) -> None:
        """AM-16: deleted or made non-public by the creator: conversions stop counting from that instant."""
        s = self.s
        s.messages_this_run += 1
        if self._interval_open() and (s.visibility_lost_at is None or event.occurred_at < s.visibility_lost_at):
            s.visibility_lost_at, s.visibility_lost_kind = event.occurred_at, event.kind
            self._shrink_interval()

    @workflow.signal(name="report_disposal")
    def report_disposal(self, event: c.PlatformDisposal) -> None:
        """AM-16: disposed of by the platform for the creator's own violation: no fee for this piece."""
        s = self.s
        s.messages_this_run += 1
        if s.settlement is None and s.disposed_at is None:
            s.disposed_at, s.disposal_reason = event.occurred_at, event.reason
            self._shrink_interval()

    @workflow.signal(name="content_revoked")
    def content_revoked(self, event: c.ContentRevoked) -> None:
        s = self.s
        s.messages_this_run += 1
        if self._interval_open() and (s.revoked_at is None or event.revoked_at < s.revoked_at):
            s.revoked_at = event.revoked_at
            self._shrink_interval()

    @workflow.signal(name="task_period_ended")
    def task_period_ended(self, event: c.TaskPeriodEnded) -> None:
        if event.reason == EndReason.BUDGET_USED_UP and self.s.budget_exhausted_at is None:
            self.s.budget_exhausted_at = event.ended_at
        self._period_ended_at(event.ended_at)

    @workflow.query(name="state")
    def state(self) -> MountedContentView:
        """The piece's windows, what counted, its money, disputes, holds and what it waits for (contract/views.py)."""
        return content_view(self.s, self._payable_fee(), self._progress.model_copy(
            update={"escalations": content_escalations(self.s) + self._stalls.escalations()}))

    @workflow.query(name="run")
    def run_info(self) -> RunInfo:
        """How far this run is towards continuing as new: the messages it counted, and its bound."""
        return run_info(self.s.messages_this_run, getattr(self, "_run_length", None))

    # ---------------------------------------------------------------- internals
    def _counts(self, record: c.BatchRecord, *, for_release: bool = False) -> bool:
        """`for_release`: whether an accrued batch keeps its grant (workflows/rules/counting.py)."""
        return batch_counts(self._counting_rule(), record.occurred_at, record.cheating, for_release=for_release,
                            freezes=self.s.counting_freezes)

    def _period_ended_at(self, ended_at: datetime) -> None:
        """AM-7/AM-8: the task period ended (by time, cancel or budget): the billing period is cut short."""
        s = self.s
        s.messages_this_run += 1
        if not self._interval_open() or (s.task_period_ended_at and s.task_period_ended_at <= ended_at):
            return
        s.task_period_ended_at = ended_at
        if s.batches_in_db and s.budget_exhausted_at is None and ended_at >= s.billing_period_ends_at:
            return  # nothing moves, so nothing wakes the run (a wake would cancel a timer that may have fired)
        s.billing_period_ends_at = billing_period_end(s.mounted_at, ended_at)
        s.publicity_window_closes_at = publicity_window_closes_at(s.billing_period_ends_at)
        self._shrink_interval()

    def _shrink_interval(self) -> None:
        s = self.s
        s.counting_stops_at = counting_stops_at(s.billing_period_ends_at, s.revoked_at, s.visibility_lost_at)
        s.rejudge = s.batches_in_db
        s.pending_accrual = [eid for eid in s.pending_accrual if self._counts(s.batches[eid])]
        self._interval_moved = True  # the loop looks again: the unmount may be due now

    def _interval_open(self) -> bool:
        """The interval may still shrink: the fee is open, or a resolution fixed it while mounted (AM-11): the
        component still comes down at the end, a revocation or lost visibility (AM-7, AM-14, AM-16)."""
        return self._fee_open() or (self.s.settlement is None and self.s.stage is c.ContentStage.MOUNTED)

    def _to_release(self) -> list[str]:
        if self.s.agreed_fee_fen is not None or self.s.batches_in_db:
            return []  # an operator's amount replaced the batches (content_disputes._move_budget_counter)
        return [eid for eid, b in self.s.batches.items()
                if b.counted > 0 and (b.voided or not self._counts(b, for_release=True))]

    def _unmount_due(self) -> bool:
        s = self.s
        return s.unmounted_at is None and (s.counting_stops_at <= workflow.now() or s.disposed_at is not None)

    def _work_pending(self) -> bool:
        """For the wait's predicate: workflow state only (common.RunLength); the unmount that time makes due is
        woken by the wait's timer (counting_stops_at) or by the signal that moved counting_stops_at
        (`_interval_moved`)."""
        s = self.s
        if self._run_length.legacy:
            unmount = self._unmount_due()
        else:
            unmount = s.unmounted_at is None and s.disposed_at is not None
        # While a dispute is being resolved the fee stays put: accrual waits for the resolution's answer.
        return not self._resolving and (bool(s.pending_accrual) or bool(self._to_release()) or unmount
                                        or self._batches_queued())

    async def _wait_for_work_until(self, instant: datetime | None, what: str) -> None:
        s, legacy = self.s, self._run_length.legacy
        if not legacy:
            if self._unmount_due() and not self._resolving:
                return  # time has made the unmount due: the caller applies it (read here, not in the predicate)
            if s.unmounted_at is None and s.counting_stops_at > workflow.now() and (
                    instant is None or s.counting_stops_at < instant):
                instant, what = s.counting_stops_at, "conversions stop counting"
        self._wake = self._interval_moved = False
        with contextlib.suppress(TimeoutError):  # the deadline came first
            await workflow.wait_condition(
                lambda: self._work_pending() or self._wake or self._run_length.reached(s.messages_this_run)
                or (not legacy and self._interval_moved)
                or (legacy and instant is not None and workflow.now() >= instant),
                timeout=None if instant is None else until(instant),
                timeout_summary=None if instant is None else wait_summary(what, instant),
            )

    async def _apply_pending_work(self) -> None:
        if self._resolving:
            return
        self._applying = True
        try:
            while self._batches_queued():
                await self._reconcile()
                if self._run_length.due(self.s.messages_this_run):
                    break  # a stream that never pauses still lets the run continue as new; the rest is carried
            while self.s.pending_accrual or self._to_release():
                if self._to_release():
                    await self._release(self._to_release())
                if self.s.pending_accrual:
                    await self._accrue()
            if self._unmount_due():
                await self._unmount("authorization revoked, content no longer public, disposed or task ended")
        finally:
            self._applying = False

    async def _accrue(self) -> None:
        """AM-10 / R-3: spend accrues in the ledger's per-task counter, atomically, once per event id."""
        s = self.s
        # Stay listed as pending until the ledger has answered, so `state` never shows a half-counted piece.
        event_ids = list(s.pending_accrual)
        items = [AccrualItem(event_id=eid, count=s.batches[eid].count, price_fen=s.price_fen,
                             occurred_at=s.batches[eid].occurred_at) for eid in event_ids]
        result = await ledger.ACCRUE(AccrueRequest(task_id=s.task_id, content_id=s.content_id, items=items))
        for eid, granted in zip(event_ids, result.results, strict=True):
            s.batches[eid].counted, s.batches[eid].fee_fen = granted.granted_count, granted.granted_fen
        metrics.conversions("mount", counted=sum(granted.granted_count for granted in result.results))
        accrued = set(event_ids)
        s.pending_accrual = [eid for eid in s.pending_accrual if eid not in accrued]
        self._recompute_fee()
        if result.exhausted_at is not None:
            await self._budget_used_up(result.exhausted_at)

    async def _budget_used_up(self, exhausted_at: datetime) -> None:
        """The budget is used up: the task period ends at the latest instant the budget paid for (R-3), so no
        granted batch lies after it. Stop counting here at once, and tell the task so that it ends the period for
        every piece."""
        self.s.budget_exhausted_at = self.s.budget_exhausted_at or exhausted_at
        self._period_ended_at(exhausted_at)
        await self._report_budget_exhausted(exhausted_at)

    async def _report_budget_exhausted(self, exhausted_at: datetime) -> None:
        if not self._budget_exhaustion_reported:
            self._budget_exhaustion_reported = True
            await workflow.get_external_workflow_handle(mount_task_id(self.s.task_id)).signal(
                "budget_exhausted", BudgetExhaustedSignal(exhausted_at=exhausted_at))

    async def _release(self, event_ids: list[str]) -> None:
        s = self.s
        await ledger.RELEASE(ReleaseRequest(task_id=s.task_id, event_ids=event_ids))
        metrics.conversions("mount", released=sum(s.batches[eid].counted for eid in event_ids))
        for eid in event_ids:
            s.batches[eid].counted, s.batches[eid].fee_fen = 0, 0
        self._recompute_fee()

    def _recompute_fee(self) -> None:
        s = self.s
        s.counted_conversions = sum(b.counted for b in s.batches.values())
        s.fee_fen = sum(b.fee_fen for b in s.batches.values())

    async def _continue_as_new_if_due(self) -> None:
        if self.s.stage in (c.ContentStage.MOUNTED, c.ContentStage.PUBLICITY, *WAITING_STAGES) and (
                self._run_length.due(self.s.messages_this_run)):
            def carry() -> c.MountedContentInput:
                self.s.messages_this_run = 0
                return self._carry()  # pending_accrual and the batches travel in the state

            await continue_as_new_when_handlers_done(carry, self._apply_pending_work)

    def _carry(self) -> c.MountedContentInput:
        s = self.s
        return c.MountedContentInput(
            task_id=s.task_id, content_id=s.content_id, creator_id=s.creator_id, client_id=s.client_id,
            payee_account=s.payee_account, price_fen=s.price_fen, mounted_at=s.mounted_at,
            task_period_end_at=s.task_period_end_at, carried_state=s,
        )

    def _waiting_details(self) -> str:
        s = self.s
        if s.stage is c.ContentStage.DISPUTED:
            return f"publicity window closed; settlement waits for the operator{self._dispute_details()}"
        case = s.settlement_hold.case_id if s.settlement_hold else "?"
        return (f"settlement of {self._payable_fee()} fen held: creator {s.creator_id}'s fees are frozen by "
                f"violation case {case} (AM-19)")

    def _show(self, waiting_for: str, next_deadline_at: datetime | None) -> None:
        s = self.s
        self._progress = Progress(waiting_for=waiting_for, next_deadline="deadline" if next_deadline_at else None,
                                  next_deadline_at=next_deadline_at)
        prefix = f"{s.escalation_reason} | " if s.escalated and s.escalation_reason else ""
        to_do = f"**What to do**: {DISPUTE_TO_DO}" if content_escalations(s) else ""
        workflow.set_current_details(self._stalls.details(details.lines(with_deadline(
            f"{prefix}content {s.content_id} of task {s.task_id}: {waiting_for}", "deadline", next_deadline_at),
            details.piece_money_line(piece_money(s, self._payable_fee())), to_do), s.escalated))
        flags: list[SearchAttributeUpdate[Any]] = []
        if workflow.patched(DISPUTE_AND_HOLD_ATTRIBUTES_PATCH):
            open_dispute = any(d.resolved_at is None for d in s.disputes)
            held = (s.settlement_hold is not None and s.settlement_hold.released_at is None) or any(
                f.resumed_at is None and not f.withdrawn for f in s.counting_freezes)
            flags = [SA.OPEN_DISPUTE.value_set(open_dispute), SA.HELD.value_set(held)]
        stage_attributes(s.stage.value, next_deadline_at, s.escalated or self._stalls.escalated, flags)
