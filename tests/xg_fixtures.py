"""Helpers for the Xingguang tests (XG-1..XG-11, R-5, R-8, R-9): orders, pieces through review, polling. No tests."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import datetime, timedelta

from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.service import RPCError, RPCStatusCode
from temporalio.worker import Replayer

from starter import xingguang as api
from tests.conftest import Ctx
from tests.helpers import DAY, business_now, creator, eligible_client
from workflows.contract import xingguang as xg
from workflows.contract import xingguang_pieces as xgp
from workflows.contract import xingguang_state as xgs
from workflows.rules.clock import BUSINESS_TZ
from workflows.xingguang_task import XingguangTaskWorkflow

HOUR = timedelta(hours=1)
OPERATOR, PROVIDER = "op-1", "prov-1"


def ids(ctx: Ctx, name: str) -> tuple[str, str]:
    """(task id, client id), unique to this test."""
    return f"xg-{name}-{ctx.uid}", f"cl-{name}-{ctx.uid}"


def order_request(task_id: str, client_id: str, start_at: datetime, end_at: datetime, **overrides: object
                  ) -> xg.OrderRequest:
    base = xg.OrderRequest(
        task_id=task_id, client_id=client_id, content_requirements="show the app's new map feature",
        targeting_labels=["interest:travel", "age:18-35", "city_tier:1"], placement_budget_fen=100_000,
        unit_price_fen=50, billing_start_at=start_at, billing_end_at=end_at, creator_earnings_budget_fen=80_000,
        platform_fee_rate_bp=1_000, provider_fee_rate_bp=500, client_confirms_content=True, client_review_hours=48)
    return base.model_copy(update=overrides)


async def ordered_task(ctx: Ctx, task: str, client_id: str, balance_fen: int = 300_000, start_in: timedelta = DAY,
                       days: int = 10, **overrides: object) -> tuple[datetime, xg.OrderResult]:
    """An ordered task with approved materials and a provider: returns (t0, order result)."""
    eligible_client(ctx.a, client_id, balance_fen)
    t0 = await business_now(ctx)
    result = await api.order(ctx.client, order_request(task, client_id, t0 + start_in, t0 + start_in + days * DAY,
                                                       **overrides), ctx.task_queue)
    await api.review_materials(ctx.client, task, xg.ReviewMaterialsRequest(operator_id=OPERATOR, verdicts=[
        xg.MaterialVerdict(kind=xg.MaterialKind.QUALIFICATION, item_id="licence-1", approved=True),
        xg.MaterialVerdict(kind=xg.MaterialKind.COMPONENT, item_id="app-card-1", approved=True)]))
    await api.assign_provider(ctx.client, task, OPERATOR, PROVIDER)
    return t0, result


async def select(ctx: Ctx, task: str, piece: str, creator_id: str, earnings_fen: int, **kind: object) -> xgs.Piece:
    creator(ctx.a, creator_id, **kind)  # type: ignore[arg-type]
    return await api.select_creator(ctx.client, task, xgp.SelectCreatorRequest(
        provider_id=PROVIDER, piece_id=piece, creator_id=creator_id, creator_earnings_fen=earnings_fen))


async def submit(ctx: Ctx, task: str, piece: str, creator_id: str, content_id: str) -> xgs.Piece:
    return await api.submit_content(ctx.client, task, xgp.SubmitContentRequest(
        creator_id=creator_id, piece_id=piece, content_id=content_id))


async def provider_says(ctx: Ctx, task: str, piece: str, approved: bool, reason: str = "") -> xgs.Piece:
    return await api.provider_review(ctx.client, task, xgp.ProviderReviewRequest(
        provider_id=PROVIDER, piece_id=piece, approved=approved, reason=reason))


async def client_says(ctx: Ctx, task: str, client_id: str, piece: str, approved: bool, reason: str = "") -> xgs.Piece:
    return await api.client_review(ctx.client, task, xgp.ClientReviewRequest(
        client_id=client_id, piece_id=piece, approved=approved, reason=reason))


async def published_piece(ctx: Ctx, task: str, client_id: str, piece: str, creator_id: str, earnings_fen: int,
                          **kind: object) -> xgs.Piece:
    await select(ctx, task, piece, creator_id, earnings_fen, **kind)
    await submit(ctx, task, piece, creator_id, f"content-{piece}")
    reviewed = await provider_says(ctx, task, piece, True)
    if reviewed.stage is xgs.PieceStage.CLIENT_REVIEW:
        await client_says(ctx, task, client_id, piece, True)
    return await piece_when(ctx, task, piece, lambda p: p.published_at is not None)


async def events(ctx: Ctx, task: str, event_id: str, piece: str, count: int, occurred_at: datetime,
                 cheating: bool = False) -> None:
    await api.report_billable_events(ctx.client, task, xgp.BillableEventBatch(
        event_id=event_id, piece_id=piece, count=count, occurred_at=occurred_at, cheating=cheating))


async def task_when(ctx: Ctx, task: str, predicate: Callable[[xgs.XingguangTaskView], bool],
                    timeout: float = 60.0) -> xgs.XingguangTaskView:
    """Poll the task's state until `predicate` holds (signals and timers are processed asynchronously). A query
    that times out on a busy machine is asked again."""
    deadline = asyncio.get_running_loop().time() + timeout
    state: xgs.XingguangTaskView | None = None
    while asyncio.get_running_loop().time() < deadline:
        try:
            state = await api.state(ctx.client, task)
        except RPCError as err:
            if err.status not in (RPCStatusCode.DEADLINE_EXCEEDED, RPCStatusCode.UNKNOWN):
                raise
        else:
            if predicate(state):
                return state
        await asyncio.sleep(0.05)
    shown = state.model_dump_json(indent=1) if state else "no answer"
    raise AssertionError(f"task {task} never reached the expected state: {shown}")


async def piece_when(ctx: Ctx, task: str, piece: str, predicate: Callable[[xgs.Piece], bool]) -> xgs.Piece:
    state = await task_when(ctx, task, lambda s: piece in s.pieces and predicate(s.pieces[piece]))
    return state.pieces[piece]


async def sleep_until(ctx: Ctx, instant: datetime) -> None:
    """Move virtual time to `instant` (time skipping fires every timer on the way)."""
    now = await ctx.env.get_current_time()
    if instant > now:
        await ctx.env.sleep((instant - now).total_seconds())


def xg_money(ctx: Ctx, task: str, client_id: str) -> dict[str, int]:
    """R-8 as the ledger sees it: where the task's frozen money went."""
    ledger = ctx.a.ledger
    out: dict[str, int] = {"creators": 0, "promotion": 0, "platform_fee": 0, "provider_fee": 0, "delay_fee": 0,
                           "deducted": 0, "refund": 0, "frozen": 0}
    kinds = {"xg_creator_earnings": "creators", "xg_promotion_spend": "promotion", "xg_platform_fee": "platform_fee",
             "xg_provider_fee": "provider_fee", "xg_delay_fee": "delay_fee", "xg_deduction": "deducted",
             "xg_refund": "refund", "xg_freeze": "frozen"}
    for t in ledger.transfers(business_key_prefix="xg:"):
        if f":{task}:" in f"{t.business_key}:" and t.kind in kinds:
            out[kinds[t.kind]] += t.amount_fen
    out["escrow"] = ledger.balance(f"xg_task:{task}:escrow").balance_fen
    return out


