"""Running authorized-mount workflows outlive code (DESIGN "Running workflows outlive code"): histories of
MountTaskWorkflow and MountedContentWorkflow in their interesting shapes (settled, revoked, made non-public,
disposed, budget used up, period over with pieces settled and the rest refunded, cancelled, a piece and a task
continued as new) replay against the current code, both fresh ones and those checked in under tests/histories/
(mount-*.json).

To record new ones after a deliberate, patched change: `RECORD_MOUNT_HISTORIES=1 .venv/bin/python -m pytest
tests/test_mount_replay.py`, then commit tests/histories/. A change that breaks a running workflow makes the
checked-in replay fail: guard it with `workflow.patched(...)` instead of re-recording."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from starter import client as api
from tests import helpers
from tests import replay_helpers as rh
from tests.conftest import Ctx
from tests.helpers import business_now, content_when, convert, creator, finish, mount, published_task
from workflows.common import MAX_MESSAGES_PER_RUN
from workflows.contract import mount_task as mt
from workflows.contract import mounted_content as mc
from workflows.contract.names import mount_task_id, mounted_content_id
from workflows.rules.run_length import TASK_MESSAGES_PER_RUN

REPLAYER = rh.family_replayer("mount-")
SECOND, HOUR = timedelta(seconds=1), timedelta(hours=1)


async def history_json(ctx: Ctx, workflow_id: str, run_id: str | None = None) -> str:
    return await rh.history_json(ctx.client, workflow_id, run_id)


async def settled_task_histories(ctx: Ctx) -> dict[str, str]:
    """A task whose budget runs out: one piece settled, one revoked, one made non-public, one disposed."""
    task = f"t-replay-{ctx.uid}"
    await published_task(ctx, task, budget_fen=2_000, price_fen=100)
    creator(ctx.a, "cr-1")
    await api.join(ctx.client, task, "cr-1")
    now = await business_now(ctx)
    for content in ("settled", "revoked", "private", "disposed"):
        await mount(ctx, task, content, "cr-1", now)
        await convert(ctx, task, content, f"{content}-1", 2, now + SECOND)
    await api.revoke_content(ctx.client, task, "cr-1", "revoked")
    await api.content_signal(ctx.client, task, "private", "report_visibility_lost", mc.VisibilityLost(
        kind=mc.VisibilityKind.MADE_NON_PUBLIC, occurred_at=now + 2 * SECOND))
    await api.content_signal(ctx.client, task, "disposed", "report_disposal", mc.PlatformDisposal(
        reason=mc.DisposalReason.TAKEN_DOWN, occurred_at=now + 2 * SECOND))
    await api.content_signal(ctx.client, task, "settled", "void_conversions", mc.VoidConversions(
        event_id="settled-1", reason="replay shape: a void"))
    await content_when(ctx, task, "settled",
                       lambda s: s.recent_batches["settled-1"].voided and s.counted_conversions == 0)
    await convert(ctx, task, "settled", "settled-2", 50, now + 3 * SECOND)  # uses the budget up
    await finish(ctx, mount_task_id(task), mt.TaskResult)
    histories = {"mount-task-budget-used-up": await history_json(ctx, mount_task_id(task))}
    for content in ("settled", "revoked", "private", "disposed"):
        histories[f"mount-content-{content}"] = await history_json(ctx, mounted_content_id(task, content))
    return histories


async def cancelled_and_continued_histories(ctx: Ctx) -> dict[str, str]:
    """A cancelled task whose one piece continued as new after its own message bound."""
    task = f"t-can-{ctx.uid}"
    await published_task(ctx, task, budget_fen=1_000_000, balance_fen=2_000_000)
    creator(ctx.a, "cr-1")
    await api.join(ctx.client, task, "cr-1")
    now = await business_now(ctx)
    await mount(ctx, task, "busy", "cr-1", now)
    piece = mounted_content_id(task, "busy")
    batches = [mc.ConversionBatch(event_id=f"e{i}", content_id="busy", count=1, occurred_at=now + SECOND,
                                  cheating=i % 2 == 1) for i in range(MAX_MESSAGES_PER_RUN + 20)]
    to_bound = MAX_MESSAGES_PER_RUN - (await rh.run_info(ctx.client, piece)).messages_this_run
    first_run = await rh.continue_as_new_by_signals(ctx.client, piece, "report_conversions", batches[:to_bound],
                                                    batches[to_bound:])
    state = await content_when(ctx, task, "busy", lambda s: s.counted_conversions == len(batches) // 2)
    assert state.counted_conversions == len(batches) // 2  # the piece continued as new, carrying its state
    assert (await rh.run_info(ctx.client, piece)).messages_this_run < MAX_MESSAGES_PER_RUN
    await api.cancel(ctx.client, task, "replay shape: cancel", "ops-1")
    await finish(ctx, mount_task_id(task), mt.TaskResult)
    return {
        "mount-task-cancelled": await history_json(ctx, mount_task_id(task)),
        "mount-content-continued-as-new": await history_json(ctx, piece, first_run),
        "mount-content-after-continue-as-new": await history_json(ctx, piece),
    }


async def period_over_histories(ctx: Ctx) -> dict[str, str]:
    """A task whose period ends with budget left: two pieces settled, the rest refunded (AM-11..AM-13)."""
    task = f"t-over-{ctx.uid}"
    await published_task(ctx, task, budget_fen=100_000, price_fen=100, days=1)
    creator(ctx.a, "cr-1")
    await api.join(ctx.client, task, "cr-1")
    now = await business_now(ctx)
    for content, count in (("p1", 10), ("p2", 4)):
        await mount(ctx, task, content, "cr-1", now)
        await convert(ctx, task, content, f"{content}-1", count, now + SECOND)
    await content_when(ctx, task, "p2", lambda s: s.counted_conversions == 4)
    result = await finish(ctx, mount_task_id(task), mt.TaskResult)
    assert (result.stage, result.paid_to_creators_fen) == (mt.TaskStage.REFUNDED, 1_400)
    assert result.refunded_fen == result.frozen_fen - 1_400 - result.platform_fees_fen > 0
    return {"mount-task-period-over-refunded": await history_json(ctx, mount_task_id(task)),
            "mount-content-settled-at-period-end": await history_json(ctx, mounted_content_id(task, "p1"))}


async def task_continued_as_new_histories(ctx: Ctx) -> dict[str, str]:
    """A task past its period, waiting for its piece to settle, receives more repeated reports than one run takes
    (TASK_MESSAGES_PER_RUN): it continues as new, then settles and refunds in the next run. The same shape recorded
    before the drain patch (bound 2,000) is kept as mount-task-*-before-drain-patch.json."""
    task = f"t-tcan-{ctx.uid}"
    await published_task(ctx, task, budget_fen=100_000, price_fen=100, days=1)
    creator(ctx.a, "cr-1")
    await api.join(ctx.client, task, "cr-1")
    now = await business_now(ctx)
    await mount(ctx, task, "p1", "cr-1", now)
    await convert(ctx, task, "p1", "p1-1", 3, now + SECOND)
    await helpers.advance(ctx, (helpers.DAY + HOUR).total_seconds())
    ended = await helpers.task_when(ctx, task, lambda s: s.stage is mt.TaskStage.ENDED)
    assert ended.view.pieces.open == 1
    repeats = [mt.BudgetExhaustedSignal(exhausted_at=now + SECOND) for _ in range(TASK_MESSAGES_PER_RUN + 10)]
    # After the end each is ignored, and counted.
    to_bound = TASK_MESSAGES_PER_RUN - (await rh.run_info(ctx.client, mount_task_id(task))).messages_this_run
    first_run = await rh.continue_as_new_by_signals(ctx.client, mount_task_id(task), "budget_exhausted",
                                                    repeats[:to_bound], repeats[to_bound:])
    result = await finish(ctx, mount_task_id(task), mt.TaskResult)
    assert (result.stage, result.paid_to_creators_fen) == (mt.TaskStage.REFUNDED, 300)
    histories = {"mount-task-continued-as-new": await history_json(ctx, mount_task_id(task), first_run),
                 "mount-task-after-continue-as-new": await history_json(ctx, mount_task_id(task))}
    assert "WORKFLOW_EXECUTION_CONTINUED_AS_NEW" in histories["mount-task-continued-as-new"]
    return histories


async def replay_and_maybe_record(histories: dict[str, str]) -> None:
    await rh.replay_and_maybe_record(REPLAYER, histories, "RECORD_MOUNT_HISTORIES")


async def test_mount_workflows_replay_fresh_settled_task_histories(ctx: Ctx) -> None:
    await replay_and_maybe_record(await settled_task_histories(ctx))


async def test_mount_workflows_replay_fresh_cancelled_and_continued_histories(ctx: Ctx) -> None:
    histories = await cancelled_and_continued_histories(ctx)
    assert '"continueAsNewInitiator"' in histories["mount-content-continued-as-new"] or (
        "WORKFLOW_EXECUTION_CONTINUED_AS_NEW" in histories["mount-content-continued-as-new"])
    await replay_and_maybe_record(histories)


async def test_mount_workflows_replay_fresh_period_over_histories(ctx: Ctx) -> None:
    await replay_and_maybe_record(await period_over_histories(ctx))


async def test_mount_task_replays_fresh_continued_as_new_histories(ctx: Ctx) -> None:
    await replay_and_maybe_record(await task_continued_as_new_histories(ctx))


@pytest.mark.parametrize("path", rh.checked_in("mount-"), ids=lambda p: p.name)
async def test_mount_workflows_replay_checked_in_histories(path: Path) -> None:
    await rh.replay_checked_in(REPLAYER, path)
