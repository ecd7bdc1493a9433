"""Messages and no-op activities of the bare baseline (bench/bare.py). A module of its own, imported by the bare
workflows through `imports_passed_through` as the project's workflows import their contract, so that the sandbox
does not rebuild these classes for every workflow instance.

The bare baseline: workflows with the same shape as the project's (same workflows, updates, signals, timers
and activities per business event), activities that do nothing, no rules, no ledger, no search attributes.

BareTaskWorkflow      ~ MountTaskWorkflow: update-with-start `publish` (2 activities), update `mount` (1 activity
                        that starts a BareContentWorkflow); waits on one timer.
                        ~ XingguangTaskWorkflow: update-with-start `order` (1 activity).
BareContentWorkflow   ~ MountedContentWorkflow: signal `report_conversions`; one `accrue` activity per wake-up for
                        every batch waiting; at the end of its window `unmount`, `hold_settlement` (the AM-19
                        penalty-hold check), `settle` (the project's piece records its closure in the ledger's
                        settlement and no longer signals its task).
"""

from __future__ import annotations

import threading
from datetime import datetime, timedelta

from pydantic import BaseModel
from temporalio import activity
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

    @activity.defn(name="bare.hold_settlement")
    def hold_settlement(self, request: BareItems) -> BareDone:
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
        return [self.client_facts, self.freeze, self.accrue, self.unmount, self.hold_settlement, self.settle,
                self.start_content]


