"""Exactly-once under worker crashes (AM-12, AM-13, R-4; XG-4..XG-6, R-8 for the Xingguang task).

The time-skipping test server runs in its own process; the worker runs in another process (tests/crash_worker.py,
the production worker) that is killed with SIGKILL at random points (seeded, reproducible) and started again, while
two tasks run side by side to their end: an authorized-mount task with six pieces (publication, mounts,
conversions, settlement, refund) and a Xingguang task with three pieces (order, materials review, provider, creator
selection, submission, provider and client review, publication, objection window, billing period with
billable-event batches, data-dispute window, settlement, end of the order and refund). Outside kills land while the
scenarios are driven; while the windows close and the money moves, the worker also kills itself right after some
money activities' writes, both tasks' settlements and refunds (their replies are lost and they run again: the case
the idempotency keys are for). Afterwards every piece of both tasks is settled once, no posting is duplicated and
the ledger balances (R-8 for the Xingguang task: what it froze = creators + promotion + platform fees + refund, its
escrow empty). CRASH_KILLS, CRASH_SELF_KILLS_MAX and CRASH_SEED change the run; CRASH_STRICT=1 fails a run the test
server stalls on instead of skipping it."""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from datetime import datetime
from pathlib import Path
from typing import TypeVar

import pytest
from temporalio.api.common.v1 import WorkflowExecution
from temporalio.api.workflowservice.v1 import DescribeWorkflowExecutionRequest
from temporalio.client import Client, WorkflowUpdateRPCTimeoutOrCancelledError
from temporalio.service import RPCError
from temporalio.testing import WorkflowEnvironment

from activities.task_register import TaskRegister
from starter import client as api
from starter import xingguang as xg_api
from starter.client import Refused
from tests.conftest import Ctx, register_search_attributes, time_skipping_server_path
from tests.helpers import DAY, WORKFLOW_EXECUTION_STATUS_RUNNING, eligible_client, workflow_status
from tests.xg_fixtures import (
    HOUR,
    OPERATOR,
    PROVIDER,
    client_says,
    events,
    order_request,
    provider_says,
    select,
    submit,
    xg_money,
)
from worker import Adapters
from workflows.contract import mount_task as mt
from workflows.contract import mounted_content as mc
from workflows.contract import xingguang as xg
from workflows.contract import xingguang_state as xgs
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
XG_TASK, XG_CLIENT = "crash-xg", "crash-xg-client"
XG_PIECES = {"x1": ("xg-cr-1", 20_000), "x2": ("xg-cr-2", 15_005), "x3": ("xg-cr-3", 10_000)}  # creator, earnings
# Billable-event batches during the billing period: (event id, piece, events, cheating); the first two sent twice.
XG_BATCHES = [("xe1", "x1", 100, False), ("xe3", "x2", 40, False), ("xe2", "x1", 60, False),
              ("xe3-cheat", "x2", 500, True), ("xe4", "x3", 30, False)]
XG_SENT_TWICE = {"xe1", "xe3"}
# Written by hand (unit price 50, platform fee 10% of earnings + spend rounded half up, provider fee 5% of earnings):
#          events, earnings, spend, platform fee, provider fee
XG_EXPECTED = {"x1": (160, 20_000, 8_000, 2_800, 1_000),
               "x2": (40, 15_005, 2_000, 1_701, 750),  # 10% of 17,005 = 1,700.5 -> 1,701; 5% of 15,005 -> 750
               "x3": (30, 10_000, 1_500, 1_150, 500)}
XG_FROZEN = 198_000  # 100,000 placement + 80,000 creator earnings budgets + 10% platform fee on both
XG_SETTLE_KINDS = ("xg_creator_earnings", "xg_promotion_spend", "xg_platform_fee", "xg_provider_fee")
XG_MONEY_KINDS = (*XG_SETTLE_KINDS, "xg_freeze", "xg_refund", "xg_deduction", "xg_delay_fee")
CUT_OFF = Counter[str]()  # calls cut off by a crash and made again, by error (shown in the run's report)


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
    for workflow_id in [mount_task_id("crash-task"), *(mounted_content_id("crash-task", c) for c in PIECES),
                        xg.xg_task_workflow_id(XG_TASK)]:
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
        except (RPCError, WorkflowUpdateRPCTimeoutOrCancelledError) as err:
            CUT_OFF[type(err).__name__] += 1
            await asyncio.sleep(0.5)
    return await call()


