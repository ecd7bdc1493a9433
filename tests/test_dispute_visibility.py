"""Issue 23 item 5: open disputes (AM-11) and holds (AM-19, R-12) are findable by search attribute while the piece's
publicity window is still open, before its stage says so: `open_dispute` and `held` (workflows/contract/names.py),
upserted with the stage. Needs visibility, so it runs on the dev server (the time-skipping server has none); the piece
is mounted 15 days in the past, so its billing period is over and its publicity window open now."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from datetime import datetime, timedelta

import pytest
import pytest_asyncio
from temporalio.client import Client
from temporalio.common import SearchAttributePair, TypedSearchAttributes

from tests.conftest import scratch_adapters
from tests.dev_server import dev_server_with_worker
from tests.helpers import creator
from tests.violation_helpers import fixed_calendar
from worker import Adapters
from workflows.contract import mounted_content as mc
from workflows.contract.names import MOUNTED_CONTENT_WORKFLOW, SA, mounted_content_id
from workflows.rules.clock import BUSINESS_TZ

TASK_QUEUE = "dispute-visibility"


@pytest.fixture(scope="module")
def adapters(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Adapters]:
    with scratch_adapters(tmp_path_factory.mktemp("dispvis")) as opened:
        yield opened


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def dev(adapters: Adapters) -> AsyncIterator[Client]:
    calendar = fixed_calendar(timedelta(days=7))(adapters)  # no escalation during the test
    async with dev_server_with_worker(adapters, TASK_QUEUE, replace_activities=calendar) as client:
        yield client


async def found(client: Client, query: str, expected: set[str], timeout: float = 20.0) -> None:
    """Visibility is eventually consistent: poll until the query lists exactly `expected`."""
    deadline = asyncio.get_running_loop().time() + timeout
    while (ids := {w.id async for w in client.list_workflows(query)}) != expected:
        assert asyncio.get_running_loop().time() < deadline, f"{query}: {ids} found, {expected} expected"
        await asyncio.sleep(0.3)


async def piece_in_its_window(dev: Client, adapters: Adapters, uid: str) -> tuple[str, str]:
    now = datetime.now(BUSINESS_TZ).replace(microsecond=0)
    task, who = f"t-dv-{uid}", f"cr-dv-{uid}"
    creator(adapters, who)
    workflow_id = mounted_content_id(task, "c1")
    await dev.start_workflow(
        MOUNTED_CONTENT_WORKFLOW,
        mc.MountedContentInput(task_id=task, content_id="c1", creator_id=who, client_id="client-1",
                               payee_account=f"creator:{who}:payable", price_fen=100,
                               mounted_at=now - timedelta(days=15), task_period_end_at=now + timedelta(days=15)),
        id=workflow_id, task_queue=TASK_QUEUE,
        search_attributes=TypedSearchAttributes([SearchAttributePair(SA.TASK_ID, task),
                                                 SearchAttributePair(SA.CONTENT_ID, "c1")]))
    return task, workflow_id


async def test_am_11_an_open_dispute_is_found_while_the_window_is_open(dev: Client, adapters: Adapters,
                                                                       uid: str) -> None:
    task, workflow_id = await piece_in_its_window(dev, adapters, uid)
    handle = dev.get_workflow_handle(workflow_id)
    await found(dev, f'task_id = "{task}" AND stage = "publicity" AND open_dispute = false', {workflow_id})
    receipt = await handle.execute_update(
        "raise_dispute", mc.RaiseDisputeRequest(raised_by="client", party_id="client-1",
                                                reason="activations from our own QA devices"),
        result_type=mc.DisputeReceipt)
    # The window is still open (stage publicity): the stage filter alone would not show it; open_dispute does.
    await found(dev, f'task_id = "{task}" AND open_dispute = true AND stage = "publicity"', {workflow_id})
    await handle.execute_update(
        "resolve_dispute", mc.ResolveDisputeRequest(dispute_id=receipt.dispute_id, operator_id="op-1",
                                                    amount_fen=0, note="QA devices confirmed"),
        result_type=mc.DisputeResolution)
    await found(dev, f'task_id = "{task}" AND open_dispute = true', set())
    await handle.terminate("test over")


async def test_r_12_am_19_a_piece_held_by_a_freeze_is_found_by_held(dev: Client, adapters: Adapters,
                                                                    uid: str) -> None:
    task, workflow_id = await piece_in_its_window(dev, adapters, uid)
    handle = dev.get_workflow_handle(workflow_id)
    now = datetime.now(BUSINESS_TZ).replace(microsecond=0)
    await handle.signal("counting_frozen", mc.CountingFrozen(case_id="v1", penalty_id="p1", frozen_at=now))
    await found(dev, f'task_id = "{task}" AND held = true', {workflow_id})
    await handle.signal("counting_resumed", mc.CountingResumed(case_id="v1", penalty_id="p1",
                                                               resumed_at=now + timedelta(seconds=1), withdrawn=True))
    await found(dev, f'task_id = "{task}" AND held = true', set())
    await handle.terminate("test over")
