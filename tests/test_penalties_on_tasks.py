"""R-12: penalties act on tasks at notice (AM-18, AM-19), and an upheld appeal undoes each (AM-22).

Restriction, bar and closed order-taking refuse `join` and every new mount in every task, naming the case; a freeze
of the creator's in-flight tasks stops their pieces counting from the notice and holds their settlements; removal
from a task (清退) unmounts the creator's pieces there and refuses their rejoining; a restricted client cannot
publish; a removed client's task is cancelled."""

from __future__ import annotations

from datetime import timedelta

import pytest

from starter import client as api
from starter.client import Refused
from tests.conftest import Ctx
from tests.helpers import (
    DAY,
    assert_conservation,
    business_now,
    content_when,
    convert,
    creator,
    eligible_client,
    finish,
    mount,
    publish_request,
    published_task,
    task_seen,
    task_when,
)
from tests.penalty_task_helpers import case_in_force, decide, lift, mounted_piece
from tests.violation_helpers import fixed_calendar
from workflows.contract import mount_task as mt
from workflows.contract import mounted_content as mc
from workflows.contract import violation_case as vc
from workflows.contract.names import mount_task_id, mounted_content_id

SECOND = timedelta(seconds=1)
NINE_DAYS = fixed_calendar(9 * DAY)


class TestR12RefusedJoinAndMount:
    @pytest.mark.parametrize("penalty", [
        vc.Penalty(kind=vc.PenaltyKind.BAR_FROM_MOUNT_TASKS),
        vc.Penalty(kind=vc.PenaltyKind.CLOSE_ORDER_TAKING),
        vc.Penalty(kind=vc.PenaltyKind.RESTRICT_ACCOUNT),
        vc.Penalty(kind=vc.PenaltyKind.BAN_ACCOUNT),
    ], ids=lambda p: p.kind.value)
    @pytest.mark.replace_activities.with_args(NINE_DAYS)
    async def test_r12_restriction_refuses_join_and_new_mounts_naming_the_case_until_upheld(
            self, ctx: Ctx, penalty: vc.Penalty) -> None:
        task, other, case = f"t-{ctx.uid}", f"t2-{ctx.uid}", f"v-{ctx.uid}"
        creator(ctx.a, "cr-1")
        await mounted_piece(ctx, task, "cr-1", "c1")
        await published_task(ctx, other, budget_fen=50_000, price_fen=100, days=30)
        await case_in_force(ctx, case, "cr-1", await business_now(ctx), penalty)
        expected = {
            vc.PenaltyKind.BAR_FROM_MOUNT_TASKS: "is barred from authorized-mount tasks",
            vc.PenaltyKind.CLOSE_ORDER_TAKING: "has order-taking closed",
            vc.PenaltyKind.RESTRICT_ACCOUNT: "has a restricted account",
            vc.PenaltyKind.BAN_ACCOUNT: "has a banned account",
        }[penalty.kind]
        reason = f"creator cr-1 {expected} by violation case {case} (penalty p1)"
        with pytest.raises(Refused) as refused_mount:
            await mount(ctx, task, "c2", "cr-1", await business_now(ctx))
        assert (refused_mount.value.kind, refused_mount.value.reasons) == ("MountRefused", [reason])
        with pytest.raises(Refused) as refused_join:
            await api.join(ctx.client, other, "cr-1")
        assert (refused_join.value.kind, refused_join.value.reasons) == ("JoinRefused", [reason])
        assert list((await task_seen(ctx, task)).pieces) == ["c1"]  # nothing changed
        assert (await task_seen(ctx, other)).creators == {}

        await decide(ctx, case, "cr-1", "upheld")  # restrictions lift
        joined = await api.join(ctx.client, other, "cr-1")
        assert not joined.already_joined
        now = await business_now(ctx)
        mounted = await mount(ctx, task, "c2", "cr-1", now)
        assert mounted.content_workflow_id == mounted_content_id(task, "c2")
        assert ctx.a.ledger.task_money(task)["spent_fen"] == 1_000  # c1's conversions, untouched by the case
        assert ctx.a.ledger.balance("client:client-1:available").available_fen == 1_000_000 - 110_000 - 55_000
        money = assert_conservation(ctx.a, task)
        assert (money["frozen_fen"], money["accrued_fen"], money["paid_fen"]) == (110_000, 1_000, 0)
        assert assert_conservation(ctx.a, other)["escrow_balance_fen"] == 55_000


