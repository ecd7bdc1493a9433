"""The fault run's tasks (bench/faults.py): each is ended, and so refunded, while the kills go on, once every piece
of it is paid in the ledger and its workflow has completed; and which worker kills are aimed at a settlement's or a
refund's lost reply."""

from __future__ import annotations

import asyncio
import random
import time
from typing import TYPE_CHECKING

from temporalio.api.enums.v1 import WorkflowExecutionStatus
from temporalio.service import RPCError

from starter import client as api
from workflows.contract.names import mounted_content_id

if TYPE_CHECKING:
    from bench.faults import Plan, Run

RECOVERY_TIMEOUT_S = 180


def refunded(run: Run, task_id: str) -> bool:
    return run.adapters.ledger.task_money(task_id)["refunded_at"] is not None


async def end_task_when_settled(run: Run, task_id: str) -> None:
    """Once every piece of the task is paid in the ledger, the task is cancelled just before the next kill (AM-7;
    nobody joined it, so it refunds at once) and followed until its refund is in the ledger. A task whose pieces do
    not all settle is left open (a refund would refuse their settlements): the checks report it."""
    from bench.faults import quietly, retrying, settled_count

    ids = [p.content_id for p in run.pieces if p.task_id == task_id]
    deadline = time.monotonic() + 2 * RECOVERY_TIMEOUT_S
    # Paid in the ledger is not enough: a settlement whose reply was lost is still in flight until its retry, and a
    # refund before that retry would refuse it (TaskClosed) and hide a broken build's second payment. So the
    # pieces' workflows must have completed too.
    while quietly(lambda: settled_count(run, ids))() < len(ids) or not await pieces_completed(run, task_id, ids):
        if time.monotonic() > deadline:
            run.unended.append(task_id)
            run.awaiting_end.discard(task_id)
            run.log(f"task {task_id}: not every piece settled within {2 * RECOVERY_TIMEOUT_S} s: not ended")
            return
        await asyncio.sleep(0.2)
    if not run.kills_over:
        run.waiting.add(task_id)
        await run.kill_gate.wait()
        run.waiting.discard(task_id)
    run.awaiting_end.discard(task_id)

    async def cancel() -> None:
        try:
            await api.cancel(run.client, task_id, "fault run: every piece settled", "fault-run")
        except api.Refused as refusal:  # a repeat whose first call's reply was lost: done
            if refusal.kind != "NotRunning" and not any("already cancelled" in r for r in refusal.reasons):
                raise
    ended_at = time.monotonic()
    run.ending.add(task_id)
    await retrying(f"cancel {task_id}", cancel)
    while quietly(lambda: int(refunded(run, task_id)))() != 1:
        if time.monotonic() - ended_at > RECOVERY_TIMEOUT_S:
            run.log(f"task {task_id}: cancelled, no refund within {RECOVERY_TIMEOUT_S} s")
            break
        await asyncio.sleep(0.05)
    else:
        run.log(f"task {task_id}: {len(ids)} pieces settled; cancelled and refunded in "
                f"{time.monotonic() - ended_at:.2f} s")
    run.ending.discard(task_id)


async def pieces_completed(run: Run, task_id: str, content_ids: list[str]) -> bool:
    """Every piece's workflow has completed (False while the server cannot be asked, e.g. during its kill)."""
    try:
        for content_id in content_ids:
            status = await api.workflow_status(run.client, mounted_content_id(task_id, content_id))
            if status != WorkflowExecutionStatus.WORKFLOW_EXECUTION_STATUS_COMPLETED:
                return False
    except RPCError:
        return False
    return True


async def a_task_waits(run: Run) -> bool:
    """Waits until a task is to be ended before the next kill; False when none can be any more."""
    deadline = time.monotonic() + 2 * RECOVERY_TIMEOUT_S
    while not run.waiting:
        if not run.awaiting_end or time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.05)
    return True


def worker_aims(plan: Plan, schedule: list[str], waves: int, rng: random.Random) -> list[str]:
    """For each kill of the schedule: "settle" or "refund" for a worker kill aimed between such a call's commit and
    its reply, else "" (drawn up front, so that the seed alone decides them)."""
    # A refund can be aimed at while tasks are still to be ended: from the second kill (the first wave's task may
    # have ended) to the one before the last wave's (after it, the last tasks may all have ended).
    refunds_until = max(1, waves - 1)
    aims = []
    for number, kind in enumerate(schedule):
        draw = rng.random()
        refund_share = plan.lost_refund_reply_share if 0 < number <= refunds_until else 0.0
        aims.append("" if kind != "worker" else "refund" if draw < refund_share
                    else "settle" if draw < refund_share + plan.lost_reply_share else "")
    for aim, share, last_at in (("settle", plan.lost_reply_share, len(schedule)),
                                ("refund", plan.lost_refund_reply_share, refunds_until)):
        # A kill taken from the other aim only where that aim has more than one; a refund's in the middle.
        free = [n for n, kind in enumerate(schedule) if kind == "worker" and 0 < n <= last_at
                and (not aims[n] or aims.count(aims[n]) > 1)]
        if share > 0 and aim not in aims and free:
            aims[free[-1] if aim == "settle" else free[len(free) // 2]] = aim
    return aims
