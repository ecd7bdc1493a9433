"""The Temporal phases: publish, mount, ingest, settle. Each has a project measure and a bare measure of the same
shape; setup (clients, creators, tasks, pieces) happens before the clock starts."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TypeVar

from temporalio.client import WithStartWorkflowOperation
from temporalio.common import (
    SearchAttributePair,
    TypedSearchAttributes,
    WorkflowIDConflictPolicy,
)

from bench.bare_activities import (
    BARE_CONTENT,
    BARE_TASK,
    COUNTERS,
    BareBatch,
    BareContentInput,
    BareDone,
    BareMount,
    BarePublish,
    BareTaskInput,
)
from bench.harness import Bench, PhaseResult, gather_limited, interleaved, wait_until
from starter import client as api
from starter import xingguang as xg_api
from worker import Adapters
from workflows.contract import mount_task as mt
from workflows.contract import mounted_content as mc
from workflows.contract import xingguang as xg
from workflows.contract.names import MOUNTED_CONTENT_WORKFLOW, SA, mounted_content_id
from workflows.rules.clock import start_of_business_day
from workflows.rules.eligibility import ClientFacts, CreatorFacts

T = TypeVar("T")
DAY = timedelta(days=1)
PRICE_FEN = 10
SETTLE_BACKDATE = timedelta(days=18)  # more than 14 + 3 days: the publicity window closed before the mount arrived
PIECES_PER_TASK = 50  # mounts are spread over tasks of this many pieces
# The server refuses an update when a workflow already has 10 in flight (dynamic config
# limit.workflowExecution.maxInFlightUpdates, default 10): callers of one task keep fewer than that in flight.
UPDATES_IN_FLIGHT_PER_WORKFLOW = 8


class PerWorkflowLimit:
    """At most UPDATES_IN_FLIGHT_PER_WORKFLOW calls in flight per workflow id."""

    def __init__(self) -> None:
        self.limits: dict[str, asyncio.Semaphore] = {}

    async def __call__(self, workflow_id: str, call: Awaitable[T]) -> T:
        limit = self.limits.setdefault(workflow_id, asyncio.Semaphore(UPDATES_IN_FLIGHT_PER_WORKFLOW))
        async with limit:
            return await call


def eligible_client(adapters: Adapters, client_id: str, balance_fen: int) -> None:
    adapters.directory.put_client(ClientFacts(
        client_id=client_id, active=True, qualification_passed=True, corporate_verified=True,
        brand_certified=True, penalty_restricted=False, mount_allow_listed=True))
    adapters.ledger.deposit(f"bench-{client_id}", client_id, balance_fen)


def onboarded_creator(adapters: Adapters, creator_id: str) -> None:
    adapters.directory.put_creator(CreatorFacts(creator_id=creator_id, onboarded=True))


def publish_request(task_id: str, client_id: str, budget_fen: int, days: int = 30) -> mt.PublishTaskRequest:
    now = datetime.now(UTC).replace(microsecond=0)
    return mt.PublishTaskRequest(
        task_id=task_id, client_id=client_id, task_type="submission", settlement_method="authorized_mount",
        task_name="bench task", task_icon_url="https://cdn.example/icon.png",
        header_image_url="https://cdn.example/header.png", component_id="component-bench",
        budget_fen=budget_fen, period_start_at=now - timedelta(hours=2), period_end_at=now + days * DAY,
        billing_rule=mt.BillingRule(conversion_event="app_activation", price_fen=PRICE_FEN), public_days=30)


def mount_instant() -> datetime:
    """Now, a minute back, but never before the business day of the join (report_mount refuses that)."""
    now = datetime.now(UTC).replace(microsecond=0)
    return max(now - timedelta(minutes=1), start_of_business_day(now))


async def published_tasks(b: Bench, count: int, budget_fen: int = 10**9) -> tuple[str, list[str]]:
    client_id = b.next_id("client")
    eligible_client(b.adapters, client_id, count * budget_fen * 2)
    task_ids = [b.next_id("task") for _ in range(count)]
    await gather_limited(count, b.concurrency, lambda i: api.publish_task(
        b.client, publish_request(task_ids[i], client_id, budget_fen), b.project_queue))
    return client_id, task_ids


async def mounted_pieces(b: Bench, pieces: int) -> list[tuple[str, str, datetime]]:
    """Tasks with joined creators and `pieces` mounted pieces: (task_id, content_id, mounted_at)."""
    _, task_ids = await published_tasks(b, max(1, -(-pieces // PIECES_PER_TASK)))
    creators = [b.next_id("creator") for _ in task_ids]
    for task_id, creator_id in zip(task_ids, creators, strict=True):
        onboarded_creator(b.adapters, creator_id)
        await api.join(b.client, task_id, creator_id)
    plan = [(task_ids[i % len(task_ids)], creators[i % len(task_ids)], b.next_id("content")) for i in range(pieces)]
    at = mount_instant()
    limit = PerWorkflowLimit()
    await gather_limited(pieces, b.concurrency, lambda i: limit(plan[i][0], api.report_mount(
        b.client, plan[i][0], mt.ReportMountRequest(content_id=plan[i][2], creator_id=plan[i][1], mounted_at=at))))
    return [(task_id, content_id, at) for task_id, _, content_id in plan]


async def bare_tasks(b: Bench, count: int, days: int = 30, update: str = "publish") -> list[str]:
    task_ids = [b.next_id("bare") for _ in range(count)]
    end = datetime.now(UTC) + days * DAY
    await gather_limited(count, b.concurrency, lambda i: b.client.execute_update_with_start_workflow(
        update, BarePublish(task_id=task_ids[i], budget_fen=1, period_end_at=end),
        start_workflow_operation=WithStartWorkflowOperation(
            BARE_TASK, BareTaskInput(task_id=task_ids[i]), id=f"bare-task:{task_ids[i]}", task_queue=b.bare_queue,
            id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING),
        result_type=BareDone))
    return task_ids


async def bare_mount(b: Bench, task_id: str, content_id: str) -> None:
    await b.client.get_workflow_handle(f"bare-task:{task_id}").execute_update(
        "mount", BareMount(content_id=content_id, mounted_at=datetime.now(UTC)), result_type=BareDone)


async def bare_pieces(b: Bench, pieces: int) -> list[tuple[str, str]]:
    task_ids = await bare_tasks(b, max(1, -(-pieces // PIECES_PER_TASK)))
    plan = [(task_ids[i % len(task_ids)], b.next_id("content")) for i in range(pieces)]
    limit = PerWorkflowLimit()
    await gather_limited(pieces, b.concurrency, lambda i: limit(plan[i][0], bare_mount(b, *plan[i])))
    return plan


def timed(start: float, done: int) -> tuple[int, float]:
    return done, time.perf_counter() - start


async def timed_calls(b: Bench, n: int, call: Callable[[int], Awaitable[object]]) -> tuple[int, float]:
    """n calls, b.concurrency at a time, timed from the first to the last answer."""
    start = time.perf_counter()
    await gather_limited(n, b.concurrency, call)
    return timed(start, n)


_READERS: dict[str, sqlite3.Connection] = {}


def ledger_count(b: Bench, sql: str, params: tuple[object, ...]) -> int:
    """The driver's progress poll. On SQLite through a read-only connection of its own (WAL lets it read beside the
    writer): through the worker's Database it would take `BEGIN IMMEDIATE`, the one write lock, every 20 ms and hold
    up the project's ledger activities (the settle profile showed the poll waiting ~2 ms a call on that lock)."""
    db = b.adapters.db
    if db.dialect != "sqlite":
        with db.transaction() as tx:
            row = tx.fetchone(sql, params)
        return int(row[0]) if row else 0
    reader = _READERS.get(db.dsn)
    if reader is None:
        path = Path(db.dsn.removeprefix("sqlite:///")).resolve()
        reader = _READERS[db.dsn] = sqlite3.connect(f"file:{path}?mode=ro", uri=True, check_same_thread=False)
    found = reader.execute(sql, params).fetchone()
    return int(found[0]) if found else 0


