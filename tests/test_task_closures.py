"""A mount task learns that its pieces closed from the ledger, not from a message of every piece (AM-12, AM-13;
docs/bench.md "Limits found" 2b): the settlement records the closure, the task reads it on a schedule
(workflows/closure_looks.py), while the period is open and after it ends."""

from __future__ import annotations

from temporalio.client import Client

from starter import client as api
from tests.conftest import Ctx
from tests.helpers import (
    DAY,
    advance,
    assert_conservation,
    business_now,
    content_when,
    convert,
    creator,
    finish,
    mount,
    published_task,
    task_seen,
    task_when,
)
from workflows.contract import mount_task as mt
from workflows.contract import mounted_content as mc
from workflows.contract.names import mount_task_id, mounted_content_id

MINUTE = 60


async def event_types(client: Client, workflow_id: str) -> list[str]:
    history = await client.get_workflow_handle(workflow_id).fetch_history()
    return [event.WhichOneof("attributes") or "" for event in history.events]


async def signal_names(client: Client, workflow_id: str) -> list[str]:
    history = await client.get_workflow_handle(workflow_id).fetch_history()
    return [event.workflow_execution_signaled_event_attributes.signal_name for event in history.events
            if event.HasField("workflow_execution_signaled_event_attributes")]


async def test_am_12_a_piece_settled_while_the_period_is_open_shows_in_its_task_without_a_message(
        ctx: Ctx) -> None:
    task = f"t-clo-{ctx.uid}"
    await published_task(ctx, task, budget_fen=100_000, price_fen=100, days=30)
    creator(ctx.a, "cr-1")
    await api.join(ctx.client, task, "cr-1")
    first_mount = await business_now(ctx)
    await mount(ctx, task, "p1", "cr-1", first_mount)
    await convert(ctx, task, "p1", "p1-e1", 7, first_mount)
    await advance(ctx, DAY.total_seconds())
    second_mount = await business_now(ctx)
    await mount(ctx, task, "p2", "cr-1", second_mount)
    await convert(ctx, task, "p2", "p2-e1", 3, second_mount)
    await content_when(ctx, task, "p2", lambda s: s.counted_conversions == 3)

    # p1's publicity window closes 17 days after its mount (AM-8 14 days + AM-11 3 days), p2's a day later.
    await advance(ctx, (first_mount + 17 * DAY - await business_now(ctx)).total_seconds() + MINUTE)
    state = await task_when(ctx, task, lambda s: s.pieces["p1"].status == "settled")
    assert state.stage is mt.TaskStage.PUBLISHED
    assert (state.pieces["p1"].fee_fen, state.pieces["p1"].platform_fee_fen) == (700, 70)
    assert (state.pieces["p2"].status, state.view.pieces.open, state.view.pieces.settled) == ("mounted", 1, 1)
    # The money picture as the task read it from the ledger when it found p1's closure there.
    money = state.view.money
    assert (money.paid_fen, money.platform_fees_fen, money.accrued_fen) == (700, 70, 300)
    assert money.as_of is not None and money.as_of >= first_mount + 17 * DAY

    await advance(ctx, DAY.total_seconds())
    state = await task_when(ctx, task, lambda s: s.pieces["p2"].status == "settled")
    assert (state.pieces["p2"].fee_fen, state.view.pieces.open, state.view.pieces.settled) == (300, 0, 2)

    result = await finish(ctx, mount_task_id(task), mt.TaskResult)
    assert (result.stage, result.paid_to_creators_fen, result.platform_fees_fen) == (mt.TaskStage.REFUNDED, 1_000,
                                                                                      100)
    assert result.refunded_fen == 110_000 - 1_100
    assert assert_conservation(ctx.a, task)["escrow_balance_fen"] == 0
    # No piece signalled its task: the task heard only what outside callers sent it (none here).
    assert "content_closed" not in await signal_names(ctx.client, mount_task_id(task))
    for content in ("p1", "p2"):
        kinds = await event_types(ctx.client, mounted_content_id(task, content))
        assert "signal_external_workflow_execution_initiated_event_attributes" not in kinds


async def test_am_13_the_ended_task_refunds_once_its_last_piece_closed_in_the_ledger(ctx: Ctx) -> None:
    """The period ends first (cancel); the task then waits for the windows its end cut short (AM-7, AM-8) and
    refunds once the ledger holds every closure, one of them a disposed piece (AM-16: closed, no fee)."""
    task = f"t-cle-{ctx.uid}"
    await published_task(ctx, task, budget_fen=50_000, price_fen=100, days=30)
    creator(ctx.a, "cr-1")
    await api.join(ctx.client, task, "cr-1")
    now = await business_now(ctx)
    for content in ("kept", "disposed"):
        await mount(ctx, task, content, "cr-1", now)
        await convert(ctx, task, content, f"{content}-e1", 5, now)
    await content_when(ctx, task, "disposed", lambda s: s.counted_conversions == 5)
    await api.content_signal(ctx.client, task, "disposed", "report_disposal", mc.PlatformDisposal(
        reason=mc.DisposalReason.TAKEN_DOWN, occurred_at=now))
    await advance(ctx, 2 * DAY.total_seconds())
    cancelled = await api.cancel(ctx.client, task, "client asked to stop", "ops-1")
    assert cancelled.ended_at is not None
    ended = await task_when(ctx, task, lambda s: s.stage is mt.TaskStage.ENDED)
    assert (ended.view.pieces.open, ended.view.pieces.settled, ended.view.pieces.closed) == (2, 0, 0)

    result = await finish(ctx, mount_task_id(task), mt.TaskResult)
    assert (result.paid_to_creators_fen, result.platform_fees_fen, result.refunded_fen) == (500, 50, 55_000 - 550)
    state = await task_seen(ctx, task)
    assert {cid: (p.status, p.fee_fen) for cid, p in state.pieces.items()} == {"kept": ("settled", 500),
                                                                                "disposed": ("closed", 0)}
    assert (state.view.pieces.settled, state.view.pieces.closed) == (1, 1)
    closures = ctx.a.ledger.task_closures(task)
    assert sorted((c.content_id, c.outcome, c.fee_fen) for c in closures) == [("disposed", "closed", 0),
                                                                              ("kept", "settled", 500)]
    # The cut windows: both settled 3 days after the cancel (billing period cut at the end, then AM-11).
    settled_at = {c: (await api.content_state(ctx.client, task, c)).settlement for c in ("kept", "disposed")}
    for settlement in settled_at.values():
        assert settlement is not None and settlement.settled_at >= cancelled.ended_at + 3 * DAY
    assert "content_closed" not in await signal_names(ctx.client, mount_task_id(task))
