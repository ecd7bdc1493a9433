"""The bare baseline: workflows with the same shape as the project's (see bench/bare_activities.py)."""

from __future__ import annotations

import contextlib
from datetime import datetime, timedelta

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from bench.bare_activities import (
        BARE_CONTENT,
        BARE_TASK,
        TIMEOUT,
        BareBatch,
        BareContentInput,
        BareDone,
        BareItems,
        BareMount,
        BarePublish,
        BareTaskInput,
    )


@workflow.defn(name=BARE_TASK)
class BareTaskWorkflow:
    @workflow.init
    def __init__(self, input: BareTaskInput) -> None:
        self.task_id = input.task_id
        self.period_end_at: datetime | None = None

    @workflow.run
    async def run(self, input: BareTaskInput) -> int:
        await workflow.wait_condition(lambda: self.period_end_at is not None, timeout=timedelta(hours=1))
        assert self.period_end_at is not None
        with contextlib.suppress(TimeoutError):
            await workflow.wait_condition(lambda: False, timeout=max(self.period_end_at - workflow.now(),
                                                                     timedelta(seconds=1)))
        return 0

    @workflow.update(name="publish")
    async def publish(self, request: BarePublish) -> BareDone:
        items = BareItems(task_id=self.task_id, content_id="-")
        await workflow.execute_activity("bare.client_facts", items, result_type=BareDone,
                                        start_to_close_timeout=TIMEOUT)
        await workflow.execute_activity("bare.freeze", items, result_type=BareDone, start_to_close_timeout=TIMEOUT)
        self.period_end_at = request.period_end_at
        return BareDone()

    @workflow.update(name="order")
    async def order(self, request: BarePublish) -> BareDone:
        """~ XingguangTaskWorkflow's `order`: one activity (the freeze)."""
        await workflow.execute_activity("bare.freeze", BareItems(task_id=self.task_id, content_id="-"),
                                        result_type=BareDone, start_to_close_timeout=TIMEOUT)
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


@workflow.defn(name=BARE_CONTENT)
class BareContentWorkflow:
    @workflow.init
    def __init__(self, input: BareContentInput) -> None:
        self.pending: list[str] = []

    @workflow.run
    async def run(self, input: BareContentInput) -> int:
        items = BareItems(task_id=input.task_id, content_id=input.content_id)
        while True:
            with contextlib.suppress(TimeoutError):
                await workflow.wait_condition(lambda: bool(self.pending) or workflow.now() >= input.window_closes_at,
                                              timeout=max(input.window_closes_at - workflow.now(), timedelta(0)))
            if self.pending:
                batch, self.pending = self.pending, []
                await workflow.execute_activity("bare.accrue", items.model_copy(update={"event_ids": batch}),
                                                result_type=BareDone, start_to_close_timeout=TIMEOUT)
            elif workflow.now() >= input.window_closes_at:
                break
        await workflow.execute_activity("bare.unmount", items, result_type=BareDone, start_to_close_timeout=TIMEOUT)
        await workflow.execute_activity("bare.hold_settlement", items, result_type=BareDone,
                                        start_to_close_timeout=TIMEOUT)
        await workflow.execute_activity("bare.settle", items, result_type=BareDone, start_to_close_timeout=TIMEOUT)
        return 0

    @workflow.signal(name="report_conversions")
    def report_conversions(self, batch: BareBatch) -> None:
        self.pending.append(batch.event_id)
