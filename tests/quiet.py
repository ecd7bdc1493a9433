"""Teardown that waits until a test's workflows are idle before the shared fixture terminates them.

On the time-skipping test server (1.40), a workflow terminated while one of its workflow tasks is in flight keeps
time skipping locked for the rest of the server's life: every later test that crosses a window by skipping time
then hangs ("still running after 60 s of time skipping", or an update RPC timing out). The shared `ctx` fixture
terminates leftovers at teardown; a module that imports `quiet_ctx_fixture` gets a `ctx` that first waits until no
workflow the test started has a workflow task or an activity in flight.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest_asyncio
from temporalio.api.enums.v1 import EventType

from tests.conftest import Ctx, StartedWorkflows

CLOSED_EVENTS = (EventType.EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED, EventType.EVENT_TYPE_WORKFLOW_EXECUTION_FAILED,
                 EventType.EVENT_TYPE_WORKFLOW_EXECUTION_TERMINATED, EventType.EVENT_TYPE_WORKFLOW_EXECUTION_CANCELED,
                 EventType.EVENT_TYPE_WORKFLOW_EXECUTION_CONTINUED_AS_NEW,
                 EventType.EVENT_TYPE_WORKFLOW_EXECUTION_TIMED_OUT)


@pytest_asyncio.fixture(name="ctx", loop_scope="session")
async def quiet_ctx_fixture(ctx: Ctx) -> AsyncIterator[Ctx]:
    """The shared `ctx`, waiting at teardown until this test's workflows are idle."""
    yield ctx
    await wait_until_quiet(ctx)


async def wait_until_quiet(ctx: Ctx, timeout_s: float = 10.0) -> None:
    """Waits until no workflow the test started has a workflow task or activity in flight.

    The fixture terminates leftovers at teardown; on the time-skipping server a workflow terminated while its
    workflow task is in flight keeps time skipping locked for the rest of the session (seen with server 1.40),
    so tests that leave workflows running call this first (the `quiet` fixture of these test modules does)."""
    recorders = [i for i in ctx.client.config()["interceptors"] if isinstance(i, StartedWorkflows)]
    ids = set(recorders[0].ids) if recorders else set()
    for _ in range(int(timeout_s / 0.05)):
        if not [w for w in ids if await _busy(ctx, w)]:
            return
        await asyncio.sleep(0.05)


async def _busy(ctx: Ctx, workflow_id: str) -> bool:
    """A workflow task or an activity was scheduled and has not finished (read from the history)."""
    open_tasks = open_activities = 0
    async for event in ctx.client.get_workflow_handle(workflow_id).fetch_history_events():
        kind = event.event_type
        if kind == EventType.EVENT_TYPE_WORKFLOW_TASK_SCHEDULED:
            open_tasks += 1
        elif kind in (EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED, EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED,
                      EventType.EVENT_TYPE_WORKFLOW_TASK_TIMED_OUT):
            open_tasks -= 1
        elif kind == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
            open_activities += 1
        elif kind in (EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED, EventType.EVENT_TYPE_ACTIVITY_TASK_FAILED,
                      EventType.EVENT_TYPE_ACTIVITY_TASK_TIMED_OUT, EventType.EVENT_TYPE_ACTIVITY_TASK_CANCELED):
            open_activities -= 1
        elif kind in CLOSED_EVENTS:
            return False
    return open_tasks > 0 or open_activities > 0
