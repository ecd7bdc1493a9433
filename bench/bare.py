"""The bare baseline: workflows with the same shape as the project's (same workflows, updates, signals, timers
and activities per business event), activities that do nothing, no rules, no ledger, no search attributes.

BareTaskWorkflow      ~ MountTaskWorkflow: update-with-start `publish` (2 activities), update `mount` (1 activity
                        that starts a BareContentWorkflow), signal `content_closed`; waits on one timer.
BareContentWorkflow   ~ MountedContentWorkflow: signal `report_conversions`; one `accrue` activity per wake-up for
                        every batch waiting; at the end of its window `unmount`, `settle`, then signals its task.
"""

from __future__ import annotations

import threading
from datetime import datetime, timedelta

from pydantic import BaseModel
from temporalio import activity, workflow
from temporalio.client import Client
from temporalio.common import WorkflowIDConflictPolicy

BARE_TASK = "BenchBareTaskWorkflow"
BARE_CONTENT = "BenchBareContentWorkflow"
TIMEOUT = timedelta(seconds=30)


class BareTaskInput(BaseModel):
    task_id: str


class BarePublish(BaseModel):
    task_id: str
    budget_fen: int
    period_end_at: datetime


class BareMount(BaseModel):
    content_id: str
    mounted_at: datetime


class BareContentInput(BaseModel):
    task_id: str
    content_id: str
    window_closes_at: datetime


class BareBatch(BaseModel):
    event_id: str
    count: int


class BareItems(BaseModel):
    task_id: str
    content_id: str
    event_ids: list[str] = []


class BareDone(BaseModel):
    ok: bool = True


class Counters:
    """What the bare activities did, read by the bench driver (the project's progress is read in its ledger)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.accrued = 0
        self.settled = 0

    def add(self, accrued: int = 0, settled: int = 0) -> None:
        with self.lock:
            self.accrued += accrued
            self.settled += settled


COUNTERS = Counters()


class BareActivities:
    def __init__(self, client: Client, task_queue: str) -> None:
        self.client, self.task_queue = client, task_queue

    @activity.defn(name="bare.client_facts")
    def client_facts(self, request: BareItems) -> BareDone:
        return BareDone()

    @activity.defn(name="bare.freeze")
    def freeze(self, request: BareItems) -> BareDone:
        return BareDone()

    @activity.defn(name="bare.accrue")
    def accrue(self, request: BareItems) -> BareDone:
        COUNTERS.add(accrued=len(request.event_ids))
        return BareDone()

    @activity.defn(name="bare.unmount")
    def unmount(self, request: BareItems) -> BareDone:
        return BareDone()

    @activity.defn(name="bare.settle")
    def settle(self, request: BareItems) -> BareDone:
        COUNTERS.add(settled=1)
        return BareDone()

    @activity.defn(name="bare.start_content")
    async def start_content(self, request: BareContentInput) -> BareDone:
        # The project's mount starts its content workflow from an activity: so does the baseline.
        await self.client.start_workflow(
            BARE_CONTENT, request, id=f"bare-content:{request.task_id}:{request.content_id}",
            task_queue=self.task_queue, id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING)
        return BareDone()

    def all(self) -> list[object]:
        return [self.client_facts, self.freeze, self.accrue, self.unmount, self.settle, self.start_content]


@workflow.defn(name=BARE_TASK)
class BareTaskWorkflow:
    @workflow.init
    def __init__(self, input: BareTaskInput) -> None:
        self.task_id = input.task_id
        self.period_end_at: datetime | None = None
        self.closed = 0

    @workflow.run
    async def run(self, input: BareTaskInput) -> int:
        await workflow.wait_condition(lambda: self.period_end_at is not None, timeout=timedelta(hours=1))
        assert self.period_end_at is not None
        try:
            await workflow.wait_condition(lambda: False, timeout=max(self.period_end_at - workflow.now(),
                                                                     timedelta(seconds=1)))
        except TimeoutError:
            pass
        return self.closed

    @workflow.update(name="publish")
    async def publish(self, request: BarePublish) -> BareDone:
        items = BareItems(task_id=self.task_id, content_id="-")
        await workflow.execute_activity("bare.client_facts", items, result_type=BareDone,
                                        start_to_close_timeout=TIMEOUT)
        await workflow.execute_activity("bare.freeze", items, result_type=BareDone, start_to_close_timeout=TIMEOUT)
        self.period_end_at = request.period_end_at
        return BareDone()

    @workflow.update(name="mount")
    async def mount(self, request: BareMount) -> BareDone:
        assert self.period_end_at is not None
        await workflow.execute_activity(
            "bare.start_content", BareContentInput(task_id=self.task_id, content_id=request.content_id,
                                                   window_closes_at=self.period_end_at),
            result_type=BareDone, start_to_close_timeout=TIMEOUT)
        return BareDone()

    @workflow.signal(name="content_closed")
    def content_closed(self, done: BareDone) -> None:
        self.closed += 1


@workflow.defn(name=BARE_CONTENT)
class BareContentWorkflow:
    @workflow.init
    def __init__(self, input: BareContentInput) -> None:
        self.pending: list[str] = []

    @workflow.run
    async def run(self, input: BareContentInput) -> int:
        items = BareItems(task_id=input.task_id, content_id=input.content_id)
        while True:
            try:
                await workflow.wait_condition(lambda: bool(self.pending) or workflow.now() >= input.window_closes_at,
                                              timeout=max(input.window_closes_at - workflow.now(), timedelta(0)))
            except TimeoutError:
                pass
            if self.pending:
                batch, self.pending = self.pending, []
                await workflow.execute_activity("bare.accrue", items.model_copy(update={"event_ids": batch}),
                                                result_type=BareDone, start_to_close_timeout=TIMEOUT)
            elif workflow.now() >= input.window_closes_at:
                break
        await workflow.execute_activity("bare.unmount", items, result_type=BareDone, start_to_close_timeout=TIMEOUT)
        await workflow.execute_activity("bare.settle", items, result_type=BareDone, start_to_close_timeout=TIMEOUT)
        await workflow.get_external_workflow_handle(f"bare-task:{input.task_id}").signal("content_closed",
                                                                                          BareDone())
        return 0

    @workflow.signal(name="report_conversions")
    def report_conversions(self, batch: BareBatch) -> None:
        self.pending.append(batch.event_id)
