"""The time-skipping test server strands a run whose workflow task cancels a timer that fired while the task was
with the worker: it refuses the completion ("invalid history builder state for action", temporalio/sdk-java#3088),
never sends the task again, and its clock stays locked, so every later test on that server waits out its time.
Tests that mount, report and skip time around the end of a task's period meet it now and then (on a loaded machine
more often: three of them in one fresh-clone run on 2026-12-05). Modules that use these take a server per test, so a
stranded run cannot take the rest of the module with it, and run a failed test again on a fresh server: a real
failure fails every time."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import pytest_asyncio
from temporalio.testing import WorkflowEnvironment

from tests.conftest import time_skipping_environment

rerun_on_a_fresh_server = pytest.mark.flaky(reruns=2)


@pytest_asyncio.fixture(loop_scope="session", name="env")
async def env_per_test() -> AsyncIterator[WorkflowEnvironment]:
    """Overrides conftest's `env` (one server per module) in a module that imports it."""
    async with time_skipping_environment() as environment:
        yield environment
