"""XingguangTaskWorkflow (`xg-task:{task_id}`): one Xingguang joint-placement task from order to settlement (R-5).

Stages: draft -> materials_review -> awaiting_provider -> in_progress -> settling -> closed (or stopped on an R-11
fault, then settling once every piece is decided). Pieces of content live in this workflow's state: a task's pieces
are chosen one by one by its service provider (tens, not thousands), every rule that spans pieces (the placement
budget, pauses of the whole task, a stop, the refund) is then one deterministic decision, and the only unbounded
inflow, billable-event batches, is bounded per run by continue-as-new (DESIGN "Limits").

The loop: apply what time decides (workflows/rules/xingguang_lifecycle.advance), run the money that fell due,
sleep until the next deadline or the next message. Handlers validate, change state and wake the loop.

Its parts: xingguang_piece.py (a piece's messages), xingguang_control.py (pauses, termination events),
xingguang_claims.py (compensation, penalties), xingguang_money_steps.py and xingguang_holds.py (the money that falls
due, settlements a violation case holds).
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
    from workflows.contract.views import Escalation, Progress, RunInfo
    from workflows.rules import xingguang_lifecycle as life
    from workflows.rules.clock import business_time
    from workflows.rules.xingguang_money import frozen_at_order
    from workflows.rules.xingguang_order import order_problems

from workflows import details, metrics
from workflows.common import (
    RunLength,
    continue_as_new_when_handlers_done,
    run_info,
    stage_attributes,
    until,
    wait_summary,
)
from workflows.escalation import Stalls
from workflows.refusals import differing_fields, refused
from workflows.xingguang_claims import ClaimMessages
from workflows.xingguang_control import ControlMessages
from workflows.xingguang_money_steps import MoneySteps
from workflows.xingguang_piece import PieceMessages
from workflows.xingguang_views import task_view, xg_money

DRAFT_TTL = timedelta(hours=1)
# What an operator does about the task's own escalation (an objection, a data dispute or a stop decision past its
# working days, R-5, R-11): decide it with the command the reason points to.
ESCALATION_TO_DO = ("decide what it waits for: `python -m starter xg-objection-decide`, `xg-data-dispute-resolve` "
                    "or `xg-decide-piece` (README \"Operating it\")")
# workflow.patched id: one durable timer per deadline instead of one per wait (fewer history events).
ONE_TIMER_PATCH = "xg-one-timer-per-deadline"


@workflow.defn(name=XINGGUANG_TASK_WORKFLOW)
class XingguangTaskWorkflow(PieceMessages, ControlMessages, ClaimMessages, MoneySteps):
    @workflow.init
    def __init__(self, input: cs.XingguangTaskInput) -> None:
        self.s = input.carried_state or cs.XingguangTaskState(task_id=input.task_id)
        self._ordering = False
        self._wake = False
        self._cancels = {}
        self._compensating = asyncio.Lock()
        self._stalls = Stalls("xingguang")
        self._progress = Progress()
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
                timeout_summary=wait_summary(what, next_at) if next_at else None,
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
            self._timer = asyncio.create_task(workflow.sleep(until(at), summary=wait_summary(what, at)))

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
        self._progress = Progress(waiting_for=f"{s.stage.value}{paused}; {pieces}{self._holds_details()}",
                                  next_deadline=what if next_at else None, next_deadline_at=next_at,
                                  escalations=[Escalation(what="xg task", why=reason, to_do=ESCALATION_TO_DO)
                                               for reason in s.escalation_reasons])
        workflow.set_current_details(self._stalls.details(details.lines(
            f"xg task {s.task_id}: {s.stage.value}{paused}; {pieces}{self._holds_details()}{waiting}{escalated}",
            details.task_money_line(xg_money(s))), s.escalated))
        stage_attributes(("paused" if s.paused else s.stage.value), next_at, s.escalated or self._stalls.escalated)

    # ---------------------------------------------------------------- order (XG-1, XG-2, R-8)
    @workflow.update(name="order")
    async def order(self, request: c.OrderRequest) -> c.OrderResult:
        s = self.s
        if s.result is not None:
            return s.result
        self._ordering = True
        try:
            placement, earnings = request.placement_budget_fen, request.creator_earnings_budget_fen
            if placement is None or earnings is None or request.provider_fee_rate_bp is None:  # validator refused
                raise refused("OrderRefused", order_problems(request, workflow.now()))
            waived = bool(request.platform_fee_waiver and request.platform_fee_waiver.strip())
            rate = 0 if waived else (request.platform_fee_rate_bp or 0)
            fee, total = frozen_at_order(placement, earnings, rate, waived)
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
                placement_budget_fen=placement, creator_earnings_budget_fen=earnings, platform_fee_rate_bp=rate,
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
            if s.order != request:  # the same order again answers the first
                raise refused("OrderRefused", differing_fields(s.order, request, "ordered with") if s.order
                              else [f"task {s.task_id} is already ordered with different terms"])
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

    @workflow.query(name="state")
    def state(self) -> cs.XingguangTaskView:
        """The order, stage, pieces, pauses and claims, the money picture, and what the task waits for."""
        return task_view(self.s, self._progress.model_copy(update={"escalations": self._stalls.escalations()}))

    @workflow.query(name="run")
    def run_info(self) -> RunInfo:
        """How far this run is towards continuing as new: the messages it counted, and its bound."""
        return run_info(self.s.messages_this_run, getattr(self, "_run_length", None))

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
