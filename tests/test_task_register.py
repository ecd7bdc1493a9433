"""Issue 21: a mount task's register of creators and pieces lives in the ledger's database (workflows/task_register.py),
so its carried state and `state` answer do not grow with its pieces; the refusals are the ones the validators made;
a workflows-only and an activities-only worker on one queue take a task to its refund."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest
from temporalio.client import Client, WorkflowHistory

from activities.task_register import TaskRegister
from starter import client as api
from starter.client import Refused
from tests import replay_helpers as rh
from tests.conftest import Ctx
from tests.helpers import (
    DAY,
    assert_conservation,
    business_now,
    convert,
    creator,
    finish,
    mount,
    published_task,
    task_seen,
)
from worker import build_worker
from workflows.contract import mount_task as mt
from workflows.contract.names import mount_task_id
from workflows.contract.views import MountTaskView
from workflows.mount_task import MountTaskWorkflow
from workflows.mounted_content import MountedContentWorkflow

STATE_LIMIT = 64 * 1024
ROOT = Path(__file__).resolve().parent.parent
REPLAYER = rh.replayer(MountTaskWorkflow, MountedContentWorkflow)


async def state_bytes(client: Client, task: str) -> tuple[MountTaskView, int]:
    """The `state` answer as the workflow gives it, and its size (the carried state is measured by
    test_carried_state)."""
    state = await client.get_workflow_handle(mount_task_id(task)).query("state", result_type=MountTaskView)
    return state, len(state.model_dump_json().encode())


def fill_register(ctx: Ctx, task: str, creator_id: str, first_seq: int, count: int, mounted_at: datetime) -> None:
    """Pieces written straight into the register (a bench-sized task without starting 10,000 workflows)."""
    stamp = mounted_at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f+00:00")
    with ctx.a.db.transaction() as tx:
        for seq in range(first_seq, first_seq + count):
            tx.execute("INSERT INTO task_pieces (task_id, content_id, creator_id, mounted_at, seq)"
                       " VALUES (?, ?, ?, ?, ?)",
                       (task, f"bulk-{seq}", creator_id, stamp, seq))


class TestAM6RegisterInTheDatabase:
    async def test_am_6_state_of_a_10000_piece_task_stays_under_64_kb_and_flat(self, ctx: Ctx) -> None:
        task = f"t-{ctx.uid}"
        await published_task(ctx, task, budget_fen=10_000_000, balance_fen=20_000_000)
        creator(ctx.a, "cr-1")
        await api.join(ctx.client, task, "cr-1")
        now = await business_now(ctx)
        await mount(ctx, task, "c1", "cr-1", now)
        one, one_size = await state_bytes(ctx.client, task)
        assert (one.pieces.mounted, one.pieces.open, one.creators_joined) == (1, 1, 1)
        fill_register(ctx, task, "cr-1", 2, 9_998, now)
        await mount(ctx, task, "c-last", "cr-1", now)  # number 10,000 in the register: the task counts up to it
        big, big_size = await state_bytes(ctx.client, task)
        assert (big.pieces.mounted, big.pieces.open) == (10_000, 10_000)
        assert big_size < STATE_LIMIT and big_size - one_size < 16, (one_size, big_size)  # a few more digits
        page = TaskRegister(ctx.a.db).pieces_page(task, after_seq=9_998, limit=10)
        assert [(r.seq, r.piece.content_id, r.piece.status) for r in page] == [
            (9_999, "bulk-9999", "mounted"), (10_000, "c-last", "mounted")]
        listed = await asyncio.to_thread(  # the CLI's page, from the same database
            subprocess.run,
            [sys.executable, "-m", "starter", "--json", "pieces", task, "--after", "9997", "--limit", "2"],
            cwd=ROOT, capture_output=True, text=True, timeout=60, check=False,
            env={**os.environ, "LEDGER_DSN": ctx.a.db.dsn, "PYTHONPATH": str(ROOT)})
        assert listed.returncode == 0, listed.stderr[-2000:]
        answer = json.loads(listed.stdout)
        assert [p["content_id"] for p in answer["pieces"]] == ["bulk-9998", "bulk-9999"]
        assert answer["next_after"] == 9_999

    async def test_am_6_refusals_are_unchanged_with_the_register_in_the_database(self, ctx: Ctx) -> None:
        task = f"t-{ctx.uid}"
        await published_task(ctx, task)
        creator(ctx.a, "cr-1")
        creator(ctx.a, "cr-2")
        await api.join(ctx.client, task, "cr-1")
        await api.join(ctx.client, task, "cr-2")
        now = await business_now(ctx)
        first = await mount(ctx, task, "c1", "cr-1", now)
        assert await mount(ctx, task, "c1", "cr-1", now) == first  # a repeated report gets the first answer
        with pytest.raises(Refused) as taken:  # the same content for another creator: refused as the validator did
            await mount(ctx, task, "c1", "cr-2", now)
        assert taken.value.kind == "AlreadyMounted"
        assert taken.value.reasons[0].startswith(f"content_id: c1 is already mounted in task {task}")
        with pytest.raises(Refused) as not_owner:
            await api.revoke_content(ctx.client, task, "cr-2", "c1")
        assert not_owner.value.kind == "RevocationRefused"
        assert not_owner.value.reasons == ["creator_id: only the creator who owns content c1 may revoke it"]
        # The app's signal with the same refusal (RevocationRefused, made by the handler here) is ignored: the run
        # goes on and c1 stays mounted (revoke_all of its owner below unmounts it).
        await api.revoke_authorization(ctx.client, task, "cr-2", "c1")
        with pytest.raises(Refused) as unknown:
            await api.revoke_content(ctx.client, task, "cr-1", "nothing")
        assert unknown.value.reasons == [f"content_id: nothing is not mounted in task {task}"]
        assert unknown.value.kind == "RevocationRefused"
        again = await api.join(ctx.client, task, "cr-1")
        assert again.already_joined
        raw, _ = await state_bytes(ctx.client, task)
        assert (raw.pieces.mounted, raw.pieces.open, raw.creators_joined) == (1, 1, 2)
        page = TaskRegister(ctx.a.db).pieces_page(task)
        assert [(r.piece.content_id, r.piece.creator_id, r.piece.mounted_at) for r in page] == [("c1", "cr-1", now)]
        revoked = await api.revoke_all(ctx.client, task, "cr-1")
        assert revoked.content_ids == ["c1"]
        assert (await api.revoke_all(ctx.client, task, "cr-1")) == revoked  # a repeat answers as the first
        filled = await task_seen(ctx, task)  # the test process reads the register: filled in
        assert filled.pieces["c1"].status == "unmounted" and filled.pieces["c1"].revoked_at == revoked.revoked_at
        assert not filled.creators["cr-1"].authorization_in_force


class TestWorkerRoles:
    async def test_am_13_a_workflows_worker_and_an_activities_worker_take_a_task_to_refund(
            self, ctx: Ctx) -> None:
        """The ctx fixture's own worker (both roles) polls ctx.task_queue; these two poll a queue of their own."""
        queue = f"{ctx.task_queue}-roles"
        own = ctx.__class__(env=ctx.env, client=ctx.client, a=ctx.a, task_queue=queue, uid=ctx.uid)
        async with build_worker(ctx.client, queue, ctx.a, role="workflows"), \
                build_worker(ctx.client, queue, ctx.a, role="activities"):
            task = f"t-roles-{ctx.uid}"
            published = await published_task(own, task, budget_fen=50_000, balance_fen=60_000, days=2)
            creator(ctx.a, "cr-1")
            await api.join(ctx.client, task, "cr-1")
            now = await business_now(ctx)
            await mount(ctx, task, "c1", "cr-1", now)
            await convert(ctx, task, "c1", "e1", 30, now + DAY / 2)
            result = await finish(own, mount_task_id(task), mt.TaskResult)
        assert result.stage is mt.TaskStage.REFUNDED
        assert result.paid_to_creators_fen == 3_000 and result.platform_fees_fen == 300
        assert result.refunded_fen == published.frozen_fen - 3_300
        assert ctx.a.ledger.balance("client:client-1:available").available_fen == 60_000 - 3_300
        money = assert_conservation(ctx.a, task)
        assert money["paid_fen"] == 3_000