# ---------------------------------------------------------------- publish
def publish_phase(b: Bench) -> tuple[Callable[[int], object], Callable[[int], object]]:
    async def project(n: int) -> tuple[int, float]:
        client_id = b.next_id("client")
        eligible_client(b.adapters, client_id, n * 200_000)
        ids = [b.next_id("task") for _ in range(n)]
        return await timed_calls(b, n, lambda i: api.publish_task(
            b.client, publish_request(ids[i], client_id, 100_000), b.project_queue))

    async def bare(n: int) -> tuple[int, float]:
        start = time.perf_counter()
        await bare_tasks(b, n)
        return timed(start, n)

    return project, bare


# ---------------------------------------------------------------- mount
def mount_phase(b: Bench) -> tuple[Callable[[int], object], Callable[[int], object]]:
    async def project(n: int) -> tuple[int, float]:
        _, task_ids = await published_tasks(b, max(1, -(-n // PIECES_PER_TASK)))
        creators = [b.next_id("creator") for _ in task_ids]
        for task_id, creator_id in zip(task_ids, creators, strict=True):
            onboarded_creator(b.adapters, creator_id)
            await api.join(b.client, task_id, creator_id)
        at = mount_instant()
        limit = PerWorkflowLimit()
        start = time.perf_counter()
        await gather_limited(n, b.concurrency, lambda i: limit(task_ids[i % len(task_ids)], api.report_mount(
            b.client, task_ids[i % len(task_ids)], mt.ReportMountRequest(
                content_id=f"c{i}", creator_id=creators[i % len(task_ids)], mounted_at=at))))
        return timed(start, n)

    async def bare(n: int) -> tuple[int, float]:
        task_ids = await bare_tasks(b, max(1, -(-n // PIECES_PER_TASK)))
        limit = PerWorkflowLimit()
        start = time.perf_counter()
        await gather_limited(n, b.concurrency, lambda i: limit(task_ids[i % len(task_ids)],
                                                               bare_mount(b, task_ids[i % len(task_ids)], f"c{i}")))
        return timed(start, n)

    return project, bare


# ---------------------------------------------------------------- ingest
INGEST_PIECES = 20


def ingest_phase(b: Bench) -> tuple[Callable[[int], object], Callable[[int], object]]:
    async def project(n: int) -> tuple[int, float]:
        pieces = await mounted_pieces(b, INGEST_PIECES)
        task_ids = sorted({task_id for task_id, _, _ in pieces})
        marks = ",".join("?" * len(task_ids))
        count_sql = f"SELECT COUNT(*) FROM budget_accruals WHERE task_id IN ({marks})"
        before = ledger_count(b, count_sql, tuple(task_ids))
        prefix = b.next_id("ev")

        async def send(i: int) -> None:
            task_id, content_id, at = pieces[i % len(pieces)]
            await api.report_conversions(b.client, task_id, mc.ConversionBatch(
                event_id=f"{prefix}-{i}", content_id=content_id, count=1 + i % 5, occurred_at=at))

        start = time.perf_counter()
        await gather_limited(n, b.concurrency, send)
        await wait_until(lambda: ledger_count(b, count_sql, tuple(task_ids)) - before >= n, 600, "ingest project")
        return timed(start, n)

    async def bare(n: int) -> tuple[int, float]:
        pieces = await bare_pieces(b, INGEST_PIECES)
        before = COUNTERS.accrued
        prefix = b.next_id("ev")

        async def send(i: int) -> None:
            task_id, content_id = pieces[i % len(pieces)]
            await b.client.get_workflow_handle(f"bare-content:{task_id}:{content_id}").signal(
                "report_conversions", BareBatch(event_id=f"{prefix}-{i}", count=1 + i % 5))

        start = time.perf_counter()
        await gather_limited(n, b.concurrency, send)
        await wait_until(lambda: COUNTERS.accrued - before >= n, 600, "ingest bare")
        return timed(start, n)

    return project, bare


# ---------------------------------------------------------------- settle
def settle_phase(b: Bench) -> tuple[Callable[[int], object], Callable[[int], object]]:
    async def project(n: int) -> tuple[int, float]:
        client_id, [task_id] = await published_tasks(b, 1)
        state = await api.task_state(b.client, task_id)
        assert state.period_end_at is not None
        mounted_at = datetime.now(UTC).replace(microsecond=0) - SETTLE_BACKDATE
        count_sql = "SELECT COUNT(*) FROM operations WHERE key LIKE ?"
        like = (f"settle:{task_id}:%",)

        async def start_piece(i: int) -> None:
            content_id = f"c{i}"
            creator_id = f"bench-creator-{i % 50}"
            await b.client.start_workflow(
                MOUNTED_CONTENT_WORKFLOW,
                mc.MountedContentInput(task_id=task_id, content_id=content_id, creator_id=creator_id,
                                       client_id=client_id, payee_account=f"creator:{creator_id}:payable",
                                       price_fen=PRICE_FEN, mounted_at=mounted_at,
                                       task_period_end_at=state.period_end_at),
                id=mounted_content_id(task_id, content_id), task_queue=b.project_queue,
                search_attributes=TypedSearchAttributes([
                    SearchAttributePair(SA.TASK_ID, task_id), SearchAttributePair(SA.CONTENT_ID, content_id),
                    SearchAttributePair(SA.CREATOR_ID, creator_id), SearchAttributePair(SA.CLIENT_ID, client_id)]),
                start_signal="report_conversions",
                start_signal_args=[mc.ConversionBatch(event_id=f"e{i}", content_id=content_id, count=3,
                                                      occurred_at=mounted_at + timedelta(hours=1))])

        start = time.perf_counter()
        await gather_limited(n, b.concurrency, start_piece)
        await wait_until(lambda: ledger_count(b, count_sql, like) >= n, 600, "settle project")
        return timed(start, n)

    async def bare(n: int) -> tuple[int, float]:
        [task_id] = await bare_tasks(b, 1)
        before = COUNTERS.settled
        closes = datetime.now(UTC) - timedelta(days=1)

        async def start_piece(i: int) -> None:
            await b.client.start_workflow(
                BARE_CONTENT, BareContentInput(task_id=task_id, content_id=f"c{i}", window_closes_at=closes),
                id=f"bare-content:{task_id}:c{i}", task_queue=b.bare_queue, start_signal="report_conversions",
                start_signal_args=[BareBatch(event_id=f"e{i}", count=3)])

        start = time.perf_counter()
        await gather_limited(n, b.concurrency, start_piece)
        await wait_until(lambda: COUNTERS.settled - before >= n, 600, "settle bare")
        return timed(start, n)

    return project, bare


# ---------------------------------------------------------------- xingguang
def xg_order_request(task_id: str, client_id: str) -> xg.OrderRequest:
    now = datetime.now(UTC).replace(microsecond=0)
    return xg.OrderRequest(
        task_id=task_id, client_id=client_id, content_requirements="bench order: show the app's map feature",
        targeting_labels=["interest:travel", "age:18-35", "city_tier:1"], placement_budget_fen=100_000,
        unit_price_fen=50, billing_start_at=now + DAY, billing_end_at=now + 11 * DAY,
        creator_earnings_budget_fen=80_000, platform_fee_rate_bp=1_000, provider_fee_rate_bp=500,
        client_confirms_content=True, client_review_hours=48)


def xingguang_phase(b: Bench) -> tuple[Callable[[int], object], Callable[[int], object]]:
    async def project(n: int) -> tuple[int, float]:
        client_id = b.next_id("xgclient")
        eligible_client(b.adapters, client_id, n * 300_000)
        ids = [b.next_id("xg") for _ in range(n)]
        return await timed_calls(b, n, lambda i: xg_api.order(
            b.client, xg_order_request(ids[i], client_id), b.project_queue))

    async def bare(n: int) -> tuple[int, float]:
        start = time.perf_counter()
        await bare_tasks(b, n, days=11, update="order")
        return timed(start, n)

    return project, bare


PHASES = {
    "publish": (publish_phase, "tasks published",
                [("project: update-with-start `publish` (directory.client_facts + ledger.freeze on SQLite);"
                 " bare: update-with-start running 2 no-op activities")]),
    "mount": (mount_phase, "mounts accepted",
              [("project: `report_mount` update, fanout.start_content_workflow starts MountedContentWorkflow;"
               f" bare: update whose activity starts a bare content workflow; {PIECES_PER_TASK} mounts per task,"
                f" at most {UPDATES_IN_FLIGHT_PER_WORKFLOW} in flight per task (server limit 10)")]),
    "ingest": (ingest_phase, "conversion batches accrued",
               [(f"signals spread over {INGEST_PIECES} pieces; project: report_conversions, counted when its"
                " accrual row is in the ledger; bare: signal + one no-op activity per wake-up, counted in it")]),
    "xingguang": (xingguang_phase, "orders placed",
                  [("project: update-with-start `order` on XingguangTaskWorkflow (order form and targeting labels"
                   " checked in the validator, R-8 freeze `xg_ledger.freeze` on SQLite); bare: update-with-start"
                   " running 1 no-op activity")]),
    "settle": (settle_phase, "settlements",
               [("MountedContentWorkflow started directly (signal-with-start of one conversion batch) with"
                " mounted_at 18 days back: accrue, unmount, hold check, settle at once; report_mount refuses"
                " such a mount (see docs/bench.md); bare: the same 4 activities (accrue, unmount, hold_settlement,"
                " settle) as no-ops")]),
}


async def run_phase(b: Bench, name: str, size: int, rounds: int) -> PhaseResult:
    factory, unit, notes = PHASES[name]
    project, bare = factory(b)
    # One unmeasured warm-up of each, so that the first round does not pay for imports and sticky caches.
    await project(max(2, size // 10))  # type: ignore[misc]
    await bare(max(2, size // 10))  # type: ignore[misc]
    return await interleaved(name, unit, size, rounds, project, bare, notes)  # type: ignore[arg-type]
