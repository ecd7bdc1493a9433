"""XingguangClaimsWorkflow (`xg-claims:{task_id}`): a claim of compensation or damages after the task closed (XG-10,
R-14). Started by update-with-start of `compensate` when `xg-task:{task_id}` no longer runs.

Each claim is judged when it is handled, one at a time, by what the xg_claims.basis activity reads: the closed
task's compliance pauses (XG-7: a claim over a pause is a pause delay), the order amount and every compensation
already paid for the task (the ledger: during the task and after it, one cap). The payment is the task's own
activity under the same business key (`xg:compensation:{task}:{id}`), so an id paid during the task is answered,
never paid again. The workflow completes after IDLE without claims.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from ports import xg_claims, xg_ledger
    from ports.xg_claims import ClaimsBasisRequest
    from ports.xg_ledger import XgCompensateRequest
    from workflows.contract import xingguang as c
    from workflows.contract import xingguang_state as cs
    from workflows.contract.common import public_view
    from workflows.contract.names import SA, XINGGUANG_CLAIMS_WORKFLOW
    from workflows.contract.xingguang_claims import XingguangClaimsInput, XingguangClaimsState, XingguangClaimsView
    from workflows.rules.clock import business_time
    from workflows.rules.xingguang_claims import claim_problems
    from workflows.rules.xingguang_money import damages_cap

from workflows.common import stage_attributes, wait_summary
from workflows.escalation import Stalls
from workflows.refusals import refused

IDLE = timedelta(days=7)


@workflow.defn(name=XINGGUANG_CLAIMS_WORKFLOW)
class XingguangClaimsWorkflow:
    @workflow.init
    def __init__(self, input: XingguangClaimsInput) -> None:
        self.s = XingguangClaimsState(task_id=input.task_id)
        self._lock = asyncio.Lock()
        self._stalls = Stalls("xingguang")
        self._claims_seen = 0

    @workflow.run
    async def run(self, input: XingguangClaimsInput) -> XingguangClaimsView:
        workflow.upsert_search_attributes([SA.TASK_ID.value_set(input.task_id)])
        while True:
            seen, closes_at = self._claims_seen, workflow.now() + IDLE
            until = business_time(closes_at)
            self._show(f"claims after close of xg task {input.task_id}: {len(self.s.claims)} paid; open until "
                       f"{until} unless another claim comes")
            try:
                await workflow.wait_condition(lambda seen=seen: self._claims_seen != seen, timeout=IDLE,  # type: ignore[misc]
                                              timeout_summary=wait_summary(
                                                  "the claims close if no claim comes for a week", closes_at))
            except TimeoutError:
                break
        await workflow.wait_condition(workflow.all_handlers_finished)
        self._show(f"claims after close of xg task {input.task_id}: {len(self.s.claims)} paid; done")
        return public_view(XingguangClaimsView, self.s)

    def _show(self, details: str) -> None:
        workflow.set_current_details(self._stalls.details(details, False))
        stage_attributes("claims", None, self._stalls.escalated)

    @workflow.update(name="compensate")
    async def compensate(self, request: c.CompensateRequest) -> c.CompensationResult:
        self._claims_seen += 1
        async with self._lock:  # one at a time: two damages that each fit the cap must not pass it together
            return await self._compensate(request)

    @compensate.validator
    def validate_compensate(self, request: c.CompensateRequest) -> None:
        if any(r.ref_id == request.compensation_id for r in self.s.claims):
            return
        problems = claim_problems(request, [], None, 0)  # the fields; the record is judged in the handler
        if problems:
            raise refused("CompensationRefused", problems)

    async def _compensate(self, request: c.CompensateRequest) -> c.CompensationResult:
        s = self.s
        if (done := self._result(request.compensation_id)) is not None:
            return done
        try:
            basis = await self._stalls.call("claims basis", xg_claims.BASIS, ClaimsBasisRequest(task_id=s.task_id),
                                            refusals=True)
        except ActivityError as err:
            if isinstance(err.cause, ApplicationError) and err.cause.non_retryable:
                raise refused("CompensationRefused", [err.cause.message]) from None
            raise
        if basis.task_running:
            running = f"xg task {s.task_id} is still running: the claim goes to its workflow (xg-task)"
            raise refused("CompensationRefused", [running])
        s.order_amount_fen = basis.order_amount_fen
        cap = damages_cap(basis.order_amount_fen)
        if (paid := next((p for p in basis.paid if p.compensation_id == request.compensation_id), None)) is not None:
            kind = c.CompensationKind(paid.kind)  # paid during the task, or by an earlier run: answered, not paid
            return c.CompensationResult(compensation_id=paid.compensation_id, kind=kind, paid_fen=paid.amount_fen,
                                        paid_at=paid.paid_at,
                                        cap_fen=cap if kind is c.CompensationKind.DAMAGES else None)
        damages = sum(p.amount_fen for p in basis.paid if p.kind == c.CompensationKind.DAMAGES.value)
        spans = [(p.pause_id, p.paused_at, p.ended_at) for p in basis.pauses]
        if problems := claim_problems(request, spans, basis.order_amount_fen, damages):
            raise refused("CompensationRefused", problems)
        if (amount_fen := request.amount_fen) is None:  # claim_problems names it
            raise refused("CompensationRefused", ["amount_fen: required"])
        await self._stalls.call(
            f"compensation {request.compensation_id}", xg_ledger.COMPENSATE,
            XgCompensateRequest(task_id=s.task_id, compensation_id=request.compensation_id, client_id=basis.client_id,
                                amount_fen=amount_fen, memo=f"{request.kind.value}: {request.note}"))
        policy = f" under policy {request.policy}" if request.policy else ""
        record = cs.MoneyRecord(kind=request.kind.value, ref_id=request.compensation_id, amount_fen=amount_fen,
                                reason=f"{request.note}{policy}", at=workflow.now())
        s.claims.append(record)
        s.last_claim_at = workflow.now()
        return self._record_result(record)

    def _result(self, compensation_id: str) -> c.CompensationResult | None:
        record = next((r for r in self.s.claims if r.ref_id == compensation_id), None)
        return None if record is None else self._record_result(record)

    def _record_result(self, record: cs.MoneyRecord) -> c.CompensationResult:
        kind = c.CompensationKind(record.kind)
        return c.CompensationResult(compensation_id=record.ref_id, kind=kind, paid_fen=record.amount_fen,
                                    paid_at=record.at,
                                    cap_fen=damages_cap(self.s.order_amount_fen) if kind is c.CompensationKind.DAMAGES
                                    else None)

    @workflow.query(name="state")
    def state(self) -> XingguangClaimsView:
        return public_view(XingguangClaimsView, self.s)
