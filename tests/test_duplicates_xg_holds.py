"""Duplicate delivery of `settlement_released` to a Xingguang task (R-13; listed in
tests/duplicate_cases.py): the release sent again (an activity retried after a crash) pays the
held piece once."""

from __future__ import annotations

import pytest

from tests.conftest import Ctx
from tests.helpers import business_now, finish
from tests.penalty_task_helpers import case_in_force
from tests.violation_helpers import fixed_calendar
from tests.xg_fixtures import ids, task_when
from tests.xg_hold_helpers import (
    FREEZE_ALL,
    THIRTY_DAYS,
    assert_settled_once,
    held_while_the_other_settles,
    two_pieces,
)
from workflows.contract import xingguang as xg
from workflows.contract import xingguang_pieces as xgp
from workflows.contract import xingguang_state as xgs

# Deadlines in working days come from a fixed calendar: the test server's clock runs into unpublished years.
pytestmark = pytest.mark.replace_activities.with_args(fixed_calendar)


class TestR13DuplicateXgRelease:
    @pytest.mark.replace_activities.with_args(THIRTY_DAYS)
    async def test_r_13_xg_settlement_released_twice_pays_once(self, ctx: Ctx) -> None:
        task, client_id = ids(ctx, "r13dup")
        case, a, b = f"v-{ctx.uid}", f"a-{ctx.uid}", f"b-{ctx.uid}"
        t0 = await two_pieces(ctx, task, client_id, a, b)
        await case_in_force(ctx, case, a, await business_now(ctx), FREEZE_ALL)
        await held_while_the_other_settles(ctx, task, t0, case)
        handle = ctx.client.get_workflow_handle(xg.xg_task_workflow_id(task))
        first = xgp.PieceSettlementReleased(piece_id="p1", case_id=case, outcome="paid",
                                            released_at=await business_now(ctx))
        again = first.model_copy(update={"outcome": "deducted"})  # a later, different release changes nothing
        await handle.signal("settlement_released", first)
        await handle.signal("settlement_released", first)
        await handle.signal("settlement_released", again)
        state = await task_when(ctx, task, lambda s: s.pieces["p1"].settlement is not None)
        hold = state.pieces["p1"].settlement_hold
        assert hold is not None and (hold.released_at, hold.outcome, hold.deducted_fen) == (
            first.released_at, "paid", 0)
        result = await finish(ctx, xg.xg_task_workflow_id(task), xgs.TaskResult)
        assert_settled_once(ctx, task, client_id, result)
        assert ctx.a.ledger.balance(f"creator:{a}:payable").balance_fen == 10_000
