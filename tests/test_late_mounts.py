"""AM-6 reading (2026-12): a mount whose instant lies in the task period is accepted when its report arrives up to
24 hours after the period ended, and counts conversions only until the end (AM-8, AM-9); a mount refused for any
reason is unmounted on the main site. The task waits for late reports before it refunds (AM-13). Money checked to
the fen, with conservation (R-4)."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from starter import client as api
from starter.client import Refused
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
from tests.stranding import env_per_test, rerun_on_a_fresh_server
from workflows.contract import mount_task as mt
from workflows.contract import mounted_content as mc
from workflows.contract.names import mount_task_id, mounted_content_id
from workflows.rules.clock import business_time

# A server per test, and a failed test run again on a fresh one (tests/stranding.py).
pytestmark = rerun_on_a_fresh_server
__all__ = ["env_per_test"]  # the fixture, by its name `env`

HOUR = timedelta(hours=1)


async def one_day_task(ctx: Ctx) -> tuple[str, datetime]:
    """A task (budget 100,000 fen, 100 fen a conversion) whose period is the next day; cr-1 has joined."""
    task = f"t-late-{ctx.uid}"
    await published_task(ctx, task, budget_fen=100_000, price_fen=100, days=1)
    creator(ctx.a, "cr-1")
    await api.join(ctx.client, task, "cr-1")
    end = (await task_seen(ctx, task)).period_end_at
    assert end is not None
    return task, end


class TestAM6LateMountReports:
    async def test_am_6_a_mount_reported_23_hours_after_the_period_is_accepted_and_counts_until_the_end(
            self, ctx: Ctx) -> None:
        task, end = await one_day_task(ctx)
        await advance(ctx, (DAY + 23 * HOUR).total_seconds())
        waiting = await task_when(ctx, task, lambda s: s.stage is mt.TaskStage.ENDED)
        # Nothing refunded while reports may still come.
        assert (waiting.view.pieces.open, waiting.money.refunded_fen) == (0, 0)
        result = await mount(ctx, task, "late", "cr-1", end - 2 * HOUR)
        assert result.billing_period_ends_at == end  # cut at the end of the task period (AM-8)
        await convert(ctx, task, "late", "in", 5, end - HOUR)
        await convert(ctx, task, "late", "after", 3, end + HOUR)  # after the end: does not count
        state = await content_when(ctx, task, "late", lambda s: {"in", "after"} <= set(s.recent_batches)
                                   and s.unmounted_at is not None)
        assert (state.counted_conversions, state.fee_fen) == (5, 500)
        assert (state.billing_period_ends_at, state.publicity_window_closes_at) == (end, end + 3 * DAY)
        assert state.stage is mc.ContentStage.PUBLICITY  # taken down at once: its period is over
        assert (await task_seen(ctx, task)).view.pieces.open == 1
        piece = await finish(ctx, mounted_content_id(task, "late"), mc.ContentResult)
        assert (piece.fee_fen, piece.platform_fee_fen, piece.settled_at >= end + 3 * DAY) == (500, 50, True)
        task_result = await finish(ctx, mount_task_id(task), mt.TaskResult)
        assert (task_result.paid_to_creators_fen, task_result.platform_fees_fen, task_result.refunded_fen) == (
            500, 50, 110_000 - 550)
        assert ctx.a.ledger.balance("creator:cr-1:payable").balance_fen == 500
        assert ctx.a.ledger.balance("client:client-1:available").balance_fen == 1_000_000 - 550
        assert_conservation(ctx.a, task)

    async def test_am_6_a_mount_reported_25_hours_after_the_period_is_refused_and_unmounted(self, ctx: Ctx) -> None:
        task, end = await one_day_task(ctx)
        await mount(ctx, task, "on-time", "cr-1", end - DAY)
        await convert(ctx, task, "on-time", "e1", 7, end - DAY + HOUR)
        await content_when(ctx, task, "on-time", lambda s: s.fee_fen == 700)
        await advance(ctx, (DAY + 25 * HOUR).total_seconds())
        with pytest.raises(Refused) as refusal:
            await mount(ctx, task, "too-late", "cr-1", end - HOUR)
        assert refusal.value.kind == "MountRefused"
        assert f"more than 24 hours after the task period ended at {business_time(end)}" in refusal.value.reasons[0]
        assert ctx.a.main_site.unmounted(task)["too-late"].startswith("mount refused: ")
        state = await task_seen(ctx, task)
        assert list(state.pieces) == ["on-time"] and state.view.pieces.open == 1
        task_result = await finish(ctx, mount_task_id(task), mt.TaskResult)
        assert (task_result.paid_to_creators_fen, task_result.platform_fees_fen, task_result.refunded_fen) == (
            700, 70, 110_000 - 770)
        assert ctx.a.ledger.balance("creator:cr-1:payable").balance_fen == 700
        assert ctx.a.ledger.balance("client:client-1:available").balance_fen == 1_000_000 - 770
        assert_conservation(ctx.a, task)

    async def test_am_6_every_refused_mount_is_unmounted_but_a_conflict_leaves_the_accepted_one_up(
            self, ctx: Ctx) -> None:
        task, end = await one_day_task(ctx)
        now = await business_now(ctx)
        creator(ctx.a, "cr-2")
        creator(ctx.a, "cr-3")
        await api.join(ctx.client, task, "cr-3")
        await api.revoke_all(ctx.client, task, "cr-3")
        await mount(ctx, task, "c1", "cr-1", now)
        refused = {
            "not-joined": ("cr-2", now, "creator cr-2 has not joined"),
            "revoked": ("cr-3", now, "creator cr-3 revoked authorization"),
            "after-end": ("cr-1", end + HOUR, "is outside the task period"),
            "future": ("cr-1", now + HOUR, "is in the future"),
        }
        for content, (who, at, message) in refused.items():
            with pytest.raises(Refused) as refusal:
                await mount(ctx, task, content, who, at)
            assert refusal.value.kind == "MountRefused" and message in refusal.value.reasons[0], refusal.value
        with pytest.raises(Refused) as conflict:  # c1 is mounted for cr-1: its component stays up
            await mount(ctx, task, "c1", "cr-2", now)
        assert "already mounted" in conflict.value.reasons[0]
        unmounted = ctx.a.main_site.unmounted(task)
        assert set(unmounted) == set(refused) and all(r.startswith("mount refused: ") for r in unmounted.values())
        state = await task_seen(ctx, task)
        assert list(state.pieces) == ["c1"] and state.view.pieces.open == 1
        assert (await api.content_state(ctx.client, task, "c1")).unmounted_at is None
        # The creator joins and the same content is mounted again, accepted: its own take-down is recorded.
        await api.join(ctx.client, task, "cr-2")
        await mount(ctx, task, "not-joined", "cr-2", now)
        await api.revoke_content(ctx.client, task, "cr-2", "not-joined")
        state_again = await content_when(ctx, task, "not-joined", lambda s: s.unmounted_at is not None)
        assert state_again.revoked_at is not None and state_again.unmounted_at is not None
        assert state_again.unmounted_at >= state_again.revoked_at  # not the instant of the earlier refusal
        assert ctx.a.main_site.unmounted(task)["not-joined"].startswith("authorization revoked")
        money = assert_conservation(ctx.a, task)  # refused mounts moved no money
        assert (money["frozen_fen"], money["accrued_fen"], money["escrow_balance_fen"]) == (110_000, 0, 110_000)
