"""Typed helpers for Python services that talk to the workflows. Names only: no worker code is imported.

Every helper sends contract models (workflows/contract) and returns contract models; a business refusal raises
`Refused` with every reason the workflow gave.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import time
from datetime import datetime, timedelta
from typing import Any, Protocol, TypeVar

from pydantic import BaseModel
from temporalio.api.common.v1 import WorkflowExecution
from temporalio.api.enums.v1 import WorkflowExecutionStatus
from temporalio.api.workflowservice.v1 import DescribeWorkflowExecutionRequest
from temporalio.client import (
    Client,
    WithStartWorkflowOperation,
    WorkflowFailureError,
    WorkflowUpdateFailedError,
)
from temporalio.common import (
    SearchAttributePair,
    TypedSearchAttributes,
    WorkflowIDConflictPolicy,
    WorkflowIDReusePolicy,
)
from temporalio.exceptions import ApplicationError, WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

from starter import config, connection
from starter.codec import KeyRing, SubjectKeyStore, codec_data_converter, load_keys
from workflows.contract import mount_task as mt
from workflows.contract import mounted_content as mc
from workflows.contract.common import DEFAULT_TASK_QUEUE
from workflows.contract.names import (
    CONTINUE_AS_NEW_DUE,
    MOUNT_TASK_WORKFLOW,
    SA,
    mount_task_id,
    mounted_content_id,
)
from workflows.contract.views import MountedContentView, MountTaskView
from workflows.rules.clock import BUSINESS_TZ, business_time
from workflows.rules.disputes import DISPUTE_REFUSED, window_closed

R = TypeVar("R", bound=BaseModel)
# A task about to continue as new refuses new joins and mounts for a moment (CONTINUE_AS_NEW_DUE) so that its run
# can drain; the call is sent again with backoff (from 50 ms, doubling, at most 1 s apart) and reaches the new run.
# After this long the refusal is raised as Refused(CONTINUE_AS_NEW_DUE).
DRAIN_RETRY_SECONDS = 60.0


TASK_WORKFLOW_TASK_TIMEOUT = timedelta(seconds=60)


class Refused(Exception):
    """A business refusal: `kind` is the error type (e.g. PublicationRefused), `reasons` every reason given."""

    def __init__(self, kind: str, reasons: list[str]) -> None:
        super().__init__(f"{kind}: " + "; ".join(reasons))
        self.kind, self.reasons = kind, reasons


async def connect(address: str | None = None, namespace: str | None = None, keys: KeyRing | None = None,
                  **options: Any) -> Client:
    """A client with the project's data converter and payload codec (PR-6), connected as starter/connection.py
    says: the Temporal CLI's configuration (profile file, TEMPORAL_PROFILE, TEMPORAL_ADDRESS, TEMPORAL_NAMESPACE,
    TEMPORAL_API_KEY, TEMPORAL_TLS_*), else the embedded run's server (its state file, starter/config.py), else
    127.0.0.1:7233; `address` and `namespace` override. Payload keys: starter.codec.load_keys (PAYLOAD_KEYS, else
    PAYLOAD_KEYS_FILE, else the embedded run's key file). Without keys every plain payload works; sending or
    reading a personal one is refused. The personal values of a data subject are sealed with its subject key, in
    the ledger database (starter/config.py finds it)."""
    target = connection.for_client()
    target = dataclasses.replace(target, address=address or target.address,
                                 namespace=namespace or target.namespace)
    if keys is None:
        keys = load_keys(config.payload_key_env(os.environ, config.read_state()))
    converter = codec_data_converter(keys, lambda: ledger_subject_keys(keys))
    return await connection.connect(target, data_converter=converter, **options)


def ledger_subject_keys(keys: KeyRing) -> SubjectKeyStore:
    """The subject keys (crypto-shredding) in the ledger database of LEDGER_DSN, opened when a personal payload is
    first sealed or opened: a client that sends none never touches the database."""
    from activities.db import Database
    from activities.subject_keys import SubjectKeys

    return SubjectKeys(Database(config.ledger_dsn(os.environ, config.read_state())), keys)


def _refusal(err: WorkflowUpdateFailedError) -> Refused:
    cause = err.cause
    if isinstance(cause, ApplicationError):
        details = cause.details[0] if cause.details else None
        reasons = details.get("reasons") if isinstance(details, dict) else None
        return Refused(cause.type or "Rejected", list(reasons) if reasons else [cause.message])
    return Refused("Rejected", [str(cause)])


async def publish_task(client: Client, request: mt.PublishTaskRequest,
                       task_queue: str = DEFAULT_TASK_QUEUE) -> mt.PublicationResult:
    """Publish (update-with-start on `publish`): returns once the checks and the freeze are done.

    Publishing the same task id again returns the first answer and freezes nothing more, also after the task
    has closed."""
    start: WithStartWorkflowOperation[Any, Any] = WithStartWorkflowOperation(
        MOUNT_TASK_WORKFLOW,
        mt.MountTaskInput(task_id=request.task_id),
        id=mount_task_id(request.task_id),
        task_queue=task_queue,
        id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
        # A draft that was never published ends as failed, so its id may be used again; a published task's
        # id never is.
        id_reuse_policy=WorkflowIDReusePolicy.ALLOW_DUPLICATE_FAILED_ONLY,
        search_attributes=TypedSearchAttributes([SearchAttributePair(SA.TASK_ID, request.task_id),
                                                 SearchAttributePair(SA.CLIENT_ID, request.client_id)]),
        static_summary=f"authorized-mount task {request.task_id}",
        # A task's run holds up to ~7,500 events (run_length.TASK_MESSAGES_PER_RUN): when its cached copy is lost (a
        # workflow task failed, e.g. a signal arrived as it continued as new) the worker replays it whole, which
        # took over the default 10 s on 2 loaded cores, again at every attempt (issue 21 scale run, 2026-12-04).
        task_timeout=TASK_WORKFLOW_TASK_TIMEOUT,
    )
    try:
        published: mt.PublicationResult = await client.execute_update_with_start_workflow(
            "publish", request, start_workflow_operation=start, result_type=mt.PublicationResult)
        return published
    except WorkflowUpdateFailedError as err:
        raise _refusal(err) from err
    except WorkflowAlreadyStartedError:
        closed: mt.TaskResult = await client.get_workflow_handle(
            mount_task_id(request.task_id), result_type=mt.TaskResult).result()
        if closed.publication is None:
            raise Refused("PublicationRefused", [f"task {request.task_id} was never published"]) from None
        return closed.publication


async def _update(client: Client, workflow_id: str, update: str, arg: BaseModel, result_type: type[R]) -> R:
    delay, give_up_at = 0.05, time.monotonic() + DRAIN_RETRY_SECONDS
    while True:
        try:
            answer: R = await client.get_workflow_handle(workflow_id).execute_update(update, arg,
                                                                                     result_type=result_type)
            return answer
        except WorkflowUpdateFailedError as err:
            refusal = _refusal(err)
            if refusal.kind != CONTINUE_AS_NEW_DUE or time.monotonic() + delay > give_up_at:
                raise refusal from err
        except RPCError as err:
            if err.status is RPCStatusCode.NOT_FOUND:
                raise await _not_running(client, workflow_id) from err
            raise
        await asyncio.sleep(delay)
        delay = min(delay * 2, 1.0)


async def join(client: Client, task_id: str, creator_id: str) -> mt.JoinResult:
    return await _update(client, mount_task_id(task_id), "join", mt.JoinRequest(creator_id=creator_id),
                         mt.JoinResult)


async def report_mount(client: Client, task_id: str, request: mt.ReportMountRequest) -> mt.MountResult:
    return await _update(client, mount_task_id(task_id), "report_mount", request, mt.MountResult)


async def revoke_content(client: Client, task_id: str, creator_id: str, content_id: str,
                         revoked_at: datetime | None = None) -> mt.RevocationResult:
    """`revoked_at`: the creator app's instant (within the clock skew of its receipt); None: the platform's."""
    return await _update(client, mount_task_id(task_id), "revoke_content",
                         mt.RevokeContentRequest(creator_id=creator_id, content_id=content_id, revoked_at=revoked_at),
                         mt.RevocationResult)


async def revoke_all(client: Client, task_id: str, creator_id: str,
                     revoked_at: datetime | None = None) -> mt.RevocationResult:
    return await _update(client, mount_task_id(task_id), "revoke_all",
                         mt.RevokeAllRequest(creator_id=creator_id, revoked_at=revoked_at), mt.RevocationResult)


async def revoke_authorization(client: Client, task_id: str, creator_id: str, content_id: str | None = None,
                               revoked_at: datetime | None = None) -> None:
    await client.get_workflow_handle(mount_task_id(task_id)).signal(
        "revoke_authorization",
        mt.RevokeAuthorizationSignal(creator_id=creator_id, content_id=content_id, revoked_at=revoked_at))


async def cancel(client: Client, task_id: str, reason: str, requested_by: str) -> mt.TaskResult:
    return await _update(client, mount_task_id(task_id), "cancel",
                         mt.CancelRequest(reason=reason, requested_by=requested_by), mt.TaskResult)


async def task_state(client: Client, task_id: str) -> MountTaskView:
    """The task's `state` view: terms, money picture, piece counts, progress (`pieces` lists the pieces)."""
    state: MountTaskView = await client.get_workflow_handle(mount_task_id(task_id)).query(
        "state", result_type=MountTaskView)
    return state


async def task_result(client: Client, task_id: str) -> mt.TaskResult:
    try:
        result: mt.TaskResult = await client.get_workflow_handle(mount_task_id(task_id),
                                                                 result_type=mt.TaskResult).result()
        return result
    except WorkflowFailureError as err:
        raise Refused("TaskFailed", [str(err.cause)]) from err


async def _not_running(client: Client, workflow_id: str) -> Refused:
    """Temporal answers "not found" both for a workflow that has closed and for one that never existed; this tells
    them apart: `NotRunning` (closed, with how) or `NotFound`."""
    status = await workflow_status(client, workflow_id)
    if status is None:
        return Refused("NotFound", [f"{workflow_id} not found: it was never started"])
    return Refused("NotRunning", [f"{workflow_id} is not running: it has {_CLOSED.get(status, 'closed')}"])


_CLOSED: dict[int, str] = {WorkflowExecutionStatus.WORKFLOW_EXECUTION_STATUS_COMPLETED: "completed",
           WorkflowExecutionStatus.WORKFLOW_EXECUTION_STATUS_FAILED: "failed",
           WorkflowExecutionStatus.WORKFLOW_EXECUTION_STATUS_TERMINATED: "been terminated",
           WorkflowExecutionStatus.WORKFLOW_EXECUTION_STATUS_CANCELED: "been cancelled",
           WorkflowExecutionStatus.WORKFLOW_EXECUTION_STATUS_TIMED_OUT: "timed out"}


async def workflow_status(client: Client, workflow_id: str) -> int | None:
    """The status of the workflow's latest run, None when no workflow with this id exists. (Read raw: the typed
    describe() cannot decode the time-skipping test server's datetime search attributes.)"""
    try:
        response = await client.workflow_service.describe_workflow_execution(DescribeWorkflowExecutionRequest(
            namespace=client.namespace, execution=WorkflowExecution(workflow_id=workflow_id)))
    except RPCError as err:
        if err.status is RPCStatusCode.NOT_FOUND:
            return None
        raise
    return int(response.workflow_execution_info.status)


async def settled_piece(client: Client, task_id: str, content_id: str) -> mc.ContentResult:
    """The result of a piece whose workflow has closed. Refused `NotFound` when it never existed (content never
    mounted in this task), `NotRunning` when it closed otherwise than by settling (terminated by an operator)."""
    workflow_id = mounted_content_id(task_id, content_id)
    if await workflow_status(client, workflow_id) != WorkflowExecutionStatus.WORKFLOW_EXECUTION_STATUS_COMPLETED:
        raise await _not_running(client, workflow_id)
    result = await content_result(client, task_id, content_id)
    if result.publicity_window_closes_at is None:  # settled before its result carried the instant
        state = await content_state(client, task_id, content_id)
        result.publicity_window_closes_at = state.publicity_window_closes_at
    return result


class LateLog(Protocol):
    """Where late batches are recorded (activities.late_reports.LateReports in the ledger's database)."""

    def record(self, late: mc.LateBatch, recorded_at: datetime) -> bool: ...


async def report_conversions(client: Client, task_id: str, batch: mc.ConversionBatch,
                             late_log: LateLog | None = None) -> mc.LateBatch | None:
    """R-1: sends the batch to its piece. R-2: when the piece has settled (its workflow completed) the batch changes
    nothing: the answer is a LateBatch ("late: settled at ..."), recorded in `late_log` when one is given. Content
    never mounted in the task is refused `NotFound`."""
    try:
        await client.get_workflow_handle(mounted_content_id(task_id, batch.content_id)).signal(
            "report_conversions", batch)
        return None
    except RPCError as err:
        if err.status is not RPCStatusCode.NOT_FOUND:
            raise
        settled = await settled_piece(client, task_id, batch.content_id)
    late = mc.LateBatch(task_id=task_id, content_id=batch.content_id, event_id=batch.event_id, count=batch.count,
                        occurred_at=batch.occurred_at, cheating=batch.cheating, settled_at=settled.settled_at,
                        note=f"late: settled at {business_time(settled.settled_at)}")
    if late_log is not None:
        late_log.record(late, datetime.now(BUSINESS_TZ))
    return late


async def raise_dispute(client: Client, task_id: str, content_id: str,
                        request: mc.RaiseDisputeRequest) -> mc.DisputeReceipt:
    """AM-11: a fee dispute of the client or the creator. After the piece settled it is refused `DisputeRefused`
    with the window's closing instant, as while the piece runs."""
    try:
        return await _update(client, mounted_content_id(task_id, content_id), "raise_dispute", request,
                             mc.DisputeReceipt)
    except Refused as refusal:
        if refusal.kind != "NotRunning":
            raise
        settled = await settled_piece(client, task_id, content_id)
    assert settled.publicity_window_closes_at is not None
    reason = (f"{window_closed(content_id, settled.publicity_window_closes_at)} (settled at "
              f"{business_time(settled.settled_at)}: {settled.fee_fen} fen)")
    raise Refused(DISPUTE_REFUSED, [reason])


async def resolve_dispute(client: Client, task_id: str, content_id: str,
                          request: mc.ResolveDisputeRequest) -> mc.DisputeResolution:
    """AM-17: an operator resolves an open dispute. A settled piece has none open: refused `ResolutionRefused`."""
    try:
        return await _update(client, mounted_content_id(task_id, content_id), "resolve_dispute", request,
                             mc.DisputeResolution)
    except Refused as refusal:
        if refusal.kind != "NotRunning":
            raise
        settled = await settled_piece(client, task_id, content_id)
    reason = (f"dispute_id: {request.dispute_id} is not open: content {content_id} settled at "
              f"{business_time(settled.settled_at)} ({settled.fee_fen} fen)")
    raise Refused("ResolutionRefused", [reason])


async def content_signal(client: Client, task_id: str, content_id: str, signal: str, payload: BaseModel) -> None:
    """`void_conversions`, `report_visibility_lost`, `report_disposal` on one piece."""
    await client.get_workflow_handle(mounted_content_id(task_id, content_id)).signal(signal, payload)


async def content_state(client: Client, task_id: str, content_id: str) -> MountedContentView:
    state: MountedContentView = await client.get_workflow_handle(mounted_content_id(task_id, content_id)).query(
        "state", result_type=MountedContentView)
    return state


async def content_result(client: Client, task_id: str, content_id: str) -> mc.ContentResult:
    result: mc.ContentResult = await client.get_workflow_handle(mounted_content_id(task_id, content_id),
                                                                result_type=mc.ContentResult).result()
    return result


def as_json(model: BaseModel) -> dict[str, Any]:
    return model.model_dump(mode="json")
