"""Helpers for penalties acting on tasks (R-12), holds (R-13) and standing freezes (AM-22)."""

from __future__ import annotations

from datetime import datetime, timedelta

from starter import client as api
from starter import violations
from tests.conftest import Ctx
from tests.helpers import business_now, content_when, convert, mount, published_task
from tests.violation_helpers import case_when, start_case
from workflows.contract import mounted_content as mc
from workflows.contract import violation_case as vc

SECOND = timedelta(seconds=1)


async def mounted_piece(ctx: Ctx, task: str, creator_id: str, content_id: str, conversions: int = 10,
                        publish: bool = True) -> datetime:
    """A task (budget 100,000 fen, price 100 fen, 30 days; published unless told) where `creator_id` joined and
    had `content_id` mounted, with `conversions` counted one second after the mount; returns the mount instant."""
    if publish:
        await published_task(ctx, task, budget_fen=100_000, price_fen=100, days=30)
    await api.join(ctx.client, task, creator_id)
    mounted_at = await business_now(ctx)
    await mount(ctx, task, content_id, creator_id, mounted_at)
    await convert(ctx, task, content_id, f"{content_id}-e1", conversions, mounted_at + SECOND)
    await content_when(ctx, task, content_id, lambda s: s.fee_fen == 100 * conversions)
    await ctx.env.sleep(2)  # a notice issued next lies after these conversions, to the second
    return mounted_at


async def case_in_force(ctx: Ctx, case: str, party_id: str, notice_at: datetime, *penalties: vc.Penalty,
                        party_kind: vc.PartyKind = vc.PartyKind.CREATOR) -> vc.ViolationCaseView:
    await start_case(ctx.client, ctx.task_queue, case, party_id, notice_at, *penalties, party_kind=party_kind)
    return await case_when(ctx.client, case, lambda s: all(p.status is not vc.PenaltyStatus.PENDING
                                                           for p in s.penalties))


async def decide(ctx: Ctx, case: str, party_id: str, decision: str) -> vc.ViolationCaseView:
    await violations.appeal(ctx.client, case, vc.AppealRequest(party_id=party_id, reason="the users were real"))
    return await violations.decide_appeal(ctx.client, case, vc.DecideAppealRequest(
        decision=decision, operator_id="op-2", note="reviewed the main site's logs"))


async def lift(ctx: Ctx, case: str, penalty_id: str) -> vc.ViolationCaseView:
    return await violations.lift_freeze(ctx.client, case, vc.LiftFreezeRequest(
        penalty_id=penalty_id, operator_id="op-3", reason="the creator cooperated with the review"))


async def piece(ctx: Ctx, task: str, content_id: str) -> mc.MountedContentState:
    return await api.content_state(ctx.client, task, content_id)
