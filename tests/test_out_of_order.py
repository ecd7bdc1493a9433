"""Order (issue 7, item 3): conversions and billable events delivered out of order, some twice, some voided later,
reach the money the rules say (R-1 a batch counts once by event id, R-3 the budget accrues in arrival order, R-8
the Xingguang money), to the fen."""


from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import pytest

from starter import client as api
from starter import xingguang as xg_api
from tests import helpers as h
from tests import xg_fixtures as xgf
from tests.conftest import Ctx, wait_until_quiet
from tests.duplicates_helpers import SECOND
from tests.privacy_helpers import fixed_calendar
from workflows.contract import mount_task as mt
from workflows.contract import mounted_content as mc
from workflows.contract import xingguang as xg
from workflows.contract import xingguang_pieces as xgp
from workflows.contract import xingguang_state as xgs
from workflows.contract.names import (
    mount_task_id,
    mounted_content_id,
)

# Deadlines in working days come from a fixed calendar: the test server's clock runs into unpublished years.
pytestmark = pytest.mark.replace_activities.with_args(fixed_calendar)


@dataclass(frozen=True)
class Delivery:
    """One message of the main site's (or the platform statistics') stream: a batch, or the void of one (R-1)."""

    piece: str
    event_id: str
    count: int = 0
    minute: int = 0  # occurred_at = start + minute minutes
    cheating: bool = False
    void: bool = False


# Two pieces; cheating batches (never count), two batches voided later, two delivered twice.
STREAM = [
    Delivery("p1", "e1", 5, 1), Delivery("p2", "f1", 6, 1), Delivery("p1", "e2", 3, 2), Delivery("p2", "f2", 1, 2),
    Delivery("p1", "cheat-1", 50, 3, cheating=True), Delivery("p1", "e3", 4, 4), Delivery("p1", "e4", 2, 5),
    Delivery("p2", "f3", 8, 6), Delivery("p2", "cheat-2", 9, 6, cheating=True),
]
VOIDS = [Delivery("p1", "e3", void=True), Delivery("p2", "f2", void=True)]
REPEATED = ("e1", "f3")
SEEDS = (11, 23, 37)


def in_order() -> list[Delivery]:
    """Batches by the instant they occurred, each repeat right after its first delivery, the voids last."""
    stream = sorted(STREAM, key=lambda d: d.minute)
    stream = [x for d in stream for x in ([d, d] if d.event_id in REPEATED else [d])]
    return [*stream, *VOIDS]


def shuffled(seed: int) -> list[Delivery]:
    """Every delivery of `in_order` (repeats and voids included) in a seeded random order: a void may come before
    its batch, a repeat before its first... it is the same message."""
    stream = in_order()
    return random.Random(seed).sample(stream, len(stream))


def orders() -> list[tuple[str, list[Delivery]]]:
    return [("in order", in_order()), *[(f"shuffled (seed {seed})", shuffled(seed)) for seed in SEEDS]]


def occurred(start: datetime, delivery: Delivery) -> datetime:
    return start + delivery.minute * 60 * SECOND


def counting(stream: list[Delivery]) -> list[Delivery]:
    """The batches that may count: not cheating, not voided."""
    voided = {d.event_id for d in VOIDS}
    return [d for d in STREAM if not d.cheating and d.event_id not in voided and d in stream]


