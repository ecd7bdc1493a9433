"""A hot piece's state does not grow with its batches (issue 21): they are kept in the ledger's database.

The piece continues as new every few messages here; repeats of batches of earlier runs still count once (R-1), a
void of one reaches its grant (R-1), and the piece settles what the database granted, to the fen.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from temporalio.client import Client

from starter import client as api
from tests import replay_helpers as rh
from tests.conftest import Ctx
from tests.helpers import (
    DAY,
    assert_conservation,
    business_now,
    content_when,
    convert,
    creator,
    finish,
    mount,
    published_task,
)
from workflows.contract import mounted_content as mc
from workflows.contract import views
from workflows.contract.names import mounted_content_id
from workflows.mounted_content import MountedContentWorkflow
from workflows.rules import run_length

BOUND, RECENT, BATCHES = 8, 5, 40


async def carried_sizes(client: Client, workflow_id: str) -> list[int]:
    """The size in bytes of each run's start input, first run first (later runs carry the state)."""
    sizes: list[int] = []
    run_id: str | None = (await client.get_workflow_handle(workflow_id).describe()).run_id
    while run_id:
        history = await client.get_workflow_handle(workflow_id, run_id=run_id).fetch_history()
        started = history.events[0].workflow_execution_started_event_attributes
        sizes.append(sum(len(p.data) for p in started.input.payloads))
        run_id = started.continued_execution_run_id or None
    return sizes[::-1]


async def test_issue_21_r_1_a_hot_piece_carries_no_batch_history_across_continue_as_new(
        ctx: Ctx, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(run_length, "MAX_MESSAGES_PER_RUN", BOUND)
    monkeypatch.setattr(views, "RECENT_BATCHES", RECENT)
    task = f"t-hot-{ctx.uid}"
    await published_task(ctx, task, budget_fen=100_000, price_fen=100)
    creator(ctx.a, "cr-1")
    await api.join(ctx.client, task, "cr-1")
    now = await business_now(ctx)
    await mount(ctx, task, "c1", "cr-1", now)
    for i in range(BATCHES):  # 1 + 2 + ... + 40 conversions, one batch a minute
        await convert(ctx, task, "c1", f"e{i}", i + 1, now + timedelta(minutes=i))
        if i % 10 == 9:  # the main site sends the first batch again, from a run long gone
            await convert(ctx, task, "c1", "e0", 1, now)
        if i % 4 == 3:  # the piece keeps up (signals that all come at once land in one run, whatever its bound)
            await content_when(ctx, task, "c1", lambda s, n=i + 1: s.batches_received == n)
    await convert(ctx, task, "c1", "e-cheat", 50, now, cheating=True)
    state = await content_when(ctx, task, "c1", lambda s: s.batches_received == BATCHES + 1)
    assert (state.counted_conversions, state.fee_fen) == (820, 82_000)
    await convert(ctx, task, "c1", "e39", 40, now + timedelta(minutes=39))  # a repeat of the last one
    await api.content_signal(ctx.client, task, "c1", "void_conversions",
                             mc.VoidConversions(event_id="e1", reason="cheating found"))
    state = await content_when(ctx, task, "c1", lambda s: s.fee_fen == 81_800)
    assert (state.batches_received, state.counted_conversions, len(state.recent_batches)) == (BATCHES + 1, 818, RECENT)

    workflow_id = mounted_content_id(task, "c1")
    sizes = await carried_sizes(ctx.client, workflow_id)
    assert len(sizes) >= 5, sizes  # it continued as new several times
    # Flat: a later run carries no more than the second did (the last few batches for the view, and counts),
    # where a piece carrying every batch grows by ~150 bytes a batch.
    assert max(sizes[1:]) - sizes[1] < 400, sizes

    result = await finish(ctx, workflow_id, mc.ContentResult)
    assert (result.stage, result.fee_fen, result.platform_fee_fen) == (mc.ContentStage.SETTLED, 81_800, 8_180)
    assert ctx.a.ledger.balance("creator:cr-1:payable").balance_fen == 81_800
    assert_conservation(ctx.a, task)
    assert result.settled_at >= now + 14 * DAY
    # The piece's last run (carried in from the database path: a repeat, a void, settlement), replayed and, with
    # RECORD_MOUNT_HISTORIES=1, written to tests/histories/ (the mount-content family). Its earlier runs continued
    # as new at this test's lowered bound, so they would not replay at the shipped one.
    await rh.replay_and_maybe_record(rh.replayer(MountedContentWorkflow), {
        "mount-content-batches-in-database-settled": (await ctx.client.get_workflow_handle(
            workflow_id).fetch_history()).to_json(),
    }, "RECORD_MOUNT_HISTORIES")
