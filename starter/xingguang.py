"""Typed helpers for Python services that talk to XingguangTaskWorkflow (`xg-task:{task_id}`). Names only: no worker
code is imported. Every helper sends and returns contract models (workflows/contract/xingguang.py,
xingguang_pieces.py, xingguang_state.py); a business refusal raises starter.client.Refused with every reason the
workflow gave."""

from __future__ import annotations

from typing import Any, TypeVar, cast

from pydantic import BaseModel
from temporalio.client import Client, WithStartWorkflowOperation, WorkflowUpdateFailedError
from temporalio.common import (
    SearchAttributePair,
    TypedSearchAttributes,
    WorkflowIDConflictPolicy,
    WorkflowIDReusePolicy,
)
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

from starter.client import Refused, _refusal
from workflows.contract import xingguang as xg
from workflows.contract import xingguang_pieces as xgp
from workflows.contract import xingguang_state as xgs
from workflows.contract.common import DEFAULT_TASK_QUEUE
from workflows.contract.names import (
    SA,
    XINGGUANG_CLAIMS_WORKFLOW,
    XINGGUANG_TASK_WORKFLOW,
    xingguang_claims_id,
)
from workflows.contract.xingguang import xg_task_workflow_id
from workflows.contract.xingguang_claims import XingguangClaimsInput

R = TypeVar("R", bound=BaseModel)


async def order(client: Client, request: xg.OrderRequest, task_queue: str = DEFAULT_TASK_QUEUE) -> xg.OrderResult:
    """XG-1: order a task (update-with-start on `order`); returns once the checks and the R-8 freeze are done, or
    raises Refused naming every missing/invalid field and every forbidden targeting label. Ordering the same task
    id again with the same terms returns the first answer and freezes nothing more."""
    start: WithStartWorkflowOperation[Any, Any] = WithStartWorkflowOperation(
        XINGGUANG_TASK_WORKFLOW, xgs.XingguangTaskInput(task_id=request.task_id),
        id=xg_task_workflow_id(request.task_id), task_queue=task_queue,
        id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
        id_reuse_policy=WorkflowIDReusePolicy.ALLOW_DUPLICATE_FAILED_ONLY,
        search_attributes=TypedSearchAttributes([SearchAttributePair(SA.TASK_ID, request.task_id),
                                                 SearchAttributePair(SA.CLIENT_ID, request.client_id)]),
        static_summary=f"Xingguang task {request.task_id}",
    )
    try:
        return cast(xg.OrderResult, await client.execute_update_with_start_workflow(
            "order", request, start_workflow_operation=start, result_type=xg.OrderResult))
    except WorkflowUpdateFailedError as err:
        raise _refusal(err) from err
    except WorkflowAlreadyStartedError:
        closed: xgs.TaskResult = await client.get_workflow_handle(xg_task_workflow_id(request.task_id),
                                                                  result_type=xgs.TaskResult).result()
        if closed.order is None:
            raise Refused("OrderRefused", [f"task {request.task_id} was never ordered"]) from None
        return closed.order


async def update(client: Client, task_id: str, name: str, request: BaseModel, result_type: type[R]) -> R:
    """Any update on the task by its contract name; refusals raise Refused."""
    try:
        return cast(R, await client.get_workflow_handle(xg_task_workflow_id(task_id)).execute_update(
            name, request, result_type=result_type))
    except WorkflowUpdateFailedError as err:
        raise _refusal(err) from err
    except RPCError as err:
        if err.status is RPCStatusCode.NOT_FOUND:
            raise Refused("NotRunning", [f"xg task {task_id} is not running"]) from err
        raise


async def review_materials(client: Client, task_id: str, request: xg.ReviewMaterialsRequest) -> xgs.TaskStatus:
    return await update(client, task_id, "review_materials", request, xgs.TaskStatus)


async def assign_provider(client: Client, task_id: str, operator_id: str, provider_id: str) -> xgs.TaskStatus:
    return await update(client, task_id, "assign_provider",
                        xg.AssignProviderRequest(operator_id=operator_id, provider_id=provider_id),
                        xgs.TaskStatus)


async def select_creator(client: Client, task_id: str, request: xgp.SelectCreatorRequest) -> xgs.Piece:
    return await update(client, task_id, "select_creator", request, xgs.Piece)


async def submit_content(client: Client, task_id: str, request: xgp.SubmitContentRequest) -> xgs.Piece:
    return await update(client, task_id, "submit_content", request, xgs.Piece)


async def provider_review(client: Client, task_id: str, request: xgp.ProviderReviewRequest) -> xgs.Piece:
    return await update(client, task_id, "provider_review", request, xgs.Piece)