async def replays(ctx: Ctx, workflow_id: str, run_id: str | None = None) -> None:
    """The run's history replays against the current workflow code (no non-determinism)."""
    history = await ctx.client.get_workflow_handle(workflow_id, run_id=run_id).fetch_history()
    await Replayer(workflows=[XingguangTaskWorkflow], data_converter=pydantic_data_converter).replay_workflow(history)


async def notice(ctx: Ctx, due_at: datetime) -> dict[str, object]:
    """XG-7 pause fields whose computed deadline is exactly `due_at`: a notice sent (and received, JG 十二) whole
    days before it, no later than now."""
    now = await ctx.env.get_current_time()
    days = max(1, -(-(due_at - now) // DAY))
    return {"notice_sent_at": due_at - days * DAY, "changes_within_days": days}


# XG-10 claims: a period that overlaps no pause of the tests' tasks, and the platform's fault (no default: R-14).
CLAIM_PERIOD: dict[str, object] = {"period_start_at": datetime(2026, 3, 2, 10, tzinfo=BUSINESS_TZ),
                                   "period_end_at": datetime(2026, 3, 2, 12, tzinfo=BUSINESS_TZ)}
PLATFORM_FAULT: dict[str, object] = {"cause": xg.AnomalyCause.PLATFORM_FAULT, **CLAIM_PERIOD}


def billed(state: xgs.XingguangTaskView) -> int:
    """The promotion billed so far over the task's pieces (R-8: never above the placement budget)."""
    return sum(p.billed_spend_fen for p in state.pieces.values())