class TestR12FreezeInFlightTasks:
    @pytest.mark.replace_activities.with_args(fixed_calendar(30 * DAY))
    async def test_r12_freeze_stops_counting_from_the_notice_and_upheld_counts_what_came_during_it(
            self, ctx: Ctx) -> None:
        task, case = f"t-{ctx.uid}", f"v-{ctx.uid}"
        creator(ctx.a, "cr-1")
        mounted_at = await mounted_piece(ctx, task, "cr-1", "c1")  # 10 conversions: 1,000 fen
        notice = await business_now(ctx)
        await case_in_force(ctx, case, "cr-1", notice, vc.Penalty(kind=vc.PenaltyKind.FREEZE_IN_FLIGHT_TASKS))
        state = await content_when(ctx, task, "c1", lambda s: len(s.counting_freezes) == 1)
        assert (state.counting_freezes[0].case_id, state.counting_freezes[0].frozen_at) == (case, notice)
        await convert(ctx, task, "c1", "during", 5, notice + SECOND)
        state = await content_when(ctx, task, "c1", lambda s: "during" in s.recent_batches)
        assert (state.fee_fen, state.recent_batches["during"].counted) == (1_000, 0)  # kept, not counted
        assert ctx.a.ledger.task_money(task)["spent_fen"] == 1_000
        with pytest.raises(Refused) as refused:  # no new work while the in-flight tasks are frozen
            await mount(ctx, task, "c2", "cr-1", notice + SECOND)
        assert refused.value.reasons == [(f"creator cr-1 has in-flight tasks frozen by violation case {case} "
                                          "(penalty p1)")]

        await decide(ctx, case, "cr-1", "upheld")  # as if it had not been made: the batch counts
        state = await content_when(ctx, task, "c1", lambda s: s.fee_fen == 1_500)
        assert state.counting_freezes[0].withdrawn and state.recent_batches["during"].counted == 5
        result = await finish(ctx, mounted_content_id(task, "c1"), mc.ContentResult)
        assert (result.fee_fen, result.platform_fee_fen, result.stage) == (1_500, 150, mc.ContentStage.SETTLED)
        assert result.settled_at >= mounted_at + 17 * DAY
        assert ctx.a.ledger.balance("creator:cr-1:payable").balance_fen == 1_500
        task_result = await finish(ctx, mount_task_id(task), mt.TaskResult)
        assert (task_result.frozen_fen, task_result.refunded_fen) == (110_000, 110_000 - 1_500 - 150)
        assert_conservation(ctx.a, task)

    @pytest.mark.replace_activities.with_args(fixed_calendar(30 * DAY))
    async def test_r12_freeze_holds_settlement_and_a_lift_pays_without_what_came_during_it(self, ctx: Ctx) -> None:
        """Rejected (AM-22): the freeze stands past finality; the settlement is held; an operator lifts it with a
        reason: the held settlement is paid, and the conversions of the freeze never count."""
        task, case = f"t-{ctx.uid}", f"v-{ctx.uid}"
        creator(ctx.a, "cr-1")
        await mounted_piece(ctx, task, "cr-1", "c1")
        notice = await business_now(ctx)
        await case_in_force(ctx, case, "cr-1", notice, vc.Penalty(kind=vc.PenaltyKind.FREEZE_IN_FLIGHT_TASKS))
        await content_when(ctx, task, "c1", lambda s: len(s.counting_freezes) == 1)
        await convert(ctx, task, "c1", "during", 5, notice + SECOND)
        decided = await decide(ctx, case, "cr-1", "rejected")
        assert (decided.stage, decided.penalties[0].status) == (vc.CaseStage.FINAL, vc.PenaltyStatus.FINAL)
        await ctx.env.sleep(17 * DAY + 60 * SECOND)  # the publicity window closes while the freeze stands
        state = await content_when(ctx, task, "c1", lambda s: s.stage is mc.ContentStage.HELD)
        assert state.settlement_hold is not None and state.settlement_hold.case_id == case
        assert ctx.a.ledger.balance("creator:cr-1:payable").balance_fen == 0

        lifted = await lift(ctx, case, "p1")
        assert lifted.penalties[0].status is vc.PenaltyStatus.LIFTED
        assert lifted.penalties[0].lift_reason == "the creator cooperated with the review"
        result = await finish(ctx, mounted_content_id(task, "c1"), mc.ContentResult)
        assert (result.fee_fen, result.platform_fee_fen) == (1_000, 100)  # "during" never counts
        assert ctx.a.ledger.balance("creator:cr-1:payable").balance_fen == 1_000
        case_result = await finish(ctx, f"violation:{case}", vc.ViolationCaseResult)
        assert case_result.stage is vc.CaseStage.CLOSED
        await finish(ctx, mount_task_id(task), mt.TaskResult)
        assert_conservation(ctx.a, task)


