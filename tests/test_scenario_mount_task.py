"""One whole authorized-mount task, checked against a table written by hand.

Rules exercised together: AM-6 (mounting), AM-8 (billing period), AM-9 (what counts: cheating, duplicates,
voids), AM-10 and R-3 (budget used up part-way), AM-11/AM-12 (window and settlement), AM-13 (refund), AM-14 and
AM-15 (revocations, re-joining), AM-16 (made non-public, platform disposal), R-1, R-2 (late batch), R-4
(conservation)."""

from __future__ import annotations

from datetime import timedelta

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
    eligible_client,
    finish,
    mount,
    publish_request,
    task_when,
)
from workflows.contract import mount_task as mt
from workflows.contract import mounted_content as mc
from workflows.contract.names import mount_task_id, mounted_content_id
from workflows.rules.eligibility import CreatorKind

HOUR = timedelta(hours=1)
SECOND = timedelta(seconds=1)


async def test_whole_task_three_creators_six_pieces(ctx: Ctx) -> None:
    task = f"t-scn-{ctx.uid}"
    A, B, C, M = f"a-{ctx.uid}", f"b-{ctx.uid}", f"c-{ctx.uid}", f"m-{ctx.uid}"
    client_id = f"client-{ctx.uid}"
    eligible_client(ctx.a, client_id, 10_000)
    ctx.a.directory.put_agency(M)
    creator(ctx.a, A)
    creator(ctx.a, B, CreatorKind.MCN, M)  # an MCN creator: paid through agency M
    creator(ctx.a, C, CreatorKind.PGC)
    t0 = await business_now(ctx)
    published = await api.publish_task(
        ctx.client, publish_request(task, client_id, t0, t0 + 30 * DAY, budget_fen=5_050, price_fen=100),
        ctx.task_queue)
    assert published.frozen_fen == 5_555  # 5,050 + 505 (AM-3)
    for who in (A, B, C):
        await api.join(ctx.client, task, who)
    for content, who in (("p1", A), ("p2", A), ("p4", B), ("p5", C), ("p6", C)):
        await mount(ctx, task, content, who, t0)

    # Day 0, first hour: conversions on every piece.
    await convert(ctx, task, "p1", "p1-a", 10, t0 + HOUR)
    await convert(ctx, task, "p2", "p2-a", 5, t0 + HOUR)
    await convert(ctx, task, "p4", "p4-a", 4, t0 + HOUR)
    await convert(ctx, task, "p5", "p5-a", 6, t0 + HOUR)
    await convert(ctx, task, "p5", "p5-cheat", 50, t0 + HOUR, cheating=True)  # never counts (AM-9)
    await convert(ctx, task, "p5", "p5-voided", 3, t0 + HOUR)  # voided below
    await convert(ctx, task, "p6", "p6-a", 9, t0 + HOUR)
    await content_when(ctx, task, "p5", lambda s: s.counted_conversions == 9)

    # Two hours in: A revokes p2 (AM-14); B revokes everything (AM-15); p5 went private at 1.5 h (AM-16);
    # the platform disposed of p6 at 1.5 h (AM-16); p5's batch is voided (R-1).
    await advance(ctx, 2 * 3600)
    revoked_p2 = await api.revoke_content(ctx.client, task, A, "p2")
    await convert(ctx, task, "p2", "p2-before", 2, revoked_p2.revoked_at - SECOND)
    await convert(ctx, task, "p2", "p2-after", 3, revoked_p2.revoked_at + SECOND)
    revoked_b = await api.revoke_all(ctx.client, task, B)
    assert revoked_b.content_ids == ["p4"]
    await convert(ctx, task, "p4", "p4-after", 2, revoked_b.revoked_at + SECOND)
    await api.content_signal(ctx.client, task, "p5", "report_visibility_lost", mc.VisibilityLost(
        kind=mc.VisibilityKind.MADE_NON_PUBLIC, occurred_at=t0 + 90 * 60 * SECOND))
    await convert(ctx, task, "p5", "p5-after-private", 2, t0 + 100 * 60 * SECOND)
    await api.content_signal(ctx.client, task, "p5", "void_conversions", mc.VoidConversions(
        event_id="p5-voided", reason="fake installs found by risk control"))
    await api.content_signal(ctx.client, task, "p6", "report_disposal", mc.PlatformDisposal(
        reason=mc.DisposalReason.TAKEN_DOWN, occurred_at=t0 + 90 * 60 * SECOND))
    await content_when(ctx, task, "p5", lambda s: s.counted_conversions == 6 and "p5-after-private" in s.recent_batches)
    await content_when(ctx, task, "p6", lambda s: s.counted_conversions == 0 and s.unmounted_at is not None)
    await content_when(ctx, task, "p2", lambda s: s.counted_conversions == 7 and "p2-after" in s.recent_batches)

    # Day 10: B joins again and mounts p3; only content mounted after re-joining counts (AM-15 reading).
    await advance(ctx, 10 * 86400 - 2 * 3600)
    await api.join(ctx.client, task, B)
    await mount(ctx, task, "p3", B, t0 + 10 * DAY)
    await convert(ctx, task, "p3", "p3-a", 8, t0 + 10 * DAY + HOUR)
    await convert(ctx, task, "p3", "p3-a", 8, t0 + 10 * DAY + HOUR)  # the same batch again: counted once
    await content_when(ctx, task, "p3", lambda s: s.counted_conversions == 8)

    # Day 15: p1's billing period ended on day 14; a late batch of day 13 still counts before settlement (R-2).
    await advance(ctx, 5 * 86400)
    await convert(ctx, task, "p1", "p1-late", 2, t0 + 13 * DAY)
    await content_when(ctx, task, "p1", lambda s: s.counted_conversions == 12)
    # Spent so far: 12 + 7 + 4 + 6 + 8 = 37 conversions = 3,700 fen; 1,350 fen left pays 13 whole conversions.
    await convert(ctx, task, "p3", "p3-big", 30, t0 + 15 * DAY)
    ended = await task_when(ctx, task, lambda s: s.stage is not mt.TaskStage.PUBLISHED)
    assert ended.end_reason is mt.EndReason.BUDGET_USED_UP
    assert ended.ended_at == t0 + 15 * DAY  # the latest instant the budget paid for (R-3; here the exhausting batch)

    results = {}
    for content in ("p1", "p2", "p3", "p4", "p5", "p6"):
        results[content] = await finish(ctx, mounted_content_id(task, content), mc.ContentResult)
    result = await finish(ctx, mount_task_id(task), mt.TaskResult)

    #           conversions, fee, platform fee, payee, settled at (publicity window close)
    expected = {
        "p1": (12, 1_200, 120, f"creator:{A}:payable", t0 + 17 * DAY),
        "p2": (7, 700, 70, f"creator:{A}:payable", t0 + 17 * DAY),
        "p3": (21, 2_100, 210, f"agency:{M}:payable", t0 + 18 * DAY),
        "p4": (4, 400, 40, f"agency:{M}:payable", t0 + 17 * DAY),
        "p5": (6, 600, 60, f"creator:{C}:payable", t0 + 17 * DAY),
        "p6": (0, 0, 0, f"creator:{C}:payable", t0 + 17 * DAY),
    }
    for content, (conversions, fee, platform, payee, window_close) in expected.items():
        got = results[content]
        assert (got.counted_conversions, got.fee_fen, got.platform_fee_fen, got.payee_account) == (
            conversions, fee, platform, payee), content
        assert window_close <= got.settled_at < window_close + SECOND * 2, content
    assert results["p6"].stage is mc.ContentStage.CLOSED
    assert result.stage is mt.TaskStage.REFUNDED
    assert (result.paid_to_creators_fen, result.platform_fees_fen, result.refunded_fen) == (5_000, 500, 55)
    assert ctx.a.ledger.balance(f"creator:{A}:payable").balance_fen == 1_900
    assert ctx.a.ledger.balance(f"agency:{M}:payable").balance_fen == 2_500
    assert ctx.a.ledger.balance(f"creator:{B}:payable").balance_fen == 0
    assert ctx.a.ledger.balance(f"creator:{C}:payable").balance_fen == 600
    assert ctx.a.ledger.balance("platform:revenue").balance_fen == 500
    assert ctx.a.ledger.balance(f"client:{client_id}:available").balance_fen == 10_000 - 5_555 + 55
    money = assert_conservation(ctx.a, task)
    assert money["frozen_fen"] == 5_555 and money["escrow_balance_fen"] == 0
    # Every piece was taken down on the main site (AM-7, AM-14..16).
    assert set(ctx.a.main_site.unmounted(task)) == {"p1", "p2", "p3", "p4", "p5", "p6"}