async def mount_task_with_stream(ctx: Ctx, name: str, stream: list[Delivery], budget_fen: int,
                                 one_at_a_time: bool = False
                                 ) -> tuple[str, datetime, mt.TaskResult, dict[str, mc.MountedContentState]]:
    """A task (price 100 fen) with pieces p1 and p2 mounted at t0, the stream delivered at t0 (every batch of the
    first minutes of their billing period), then run to its refund. Each piece is its own workflow, so the ledger
    accepts the two pieces' batches in whatever order their workflows get to it; `one_at_a_time` waits until each
    delivery is accepted before the next (acceptance order = delivery order)."""
    task = f"t-{name}-{ctx.uid}"
    ids = [mount_task_id(task), *(mounted_content_id(task, p) for p in ("p1", "p2"))]
    await h.published_task(ctx, task, budget_fen=budget_fen)
    h.creator(ctx.a, "cr-1")
    await api.join(ctx.client, task, "cr-1")
    t0 = await h.business_now(ctx)
    for piece in ("p1", "p2"):
        await h.mount(ctx, task, piece, "cr-1", t0)
    for d in stream:
        if d.void:
            await api.content_signal(ctx.client, task, d.piece, "void_conversions", mc.VoidConversions(
                event_id=d.event_id, reason="cheating found later"))
        else:
            await h.convert(ctx, task, d.piece, d.event_id, d.count, occurred(t0, d), d.cheating)
        if one_at_a_time:
            await wait_until_quiet(ctx, ids)
    await wait_until_quiet(ctx, ids)
    result = await h.finish(ctx, mount_task_id(task), mt.TaskResult)
    pieces = {p: await api.content_state(ctx.client, task, p) for p in ("p1", "p2")}
    h.assert_conservation(ctx.a, task)
    return task, t0, result, pieces


def mount_money(task: str, result: mt.TaskResult, pieces: dict[str, mc.MountedContentState], ctx: Ctx
                ) -> dict[str, Any]:
    money = ctx.a.ledger.task_money(task)
    return {
        "task": (result.stage, result.end_reason, result.frozen_fen, result.paid_to_creators_fen,
                 result.platform_fees_fen, result.refunded_fen),
        "ledger": {k: v for k, v in money.items() if k.endswith("_fen")},
        "pieces": {p: (s.counted_conversions, s.fee_fen, s.settlement and (s.settlement.fee_fen,
                                                                          s.settlement.platform_fee_fen),
                       {eid: (b.counted, b.fee_fen, b.voided) for eid, b in sorted(s.recent_batches.items())})
                   for p, s in pieces.items()},
    }


