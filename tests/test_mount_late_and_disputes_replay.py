"""Histories of the 2026-12 AM-6 and AM-11 readings replay against the current code: a task that refuses and
unmounts mounts, accepts one reported 23 hours after its period and refuses one 25 hours after; a task with no
piece that waits for late reports before refunding; a piece disputed by both parties, once during its billing
period (escalated there) and once in its publicity window.

The checked-in files (tests/histories/mount-*-am6-*.json, mount-*-am11-*.json) are replayed by test_mount_replay.py
with the other mount histories. To record them again after a deliberate, patched change:
`RECORD_MOUNT_HISTORIES=1 .venv/bin/python -m pytest tests/test_mount_late_and_disputes_replay.py` (this file only:
it writes only its own histories)."""

from __future__ import annotations

from datetime import timedelta

import pytest

from starter import client as api
from starter.client import Refused
from tests import replay_helpers as rh
from tests.conftest import Ctx
from tests.helpers import (
    DAY,
    advance,
    business_now,
    content_when,
    convert,
    creator,
    finish,
    mount,
    published_task,
)
from tests.stranding import env_per_test, rerun_on_a_fresh_server
from tests.violation_helpers import fixed_calendar
from workflows.contract import mount_task as mt
from workflows.contract import mounted_content as mc
from workflows.contract.names import mount_task_id, mounted_content_id
from workflows.mount_task import MountTaskWorkflow
from workflows.mounted_content import MountedContentWorkflow

# A server per test, and a failed test run again on a fresh one (tests/stranding.py).
pytestmark = rerun_on_a_fresh_server
__all__ = ["env_per_test"]  # the fixture, by its name `env`

REPLAYER = rh.replayer(MountTaskWorkflow, MountedContentWorkflow)

SECOND, HOUR = timedelta(seconds=1), timedelta(hours=1)


async def late_mount_histories(ctx: Ctx) -> dict[str, str]:
    task = f"t-am6-{ctx.uid}"
    await published_task(ctx, task, budget_fen=100_000, price_fen=100, days=1)
    creator(ctx.a, "cr-1")
    await api.join(ctx.client, task, "cr-1")
    end = await business_now(ctx) + DAY
    await mount(ctx, task, "on-time", "cr-1", end - DAY)
    with pytest.raises(Refused):
        await mount(ctx, task, "stranger", "cr-9", end - DAY)  # not joined: refused and unmounted
    await advance(ctx, (DAY + 23 * HOUR).total_seconds())
    await mount(ctx, task, "late", "cr-1", end - HOUR)
    await convert(ctx, task, "late", "l1", 3, end - SECOND)
    await content_when(ctx, task, "late", lambda s: s.fee_fen == 300)
    await advance(ctx, 2 * HOUR.total_seconds())
    with pytest.raises(Refused):
        await mount(ctx, task, "too-late", "cr-1", end - HOUR)
    result = await finish(ctx, mount_task_id(task), mt.TaskResult)
    assert (result.stage, result.paid_to_creators_fen) == (mt.TaskStage.REFUNDED, 300)
    return {"mount-task-am6-late-and-refused-mounts": await rh.history_json(ctx.client, mount_task_id(task)),
            "mount-content-am6-reported-late": await rh.history_json(ctx.client, mounted_content_id(task, "late"))}


async def no_piece_histories(ctx: Ctx) -> dict[str, str]:
    task = f"t-am6-empty-{ctx.uid}"
    await published_task(ctx, task, budget_fen=10_000, price_fen=100, days=1)
    result = await finish(ctx, mount_task_id(task), mt.TaskResult)
    assert (result.stage, result.refunded_fen) == (mt.TaskStage.REFUNDED, 11_000)
    return {"mount-task-am6-no-piece-waits-for-late-reports": await rh.history_json(ctx.client, mount_task_id(task))}


async def two_disputes_histories(ctx: Ctx) -> dict[str, str]:
    task = f"t-am11-{ctx.uid}"
    await published_task(ctx, task, budget_fen=100_000, price_fen=100, days=30)
    creator(ctx.a, "cr-1")
    await api.join(ctx.client, task, "cr-1")
    mounted_at = await business_now(ctx)
    await mount(ctx, task, "c1", "cr-1", mounted_at)
    await convert(ctx, task, "c1", "e1", 10, mounted_at + SECOND)
    await content_when(ctx, task, "c1", lambda s: s.fee_fen == 1_000)
    await api.raise_dispute(ctx.client, task, "c1", mc.RaiseDisputeRequest(
        raised_by="client", party_id="client-1", reason="raised during the billing period"))
    await ctx.env.sleep(14 * DAY + SECOND)
    await content_when(ctx, task, "c1", lambda s: s.escalated and s.stage is mc.ContentStage.PUBLICITY)
    await api.raise_dispute(ctx.client, task, "c1", mc.RaiseDisputeRequest(
        raised_by="creator", party_id="cr-1", reason="raised in the publicity window"))
    await ctx.env.sleep(3 * DAY)
    await content_when(ctx, task, "c1", lambda s: s.stage is mc.ContentStage.DISPUTED)
    for dispute_id, amount in (("d1", 600), ("d2", 800)):
        await api.resolve_dispute(ctx.client, task, "c1", mc.ResolveDisputeRequest(
            dispute_id=dispute_id, operator_id="op-1", amount_fen=amount, note="replay shape"))
    result = await finish(ctx, mounted_content_id(task, "c1"), mc.ContentResult)
    assert (result.fee_fen, result.platform_fee_fen) == (800, 80)
    return {"mount-content-am11-disputed-by-both-parties": await rh.history_json(
        ctx.client, mounted_content_id(task, "c1"))}


async def test_mount_task_replays_fresh_late_and_refused_mount_histories(ctx: Ctx) -> None:
    await rh.replay_and_maybe_record(REPLAYER, await late_mount_histories(ctx), "RECORD_MOUNT_HISTORIES")


async def test_mount_task_replays_a_fresh_history_waiting_for_late_reports(ctx: Ctx) -> None:
    await rh.replay_and_maybe_record(REPLAYER, await no_piece_histories(ctx), "RECORD_MOUNT_HISTORIES")


@pytest.mark.replace_activities.with_args(fixed_calendar(9 * DAY))
async def test_mounted_content_replays_a_fresh_history_disputed_by_both_parties(ctx: Ctx) -> None:
    await rh.replay_and_maybe_record(REPLAYER, await two_disputes_histories(ctx), "RECORD_MOUNT_HISTORIES")