class TestR12RemovalFromTask:
    @pytest.mark.replace_activities.with_args(NINE_DAYS)
    async def test_r12_removal_unmounts_the_creators_pieces_there_and_refuses_rejoining_until_upheld(
            self, ctx: Ctx) -> None:
        task, other, case = f"t-{ctx.uid}", f"t2-{ctx.uid}", f"v-{ctx.uid}"
        creator(ctx.a, "cr-1")
        mounted_at = await mounted_piece(ctx, task, "cr-1", "c1")
        await mount(ctx, task, "c2", "cr-1", mounted_at)
        await published_task(ctx, other, budget_fen=50_000, price_fen=100, days=30)
        notice = await business_now(ctx)
        await case_in_force(ctx, case, "cr-1", notice,
                            vc.Penalty(kind=vc.PenaltyKind.REMOVE_FROM_TASK, task_id=task))
        state = await task_when(ctx, task, lambda s: s.creators["cr-1"].removed_by_case == case)
        assert [(p.status, p.revoked_at) for p in state.pieces.values()] == [("unmounted", notice)] * 2
        assert not state.creators["cr-1"].authorization_in_force
        piece = await content_when(ctx, task, "c1", lambda s: s.unmounted_at is not None)
        assert (piece.revoked_at, piece.fee_fen) == (notice, 1_000)  # earned before the notice stays
        assert set(ctx.a.main_site.unmounted(task)) == {"c1", "c2"}
        reason = f"creator cr-1 was removed from this task by violation case {case} (penalty p1)"
        with pytest.raises(Refused) as refused:
            await api.join(ctx.client, task, "cr-1")
        assert (refused.value.kind, refused.value.reasons) == ("JoinRefused", [reason])
        with pytest.raises(Refused) as refused_mount:
            await mount(ctx, task, "c3", "cr-1", notice)
        assert f"was removed from task {task} by violation case {case}" in refused_mount.value.reasons[0]
        assert not (await api.join(ctx.client, other, "cr-1")).already_joined  # another task: not removed

        await decide(ctx, case, "cr-1", "upheld")  # the removed creator may rejoin
        await task_when(ctx, task, lambda s: s.creators["cr-1"].removed_by_case is None)
        rejoined = await api.join(ctx.client, task, "cr-1")
        assert not rejoined.already_joined
        await ctx.env.sleep(2)
        await mount(ctx, task, "c3", "cr-1", await business_now(ctx))  # after the rejoin, to the second
        assert "c3" in (await task_seen(ctx, task)).pieces
        assert ctx.a.ledger.task_money(task)["spent_fen"] == 1_000  # what c1 earned before the notice
        money = assert_conservation(ctx.a, task)
        assert (money["frozen_fen"], money["accrued_fen"], money["paid_fen"]) == (110_000, 1_000, 0)
        assert ctx.a.ledger.balance("creator:cr-1:payable").balance_fen == 0  # nothing settled yet


