"""AM-14, AM-15 with the creator app's instant (issue 23 item 6): a revocation may carry `revoked_at`, bounded by the
clock-skew rule of mounts (workflows/rules/mounts.py CLOCK_SKEW, here on both sides of its receipt). The piece stops
counting at the app's instant, so conversions between it and the receipt are not paid; an instant out of bounds is
refused (an update) or ignored (the app's signal) and changes nothing. Money to the fen, with conservation."""

from __future__ import annotations

from datetime import timedelta

import pytest

from starter import client as api
from starter.client import Refused
from tests.conftest import Ctx
from tests.helpers import (
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

MINUTE = timedelta(minutes=1)


async def task_with_piece(ctx: Ctx, name: str) -> str:
    """A published task (100 fen a conversion, 1 day), cr-1 joined, c1 mounted an hour ago (virtual time)."""
    task = f"t-{name}-{ctx.uid}"
    await published_task(ctx, task, budget_fen=100_000, price_fen=100, days=1)
    creator(ctx.a, "cr-1")
    await api.join(ctx.client, task, "cr-1")
    await mount(ctx, task, "c1", "cr-1", await business_now(ctx))
    await advance(ctx, 3600)
    return task


class TestAM14RevocationAtTheAppsInstant:
    async def test_am_14_the_piece_stops_counting_at_the_apps_instant_not_at_receipt(self, ctx: Ctx) -> None:
        task = await task_with_piece(ctx, "rev-at")
        received = await business_now(ctx)
        app_instant = received - 3 * MINUTE
        revoked = await api.revoke_content(ctx.client, task, "cr-1", "c1", revoked_at=app_instant)
        assert revoked.revoked_at == app_instant
        await convert(ctx, task, "c1", "before", 4, app_instant - MINUTE)
        await convert(ctx, task, "c1", "between", 6, app_instant + MINUTE)  # before receipt, after the app's instant
        piece = await content_when(ctx, task, "c1", lambda s: len(s.recent_batches) == 2 and not s.batches_pending
                                   and s.unmounted_at is not None)
        assert (piece.revoked_at, piece.counted_conversions) == (app_instant, 4)
        assert (await task_seen(ctx, task)).pieces["c1"].revoked_at == app_instant
        result = await finish(ctx, mounted_content_id(task, "c1"), mc.ContentResult)
        assert (result.fee_fen, result.platform_fee_fen) == (400, 40)
        task_result = await finish(ctx, mount_task_id(task), mt.TaskResult)
        assert (task_result.paid_to_creators_fen, task_result.refunded_fen) == (400, 110_000 - 440)
        assert ctx.a.ledger.balance("creator:cr-1:payable").balance_fen == 400
        assert_conservation(ctx.a, task)

    @pytest.mark.parametrize(("offset", "words"), [(10 * MINUTE, "is in the future"),
                                                   (-10 * MINUTE, "more than 5 minutes before it was received")])
    async def test_am_14_an_instant_beyond_the_clock_skew_is_refused_and_changes_nothing(
            self, ctx: Ctx, offset: timedelta, words: str) -> None:
        task = await task_with_piece(ctx, "rev-skew")
        before = await task_seen(ctx, task)
        with pytest.raises(Refused) as refusal:
            await api.revoke_content(ctx.client, task, "cr-1", "c1", revoked_at=await business_now(ctx) + offset)
        assert words in "; ".join(refusal.value.reasons)
        after = await task_seen(ctx, task)
        assert after.pieces["c1"] == before.pieces["c1"] and after.pieces["c1"].revoked_at is None

    async def test_am_14_an_instant_before_the_mount_is_refused(self, ctx: Ctx) -> None:
        task = f"t-rev-early-{ctx.uid}"
        await published_task(ctx, task, budget_fen=100_000, price_fen=100, days=1)
        creator(ctx.a, "cr-1")
        await api.join(ctx.client, task, "cr-1")
        now = await business_now(ctx)
        await mount(ctx, task, "c1", "cr-1", now)
        with pytest.raises(Refused) as refusal:
            await api.revoke_content(ctx.client, task, "cr-1", "c1", revoked_at=now - MINUTE)
        assert "is before the content was mounted" in "; ".join(refusal.value.reasons)


class TestAM15RevocationOfAllAtTheAppsInstant:
    async def test_am_15_revoke_all_by_the_apps_signal_takes_its_instant(self, ctx: Ctx) -> None:
        task = await task_with_piece(ctx, "rev-all-at")
        app_instant = await business_now(ctx) - 2 * MINUTE
        await api.revoke_authorization(ctx.client, task, "cr-1", revoked_at=app_instant)
        state = await task_when(ctx, task, lambda s: s.creators["cr-1"].revoked_all_at is not None)
        assert state.creators["cr-1"].revoked_all_at == app_instant
        assert state.pieces["c1"].revoked_at == app_instant

    async def test_am_15_the_apps_signal_with_an_instant_out_of_bounds_is_ignored(self, ctx: Ctx) -> None:
        task = await task_with_piece(ctx, "rev-all-skew")
        await api.revoke_authorization(ctx.client, task, "cr-1", revoked_at=await business_now(ctx) + 10 * MINUTE)
        # A later valid revocation is taken: the first changed nothing, and the task processed both in order.
        await api.revoke_authorization(ctx.client, task, "cr-1", "c1")
        state = await task_when(ctx, task, lambda s: s.pieces["c1"].revoked_at is not None)
        assert state.creators["cr-1"].authorization_in_force and state.creators["cr-1"].revoked_all_at is None
