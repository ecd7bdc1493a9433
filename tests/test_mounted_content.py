"""MountedContentWorkflow rule by rule: AM-6, AM-8, AM-9, AM-10, AM-11, AM-12, AM-14, AM-15, AM-16, R-1, R-2, R-3."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from temporalio import activity

from activities.ledger import SettleRequest, SettleResult
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
)
from worker import Adapters
from workflows.contract import mount_task as mt
from workflows.contract import mounted_content as mc
from workflows.contract.names import mount_task_id, mounted_content_id

SECOND = timedelta(seconds=1)


async def joined_task(ctx: Ctx, days: int = 30, budget_fen: int = 100_000, price_fen: int = 100) -> str:
    task = f"t-{ctx.uid}"
    await published_task(ctx, task, days=days, budget_fen=budget_fen, price_fen=price_fen)
    creator(ctx.a, "cr-1")
    creator(ctx.a, "cr-2")
    await api.join(ctx.client, task, "cr-1")
    return task


class TestAM6Mounting:
    async def test_am_6_mount_starts_the_content_workflow_once(self, ctx: Ctx) -> None:
        task = await joined_task(ctx)
        now = await business_now(ctx)
        first = await mount(ctx, task, "c1", "cr-1", now)
        again = await mount(ctx, task, "c1", "cr-1", now)  # the main site reports the same mount twice
        assert first == again
        assert first.content_workflow_id == mounted_content_id(task, "c1")
        assert first.billing_period_ends_at == now + 14 * DAY
        state = await api.content_state(ctx.client, task, "c1")
        assert (state.stage, state.mounted_at, state.creator_id) == (mc.ContentStage.MOUNTED, now, "cr-1")
        assert (await task_seen(ctx, task)).view.pieces.open == 1

    @pytest.mark.parametrize(("content", "who", "offset", "message"), [
        ("c2", "cr-2", timedelta(0), "has not joined"),
        ("c-future", "cr-1", timedelta(hours=1), "is in the future"),
        ("c-before", "cr-1", -timedelta(days=2), "outside the task period"),
        ("c1", "cr-1", timedelta(seconds=-5), "already mounted"),
    ])
    async def test_am_6_mount_is_refused_naming_the_reason(self, ctx: Ctx, content: str, who: str,
                                                           offset: timedelta, message: str) -> None:
        task = await joined_task(ctx)
        now = await business_now(ctx)
        await mount(ctx, task, "c1", "cr-1", now)
        with pytest.raises(Refused) as refusal:
            await mount(ctx, task, content, who, now + offset)
        assert message in refusal.value.reasons[0]
        assert list((await task_seen(ctx, task)).pieces) == ["c1"]


class TestAM8AM11AM12Windows:
    async def test_am_8_am_11_am_12_settles_once_at_window_close(self, ctx: Ctx) -> None:
        task = await joined_task(ctx)
        mounted_at = await business_now(ctx)
        await mount(ctx, task, "c1", "cr-1", mounted_at)
        await convert(ctx, task, "c1", "e1", 7, mounted_at + DAY)
        await convert(ctx, task, "c1", "e-edge", 4, mounted_at + 14 * DAY - SECOND)  # last counted second
        await convert(ctx, task, "c1", "e-out", 5, mounted_at + 14 * DAY)  # billing period is half-open
        state = await content_when(ctx, task, "c1", lambda s: len(s.recent_batches) == 3)
        assert state.billing_period_ends_at == mounted_at + 14 * DAY
        assert state.publicity_window_closes_at == mounted_at + 17 * DAY
        result = await finish(ctx, mounted_content_id(task, "c1"), mc.ContentResult)
        assert (result.counted_conversions, result.fee_fen, result.platform_fee_fen) == (11, 1_100, 110)
        assert mounted_at + 17 * DAY <= result.settled_at < mounted_at + 17 * DAY + 2 * SECOND
        assert ctx.a.ledger.balance("creator:cr-1:payable").balance_fen == 1_100
        assert len(ctx.a.ledger.transfers(business_key_prefix=f"settle:{task}:c1")) == 2

    async def test_am_8_billing_period_truncated_by_task_end(self, ctx: Ctx) -> None:
        task = await joined_task(ctx, days=5)
        start = (await task_seen(ctx, task)).period_start_at
        assert start is not None
        await mount(ctx, task, "c1", "cr-1", start)
        state = await api.content_state(ctx.client, task, "c1")
        assert state.billing_period_ends_at == start + 5 * DAY
        assert state.publicity_window_closes_at == start + 8 * DAY

    async def test_am_12_zero_fee_settles_as_zero(self, ctx: Ctx) -> None:
        task = await joined_task(ctx)
        await mount(ctx, task, "c1", "cr-1", await business_now(ctx))
        result = await finish(ctx, mounted_content_id(task, "c1"), mc.ContentResult)
        assert (result.stage, result.fee_fen, result.platform_fee_fen) == (mc.ContentStage.SETTLED, 0, 0)
        task_result = await finish(ctx, mount_task_id(task), mt.TaskResult)
        assert task_result.refunded_fen == 110_000
        assert_conservation(ctx.a, task)


class TestAM9AndR1Counting:
    async def test_am_9_r_1_cheating_duplicates_and_voids(self, ctx: Ctx) -> None:
        task = await joined_task(ctx)
        now = await business_now(ctx)
        await mount(ctx, task, "c1", "cr-1", now)
        await convert(ctx, task, "c1", "e1", 10, now + SECOND)
        await convert(ctx, task, "c1", "e1", 10, now + SECOND)
        await convert(ctx, task, "c1", "e-cheat", 99, now + SECOND, cheating=True)
        await convert(ctx, task, "c1", "e-void", 4, now + SECOND)
        await content_when(ctx, task, "c1", lambda s: s.counted_conversions == 14)
        await api.content_signal(ctx.client, task, "c1", "void_conversions",
                                 mc.VoidConversions(event_id="e-void", reason="cheating found later"))
        state = await content_when(ctx, task, "c1", lambda s: s.counted_conversions == 10)
        assert state.fee_fen == 1_000 and state.recent_batches["e-void"].voided
        assert ctx.a.ledger.task_money(task)["spent_fen"] == 1_000


class TestAM10AndR3Budget:
    async def test_am_10_r_3_budget_truncates_to_whole_conversions_and_ends_the_period(self, ctx: Ctx) -> None:
        task = await joined_task(ctx, budget_fen=1_050, price_fen=100)
        now = await business_now(ctx)
        await mount(ctx, task, "c1", "cr-1", now)
        await convert(ctx, task, "c1", "e1", 8, now + SECOND)
        await content_when(ctx, task, "c1", lambda s: s.counted_conversions == 8)
        await convert(ctx, task, "c1", "e2", 5, now + 3 * SECOND)  # 250 fen left pays 2 whole conversions
        result = await finish(ctx, mounted_content_id(task, "c1"), mc.ContentResult)
        assert (result.counted_conversions, result.fee_fen) == (10, 1_000)
        task_result = await finish(ctx, mount_task_id(task), mt.TaskResult)
        assert task_result.end_reason is mt.EndReason.BUDGET_USED_UP
        assert task_result.ended_at == now + 3 * SECOND
        # Frozen 1,155 = 1,000 fee + 100 platform fee + 55 refund.
        assert (task_result.paid_to_creators_fen, task_result.platform_fees_fen, task_result.refunded_fen) == (
            1_000, 100, 55)
        assert_conservation(ctx.a, task)


class TestAM14AM15Revocation:
    async def test_am_14_revoke_conversion_race(self, ctx: Ctx) -> None:
        task = await joined_task(ctx)
        now = await business_now(ctx)
        await mount(ctx, task, "c1", "cr-1", now)
        await advance(ctx, 3600)
        revoked = await api.revoke_content(ctx.client, task, "cr-1", "c1")
        await convert(ctx, task, "c1", "just-before", 3, revoked.revoked_at - SECOND)
        await convert(ctx, task, "c1", "at-revocation", 5, revoked.revoked_at)
        await convert(ctx, task, "c1", "just-after", 7, revoked.revoked_at + SECOND)
        state = await content_when(ctx, task, "c1", lambda s: len(s.recent_batches) == 3 and s.unmounted_at is not None
                                   and not s.batches_pending)
        assert state.counted_conversions == 3 and state.revoked_at == revoked.revoked_at
        assert ctx.a.main_site.unmounted(task) == {"c1": "authorization revoked, content no longer public, "
                                                          "disposed or task ended"}

    async def test_am_14_only_the_owner_may_revoke(self, ctx: Ctx) -> None:
        task = await joined_task(ctx)
        await api.join(ctx.client, task, "cr-2")
        await mount(ctx, task, "c1", "cr-1", await business_now(ctx))
        with pytest.raises(Refused) as refusal:
            await api.revoke_content(ctx.client, task, "cr-2", "c1")
        assert refusal.value.kind == "RevocationRefused"
        assert "only the creator who owns content c1" in refusal.value.reasons[0]
        await api.revoke_authorization(ctx.client, task, "cr-2", "c1")  # the app's signal: ignored as well
        state = await task_seen(ctx, task)
        assert state.pieces["c1"].revoked_at is None and state.pieces["c1"].status == "mounted"

    async def test_am_15_revoke_all_by_signal_then_rejoin_counts_only_later_mounts(self, ctx: Ctx) -> None:
        task = await joined_task(ctx)
        now = await business_now(ctx)
        await mount(ctx, task, "c1", "cr-1", now)
        await mount(ctx, task, "c2", "cr-1", now)
        await advance(ctx, 60)
        await api.revoke_authorization(ctx.client, task, "cr-1")
        state = await _task_when_revoked(ctx, task)
        revoked_at = state.creators["cr-1"].revoked_all_at
        assert revoked_at is not None
        assert {p.revoked_at for p in state.pieces.values()} == {revoked_at}
        with pytest.raises(Refused) as refusal:
            await mount(ctx, task, "c3", "cr-1", revoked_at)
        assert "revoked authorization" in refusal.value.reasons[0]
        rejoined = await api.join(ctx.client, task, "cr-1")
        assert not rejoined.already_joined
        with pytest.raises(Refused):
            await mount(ctx, task, "c3", "cr-1", revoked_at - SECOND)  # before the revocation: refused
        await mount(ctx, task, "c3", "cr-1", revoked_at + SECOND)


async def _task_when_revoked(ctx: Ctx, task: str) -> mt.MountTaskState:
    from tests.helpers import task_when
    return await task_when(ctx, task, lambda s: not s.creators["cr-1"].authorization_in_force)


class TestAM16StayingPublic:
    async def test_am_16_made_non_public_stops_counting_from_that_instant(self, ctx: Ctx) -> None:
        task = await joined_task(ctx)
        now = await business_now(ctx)
        await mount(ctx, task, "c1", "cr-1", now)
        await convert(ctx, task, "c1", "e1", 6, now + 10 * SECOND)
        await convert(ctx, task, "c1", "e2", 6, now + 30 * SECOND)
        await content_when(ctx, task, "c1", lambda s: s.counted_conversions == 12)
        await api.content_signal(ctx.client, task, "c1", "report_visibility_lost", mc.VisibilityLost(
            kind=mc.VisibilityKind.DELETED, occurred_at=now + 20 * SECOND))
        state = await content_when(ctx, task, "c1", lambda s: s.counted_conversions == 6)
        assert state.counting_stops_at == now + 20 * SECOND and state.fee_fen == 600
        assert ctx.a.ledger.task_money(task)["spent_fen"] == 600

    async def test_am_16_platform_disposal_pays_no_fee(self, ctx: Ctx) -> None:
        task = await joined_task(ctx)
        now = await business_now(ctx)
        await mount(ctx, task, "c1", "cr-1", now)
        await convert(ctx, task, "c1", "e1", 6, now + 10 * SECOND)
        await api.content_signal(ctx.client, task, "c1", "report_disposal", mc.PlatformDisposal(
            reason=mc.DisposalReason.PERSONAL_PAGE_ONLY, occurred_at=now + 20 * SECOND))
        result = await finish(ctx, mounted_content_id(task, "c1"), mc.ContentResult)
        assert (result.stage, result.fee_fen, result.platform_fee_fen) == (mc.ContentStage.CLOSED, 0, 0)
        assert ctx.a.ledger.balance("creator:cr-1:payable").balance_fen == 0


class TestR2LateData:
    async def test_r_2_late_batch_counts_until_settlement(self, ctx: Ctx) -> None:
        task = await joined_task(ctx)
        now = await business_now(ctx)
        await mount(ctx, task, "c1", "cr-1", now)
        await advance(ctx, 15 * 86400)  # billing period over, publicity window open
        await convert(ctx, task, "c1", "late", 3, now + 13 * DAY)
        state = await content_when(ctx, task, "c1", lambda s: s.counted_conversions == 3)
        assert state.stage is mc.ContentStage.PUBLICITY


def failing_once_after_posting(adapters: Adapters) -> list[Any]:
    """The settlement's ledger activity posts, then fails once (as if the worker died before replying)."""
    from activities.ledger import LedgerActivities
    real = LedgerActivities(adapters.ledger)

    @activity.defn(name="ledger.settle")
    def settle_then_fail(request: SettleRequest) -> SettleResult:
        result = real.settle(request)
        if activity.info().attempt == 1:
            raise RuntimeError("connection lost after the settlement was posted")
        return result

    return [settle_then_fail]


class TestAM12ExactlyOnce:
    @pytest.mark.replace_activities.with_args(failing_once_after_posting)
    async def test_am_12_settlement_retried_after_posting_pays_once(self, ctx: Ctx) -> None:
        task = await joined_task(ctx)
        now = await business_now(ctx)
        await mount(ctx, task, "c1", "cr-1", now)
        await convert(ctx, task, "c1", "e1", 9, now + SECOND)
        result = await finish(ctx, mounted_content_id(task, "c1"), mc.ContentResult)
        assert (result.fee_fen, result.platform_fee_fen) == (900, 90)
        assert ctx.a.ledger.balance("creator:cr-1:payable").balance_fen == 900
        assert ctx.a.ledger.balance("platform:revenue").balance_fen == 90
        assert len(ctx.a.ledger.transfers(business_key_prefix=f"settle:{task}:c1")) == 2
        await finish(ctx, mount_task_id(task), mt.TaskResult)
        assert_conservation(ctx.a, task)