class TestR12ClientPenalties:
    @pytest.mark.parametrize(("kind", "says"), [
        (vc.PenaltyKind.RESTRICT_ACCOUNT, "has a restricted account"),
        (vc.PenaltyKind.BAN_ACCOUNT, "has a banned account"),
        (vc.PenaltyKind.BAR_FROM_MOUNT_TASKS, "is barred from authorized-mount tasks"),
    ], ids=["restrict_account", "ban_account", "bar_from_mount_tasks"])
    @pytest.mark.replace_activities.with_args(NINE_DAYS)
    async def test_r12_a_restricted_client_cannot_publish_naming_the_case_until_upheld(
            self, ctx: Ctx, kind: vc.PenaltyKind, says: str) -> None:
        case, task = f"v-{ctx.uid}", f"t-{ctx.uid}"
        eligible_client(ctx.a, "client-1", 1_000_000)
        await case_in_force(ctx, case, "client-1", await business_now(ctx),
                            vc.Penalty(kind=kind), party_kind=vc.PartyKind.CLIENT)
        now = await business_now(ctx)
        request = publish_request(task, "client-1", now, now + 30 * DAY, 100_000)
        with pytest.raises(Refused) as refused:
            await api.publish_task(ctx.client, request, ctx.task_queue)
        assert (refused.value.kind, refused.value.reasons) == (
            "PublicationRefused", [f"client client-1 {says} by violation case {case} (penalty p1)"])
        assert ctx.a.ledger.balance("client:client-1:available").available_fen == 1_000_000  # nothing frozen

        await decide(ctx, case, "client-1", "upheld")
        published = await api.publish_task(ctx.client, request.model_copy(update={"task_id": f"{task}-b"}),
                                           ctx.task_queue)
        assert published.frozen_fen == 110_000
        assert ctx.a.ledger.balance("client:client-1:available").available_fen == 890_000
        assert assert_conservation(ctx.a, f"{task}-b")["escrow_balance_fen"] == 110_000

    @pytest.mark.replace_activities.with_args(NINE_DAYS)
    async def test_r12_a_removed_clients_task_is_cancelled_and_refunded(self, ctx: Ctx) -> None:
        case, task = f"v-{ctx.uid}", f"t-{ctx.uid}"
        creator(ctx.a, "cr-1")
        await mounted_piece(ctx, task, "cr-1", "c1")  # 1,000 fen earned before the notice
        notice = await business_now(ctx)
        await case_in_force(ctx, case, "client-1", notice,
                            vc.Penalty(kind=vc.PenaltyKind.REMOVE_FROM_TASK, task_id=task),
                            party_kind=vc.PartyKind.CLIENT)
        state = await task_when(ctx, task, lambda s: s.end_reason is mt.EndReason.CANCELLED)
        assert state.cancel_reason is not None and f"violation case {case}" in state.cancel_reason
        assert state.ended_at is not None and state.ended_at >= notice
        result = await finish(ctx, mount_task_id(task), mt.TaskResult)
        assert (result.paid_to_creators_fen, result.platform_fees_fen) == (1_000, 100)  # earned before: settled
        assert result.refunded_fen == 110_000 - 1_100
        assert ctx.a.ledger.balance("creator:cr-1:payable").balance_fen == 1_000
        assert_conservation(ctx.a, task)

    @pytest.mark.replace_activities.with_args(NINE_DAYS)
    async def test_r12_a_removal_naming_another_clients_task_cancels_nothing(self, ctx: Ctx) -> None:
        case, task = f"v-{ctx.uid}", f"t-{ctx.uid}"
        publication = await published_task(ctx, task, budget_fen=100_000, price_fen=100, days=30)
        eligible_client(ctx.a, "client-2", 0)
        state = await case_in_force(ctx, case, "client-2", await business_now(ctx),
                                    vc.Penalty(kind=vc.PenaltyKind.REMOVE_FROM_TASK, task_id=task),
                                    party_kind=vc.PartyKind.CLIENT)
        assert state.penalties[0].status is vc.PenaltyStatus.IN_FORCE
        task_state = await task_seen(ctx, task)
        assert (task_state.stage, task_state.end_reason) == (mt.TaskStage.PUBLISHED, None)
        assert ctx.a.ledger.task_money(task)["frozen_fen"] == publication.frozen_fen == 110_000
        assert ctx.a.ledger.balance("client:client-1:available").available_fen == 1_000_000 - 110_000
        assert assert_conservation(ctx.a, task)["escrow_balance_fen"] == 110_000
