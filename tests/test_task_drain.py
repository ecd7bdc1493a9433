"""A task due to continue as new drains first (DESIGN "Limits that shape the design"; docs/bench.md "Limits found" 1):
once MountTaskWorkflow has taken its per-run bound of messages, `report_mount` and `join` are refused with the
typed, retryable CONTINUE_AS_NEW_DUE (a refused update writes no event and changes nothing), the updates in
flight finish, the run continues as new, and starter.client's retry lands the refused call on the new run.

The bound is forced small by patching workflows.rules.run_length.TASK_MESSAGES_PER_RUN in this process, where the test
worker runs (the worker passes the workflows package through its sandbox, so the workflow reads this module)."""

from __future__ import annotations

import asyncio

import pytest
from temporalio.client import WorkflowUpdateFailedError
from temporalio.exceptions import ApplicationError

from starter import client as api
from tests import replay_helpers as rh
from tests.conftest import Ctx
from tests.drain_helpers import GATES, held_fanout
from tests.helpers import business_now, creator, mount, published_task, task_seen, task_when
from workflows.contract import mount_task as mt
from workflows.contract.names import CONTINUE_AS_NEW_DUE, mount_task_id
from workflows.mount_task import MountTaskWorkflow
from workflows.mounted_content import MountedContentWorkflow
from workflows.rules import run_length


@pytest.mark.replace_activities.with_args(held_fanout)
async def test_a_draining_task_refuses_new_mounts_and_joins_then_the_retry_lands_on_the_new_run(
        ctx: Ctx, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(run_length, "TASK_MESSAGES_PER_RUN", 3)
    task = f"t-drain-{ctx.uid}"
    workflow_id = mount_task_id(task)
    await published_task(ctx, task)
    creator(ctx.a, "cr-1")
    creator(ctx.a, "cr-2")
    await api.join(ctx.client, task, "cr-1")  # message 1
    now = await business_now(ctx)
    await mount(ctx, task, "p1", "cr-1", now)  # message 2
    gate = GATES.setdefault((task, "p2"), asyncio.Event())
    held = asyncio.create_task(mount(ctx, task, "p2", "cr-1", now))  # message 3: due; its update stays in flight
    await task_when(ctx, task, lambda s: "p2" in s.pieces)  # the third message is in: the run is due
    first_run = await rh.first_run_id(ctx.client, workflow_id)

    handle = ctx.client.get_workflow_handle(workflow_id)
    for name, request, result_type in (
            ("report_mount", mt.ReportMountRequest(content_id="p3", creator_id="cr-1", mounted_at=now), mt.MountResult),
            ("join", mt.JoinRequest(creator_id="cr-2"), mt.JoinResult)):
        with pytest.raises(WorkflowUpdateFailedError) as refused:
            await handle.execute_update(name, request, result_type=result_type)
        cause = refused.value.cause
        assert isinstance(cause, ApplicationError)
        assert (cause.type, cause.non_retryable) == (CONTINUE_AS_NEW_DUE, False)
        assert f"task {task} is about to continue as new (3 messages in this run)" in cause.message
    state = await task_seen(ctx, task)
    assert (sorted(state.pieces), sorted(state.creators)) == (["p1", "p2"], ["cr-1"])

    # The client sends the refused mount again until the run has drained (p2 done) and continued as new.
    retried = asyncio.create_task(mount(ctx, task, "p3", "cr-1", now))
    await asyncio.sleep(0.5)
    assert not retried.done()
    gate.set()
    assert (await held).content_id == "p2"
    assert (await asyncio.wait_for(retried, 30)).content_id == "p3"
    assert (await api.join(ctx.client, task, "cr-2")).already_joined is False

    state = await task_seen(ctx, task)
    assert (sorted(state.pieces), sorted(state.creators)) == (["p1", "p2", "p3"], ["cr-1", "cr-2"])
    assert (state.view.pieces.open, state.creators_joined) == (3, 2)  # p3 and cr-2 in the new run (below)
    first = await ctx.client.get_workflow_handle(workflow_id, run_id=first_run).fetch_history()
    first_json = first.to_json()
    assert "WORKFLOW_EXECUTION_CONTINUED_AS_NEW" in first_json
    assert '"p3"' not in first_json and "cr-2" not in first_json  # the refused updates wrote nothing
    latest = await handle.fetch_history()
    assert latest.events[0].workflow_execution_started_event_attributes.continued_execution_run_id == first_run

    # Both runs replay against the current code (the bound is still 3 in this process, as when they ran).
    replayer = rh.replayer(MountTaskWorkflow, MountedContentWorkflow)
    for history in (first, latest):
        await replayer.replay_workflow(history)
