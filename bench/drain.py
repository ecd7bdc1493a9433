"""`python -m bench drain [--mounts N]`: N mounts streamed onto one task without pauses (8 in flight, the most the
server's 10-updates limit leaves room for, 20 creators), then every run of the task read back: its events, the
updates it accepted, and its failed or timed-out workflow tasks. It shows whether the task continues as new near
the server's suggestion while mounts keep coming (docs/bench.md, "Limits found" 1). Dev server, as the phases."""

from __future__ import annotations

import argparse
import asyncio
import time
from pathlib import Path
from typing import Any

from temporalio.api.enums.v1 import EventType

from bench.harness import Bench, bench_server, machine, scratch_dir, versions, write_result
from bench.phases import UPDATES_IN_FLIGHT_PER_WORKFLOW, mount_instant, onboarded_creator, published_tasks
from starter import client as api
from workflows.contract import mount_task as mt
from workflows.contract.names import mount_task_id

CREATORS = 20
GIVE_UP_AFTER_S = 420.0


async def _stream(b: Bench, task_id: str, mounts: int) -> dict[str, Any]:
    creators = [b.next_id("creator") for _ in range(CREATORS)]
    for creator_id in creators:
        onboarded_creator(b.adapters, creator_id)
        await api.join(b.client, task_id, creator_id)
    at, in_flight = mount_instant(), asyncio.Semaphore(UPDATES_IN_FLIGHT_PER_WORKFLOW)
    give_up_at = time.monotonic() + GIVE_UP_AFTER_S

    async def one(i: int) -> None:
        async with in_flight:
            if time.monotonic() > give_up_at:
                raise TimeoutError(f"not sent: {GIVE_UP_AFTER_S:.0f} s passed")
            await asyncio.wait_for(api.report_mount(b.client, task_id, mt.ReportMountRequest(
                content_id=f"c{i}", creator_id=creators[i % CREATORS], mounted_at=at)), 60)

    start = time.perf_counter()
    outcomes = await asyncio.gather(*(one(i) for i in range(mounts)), return_exceptions=True)
    seconds = time.perf_counter() - start
    errors: dict[str, int] = {}
    for outcome in outcomes:
        if isinstance(outcome, BaseException):
            key = f"{type(outcome).__name__}: {str(outcome)[:80]}"
            errors[key] = errors.get(key, 0) + 1
    accepted = mounts - sum(errors.values())
    return {"mounts": mounts, "accepted": accepted, "seconds": round(seconds, 1),
            "mounts_per_second": round(accepted / seconds, 1), "errors": errors}


async def _runs(b: Bench, task_id: str) -> list[dict[str, int]]:
    """Every run of the task, oldest first."""
    runs: list[dict[str, int]] = []
    run_id: str | None = None
    while True:
        history = await b.client.get_workflow_handle(mount_task_id(task_id), run_id=run_id).fetch_history()
        types = [event.event_type for event in history.events]
        runs.append({"events": len(types),
                     "updates_accepted": types.count(EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED),
                     "workflow_tasks_failed": types.count(EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED),
                     "workflow_tasks_timed_out": types.count(EventType.EVENT_TYPE_WORKFLOW_TASK_TIMED_OUT)})
        run_id = history.events[0].workflow_execution_started_event_attributes.continued_execution_run_id or None
        if run_id is None:
            return runs[::-1]


async def run_drain(args: argparse.Namespace) -> dict[str, Any]:
    with scratch_dir() as tmp:
        async with bench_server(UPDATES_IN_FLIGHT_PER_WORKFLOW, Path(tmp)) as b:
            _, [task_id] = await published_tasks(b, 1)
            report = await _stream(b, task_id, args.mounts)
            report["runs_oldest_first"] = await _runs(b, task_id)
            report["server"] = b.server
    print(f"drain: {report['accepted']} of {report['mounts']} mounts accepted in {report['seconds']} s"
          f" = {report['mounts_per_second']}/s; errors {report['errors']}", flush=True)
    print("runs (events / updates accepted / workflow tasks failed / timed out): " + ", ".join(
        f"{r['events']}/{r['updates_accepted']}/{r['workflow_tasks_failed']}/{r['workflow_tasks_timed_out']}"
        for r in report["runs_oldest_first"]), flush=True)
    path = write_result(args.out, f"drain-{args.mounts}", {"machine": machine(), "versions": versions(), **report})
    print(f"-> {path}", flush=True)
    return report
