"""`ActivityPort`: an activity as the workflows call it, by a name that exists once (here), with its result type,
timeout and retry policy, so that a call site says what it asks for and nothing else."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from typing import Generic, TypeVar

from temporalio import workflow
from temporalio.common import RetryPolicy

# Activities touch a database or a remote API: retry transient faults forever-ish with backoff; business
# refusals are raised as non-retryable ApplicationErrors by the activity itself.
ACTIVITY_RETRY = RetryPolicy(initial_interval=timedelta(seconds=1), backoff_coefficient=2.0,
                             maximum_interval=timedelta(minutes=1))
ACTIVITY_TIMEOUT = timedelta(seconds=30)

Req = TypeVar("Req")
Res = TypeVar("Res")


@dataclass(frozen=True)
class ActivityPort(Generic[Req, Res]):
    """One activity: `await PORT(request)` runs it from workflow code and returns its typed result.

    `result_type` None: the activity returns nothing the workflow reads. `heartbeat` is set for the activities
    that page through a long list (they heartbeat between pages)."""

    name: str
    result_type: type[Res] | None
    timeout: timedelta = ACTIVITY_TIMEOUT
    retry: RetryPolicy = field(default_factory=lambda: ACTIVITY_RETRY)  # the one object: Stalls compares it
    heartbeat: timedelta | None = None

    async def __call__(self, request: Req, *, summary: str | None = None) -> Res:
        result: Res = await workflow.execute_activity(
            self.name, request, result_type=self.result_type, start_to_close_timeout=self.timeout,
            heartbeat_timeout=self.heartbeat, retry_policy=self.retry, summary=summary)
        return result

    async def local(self, request: Req) -> Res:
        """As a local activity: run by the workflow's own worker, recorded as one marker event."""
        result: Res = await workflow.execute_local_activity(
            self.name, request, result_type=self.result_type, start_to_close_timeout=self.timeout,
            retry_policy=self.retry)
        return result
