"""Escalations an operator finds in the Temporal UI by the `escalated` search attribute (issue 10, item 8): a
termination awaiting per-piece decisions (R-11) is findable while it waits, and no longer once decided. Needs
visibility, so it runs on the dev server (the time-skipping server has none)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from datetime import datetime, timedelta

import pytest
import pytest_asyncio
from temporalio.client import Client

from starter import xingguang as api
from tests.conftest import scratch_adapters
from tests.dev_server import dev_server_with_worker
from tests.helpers import creator, eligible_client
from tests.xg_fixtures import OPERATOR, PROVIDER, order_request
from worker import Adapters
from workflows.contract import xingguang as xg
from workflows.contract import xingguang_pieces as xgp
from workflows.rules.clock import BUSINESS_TZ

TASK_QUEUE = "xg-visibility"


@pytest.fixture(scope="module")
def adapters(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Adapters]:
    with scratch_adapters(tmp_path_factory.mktemp("xgvis")) as opened:
        yield opened


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def dev(adapters: Adapters) -> AsyncIterator[Client]:
    async with dev_server_with_worker(adapters, TASK_QUEUE) as client:
        yield client


async def count(client: Client, query: str) -> int:
    return len([w async for w in client.list_workflows(query)])


async def eventually(client: Client, query: str, expected: int, timeout: float = 20.0) -> None:
    """Visibility is eventually consistent: poll."""
    deadline = asyncio.get_running_loop().time() + timeout
    while (found := await count(client, query)) != expected:
        assert asyncio.get_running_loop().time() < deadline, f"{query}: {found} found, {expected} expected"
        await asyncio.sleep(0.3)


async def test_r_11_a_stop_awaiting_decisions_is_findable_by_escalated(dev: Client, adapters: Adapters,
                                                                        uid: str) -> None:
    task, client_id, who = f"xg-vis-{uid}", f"cl-vis-{uid}", f"kol-vis-{uid}"
    eligible_client(adapters, client_id, 300_000)
    creator(adapters, who)
    now = datetime.now(BUSINESS_TZ).replace(microsecond=0)
    await api.order(dev, order_request(task, client_id, now - timedelta(minutes=1), now + timedelta(days=10)),
                    TASK_QUEUE)
    await api.review_materials(dev, task, xg.ReviewMaterialsRequest(operator_id=OPERATOR, verdicts=[
        xg.MaterialVerdict(kind=xg.MaterialKind.QUALIFICATION, item_id="licence-1", approved=True)]))
    await api.assign_provider(dev, task, OPERATOR, PROVIDER)
    await api.select_creator(dev, task, xgp.SelectCreatorRequest(provider_id=PROVIDER, piece_id="p1", creator_id=who,
                                                                 creator_earnings_fen=10_000))
    escalated = f'task_id = "{task}" AND escalated = true'
    await eventually(dev, f'task_id = "{task}" AND stage = "in_progress" AND escalated = false', 1)
    await api.record_violation(dev, task, xg.RecordViolationRequest(
        operator_id=OPERATOR, violation_id="v1", cause=xg.TerminationCause.ILLEGAL_OR_NEGATIVE_EVENT,
        note="spokesperson under investigation", decision=xg.ViolationDecision.STOP))
    await eventually(dev, escalated + ' AND stage = "stopped"', 1)
    await api.decide_piece(dev, task, xg.DecidePieceRequest(operator_id=OPERATOR, piece_id="p1", settle=False,
                                                            note="nothing delivered"))
    await eventually(dev, escalated, 0)
    await eventually(dev, f'task_id = "{task}" AND stage = "closed" AND ExecutionStatus = "Completed"', 1)
