"""Histories of the R-12 / R-13 / AM-22 paths replay against the current code (DESIGN "Running workflows outlive
code"): a case that freezes a creator's in-flight tasks and removes them from a task, upheld (with the task that
refused their mount and took them back, and the frozen piece); a case whose freeze stands after a rejected appeal
until an operator lifts it (with the piece it held). The checked-in files (violation-*-r12-*, mount-task-r12-*)
are replayed by tests/test_violation_replay.py and tests/test_mount_replay.py with the other histories.

To record after a deliberate, patched change: `RECORD_PENALTY_HISTORIES=1 .venv/bin/python -m pytest
tests/test_penalty_replay.py`, then commit the new files under tests/histories/."""

from __future__ import annotations

from datetime import timedelta

import pytest

from starter import client as api
from starter.client import Refused
from tests import replay_helpers as rh
from tests.conftest import Ctx
from tests.helpers import DAY, business_now, content_when, convert, creator, finish, mount, task_when
from tests.penalty_task_helpers import case_in_force, decide, lift, mounted_piece
from tests.violation_helpers import fixed_calendar
from workflows.contract import mount_task as mt
from workflows.contract import mounted_content as mc
from workflows.contract import violation_case as vc
from workflows.contract.names import mount_task_id, mounted_content_id, violation_case_id
from workflows.mount_task import MountTaskWorkflow
from workflows.mounted_content import MountedContentWorkflow
from workflows.violation_case import ViolationCaseWorkflow

REPLAYER = rh.replayer(ViolationCaseWorkflow, MountedContentWorkflow, MountTaskWorkflow)
SECOND = timedelta(seconds=1)


async def record(ctx: Ctx, histories: dict[str, str]) -> None:
    fetched = {name: await rh.history_json(ctx.client, workflow_id) for name, workflow_id in histories.items()}
    await rh.replay_and_maybe_record(REPLAYER, fetched, "RECORD_PENALTY_HISTORIES")


@pytest.mark.replace_activities.with_args(fixed_calendar(9 * DAY))
async def test_replay_r12_freeze_and_removal_upheld(ctx: Ctx) -> None:
    task, case = f"t-r12-{ctx.uid}", f"v-r12-{ctx.uid}"
    creator(ctx.a, "cr-1")
    await mounted_piece(ctx, task, "cr-1", "c1")
    notice = await business_now(ctx)
    await case_in_force(ctx, case, "cr-1", notice, vc.Penalty(kind=vc.PenaltyKind.FREEZE_IN_FLIGHT_TASKS),
                        vc.Penalty(kind=vc.PenaltyKind.REMOVE_FROM_TASK, task_id=task))
    await task_when(ctx, task, lambda s: s.creators["cr-1"].removed_by_case == case)
    await content_when(ctx, task, "c1", lambda s: len(s.counting_freezes) == 1 and s.unmounted_at is not None)
    with pytest.raises(Refused):
        await mount(ctx, task, "c2", "cr-1", notice)
    await convert(ctx, task, "c1", "during", 5, notice - SECOND)  # before the notice: counts
    await decide(ctx, case, "cr-1", "upheld")
    await task_when(ctx, task, lambda s: s.creators["cr-1"].removed_by_case is None)
    await api.join(ctx.client, task, "cr-1")
    piece = await finish(ctx, mounted_content_id(task, "c1"), mc.ContentResult)
    assert piece.fee_fen == 1_500
    await finish(ctx, violation_case_id(case), vc.ViolationCaseResult)
    await finish(ctx, mount_task_id(task), mt.TaskResult)
    await record(ctx, {
        "violation-case-r12-freeze-removal-upheld": violation_case_id(case),
        "violation-content-r12-frozen-removed-paid": mounted_content_id(task, "c1"),
        "mount-task-r12-removed-mount-refused-rejoined": mount_task_id(task),
    })


@pytest.mark.replace_activities.with_args(fixed_calendar(30 * DAY))
async def test_replay_am22_freeze_stands_after_rejection_until_lifted(ctx: Ctx) -> None:
    task, case = f"t-l-{ctx.uid}", f"v-l-{ctx.uid}"
    creator(ctx.a, "cr-1")
    await mounted_piece(ctx, task, "cr-1", "c1")
    await case_in_force(ctx, case, "cr-1", await business_now(ctx), vc.Penalty(kind=vc.PenaltyKind.FREEZE_FEES))
    await decide(ctx, case, "cr-1", "rejected")
    await ctx.env.sleep(17 * DAY + 60 * SECOND)
    await content_when(ctx, task, "c1", lambda s: s.stage is mc.ContentStage.HELD)
    await lift(ctx, case, "p1")
    piece = await finish(ctx, mounted_content_id(task, "c1"), mc.ContentResult)
    assert piece.fee_fen == 1_000
    await finish(ctx, violation_case_id(case), vc.ViolationCaseResult)
    await record(ctx, {
        "violation-case-am22-rejected-freeze-lifted": violation_case_id(case),
        "violation-content-am22-held-until-lifted": mounted_content_id(task, "c1"),
    })
