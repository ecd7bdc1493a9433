"""Starting and signalling many content workflows from a task, without holding them as children.

A task may have many thousands of mounted pieces: as children they would hit the 2,000 pending-children limit,
and one external signal each would fill the task's history. These activities talk to Temporal through a client
instead, idempotently (workflow ids are derived from the business ids; signals are safe to repeat).
"""

from __future__ import annotations

import contextlib

from temporalio import activity
from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.common import (
    SearchAttributePair,
    TypedSearchAttributes,
    WorkflowIDConflictPolicy,
    WorkflowIDReusePolicy,
)
from temporalio.exceptions import ApplicationError, WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

from activities.creator_pieces import CreatorPieces
from ports import fanout as port
from ports.fanout import SignalContentsRequest, SignalContentsResult, StartContentResult
from workflows.contract.mounted_content import MountedContentInput
from workflows.contract.names import MOUNTED_CONTENT_WORKFLOW, SA, mounted_content_id


class FanoutActivities:
    def __init__(self, client: Client, task_queue: str, pieces: CreatorPieces | None = None) -> None:
        self.client = client
        self.task_queue = task_queue
        self.pieces = pieces

    @activity.defn(name=port.START_CONTENT_WORKFLOW.name)
    async def start_content_workflow(self, request: MountedContentInput) -> StartContentResult:
        workflow_id = mounted_content_id(request.task_id, request.content_id)
        if self.pieces is not None:
            # recorded before the start, so a freeze of the creator's in-flight tasks finds every piece.
            self.pieces.record(workflow_id, request.creator_id, request.task_id, request.content_id)
        # A closed run with this id exists: the piece already ran to settlement.
        with contextlib.suppress(WorkflowAlreadyStartedError):
            await self.client.start_workflow(
                MOUNTED_CONTENT_WORKFLOW,
                request,
                id=workflow_id,
                task_queue=self.task_queue,
                # A retried start finds the running workflow; a settled piece is never started again.
                id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
                id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
                search_attributes=TypedSearchAttributes(
                    [
                        SearchAttributePair(SA.TASK_ID, request.task_id),
                        SearchAttributePair(SA.CONTENT_ID, request.content_id),
                        SearchAttributePair(SA.CREATOR_ID, request.creator_id),
                        SearchAttributePair(SA.CLIENT_ID, request.client_id),
                    ]
                ),
                static_summary=f"content {request.content_id} of task {request.task_id}",
            )
        return StartContentResult(workflow_id=workflow_id)

    @activity.defn(name=port.SIGNAL_CONTENTS.name)
    async def signal_contents(self, request: SignalContentsRequest) -> SignalContentsResult:
        signalled = closed = 0
        for content_id in request.content_ids:
            handle = self.client.get_workflow_handle(mounted_content_id(request.task_id, content_id))
            try:
                await handle.signal(request.signal, request.payload)
                signalled += 1
            except RPCError as err:
                if err.status != RPCStatusCode.NOT_FOUND:
                    raise
                # Either the piece already settled (nothing left to tell it) or its start is still in flight
                # (retry until it exists).
                try:
                    description = await handle.describe()
                except RPCError as describe_err:
                    raise ApplicationError(
                        f"content workflow {handle.id} does not exist yet; retrying"
                    ) from describe_err
                if description.status == WorkflowExecutionStatus.RUNNING:
                    raise
                closed += 1
            activity.heartbeat(signalled + closed)
        return SignalContentsResult(signalled=signalled, already_closed=closed)
