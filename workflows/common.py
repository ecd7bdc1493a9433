"""Workflow-side helpers shared by every workflow: activity options, search attributes, continue-as-new."""

from __future__ import annotations

from datetime import datetime, timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy, SearchAttributePair

from workflows.contract.names import SA

# Activities touch a database or a remote API: retry transient faults forever-ish with backoff; business
# refusals are raised as non-retryable ApplicationErrors by the activity itself.
ACTIVITY_RETRY = RetryPolicy(initial_interval=timedelta(seconds=1), backoff_coefficient=2.0,
                             maximum_interval=timedelta(minutes=1))
ACTIVITY_TIMEOUT = timedelta(seconds=30)

# Own bound on messages per run, below the server's 10,000 signals per run, in case the SDK's suggestion
# comes late (DESIGN.md: "Limits that shape the design").
MAX_MESSAGES_PER_RUN = 2_000


def upsert(*pairs: SearchAttributePair[object]) -> None:
    workflow.upsert_search_attributes(list(pairs))


def stage_attributes(stage: str, next_deadline_at: datetime | None, escalated: bool = False) -> None:
    updates: list[SearchAttributePair[object]] = [SA.STAGE.value_set(stage), SA.ESCALATED.value_set(escalated)]
    workflow.upsert_search_attributes(
        [*updates, SA.NEXT_DEADLINE_AT.value_set(next_deadline_at) if next_deadline_at
         else SA.NEXT_DEADLINE_AT.value_unset()]
    )


def continue_as_new_due(messages_this_run: int) -> bool:
    return workflow.info().is_continue_as_new_suggested() or messages_this_run >= MAX_MESSAGES_PER_RUN


def until(instant: datetime) -> timedelta:
    """Time left until `instant` on the workflow clock; never negative (a passed instant is acted on at once)."""
    return max(instant - workflow.now(), timedelta(0))
