"""Duplicate deliveries of the R-12 / AM-22 messages (listed in tests/duplicate_cases.py):
`counting_frozen`, `counting_resumed`, `remove_creator`, `removal_withdrawn` sent again
change nothing; `lift_freeze` again is refused naming the first lift."""

from __future__ import annotations

import pytest

from starter import client as api
from starter.client import Refused
from tests.conftest import Ctx
from tests.helpers import DAY, business_now, content_when, creator, task_seen, task_when
from tests.penalty_task_helpers import case_in_force, decide, lift, mounted_piece
from tests.violation_helpers import fixed_calendar
from workflows.contract import mount_task as mt
from workflows.contract import mounted_content as mc
from workflows.contract import violation_case as vc
from workflows.contract.names import mount_task_id, mounted_content_id

# Deadlines in working days come from a fixed calendar: the test server's clock runs into unpublished years.
pytestmark = pytest.mark.replace_activities.with_args(fixed_calendar)


class TestR12AM22DuplicatePenaltyMessages:
    @pytest.mark.replace_activities.with_args(fixed_calendar(9 * DAY))
    async def test_r_12_am_22_penalty_messages_twice_change_nothing(self, ctx: Ctx) -> None:
        task, case = f"t-{ctx.uid}", f"v-{ctx.uid}"
        creator(ctx.a, "cr-1")
        await mounted_piece(ctx, task, "cr-1", "c1")
        notice = await business_now(ctx)
        await case_in_force(ctx, case, "cr-1", notice, vc.Penalty(kind=vc.PenaltyKind.FREEZE_IN_FLIGHT_TASKS),
                            vc.Penalty(kind=vc.PenaltyKind.REMOVE_FROM_TASK, task_id=task))
        piece_handle = ctx.client.get_workflow_handle(mounted_content_id(task, "c1"))
        task_handle = ctx.client.get_workflow_handle(mount_task_id(task))
        first = await task_when(ctx, task, lambda s: s.creators["cr-1"].removed_by_case == case)
        await content_when(ctx, task, "c1", lambda s: len(s.counting_freezes) == 1)
        await piece_handle.signal("counting_frozen", mc.CountingFrozen(case_id=case, penalty_id="p1",
                                                                       frozen_at=notice))
        await task_handle.signal("remove_creator", mt.CreatorRemoved(case_id=case, creator_id="cr-1",
                                                                     removed_at=notice))
        again = await task_seen(ctx, task)
        assert again.creators == first.creators and again.pieces == first.pieces
        assert len((await api.content_state(ctx.client, task, "c1")).counting_freezes) == 1

        lifted = await lift(ctx, case, "p1")
        assert lifted.penalties[0].status is vc.PenaltyStatus.LIFTED
        with pytest.raises(Refused) as refused:
            await lift(ctx, case, "p1")
        assert refused.value.kind == "FreezeLiftRefused" and "p1 was lifted by op-3" in refused.value.reasons[0]
        resumed = await content_when(ctx, task, "c1", lambda s: s.counting_freezes[0].resumed_at is not None)
        await piece_handle.signal("counting_resumed", mc.CountingResumed(
            case_id=case, penalty_id="p1", resumed_at=notice + DAY, withdrawn=True))
        state = await api.content_state(ctx.client, task, "c1")
        assert state.counting_freezes == resumed.counting_freezes  # an ended freeze is not withdrawn by a repeat

        await decide(ctx, case, "cr-1", "upheld")
        cleared = await task_when(ctx, task, lambda s: s.creators["cr-1"].removed_by_case is None)
        await task_handle.signal("removal_withdrawn", mt.RemovalWithdrawn(case_id=case, creator_id="cr-1"))
        assert (await task_seen(ctx, task)).creators == cleared.creators
        assert ctx.a.ledger.task_money(task)["spent_fen"] == 1_000  # c1's conversions before the notice, once
        ctx.a.ledger.check_conservation()
