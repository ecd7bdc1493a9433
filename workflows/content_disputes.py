"""Fee disputes (AM-11, AM-17) and held settlements (AM-19, AM-22) of MountedContentWorkflow.

A mixin of the workflow class (its handlers are inherited by the workflow definition). A dispute may be raised
from the mount until the publicity window closes (AM-11 reading), by the client and by the creator, each with at
most one open at a time (one party's dispute never refuses the other's). Every open dispute holds settlement until
an operator resolves it with an amount; each one unresolved past 7 working days from its raising is escalated
(search attribute `escalated`, current details say why) and stays resolvable. When the window
closes the piece asks the penalty register whether its creator's fees are frozen; if so it is held until the
violation case's outcome sends `settlement_released`.

Budget counter (R-3, R-4): a resolution that changes the fee moves the task's counter in the ledger by the same
difference, through the public `ledger.accrue` / `ledger.release` activities: an increase accrues the difference
as one adjustment entry (whole fen, never past the budget); a decrease gives back every entry of this piece and
accrues the resolved amount as one entry. Settlement then pays the resolved amount, once.

Two disputes of one piece (client and creator) are resolved one after the other (a resolution in flight refuses
another): each resolution starts from the fee the previous one agreed and sets the piece's amount, so the latest
resolution decides what is paid, and the counter moves from the previous amount to it. Settlement waits until no
dispute is open. A resolution made while the billing period still runs fixes the fee there and then: conversions
reported after it are logged as late (as after any resolution).
"""

from __future__ import annotations

from collections.abc import Awaitable
from datetime import datetime

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from ports import ledger, penalties
    from ports.ledger import AccrualItem, AccrueRequest, ReleaseRequest, TaskMoneyRequest
    from ports.penalties import DeductHeldRequest, HoldSettlementRequest
    from workflows.contract import mounted_content as c
    from workflows.contract.names import mounted_content_id
    from workflows.rules.clock import business_time
    from workflows.rules.disputes import DISPUTE_REFUSED, dispute_refusal, resolution_refusal
    from workflows.rules.working_days import DISPUTE_RESOLUTION_WORKING_DAYS

from workflows import metrics
from workflows.content_batches import BatchesInDatabase
from workflows.deadlines import working_days_deadline
from workflows.refusals import RESOLUTION_REFUSED, differing_fields, refused

# Runs recorded before held settlements existed go straight to settlement on replay.
HOLD_CHECK_PATCH = "am-19-held-settlements"
# A resolution sent again with the same request is answered with the first answer (before: refused as not open).
RESOLUTION_REPEAT_PATCH = "am-17-resolution-repeat-answers-first"