class TestR1R3ConversionsOutOfOrder:
    """R-1 / R-3 / AM-9 / AM-12: conversion batches of two pieces delivered in seeded random orders, with repeats,
    cheating batches and voids (some voids before their batch) mixed in."""

    async def test_r_1_within_the_budget_every_order_counts_and_settles_the_same(self, ctx: Ctx) -> None:
        """While the budget lasts, R-3's arrival order decides nothing: every order counts the same batches and
        settles the same fees as the in-order delivery."""
        outcomes: dict[str, dict[str, Any]] = {}
        for label, stream in orders():
            task, _, result, pieces = await mount_task_with_stream(ctx, f"o{len(outcomes)}", stream, 100_000)
            outcomes[label] = mount_money(task, result, pieces, ctx)
        baseline = outcomes["in order"]
        assert {p: v[:3] for p, v in baseline["pieces"].items()} == {
            "p1": (10, 1_000, (1_000, 100)), "p2": (14, 1_400, (1_400, 140))}  # e1+e2+e4; f1+f3
        assert baseline["task"][3:] == (2_400, 240, 110_000 - 2_640)
        for label, outcome in outcomes.items():
            assert outcome == baseline, label

    async def test_r_3_across_the_budget_arrival_order_decides_what_counts(self, ctx: Ctx) -> None:
        """R-3: spend accrues in the order batches are accepted; the batch that passes the budget counts the whole
        conversions left, and the task period ends at the latest `occurred_at` granted so far (so no granted
        batch lies after the end and none is released by it); nothing after that instant counts (AM-10), and a
        void after the end frees budget only for batches that arrive later inside their counting intervals. So
        which batches count may differ between orders (identity is not the rule); what holds in every order: the
        fees never pass the budget, the period ends at the instant of a counting batch, no batch after that
        instant counts, cheating and voided batches never count, each piece settles once at price x counted, and
        the money is conserved. In order, each accepted before the next (2,000 fen = 20 conversions): e1 5, f1 6,
        e2 3, f2 1, e3 4, then e4 gets 1 of 2 and ends the period at minute 5 (the latest granted); f3 (minute 6)
        gets nothing; the voids of e3 and f2 give 500 fen back to the client (nothing arrives after them)."""
        budget = 2_000
        for n, (label, stream) in enumerate(orders()):
            task, t0, result, pieces = await mount_task_with_stream(ctx, f"b{n}", stream, budget,
                                                                    one_at_a_time=label == "in order")
            assert result.end_reason is mt.EndReason.BUDGET_USED_UP, label
            assert result.ended_at is not None
            end_minute = (result.ended_at - t0) / (60 * SECOND)
            assert end_minute in {d.minute for d in counting(STREAM)}, (label, end_minute)
            fees = 0
            for piece, state in pieces.items():
                assert state.settlement is not None and state.settlement.fee_fen == state.fee_fen, (label, piece)
                assert state.fee_fen == 100 * state.counted_conversions, (label, piece)
                fees += state.fee_fen
                for eid, batch in state.recent_batches.items():
                    delivery = next(d for d in STREAM if d.event_id == eid)
                    if batch.counted:
                        assert delivery in counting(STREAM) and delivery.minute <= end_minute, (label, eid)
                        assert batch.counted <= delivery.count, (label, eid)
            assert fees == result.paid_to_creators_fen <= budget, label
            assert result.platform_fees_fen == fees // 10 and (
                result.refunded_fen == result.frozen_fen - fees - fees // 10), label
            assert len(ctx.a.ledger.transfers(business_key_prefix=f"settle:{task}:")) <= 4, label
            if label == "in order":
                assert end_minute == 5 and {p: s.counted_conversions for p, s in pieces.items()} == {"p1": 9, "p2": 6}
                assert result.paid_to_creators_fen == 1_500


async def xg_task_with_stream(ctx: Ctx, name: str, stream: list[Delivery], placement_budget_fen: int,
                              one_at_a_time: bool = False
                              ) -> tuple[str, datetime, xgs.TaskResult, xgs.XingguangTaskView, dict[str, int]]:
    """An XG task (unit price 50 fen) with pieces p1 and p2 published and promoted, the stream of billable-event
    batches delivered (occurred_at = the later publication + minutes), then run until it closes. Returns the task,
    that start, its result, its final state and the event register's billed events per event id."""
    task, client_id = xgf.ids(ctx, name)
    await xgf.ordered_task(ctx, task, client_id, start_in=timedelta(0), placement_budget_fen=placement_budget_fen)
    published = [await xgf.published_piece(ctx, task, client_id, p, f"cr-{p}", 10_000) for p in ("p1", "p2")]
    start = max(p.published_at for p in published if p.published_at is not None)
    await h.advance(ctx, 600)
    for d in stream:
        if d.void:
            await xg_api.void_billable_events(ctx.client, task, xgp.VoidBillableEvents(event_id=d.event_id,
                                                                                       reason="bots found later"))
        else:
            await xgf.events(ctx, task, d.event_id, d.piece, d.count, occurred(start, d), d.cheating)
        if one_at_a_time:
            await wait_until_quiet(ctx, [xg.xg_task_workflow_id(task)])
    await wait_until_quiet(ctx, [xg.xg_task_workflow_id(task)])
    result = await h.finish(ctx, xg.xg_task_workflow_id(task), xgs.TaskResult)
    state = await xg_api.state(ctx.client, task)
    money = xgf.xg_money(ctx, task, client_id)
    assert money["frozen"] == sum(money[k] for k in ("creators", "promotion", "platform_fee", "delay_fee",
                                                     "deducted", "refund")) and money["escrow"] == 0, money
    with ctx.a.db.transaction() as tx:
        billed = {eid: int(n) for eid, n in tx.fetchall(
            "SELECT event_id, billed_events FROM xg_billable_events WHERE task_id = ? AND voided_by IS NULL",
            (task,))}
    return task, start, result, state, billed


