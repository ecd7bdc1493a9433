"""What `python -m bench scale` measures besides money (issue 21): the task's `state` answer in bytes, the slowest
workflow task of a run, and the worker shape (one worker with both roles, or one per role on the same queue)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from datetime import timedelta
from typing import Any

from temporalio.api.enums.v1 import EventType
from temporalio.client import Client
from temporalio.common import RawValue
from temporalio.service import RPCError

from worker import Adapters, WorkerTuning, build_worker
from workflows.contract.names import mount_task_id

_TASK_ENDS = (EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED, EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED,
              EventType.EVENT_TYPE_WORKFLOW_TASK_TIMED_OUT)


async def state_answer_bytes(client: Client, task_id: str) -> int | None:
    """The size of the task's `state` answer as the server returns it (the payload, before decoding). None when it
    was not answered in three tries: a query waits in the task queue behind the pieces' workflow tasks, and under
    a wave of conversions on 2 shared cores that took longer than the RPC's deadline."""
    for _ in range(3):
        try:
            raw = await client.get_workflow_handle(mount_task_id(task_id)).query(
                "state", result_type=RawValue, rpc_timeout=timedelta(seconds=60))
            return int(raw.payload.ByteSize())
        except RPCError:
            await asyncio.sleep(5)
    return None


def slowest_workflow_task_ms(events: Sequence[Any]) -> dict[str, int]:
    """The longest from a workflow task's start to its end (completed, failed or timed out), by the server's clock:
    of all, and of those not right after a failed or timed-out one (a failed task's next attempt replays the whole
    run: no cached copy); and how many failed or timed out."""
    slowest = steady = 0.0
    started, after_failure, failures = None, False, 0
    for event in events:
        if event.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_STARTED:
            started = event.event_time.ToDatetime()
        elif event.event_type in _TASK_ENDS and started is not None:
            took = (event.event_time.ToDatetime() - started).total_seconds() * 1000
            slowest = max(slowest, took)
            if not after_failure:
                steady = max(steady, took)
            after_failure = event.event_type != EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED
            failures += after_failure
            started = None
    return {"ms": round(slowest), "ms_not_after_a_failure": round(steady), "failed_or_timed_out": failures}


@asynccontextmanager
async def workers(client: Client, queue: str, adapters: Adapters, tuning: WorkerTuning, shape: str
                  ) -> AsyncIterator[None]:
    """`one`: the project's worker with both roles; `split`: a workflows-only and an activities-only worker."""
    roles = ["both"] if shape == "one" else ["workflows", "activities"]
    async with AsyncExitStack() as stack:
        for role in roles:
            await stack.enter_async_context(build_worker(client, queue, adapters, tuning=tuning, role=role))
        yield