class DisputesAndHolds(BatchesInDatabase):
    s: c.MountedContentState
    _wake: bool
    _resolving: bool
    _applying: bool

    def _report_budget_exhausted(self, exhausted_at: datetime) -> Awaitable[None]:
        raise NotImplementedError

    # ---------------------------------------------------------------- disputes (AM-11, AM-17)
    @workflow.update(name="raise_dispute")
    async def raise_dispute(self, request: c.RaiseDisputeRequest) -> c.DisputeReceipt:
        s = self.s
        now = workflow.now()
        dispute = c.DisputeRecord(dispute_id=f"d{len(s.disputes) + 1}", raised_by=request.raised_by,
                                  party_id=request.party_id, reason=request.reason, raised_at=now,
                                  fee_fen=self._agreed_fee())
        s.disputes.append(dispute)  # holds settlement from this instant, even while the deadline is computed
        metrics.dispute_raised("mount", "fee")
        self._changed()
        due, problem = await working_days_deadline(
            now, DISPUTE_RESOLUTION_WORKING_DAYS, f"dispute {dispute.dispute_id} of {self._workflow_id()}")
        dispute.resolution_due_at, dispute.calendar_problem = due, problem
        if problem is not None:
            self._escalate(dispute, f"no resolution deadline could be set: {problem}")
        self._changed()
        return c.DisputeReceipt(dispute_id=dispute.dispute_id, raised_at=now, fee_fen=dispute.fee_fen,
                                publicity_window_closes_at=s.publicity_window_closes_at, resolution_due_at=due,
                                escalated=dispute.escalated_at is not None)

    @raise_dispute.validator
    def validate_raise_dispute(self, request: c.RaiseDisputeRequest) -> None:
        s = self.s
        problem = dispute_refusal(
            request.raised_by, request.party_id, client_id=s.client_id, creator_id=s.creator_id,
            content_id=s.content_id, now=workflow.now(), publicity_window_closes_at=s.publicity_window_closes_at,
            settled=s.settlement is not None or s.stage in (c.ContentStage.DISPUTED, c.ContentStage.HELD))
        # AM-11 reading: each party has its own right; only a second dispute of the same party waits.
        if problem is None and (open_dispute := self._open_dispute(request.raised_by)) is not None:
            problem = (f"dispute {open_dispute.dispute_id} raised by the {open_dispute.raised_by} at "
                       f"{business_time(open_dispute.raised_at)} is open: it will be resolved first")
        if problem is not None:
            raise refused(DISPUTE_REFUSED, problem)

    @workflow.update(name="resolve_dispute")
    async def resolve_dispute(self, request: c.ResolveDisputeRequest) -> c.DisputeResolution:
        s = self.s
        done = self._dispute_by_id(request.dispute_id)
        if done is not None and done.resolution is not None and done.resolution_request == request \
                and workflow.patched(RESOLUTION_REPEAT_PATCH):
            return done.resolution  # the validator let the same request through: the first answer, nothing moves
        self._resolving = True  # accrual pauses, so the fee being replaced stays put
        try:
            await workflow.wait_condition(lambda: not self._applying)
            dispute = self._open_dispute_by_id(request.dispute_id)
            if dispute is None:  # the validator makes this unreachable
                raise refused(RESOLUTION_REFUSED, f"dispute_id: {request.dispute_id} is not open")
            fee_before = self._agreed_fee()
            if request.amount_fen > fee_before:
                money = await ledger.TASK_MONEY(TaskMoneyRequest(task_id=s.task_id))
                problem = resolution_refusal(request.amount_fen, fee_before, money.remaining_fen)
                if problem is not None:
                    raise refused(RESOLUTION_REFUSED, problem)
            paid = await self._move_budget_counter(dispute.dispute_id, fee_before, request.amount_fen)
            now = workflow.now()
            shortfall = "" if paid == request.amount_fen else (
                f" (the budget granted {paid} of the {request.amount_fen} fen asked: spent meanwhile)")
            dispute.resolved_at, dispute.resolved_by = now, request.operator_id
            dispute.amount_fen, dispute.note = paid, request.note + shortfall
            s.agreed_fee_fen = paid
            for batch in s.incoming:  # the fee is fixed now: what was still on its way is late
                batch.late = True
            for event_id in s.pending_accrual:
                s.batches[event_id].late = True
                s.late_batches += 1
            s.pending_accrual = []
            if s.escalated and not any(d.escalated_at is not None for d in self._open_disputes()):
                metrics.escalation("mount", True, False)
                s.escalated, s.escalation_reason = False, None
            elif s.escalated and s.escalation_reason and f"dispute {dispute.dispute_id} " in s.escalation_reason:
                still = next(d for d in self._open_disputes() if d.escalated_at is not None)
                s.escalation_reason = self._escalation_reason(still, "still unresolved (AM-17)")
            metrics.dispute_resolved("mount", "fee")
            dispute.resolution_request = request
            dispute.resolution = c.DisputeResolution(dispute_id=dispute.dispute_id, resolved_at=now,
                                                     fee_before_fen=fee_before, amount_fen=paid,
                                                     budget_adjustment_fen=paid - fee_before)
            return dispute.resolution
        finally:
            self._resolving = False
            self._changed()

    @resolve_dispute.validator
    def validate_resolve_dispute(self, request: c.ResolveDisputeRequest) -> None:
        done = self._dispute_by_id(request.dispute_id)
        if done is not None and done.resolved_at is not None:
            if done.resolution is not None and done.resolution_request == request:
                return  # the same request again: answered with the first answer
            raise refused(RESOLUTION_REFUSED, self._resolved_before(done, request))
        if self._open_dispute_by_id(request.dispute_id) is None:
            listed = ", ".join(d.dispute_id for d in self._open_disputes()) or "none"
            raise refused(RESOLUTION_REFUSED, f"dispute_id: {request.dispute_id} is not an open dispute of content "
                                              f"{self.s.content_id} (open: {listed})")
        if self._resolving:
            raise refused(RESOLUTION_REFUSED, f"dispute_id: {request.dispute_id} is being resolved by another request")

    def _open_disputes(self) -> list[c.DisputeRecord]:
        return [d for d in self.s.disputes if d.resolved_at is None]

    def _open_dispute(self, raised_by: str | None = None) -> c.DisputeRecord | None:
        """An open dispute (of `raised_by`, when given)."""
        return next((d for d in self._open_disputes() if raised_by is None or d.raised_by == raised_by), None)

    def _open_dispute_by_id(self, dispute_id: str) -> c.DisputeRecord | None:
        return next((d for d in self._open_disputes() if d.dispute_id == dispute_id), None)

    def _dispute_by_id(self, dispute_id: str) -> c.DisputeRecord | None:
        return next((d for d in self.s.disputes if d.dispute_id == dispute_id), None)

    def _resolved_before(self, dispute: c.DisputeRecord, request: c.ResolveDisputeRequest) -> list[str]:
        """A different request for a resolved dispute: the first resolution (when, by whom, what it pays), then
        each field this request differs in."""
        when = f" at {business_time(dispute.resolved_at)}" if dispute.resolved_at is not None else ""
        first = (f"dispute_id: {dispute.dispute_id} of content {self.s.content_id} was resolved{when} by "
                 f"{dispute.resolved_by} with {dispute.amount_fen} fen")
        if dispute.resolution_request is not None:
            return [first, *differing_fields(dispute.resolution_request, request, "resolved with")]
        return [first, *([f"amount_fen: resolved with {dispute.amount_fen}, this asks {request.amount_fen}"]
                         if dispute.amount_fen != request.amount_fen else [])]

    def _agreed_fee(self) -> int:
        return self.s.fee_fen if self.s.agreed_fee_fen is None else self.s.agreed_fee_fen

    def _fee_open(self) -> bool:
        """Conversions and corrections still change the fee: not settled, and no resolution has fixed it."""
        return self.s.settlement is None and self.s.agreed_fee_fen is None and not self._resolving

    def _dispute_details(self) -> str:
        shown = [f"fee dispute {d.dispute_id} open (raised by the {d.raised_by}"
                 + (f", escalates {business_time(d.resolution_due_at)})" if d.resolution_due_at is not None else ")")
                 for d in self._open_disputes()]
        return "".join(f"; {text}" for text in shown)

    def _dispute_due_at(self) -> datetime | None:
        """When the next open dispute escalates (AM-17: each one 7 working days after it was raised)."""
        due = [d.resolution_due_at for d in self._open_disputes()
               if d.escalated_at is None and d.resolution_due_at is not None]
        return min(due, default=None)

    def _escalate_dispute_if_due(self) -> None:
        for dispute in self._open_disputes():
            due = dispute.resolution_due_at
            if dispute.escalated_at is None and due is not None and workflow.now() >= due:
                self._escalate(dispute, f"unresolved past {business_time(due)} (7 working days from "
                                        f"{business_time(dispute.raised_at)}, AM-17)")

    def _escalate(self, dispute: c.DisputeRecord, why: str) -> None:
        s = self.s
        dispute.escalated_at = workflow.now()
        metrics.escalation("mount", s.escalated, True)
        s.escalated = True
        s.escalation_reason = self._escalation_reason(dispute, why)
        workflow.logger.warning(s.escalation_reason)

    def _escalation_reason(self, dispute: c.DisputeRecord, why: str) -> str:
        return (f"ESCALATED: fee dispute {dispute.dispute_id} of content {self.s.content_id} raised by "
                f"the {dispute.raised_by} {dispute.party_id}: {why}")

    async def _move_budget_counter(self, dispute_id: str, fee_before: int, amount: int) -> int:
        """Moves this piece's share of the task's budget counter from `fee_before` to `amount`; returns what the
        budget granted (`amount`, unless others spent the budget meanwhile)."""
        s = self.s
        if amount == fee_before:
            return amount
        adjustment = f"dispute:{s.content_id}:{dispute_id}"
        if amount > fee_before:
            return fee_before + await self._accrue_adjustment(adjustment, amount - fee_before)
        if s.batches_in_db:
            await self._give_back_batches(dispute_id)
            given_back = []
        else:
            given_back = [eid for eid, b in s.batches.items() if b.counted > 0 and eid not in s.fee_adjustments]
        given_back += [eid for eid, fen in s.fee_adjustments.items() if fen > 0]
        if given_back:
            await ledger.RELEASE(ReleaseRequest(task_id=s.task_id, event_ids=given_back))
            for eid in given_back:
                s.fee_adjustments[eid] = -s.batches[eid].fee_fen if eid in s.batches else 0
        return await self._accrue_adjustment(adjustment, amount) if amount else 0

    async def _accrue_adjustment(self, event_id: str, fen: int) -> int:
        s = self.s
        result = await ledger.ACCRUE(AccrueRequest(
            task_id=s.task_id, content_id=s.content_id,
            items=[AccrualItem(event_id=event_id, count=fen, price_fen=1, occurred_at=workflow.now())]))
        granted: int = result.results[0].granted_fen
        s.fee_adjustments[event_id] = granted
        if result.exhausted_at is not None:
            await self._report_budget_exhausted(result.exhausted_at)
        return granted

    # ---------------------------------------------------------------- held settlements (AM-19, AM-22)
    @workflow.signal(name="settlement_released")
    def settlement_released(self, event: c.SettlementReleased) -> None:
        s = self.s
        s.messages_this_run += 1
        hold = s.settlement_hold
        if s.settlement is not None or (hold is not None and hold.released_at is not None):
            return  # a repeat: released once, paid once
        if hold is None:  # the release overtook the answer of the hold check: remember it
            s.settlement_hold = hold = c.SettlementHold(case_id=event.case_id, held_at=event.released_at)
        hold.released_at, hold.outcome, hold.case_id = event.released_at, event.outcome, event.case_id
        self._changed()

    async def _held_by_a_penalty(self, fee_fen: int) -> bool:
        """AM-19: asks (and records, atomically) whether the creator's fees are frozen by a violation case."""
        s = self.s
        if s.settlement_hold is not None:
            return s.settlement_hold.released_at is None
        if fee_fen == 0 or not workflow.patched(HOLD_CHECK_PATCH):
            return False  # nothing to hold, or a run that reached settlement before holds existed
        result = await penalties.HOLD_SETTLEMENT(
            HoldSettlementRequest(creator_id=s.creator_id, workflow_id=self._workflow_id(), task_id=s.task_id,
                                  content_id=s.content_id, fee_fen=fee_fen, at=workflow.now(),
                                  payee_account=s.payee_account))
        if not result.held or s.settlement_hold is not None:  # not held, or released already meanwhile
            return result.held and s.settlement_hold is not None and s.settlement_hold.released_at is None
        assert result.case_id is not None
        s.settlement_hold = c.SettlementHold(case_id=result.case_id, held_at=workflow.now())
        return True

    async def _deduct_if_the_case_says_so(self, fee_fen: int) -> None:
        s = self.s
        hold = s.settlement_hold
        if hold is None or hold.outcome != "deducted" or fee_fen == 0:
            return
        result = await penalties.DEDUCT_HELD(
            DeductHeldRequest(case_id=hold.case_id, task_id=s.task_id, content_id=s.content_id,
                              payee_account=s.payee_account, fee_fen=fee_fen))
        hold.deducted_fen = result.deducted_fen

    def _changed(self) -> None:
        self._wake = True

    def _workflow_id(self) -> str:
        return mounted_content_id(self.s.task_id, self.s.content_id)
