"""Workflow-side helpers shared by every workflow: activity options, search attributes, continue-as-new."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime, timedelta
from typing import Any, NoReturn

from temporalio import workflow
from temporalio.common import SearchAttributeUpdate

with workflow.unsafe.imports_passed_through():
    from workflows.contract.names import SA
    from workflows.contract.views import RunInfo
    from workflows.rules import run_length
    from workflows.rules.clock import business_time
    from workflows.rules.run_length import MAX_MESSAGES_PER_RUN  # its value, for readers; RunLength reads the module

__all__ = ["MAX_MESSAGES_PER_RUN", "RunLength", "continue_as_new_when_handlers_done", "run_info", "stage_attributes",
           "until", "wait_summary"]


def wait_summary(what: str, at: datetime) -> str:
    """The summary of a wait's timer that is re-planned (a message arrives, the next deadline moves): the UI shows
    the timer it replaces as "Timer Canceled: <summary>", so it is named as the wait it is ("wait until the task
    period ends <instant>"), not as the deadline, which was not cancelled."""
    return f"wait until {what} {business_time(at)}"


def stage_attributes(stage: str, next_deadline_at: datetime | None, escalated: bool = False,
                     more: Sequence[SearchAttributeUpdate[Any]] = ()) -> None:
    """One upsert (one event) with the stage, the next deadline, escalated, and `more`."""
    updates: list[SearchAttributeUpdate[Any]] = [SA.STAGE.value_set(stage), SA.ESCALATED.value_set(escalated)]
    workflow.upsert_search_attributes(
        [*updates, SA.NEXT_DEADLINE_AT.value_set(next_deadline_at) if next_deadline_at
         else SA.NEXT_DEADLINE_AT.value_unset(), *more]
    )


# Runs that record this marker keep the server's suggestion out of wait_condition predicates (RunLength).
SUGGESTION_OUTSIDE_PREDICATES_PATCH = "continue-as-new-suggestion-outside-predicates"


class RunLength:
    """When a run should continue as new: at `bound` messages, or when the server suggests it.

    The server's suggestion (`workflow.info().is_continue_as_new_suggested()`) is a property of the workflow task,
    refreshed at each one, and must not be read in a `wait_condition` predicate: the SDK checks predicates between
    the jobs of an activation, and an update refused by its validator is a job of the live activation but leaves
    nothing in history. When the suggestion (or `workflow.now()`, or the history length) flips in a task that also
    carries a refused update, a predicate reading it lets the waiting code go at a different point live than on
    replay, and replay fails ("Nondeterminism error: Update machine does not handle this event: TimerCanceled";
    tests/test_can_suggestion.py; docs/bench.md "Limits found" 1). So predicates read `reached` (workflow state
    only: the same on replay), and straight-line code, which runs at the same point on replay, reads `due`.

    Construct it in the workflow's run method: runs started before SUGGESTION_OUTSIDE_PREDICATES_PATCH keep reading
    the suggestion in their predicates (`legacy`), so that their histories replay as they were made."""

    def __init__(self, bound: int | None = None) -> None:
        # The bound is read here, not at import: tests lower it to reach it with a few messages (run_length).
        self.bound = run_length.MAX_MESSAGES_PER_RUN if bound is None else bound
        self.legacy = not workflow.patched(SUGGESTION_OUTSIDE_PREDICATES_PATCH)

    def reached(self, messages_this_run: int) -> bool:
        """For wait_condition predicates."""
        if self.legacy and workflow.info().is_continue_as_new_suggested():
            return True
        return messages_this_run >= self.bound

    def due(self, messages_this_run: int) -> bool:
        """For straight-line code (e.g. right after a wait returned): the count, or the server's suggestion."""
        return messages_this_run >= self.bound or workflow.info().is_continue_as_new_suggested()


def run_info(messages_this_run: int, length: RunLength | None) -> RunInfo:
    """The `run` query's answer (before the run method set its RunLength, the shared bound)."""
    bound = length.bound if length is not None else run_length.MAX_MESSAGES_PER_RUN
    return RunInfo(messages_this_run=messages_this_run, bound=bound)


# Runs that record this marker do their pending work before waiting for handlers, and continue as new right after
# the wait; older runs ran it between the two (and replay so).
HANDLERS_THEN_CONTINUE_PATCH = "continue-as-new-right-after-handlers-finish"


async def continue_as_new_when_handlers_done(
        carry: Callable[[], object], pending_work: Callable[[], Awaitable[None]] | None = None) -> NoReturn:
    """Continue as new once every signal and update handler has finished, with no await in between: an await
    there would let a new update in, and the run would close under it (its caller gets "workflow execution
    already completed", its change is lost). `pending_work` (activities) runs before the wait; what arrives
    during it or during the wait stays in the state that `carry()` (called after the wait) hands to the next run."""
    legacy = pending_work is not None and not workflow.patched(HANDLERS_THEN_CONTINUE_PATCH)
    if pending_work is not None and not legacy:
        await pending_work()
    await workflow.wait_condition(workflow.all_handlers_finished)
    if pending_work is not None and legacy:
        await pending_work()
    workflow.continue_as_new(carry())


def until(instant: datetime) -> timedelta:
    """Time left until `instant` on the workflow clock; never negative (a passed instant is acted on at once)."""
    return max(instant - workflow.now(), timedelta(0))
