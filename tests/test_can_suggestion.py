"""The task continues as new on the server's suggestion without breaking replay (DESIGN "Limits that shape the
design": continue-as-new on `is_continue_as_new_suggested()` or on the run's own message count, tested with the dev
server's `limit.historyCount.suggestContinueAsNew` lowered; SPEC R-1 money is only safe if the task keeps running).

The real MountTaskWorkflow on the dev server with the suggestion lowered to SUGGEST_AT events and the per-run bound
to BOUND messages: mounts streamed 8 in flight (bench.phases.UPDATES_IN_FLIGHT_PER_WORKFLOW) cross the suggestion
in every run, while another caller keeps sending mounts the validator refuses (a creator who has not joined: a
business refusal, which writes nothing to history). Every run must have no failed workflow task and must replay.

Why the refused mounts: a refused update is delivered to the workflow in the same workflow task as other jobs (an
activity result), and the SDK (1.35, without its internal flag 2 "process activation jobs as a single batch")
checks wait_condition predicates once after the update jobs and again after the rest. A predicate that reads a
value refreshed each workflow task (`is_continue_as_new_suggested()`, history length or size, `workflow.now()`)
and flips in that task then lets the main loop go (its timer cancelled) *before* the activity result resumes an
update handler; on replay the refused update is absent, the handler completes first, and replay fails with
"Nondeterminism error: Update machine does not handle this event: TimerCanceled" (the `bench scale` failure of
876d79b; a worker whose sticky cache dropped the task then fails its workflow task on every retry).

The fanout activity is a stub (no content workflows): only the task's own history matters here."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from temporalio import activity
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowHistory, WorkflowUpdateFailedError
from temporalio.service import RPCError
from temporalio.testing import WorkflowEnvironment

from activities.fanout import StartContentResult
from bench.phases import (
    UPDATES_IN_FLIGHT_PER_WORKFLOW,
    eligible_client,
    mount_instant,
    onboarded_creator,
    publish_request,
)
from starter import client as api
from tests import replay_helpers as rh
from tests.conftest import data_converter, scratch_adapters
from tests.dev_server import TEMPORAL_CLI
from worker import build_worker
from workflows.contract import mount_task as mt
from workflows.contract.mounted_content import MountedContentInput
from workflows.contract.names import ALL_SEARCH_ATTRIBUTES, mount_task_id, mounted_content_id
from workflows.mount_task import MountTaskWorkflow
from workflows.rules import run_length

SUGGEST_AT = 40  # events: the dev server's limit.historyCount.suggestContinueAsNew (default 4,096)
BOUND = 25  # messages per run (workflows.rules.run_length.TASK_MESSAGES_PER_RUN, 1,000 in production)
MOUNTS = 400
REFUSING_CALLERS = 2  # with the 8 mounts in flight, the server's 10 updates in flight per workflow
CREATORS = 4
TASK_QUEUE = "can-suggestion"


def instant_fanout(adapters: object) -> list[Callable[..., Any]]:
    @activity.defn(name="fanout.start_content_workflow")
    async def start_content_workflow(request: MountedContentInput) -> StartContentResult:
        return StartContentResult(workflow_id=mounted_content_id(request.task_id, request.content_id))

    return [start_content_workflow]


async def runs_oldest_first(client: Client, workflow_id: str) -> list[WorkflowHistory]:
    histories: list[WorkflowHistory] = []
    run_id: str | None = None
    while True:
        history = await client.get_workflow_handle(workflow_id, run_id=run_id).fetch_history()
        histories.append(history)
        run_id = history.events[0].workflow_execution_started_event_attributes.continued_execution_run_id or None
        if run_id is None:
            return histories[::-1]


async def stream_mounts(client: Client, task_id: str, creators: list[str]) -> None:
    at, in_flight = mount_instant(), asyncio.Semaphore(UPDATES_IN_FLIGHT_PER_WORKFLOW)

    async def one(i: int) -> None:
        async with in_flight:
            await asyncio.wait_for(api.report_mount(client, task_id, mt.ReportMountRequest(
                content_id=f"c{i}", creator_id=creators[i % len(creators)], mounted_at=at)), 60)

    await asyncio.gather(*(one(i) for i in range(MOUNTS)))


async def refused_mounts(client: Client, task_id: str, until: asyncio.Event) -> int:
    """Mounts by a creator who never joined, sent one after another until `until`: each is refused by the
    validator (nothing written to history). Returns how many were refused."""
    handle, at, refused = client.get_workflow_handle(mount_task_id(task_id)), mount_instant(), 0
    while not until.is_set():
        try:
            await handle.execute_update("report_mount", mt.ReportMountRequest(
                content_id=f"x{refused}", creator_id="never-joined", mounted_at=at), result_type=mt.MountResult)
            raise AssertionError("a mount by a creator who never joined was accepted")
        except WorkflowUpdateFailedError:
            refused += 1
        except RPCError:  # e.g. the run closed (continued as new) under the call, or too many updates in flight
            await asyncio.sleep(0.01)
    return refused


@pytest.mark.timeout(150)
async def test_a_task_crossing_the_suggestion_under_mounts_and_refusals_replays(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(run_length, "TASK_MESSAGES_PER_RUN", BOUND)  # the worker runs in this process
    started = time.monotonic()
    with scratch_adapters(tmp_path) as adapters:
        env = await WorkflowEnvironment.start_local(
            dev_server_existing_path=str(TEMPORAL_CLI), search_attributes=ALL_SEARCH_ATTRIBUTES,
            data_converter=data_converter,
            dev_server_extra_args=["--dynamic-config-value", f"limit.historyCount.suggestContinueAsNew={SUGGEST_AT}"])
        try:
            client = env.client
            async with build_worker(client, TASK_QUEUE, adapters, replace_activities=instant_fanout(adapters)):
                task_id, client_id = f"t-cansugg-{int(started * 1000)}", "client-cansugg"
                eligible_client(adapters, client_id, 10**9)
                await api.publish_task(client, publish_request(task_id, client_id, 10**8), TASK_QUEUE)
                creators = [f"cr-cansugg-{k}" for k in range(CREATORS)]
                for creator_id in creators:
                    onboarded_creator(adapters, creator_id)
                    await api.join(client, task_id, creator_id)
                done = asyncio.Event()
                refusing = [asyncio.create_task(refused_mounts(client, task_id, done)) for _ in range(REFUSING_CALLERS)]
                try:
                    await stream_mounts(client, task_id, creators)
                finally:
                    done.set()
                refused = sum([await r for r in refusing])
                state = await api.task_state(client, task_id)
            histories = await runs_oldest_first(client, mount_task_id(task_id))
        finally:
            await env.shutdown()

    assert (state.pieces.mounted, state.pieces.open) == (MOUNTS, MOUNTS)
    assert refused > 0
    suggested_runs = [h for h in histories if any(
        e.workflow_task_started_event_attributes.suggest_continue_as_new for e in h.events
        if e.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_STARTED)]
    assert len(suggested_runs) >= 5, f"only {len(suggested_runs)} of {len(histories)} runs crossed the suggestion"
    failed = {h.run_id: [e.event_id for e in h.events if e.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED]
              for h in histories}
    assert not any(failed.values()), f"workflow tasks failed: {failed}"
    replayer = rh.replayer(MountTaskWorkflow)
    not_replaying = {}
    for history in histories:
        result = await replayer.replay_workflow(history, raise_on_replay_failure=False)
        if result.replay_failure:
            message = str(result.replay_failure)
            not_replaying[history.run_id] = message[max(0, message.find("[TMPRL")):][:140]
    assert not not_replaying, f"{len(not_replaying)} of {len(histories)} runs do not replay: {not_replaying}"