async def client_review(client: Client, task_id: str, request: xgp.ClientReviewRequest) -> xgs.Piece:
    return await update(client, task_id, "client_review", request, xgs.Piece)


async def raise_objection(client: Client, task_id: str, request: xgp.RaiseObjectionRequest) -> xgs.Piece:
    return await update(client, task_id, "raise_objection", request, xgs.Piece)


async def decide_objection(client: Client, task_id: str, request: xgp.DecideObjectionRequest) -> xgs.Piece:
    return await update(client, task_id, "decide_objection", request, xgs.Piece)


async def raise_data_dispute(client: Client, task_id: str, request: xgp.RaiseDataDisputeRequest) -> xgs.Piece:
    return await update(client, task_id, "raise_data_dispute", request, xgs.Piece)


async def resolve_data_dispute(client: Client, task_id: str, request: xgp.ResolveDataDisputeRequest) -> xgs.Piece:
    return await update(client, task_id, "resolve_data_dispute", request, xgs.Piece)


async def pause(client: Client, task_id: str, request: xg.PauseRequest) -> xgs.PauseRecord:
    return await update(client, task_id, "pause", request, xgs.PauseRecord)


async def respond_to_pause(client: Client, task_id: str, request: xg.RespondToPauseRequest) -> xgs.PauseRecord:
    return await update(client, task_id, "respond_to_pause", request, xgs.PauseRecord)


async def cancel_after_pause(client: Client, task_id: str, request: xg.CancelAfterPauseRequest
                             ) -> xgs.TaskStatus:
    return await update(client, task_id, "cancel_after_pause", request, xgs.TaskStatus)


async def record_violation(client: Client, task_id: str, request: xg.RecordViolationRequest
                           ) -> xgs.TaskStatus:
    return await update(client, task_id, "record_violation", request, xgs.TaskStatus)


async def submit_fix_proof(client: Client, task_id: str, request: xg.SubmitFixProofRequest) -> xgs.TaskStatus:
    return await update(client, task_id, "submit_fix_proof", request, xgs.TaskStatus)


async def decide_piece(client: Client, task_id: str, request: xg.DecidePieceRequest) -> xgs.Piece:
    return await update(client, task_id, "decide_piece", request, xgs.Piece)


async def compensate(client: Client, task_id: str, request: xg.CompensateRequest,
                     task_queue: str = DEFAULT_TASK_QUEUE) -> xg.CompensationResult:
    """XG-10. While the task runs, on its workflow; after it closed (R-14), on `xg-claims:{task_id}`
    (update-with-start), against the same cap."""
    try:
        return await update(client, task_id, "compensate", request, xg.CompensationResult)
    except Refused as refusal:
        if refusal.kind != "NotRunning":
            raise
    start: WithStartWorkflowOperation[Any, Any] = WithStartWorkflowOperation(
        XINGGUANG_CLAIMS_WORKFLOW, XingguangClaimsInput(task_id=task_id), id=xingguang_claims_id(task_id),
        task_queue=task_queue, id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
        id_reuse_policy=WorkflowIDReusePolicy.ALLOW_DUPLICATE,
        search_attributes=TypedSearchAttributes([SearchAttributePair(SA.TASK_ID, task_id)]),
        static_summary=f"claims after close of Xingguang task {task_id}")
    try:
        return cast(xg.CompensationResult, await client.execute_update_with_start_workflow(
            "compensate", request, start_workflow_operation=start, result_type=xg.CompensationResult))
    except WorkflowUpdateFailedError as err:
        raise _refusal(err) from err


async def penalize(client: Client, task_id: str, request: xg.PenalizeRequest) -> xg.PenaltyResult:
    return await update(client, task_id, "penalize", request, xg.PenaltyResult)


async def report_billable_events(client: Client, task_id: str, batch: xgp.BillableEventBatch) -> None:
    """R-1: the platform's statistics send each batch; a repeated event_id bills once."""
    await client.get_workflow_handle(xg_task_workflow_id(task_id)).signal("report_billable_events", batch)


async def void_billable_events(client: Client, task_id: str, void: xgp.VoidBillableEvents) -> None:
    await client.get_workflow_handle(xg_task_workflow_id(task_id)).signal("void_billable_events", void)


async def state(client: Client, task_id: str) -> xgs.XingguangTaskView:
    return cast(xgs.XingguangTaskView, await client.get_workflow_handle(xg_task_workflow_id(task_id)).query(
        "state", result_type=xgs.XingguangTaskView))