class TestAM13RegisterHistoryReplays:
    """The register path's own history (patch task-register-in-database): joins, a repeated and a conflicting
    report, a revocation of one piece and of all, a piece settled and the rest refunded. Recorded with
    RECORD_REGISTER_HISTORIES=1 to tests/histories/mount-task-register-in-database.json; the checked-in file
    replays against the current code."""

    async def test_am_13_register_in_the_database_history_replays(self, ctx: Ctx) -> None:
        task = f"t-reg-{ctx.uid}"
        await published_task(ctx, task, budget_fen=50_000, balance_fen=60_000, days=2)
        for who in ("cr-1", "cr-2"):
            creator(ctx.a, who)
            await api.join(ctx.client, task, who)
        now = await business_now(ctx)
        await mount(ctx, task, "kept", "cr-1", now)
        await mount(ctx, task, "kept", "cr-1", now)
        await mount(ctx, task, "gone", "cr-1", now)
        await mount(ctx, task, "other", "cr-2", now)
        with pytest.raises(Refused):
            await mount(ctx, task, "kept", "cr-2", now)
        await convert(ctx, task, "kept", "e1", 10, now + DAY / 4)
        await api.revoke_content(ctx.client, task, "cr-1", "gone")
        await api.revoke_all(ctx.client, task, "cr-2")
        result = await finish(ctx, mount_task_id(task), mt.TaskResult)
        assert result.paid_to_creators_fen == 1_000 and result.refunded_fen == 55_000 - 1_100
        assert_conservation(ctx.a, task)
        await rh.replay_and_maybe_record(REPLAYER, {
            "mount-task-register-in-database": await rh.history_json(ctx.client, mount_task_id(task))},
            "RECORD_REGISTER_HISTORIES")

    @pytest.mark.parametrize("path", rh.checked_in("mount-task-register"), ids=lambda p: p.stem)
    async def test_am_13_checked_in_register_history_replays(self, path: Path) -> None:
        await REPLAYER.replay_workflow(WorkflowHistory.from_json(path.stem, path.read_text(encoding="utf-8")))
