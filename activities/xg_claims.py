"""What a claim after a Xingguang task closed is judged by (XG-10, R-14): the closed task's compliance pauses (its
result) and, from the ledger, the order amount, the client, and every compensation already paid for the task (during
it, under `xg:compensation:{task}:{id}`, or after it, under the same keys: one cap for both)."""

from __future__ import annotations

import asyncio

from temporalio import activity
from temporalio.api.common.v1 import WorkflowExecution
from temporalio.api.workflowservice.v1 import DescribeWorkflowExecutionRequest
from temporalio.client import Client, WorkflowExecutionStatus, WorkflowFailureError
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError, RPCStatusCode

from activities.ledger import Ledger
from ports import xg_claims as port
from ports.xg_claims import CLAIM_REFUSED, ClaimsBasis, ClaimsBasisRequest, PaidClaim, PauseSpanModel
from workflows.contract.names import xingguang_task_id
from workflows.contract.xingguang_state import TaskResult


def _refused(message: str) -> ApplicationError:
    return ApplicationError(message, {"reasons": [message]}, type=CLAIM_REFUSED, non_retryable=True)


class XgClaimsActivities:
    def __init__(self, client: Client, ledger: Ledger) -> None:
        self.client, self.ledger = client, ledger

    @activity.defn(name=port.BASIS.name)
    async def basis(self, request: ClaimsBasisRequest) -> ClaimsBasis:
        handle = self.client.get_workflow_handle(xingguang_task_id(request.task_id), result_type=TaskResult)
        try:  # the raw status only (the SDK's describe() also parses search attributes, which it need not)
            described = await self.client.workflow_service.describe_workflow_execution(
                DescribeWorkflowExecutionRequest(namespace=self.client.namespace, execution=WorkflowExecution(
                    workflow_id=xingguang_task_id(request.task_id))))
        except RPCError as error:
            if error.status is RPCStatusCode.NOT_FOUND:
                raise _refused(f"no Xingguang task {request.task_id}") from None
            raise
        if described.workflow_execution_info.status in (WorkflowExecutionStatus.RUNNING.value,
                                                        WorkflowExecutionStatus.CONTINUED_AS_NEW.value):
            return ClaimsBasis(task_running=True)
        try:
            result = await handle.result()
        except WorkflowFailureError:
            raise _refused(f"task {request.task_id} ended without an order: no order to compensate") from None
        if result.order is None:
            raise _refused(f"task {request.task_id} was never ordered: no order to compensate")
        return await asyncio.to_thread(self._from_ledger, request.task_id, result)

    def _from_ledger(self, task_id: str, result: TaskResult) -> ClaimsBasis:
        freeze_key = f"xg:freeze:{task_id}"
        freezes = self.ledger.transfers(business_key_prefix=freeze_key)
        freeze = next((t for t in freezes if t.business_key == freeze_key), None)
        if freeze is None:
            raise _refused(f"task {task_id} froze nothing: no order to compensate")
        client_id = freeze.debit_account.removeprefix("client:").removesuffix(":available")
        prefix = f"xg:compensation:{task_id}:"
        paid = [PaidClaim(compensation_id=t.business_key.removeprefix(prefix), kind=t.memo.split(":", 1)[0],
                          amount_fen=t.amount_fen, paid_at=t.created_at)
                for t in self.ledger.transfers(business_key_prefix=prefix, limit=10_000)]
        pauses = [PauseSpanModel(pause_id=p.pause_id, paused_at=p.paused_at, ended_at=p.resumed_at or p.cancelled_at)
                  for p in result.pauses if p.kind == "compliance"]
        return ClaimsBasis(task_running=False, client_id=client_id, order_amount_fen=freeze.amount_fen,
                           pauses=pauses, paid=paid)