async def retrying_command(call: Callable[[], Awaitable[object]], took: Callable[[], Awaitable[bool]]) -> None:
    """A command that is not repeat-safe (a review moves the piece on, so the same review again is refused): when
    the call is refused, the caller reads the state; if the command's effect is there, an earlier call that was cut
    off took effect and its answer was lost."""
    try:
        await retrying(call)
    except Refused as refusal:
        if not await took():
            raise
        print(f"refused after a cut-off call that took effect: {refusal.reasons[0]}")


async def drive_mount_task(client: Client, now: datetime) -> None:
    request = mt.PublishTaskRequest(
        task_id="crash-task", client_id="crash-client", task_type="submission",
        settlement_method="authorized_mount", task_name="crash", task_icon_url="i", header_image_url="h",
        component_id="k", budget_fen=100_000, period_start_at=now, period_end_at=now + 20 * DAY,
        billing_rule=mt.BillingRule(conversion_event="install", price_fen=100), public_days=7)
    published = await retrying(lambda: api.publish_task(client, request, "crash-queue"))
    assert published.frozen_fen == 110_000
    for creator_id in sorted(set(PIECES.values())):
        await retrying(lambda who=creator_id: api.join(client, "crash-task", who))
    for content_id, creator_id in PIECES.items():
        mount = mt.ReportMountRequest(content_id=content_id, creator_id=creator_id, mounted_at=now)
        await retrying(lambda m=mount: api.report_mount(client, "crash-task", m))
        count = CONVERSIONS[content_id]
        for half in ("a", "b"):  # each half twice: duplicates must count once
            batch = mc.ConversionBatch(event_id=f"{content_id}-{half}", content_id=content_id,
                                       count=count // 3 if half == "a" else count - count // 3,
                                       occurred_at=now + DAY)
            await api.report_conversions(client, "crash-task", batch)
            await api.report_conversions(client, "crash-task", batch)


async def drive_xingguang_task(ctx: Ctx, now: datetime) -> None:
    """Order (billing period [now+1d, now+14d)), materials, provider; three pieces selected, submitted, approved by
    the provider and the client (published at once, promoted from the billing period's start); batches reported
    for the billing period, two of them twice and one cheating. The windows and the money are left to time: the
    pieces settle at now+17d, the instant the mount task's pieces settle (mounted now: 14-day billing period and
    3-day publicity window), so the self-kills of both tasks' settlements share their timeouts."""
    async def state() -> xgs.XingguangTaskView:
        return await retrying(lambda: xg_api.state(ctx.client, XG_TASK))

    async def reviewed_by(piece_id: str, by: str) -> bool:
        return any(r.by == by and r.approved for r in (await state()).pieces[piece_id].reviews)

    async def stage_past_materials() -> bool:
        return (await state()).stage not in (xgs.TaskStage.DRAFT, xgs.TaskStage.MATERIALS_REVIEW)

    async def provider_assigned() -> bool:
        return (await state()).provider_id == PROVIDER

    eligible_client(ctx.a, XG_CLIENT, 300_000)
    order = order_request(XG_TASK, XG_CLIENT, now + DAY, now + 14 * DAY)
    ordered = await retrying(lambda: xg_api.order(ctx.client, order, ctx.task_queue))
    assert ordered.terms.frozen_fen == XG_FROZEN
    materials = xg.ReviewMaterialsRequest(operator_id=OPERATOR, verdicts=[
        xg.MaterialVerdict(kind=xg.MaterialKind.QUALIFICATION, item_id="licence-1", approved=True),
        xg.MaterialVerdict(kind=xg.MaterialKind.COMPONENT, item_id="app-card-1", approved=True)])
    await retrying_command(lambda: xg_api.review_materials(ctx.client, XG_TASK, materials), stage_past_materials)
    await retrying_command(lambda: xg_api.assign_provider(ctx.client, XG_TASK, OPERATOR, PROVIDER),
                           provider_assigned)
    for piece_id, (creator_id, earnings_fen) in XG_PIECES.items():
        await retrying(lambda p=piece_id, c=creator_id, e=earnings_fen: select(ctx, XG_TASK, p, c, e))
        await retrying(lambda p=piece_id, c=creator_id: submit(ctx, XG_TASK, p, c, f"content-{p}"))
        await retrying_command(lambda p=piece_id: provider_says(ctx, XG_TASK, p, True),
                               lambda p=piece_id: reviewed_by(p, "provider"))
        await retrying_command(lambda p=piece_id: client_says(ctx, XG_TASK, XG_CLIENT, p, True),
                               lambda p=piece_id: reviewed_by(p, "client"))
    for event_id, piece_id, count, cheating in XG_BATCHES:
        for _ in range(2 if event_id in XG_SENT_TWICE else 1):  # a duplicate bills once
            await retrying(lambda e=event_id, p=piece_id, n=count, ch=cheating: events(
                ctx, XG_TASK, e, p, n, now + DAY + HOUR, cheating=ch))


