"""Helpers for R-13 on Xingguang (tests/test_xg_holds.py, tests/test_duplicates_xg_holds.py): a task with a piece whose
settlement a freeze holds while another settles, and the money checks. No tests."""

from __future__ import annotations

from datetime import datetime, timedelta

from temporalio.api.sdk.v1 import WorkflowMetadata

from tests.conftest import Ctx
from tests.helpers import DAY
from tests.violation_helpers import fixed_calendar
from tests.xg_fixtures import (
    HOUR,
    events,
    ordered_task,
    published_piece,
    sleep_until,
    task_when,
    xg_money,
)
from workflows.contract import violation_case as vc
from workflows.contract import xingguang as xg
from workflows.contract import xingguang_state as xgs

THIRTY_DAYS = fixed_calendar(30 * DAY)
FREEZE_ALL = vc.Penalty(kind=vc.PenaltyKind.FREEZE_FEES)
SECOND = timedelta(seconds=1)


async def details(ctx: Ctx, task: str) -> str:
    metadata = await ctx.client.get_workflow_handle(xg.xg_task_workflow_id(task)).query(
        "__temporal_workflow_metadata", result_type=WorkflowMetadata)
    return str(metadata.current_details)


async def two_pieces(ctx: Ctx, task: str, client_id: str, held: str, other: str, **kind: object) -> datetime:
    """A 2-day task: p1 of `held` (10,000 fen earnings, 100 events = 5,000 fen spend), p2 of `other` (5,000 fen, no
    events); returns t0 (billing runs t0+1d..t0+3d, publicity windows close at t0+6d)."""
    t0, _ = await ordered_task(ctx, task, client_id, days=2)
    await published_piece(ctx, task, client_id, "p1", held, 10_000, **kind)
    await published_piece(ctx, task, client_id, "p2", other, 5_000)
    return t0


async def held_while_the_other_settles(ctx: Ctx, task: str, t0: datetime, case: str) -> xgs.Piece:
    await sleep_until(ctx, t0 + DAY + 2 * HOUR)
    await events(ctx, task, "e1", "p1", 100, t0 + DAY + HOUR)
    await sleep_until(ctx, t0 + 6 * DAY + HOUR)
    state = await task_when(ctx, task, lambda s: s.pieces["p2"].stage is xgs.PieceStage.SETTLED
                            and s.pieces["p1"].settlement_hold is not None)
    p1 = state.pieces["p1"]
    assert p1.settlement_hold is not None and p1.publicity_window_closes_at is not None
    assert (p1.stage, p1.settlement, p1.settlement_hold.case_id) == (xgs.PieceStage.PUBLICITY, None, case)
    assert p1.publicity_window_closes_at <= p1.settlement_hold.held_at < p1.publicity_window_closes_at + 2 * SECOND
    assert p1.settlement_hold.released_at is None
    assert state.stage is xgs.TaskStage.SETTLING and state.money.refunded_fen == 0  # the refund waits for p1
    assert ctx.a.ledger.transfers(business_key_prefix=f"xg:settle:{task}:p1") == []
    assert ctx.a.ledger.transfers(business_key_prefix=f"xg:refund:{task}") == []
    assert f"piece p1 held by case {case}" in await details(ctx, task)
    # Still held half a day later (before any appeal window closes): the task waits, nothing more is paid.
    await ctx.env.sleep(12 * HOUR.total_seconds())
    later = await task_when(ctx, task, lambda s: True)
    assert later.pieces["p1"].settlement is None and later.stage is xgs.TaskStage.SETTLING
    return p1


def assert_settled_once(ctx: Ctx, task: str, client_id: str, result: xgs.TaskResult) -> None:
    """R-8 / R-4 to the fen: p1 10,000 + 5,000 spend, fee 1,500, provider 500; p2 5,000, fee 500, provider 250."""
    assert result.pieces["p1"] == xgs.PieceMoney(creator_earnings_fen=10_000, promotion_spend_fen=5_000,
                                                 platform_fee_fen=1_500, provider_fee_fen=500,
                                                 payee_account=result.pieces["p1"].payee_account)
    assert (result.frozen_fen, result.paid_to_creators_fen, result.promotion_spend_fen, result.platform_fees_fen,
            result.provider_fees_fen, result.refunded_fen) == (198_000, 15_000, 5_000, 2_000, 750, 176_000)
    assert 198_000 == 15_000 + 5_000 + 2_000 + 176_000
    money = xg_money(ctx, task, client_id)
    assert (money["frozen"], money["creators"], money["promotion"], money["platform_fee"], money["provider_fee"],
            money["refund"], money["escrow"]) == (198_000, 15_000, 5_000, 2_000, 750, 176_000, 0)
    earnings = [t for t in ctx.a.ledger.transfers(business_key_prefix=f"xg:settle:{task}:p1")
                if t.kind == "xg_creator_earnings"]
    assert [t.amount_fen for t in earnings] == [10_000]  # paid exactly once
    assert ctx.a.ledger.balance(f"client:{client_id}:available").balance_fen == 300_000 - 198_000 + 176_000
    assert ctx.a.ledger.conservation_total() == 0
    ctx.a.ledger.check_conservation()
