"""Running violation cases and disputed or held pieces outlive code (DESIGN "Running workflows outlive code"):
their histories replay against the current code, fresh ones and those checked in under tests/histories/
(violation-*.json): a case upheld on appeal, one escalated then rejected and expired, one whose unappealed penalties
become final (penalized), a piece held then paid, a piece whose dispute escalated and was resolved. A working-day
deadline is an activity result in the history, so replay never recounts it.

To record after a deliberate, patched change: `RECORD_VIOLATION_HISTORIES=1 .venv/bin/python -m pytest
tests/test_violation_replay.py`, then commit tests/histories/violation-*.json."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from starter import client as api
from starter import violations
from tests import replay_helpers as rh
from tests.conftest import Ctx
from tests.helpers import DAY, business_now, content_when, convert, creator, finish, mount, published_task
from tests.violation_helpers import earn, fixed_calendar, start_case
from workflows.contract import mount_task as mt
from workflows.contract import mounted_content as mc
from workflows.contract import violation_case as vc
from workflows.contract.names import mount_task_id, mounted_content_id, violation_case_id

REPLAYER = rh.family_replayer("violation-")
SECOND = timedelta(seconds=1)


async def history_json(ctx: Ctx, workflow_id: str) -> str:
    return await rh.history_json(ctx.client, workflow_id)


async def replay_and_maybe_record(histories: dict[str, str]) -> None:
    await rh.replay_and_maybe_record(REPLAYER, histories, "RECORD_VIOLATION_HISTORIES")


@pytest.mark.replace_activities.with_args(fixed_calendar(30 * DAY))
async def test_replay_held_settlement_released_by_an_upheld_appeal(ctx: Ctx) -> None:
    task, case = f"t-rp-{ctx.uid}", f"v-rp-{ctx.uid}"
    await published_task(ctx, task, budget_fen=100_000, price_fen=100, days=30)
    creator(ctx.a, "cr-1")
    earn(ctx.a, "cr-1", 2_000, f"seed-{ctx.uid}")
    await api.join(ctx.client, task, "cr-1")
    now = await business_now(ctx)
    await mount(ctx, task, "c1", "cr-1", now)
    await convert(ctx, task, "c1", "e1", 10, now + SECOND)
    await content_when(ctx, task, "c1", lambda s: s.fee_fen == 1_000)
    await start_case(ctx.client, ctx.task_queue, case, "cr-1", now, vc.Penalty(kind=vc.PenaltyKind.DEDUCT_FEES),
                     vc.Penalty(kind=vc.PenaltyKind.DEDUCT_CREDIT_SCORE, points=5))
    await violations.appeal(ctx.client, case, vc.AppealRequest(party_id="cr-1", reason="real users"))
    await ctx.env.sleep(17 * DAY + 60 * SECOND)
    await content_when(ctx, task, "c1", lambda s: s.stage is mc.ContentStage.HELD)
    await violations.decide_appeal(ctx.client, case, vc.DecideAppealRequest(decision="upheld", operator_id="op-1",
                                                                            note="verified"))
    await finish(ctx, mounted_content_id(task, "c1"), mc.ContentResult)
    await finish(ctx, violation_case_id(case), vc.ViolationCaseResult)
    await finish(ctx, mount_task_id(task), mt.TaskResult)
    await replay_and_maybe_record({
        "violation-case-upheld": await history_json(ctx, violation_case_id(case)),
        "violation-content-held-then-paid": await history_json(ctx, mounted_content_id(task, "c1")),
    })


@pytest.mark.replace_activities.with_args(fixed_calendar(9 * DAY))
async def test_replay_escalations_and_a_resolved_dispute(ctx: Ctx) -> None:
    task, case = f"t-rq-{ctx.uid}", f"v-rq-{ctx.uid}"
    await published_task(ctx, task, budget_fen=100_000, price_fen=100, days=30)
    creator(ctx.a, "cr-1")
    await api.join(ctx.client, task, "cr-1")
    now = await business_now(ctx)
    await mount(ctx, task, "c1", "cr-1", now)
    await convert(ctx, task, "c1", "e1", 10, now + SECOND)
    await content_when(ctx, task, "c1", lambda s: s.fee_fen == 1_000)
    await start_case(ctx.client, ctx.task_queue, case, "cr-2", now,
                     vc.Penalty(kind=vc.PenaltyKind.CLOSE_ORDER_TAKING, until_at=now + 40 * DAY),
                     vc.Penalty(kind=vc.PenaltyKind.FREEZE_FEES, amount_fen=500, deduct_when_final=True))
    await violations.appeal(ctx.client, case, vc.AppealRequest(party_id="cr-2", reason="not me"))
    await ctx.env.sleep(14 * DAY + SECOND)
    await violations.raise_dispute(ctx.client, task, "c1", mc.RaiseDisputeRequest(
        raised_by="client", party_id="client-1", reason="QA devices"))
    await ctx.env.sleep(9 * DAY + SECOND)
    await content_when(ctx, task, "c1", lambda s: s.escalated)
    await violations.resolve_dispute(ctx.client, task, "c1", mc.ResolveDisputeRequest(
        dispute_id="d1", operator_id="op-1", amount_fen=700, note="3 removed"))
    await violations.decide_appeal(ctx.client, case, vc.DecideAppealRequest(decision="rejected", operator_id="op-1",
                                                                            note="logs"))
    await finish(ctx, mounted_content_id(task, "c1"), mc.ContentResult)
    await finish(ctx, violation_case_id(case), vc.ViolationCaseResult)
    await replay_and_maybe_record({
        "violation-case-escalated-rejected-expired": await history_json(ctx, violation_case_id(case)),
        "violation-content-dispute-escalated-resolved": await history_json(ctx, mounted_content_id(task, "c1")),
    })


@pytest.mark.replace_activities.with_args(fixed_calendar(9 * DAY))
async def test_replay_unappealed_penalties_become_final_and_deduct(ctx: Ctx) -> None:
    """AM-19: penalties act at notice; no appeal; the frozen fees are deducted, the timed closure expires."""
    case = f"v-rf-{ctx.uid}"
    creator(ctx.a, "cr-1")
    earn(ctx.a, "cr-1", 5_000, f"seed-{ctx.uid}")
    notice = await business_now(ctx)
    await start_case(ctx.client, ctx.task_queue, case, "cr-1", notice,
                     vc.Penalty(kind=vc.PenaltyKind.FREEZE_FEES, amount_fen=3_000, deduct_when_final=True),
                     vc.Penalty(kind=vc.PenaltyKind.BAR_FROM_MOUNT_TASKS),
                     vc.Penalty(kind=vc.PenaltyKind.CLOSE_ORDER_TAKING, until_at=notice + 30 * DAY))
    result = await finish(ctx, violation_case_id(case), vc.ViolationCaseResult)
    assert (result.stage, result.deducted_fen) == (vc.CaseStage.CLOSED, 3_000)
    await replay_and_maybe_record({"violation-case-penalized-final": await history_json(ctx, violation_case_id(case))})


@pytest.mark.parametrize("path", rh.checked_in("violation-"), ids=lambda p: p.name)
async def test_replay_checked_in_violation_histories(path: Path) -> None:
    await rh.replay_checked_in(REPLAYER, path)