# 26 kills, each a restart of the worker and a replay of what it had cached: 150-300 s here on 2 cores.
@pytest.mark.timeout(900)
async def test_worker_killed_n_times_settles_every_piece_once(tmp_path: Path) -> None:
    env = await WorkflowEnvironment.start_time_skipping(data_converter=data_converter,
                                                        test_server_existing_path=time_skipping_server_path())
    crashing: CrashingWorker | None = None
    restarter: asyncio.Task[None] | None = None
    reading = contextlib.ExitStack()
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
        # Both tasks are driven at once, as their callers would; the kills land meanwhile.
        xg_ctx = Ctx(env=env, client=env.client, a=adapters, task_queue="crash-queue", uid="crash")
        began = time.monotonic()
        await asyncio.gather(drive_mount_task(env.client, now), drive_xingguang_task(xg_ctx, now))
        driven = time.monotonic()

        await killer  # the outside kills happen while the scenario is driven
        # From here the windows close and the money moves: the worker now also dies right after some of the
        # settlement's and refund's writes, before their replies reach the server.
        crashing.allow_self_kills(SELF_KILLS)
        closing = time.monotonic()
        async with env.time_skipping_unlocked():
            for _ in range(4000):
                running = [await workflow_status(env, w) == WORKFLOW_EXECUTION_STATUS_RUNNING
                           for w in (mount_task_id("crash-task"), xg.xg_task_workflow_id(XG_TASK))]
                if not any(running):
                    break
                await asyncio.sleep(0.05)
        print(f"real time: scenarios driven in {driven - began:.0f} s, outside kills over at {closing - began:.0f} s, "
              f"both tasks ended at {time.monotonic() - began:.0f} s; calls cut off and made again: {dict(CUT_OFF)}")
        state = await api.task_state(env.client, "crash-task")
        xg_state = await retrying(lambda: xg_api.state(env.client, XG_TASK))
        finished = state.stage is mt.TaskStage.REFUNDED and xg_state.stage is xgs.TaskStage.CLOSED
        if not finished:
            print(await stall_report(env, now))
        if not finished and not os.environ.get("CRASH_STRICT"):
            # Seen once in CI on a loaded machine: after a kill the test server stopped skipping time and the
            # task did not reach its end within the bound. That says nothing about the money (checked below
            # whenever the run completes); CRASH_STRICT=1 makes it a failure.
            pytest.skip(f"scenario not finished within the bound after {crashing.kills} kills (stages "
                        f"{state.stage.value}, xingguang {xg_state.stage.value}); money checks need a finished run")

        settled = [r.piece for r in TaskRegister(adapters.db).pieces_page("crash-task")
                   if r.piece.status == "settled"]
        xg_settled = [p for p in xg_state.pieces.values() if p.stage is xgs.PieceStage.SETTLED]
        fee_transfers = adapters.ledger.transfers(business_key_prefix="settle:crash-task:")
        # A double payment is a second posting of one kind for one piece (or a second refund, freeze, ...),
        # whatever its key says: a retry that made up a new key must be caught too. (One task of each kind here,
        # so kind and memo name the piece.)
        paid = Counter((t.kind, t.memo) for t in adapters.ledger.transfers(limit=100_000)
                       if t.kind in ("settle_fee", "settle_platform_fee", "refund", *XG_MONEY_KINDS))
        double_payments = sum(n - 1 for n in paid.values())
        money = adapters.ledger.task_money("crash-task")
        xg_paid = xg_money(xg_ctx, XG_TASK, XG_CLIENT)
        xg_balanced = xg_paid["escrow"] == 0 and xg_paid["frozen"] == sum(
            xg_paid[k] for k in ("creators", "promotion", "platform_fee", "delay_fee", "deducted", "refund"))
        balanced = adapters.ledger.conservation_total() == 0 and xg_balanced and money["frozen_fen"] == (
            money["paid_fen"] + money["platform_fees_fen"] + money["refunded_fen"])
        worker_log = (tmp_path / "worker.log").read_text()
        xg_self_kills = worker_log.count("killing itself after xg_ledger.")
        print(*(line for line in worker_log.splitlines() if "killing itself" in line), sep="\n")
        print(f"kills {crashing.kills + crashing.self_kills} ({crashing.kills} from outside, "
              f"{crashing.self_kills} after a write, {xg_self_kills} of them xingguang's), "
              f"settled {len(settled) + len(xg_settled)} (mount {len(settled)}, xingguang {len(xg_settled)}), "
              f"double payments {double_payments}, ledger {'balanced' if balanced else 'NOT balanced'}")

        assert crashing.kills >= KILLS
        assert crashing.self_kills >= 1, "no kill landed between a settlement's write and its reply"
        if SELF_KILLS >= 4:  # the worker kills itself once after each of these (tests/crash_worker.py)
            for name in ("ledger.settle", "ledger.refund", "xg_ledger.settle_piece", "xg_ledger.refund"):
                assert f"killing itself after {name} wrote" in worker_log, f"no reply of {name} was lost"
        assert state.stage is mt.TaskStage.REFUNDED and xg_state.stage is xgs.TaskStage.CLOSED
        assert len(settled) == 6 and len(xg_settled) == 3 and double_payments == 0 and balanced
        expected_fees = {c: 100 * n for c, n in CONVERSIONS.items()}
        assert {p.content_id: p.fee_fen for p in settled} == expected_fees
        assert len(fee_transfers) == 12  # one fee and one platform fee per piece, no more
        total = sum(expected_fees.values())  # 6,300 fen
        assert (money["paid_fen"], money["platform_fees_fen"], money["refunded_fen"]) == (
            total, total // 10, 110_000 - total - total // 10)
        for creator_id in set(PIECES.values()):
            owed = sum(expected_fees[c] for c, who in PIECES.items() if who == creator_id)
            assert adapters.ledger.balance(f"creator:{creator_id}:payable").balance_fen == owed
        assert len(adapters.ledger.transfers(business_key_prefix="refund:crash-task")) == 1

        # Xingguang: each piece settled once at the table's amounts, one posting per leg; R-8 conservation.
        assert {(kind, memo): n for (kind, memo), n in paid.items() if kind in XG_SETTLE_KINDS} == {
            (kind, f"piece {piece_id}"): 1 for piece_id in XG_PIECES for kind in XG_SETTLE_KINDS}
        for piece_id, (n, earnings, spend, fee, provider_fee) in XG_EXPECTED.items():
            creator_id = XG_PIECES[piece_id][0]
            piece = xg_state.pieces[piece_id]
            assert piece.billable_events == n, piece_id
            assert piece.settlement == xgs.PieceMoney(
                creator_earnings_fen=earnings, promotion_spend_fen=spend, platform_fee_fen=fee,
                provider_fee_fen=provider_fee, payee_account=f"creator:{creator_id}:payable"), piece_id
            assert adapters.ledger.balance(f"creator:{creator_id}:payable").balance_fen == earnings, piece_id
        creators, promotion, fees, provider_fees = (sum(row[i] for row in XG_EXPECTED.values()) for i in (1, 2, 3, 4))
        refund = XG_FROZEN - creators - promotion - fees  # 198,000 - 45,005 - 11,500 - 5,651 = 135,844
        assert (xg_paid["frozen"], xg_paid["creators"], xg_paid["promotion"], xg_paid["platform_fee"],
                xg_paid["provider_fee"], xg_paid["refund"], xg_paid["escrow"]) == (
            XG_FROZEN, 45_005, 11_500, 5_651, 2_250, 135_844, 0)
        money = xg_state.money
        assert (money.paid_fen, money.promotion_spend_fen, money.platform_fees_fen, money.provider_fees_fen,
                money.refunded_fen, money.refund_to_come_fen) == (creators, promotion, fees, provider_fees, refund, 0)
        assert adapters.ledger.balance(f"provider:{PROVIDER}:payable").balance_fen == provider_fees
        assert adapters.ledger.balance(f"client:{XG_CLIENT}:available").balance_fen == 300_000 - XG_FROZEN + refund
        adapters.ledger.check_conservation()
    finally:
        reading.close()
        if restarter is not None:
            restarter.cancel()
        if crashing is not None:
            crashing.stop()
        await env.shutdown()