class TestR1R8BillableEventsOutOfOrder:
    """R-1 / R-8 / XG-6 / R-11: the Xingguang piece's billable events, delivered in seeded random orders with
    repeats, cheating batches and voids (some before their batch) mixed in."""

    async def test_r_1_r_8_within_the_placement_budget_every_order_settles_the_same(self, ctx: Ctx) -> None:
        outcomes: dict[str, tuple[Any, ...]] = {}
        for label, stream in orders():
            _, _, result, state, billed = await xg_task_with_stream(ctx, f"xo{len(outcomes)}", stream, 100_000)
            outcomes[label] = (result.model_dump(exclude={"task_id", "order"}),
                               {p: piece.billable_events for p, piece in state.pieces.items()}, billed)
        baseline = outcomes["in order"]
        assert baseline[1] == {"p1": 10, "p2": 14}  # e1+e2+e4; f1+f3
        assert {p: m["promotion_spend_fen"] for p, m in baseline[0]["pieces"].items()} == {"p1": 500, "p2": 700}
        for label, outcome in outcomes.items():
            assert outcome == baseline, label

    async def test_r_3_r_11_across_the_placement_budget_arrival_order_decides_what_bills(self, ctx: Ctx) -> None:
        """As R-3 for the placement budget (R-8, R-11): events bill in the order their batches arrive, whole events
        while the budget lasts; the batch that uses it up stops promotion for every piece at its `occurred_at`, and
        batches arriving after that bill nothing that occurred from then on; cheating and voided batches never
        bill; a void gives its spend back to the client. Which batches bill may differ between orders; what holds
        in every order: the spend never passes the placement budget, promotion stops at the instant of a billing
        batch, only counting batches bill (never more events than reported), the settled promotion spend is 50 fen
        x the events billed, and the frozen money is all accounted for.

        Unlike a mounted piece (AM-10: a batch that occurred after the end is given back), a batch billed *before*
        the exhausting batch arrived keeps its events even when it occurred after the stop instant: the XG register
        keeps no instants to find them by. Nothing in R-8/R-11 says otherwise, so it is not asserted either way.

        In order, each accepted before the next (1,000 fen = 20 events): e1 5, f1 6, e2 3, f2 1, e3 4, then e4
        bills 1 of 2 and stops promotion at minute 5; f3 (minute 6) bills nothing; the voids give back 250 fen."""
        budget = 1_000
        for n, (label, stream) in enumerate(orders()):
            _, start, result, state, billed = await xg_task_with_stream(
                ctx, f"xb{n}", stream, budget, one_at_a_time=label == "in order")
            assert state.end_reason == "placement budget used up" and state.promotion_stopped_at is not None, label
            stop_minute = (state.promotion_stopped_at - start) / (60 * SECOND)
            assert stop_minute in {d.minute for d in counting(STREAM)}, (label, stop_minute)
            for eid, events in billed.items():
                if events:
                    delivery = next(d for d in STREAM if d.event_id == eid)
                    assert delivery in counting(STREAM), (label, eid, billed)
                    assert events <= delivery.count, (label, eid)
            spend = sum(m.promotion_spend_fen for m in result.pieces.values())
            assert spend == result.promotion_spend_fen == xgf.billed(state) <= budget, label
            assert spend == 50 * sum(billed.values()) == 50 * sum(p.billable_events for p in state.pieces.values())
            assert [m.creator_earnings_fen for m in result.pieces.values()] == [10_000, 10_000], label
            if label == "in order":
                assert stop_minute == 5
                assert {e: n for e, n in billed.items() if n} == {"e1": 5, "f1": 6, "e2": 3, "e4": 1}
                assert {p: piece.billable_events for p, piece in state.pieces.items()} == {"p1": 9, "p2": 6}

