"""MountTaskWorkflow from publication to refund: AM-1, AM-2, AM-3, AM-4, AM-5, AM-7, AM-13."""

from __future__ import annotations

import pytest
from temporalio.client import WorkflowUpdateFailedError

from starter import client as api
from starter.client import Refused
from tests.conftest import Ctx
from tests.helpers import (
    DAY,
    advance,
    assert_conservation,
    business_now,
    creator,
    eligible_client,
    finish,
    mount,
    publish_request,
    published_task,
    task_seen,
)
from workflows.contract import mount_task as mt
from workflows.contract.names import mount_task_id
from workflows.rules.eligibility import ClientFacts, CreatorKind


class TestAM1ClientEligibility:
    async def test_am_1_refusal_names_every_failed_condition_and_freezes_nothing(
            self, ctx: Ctx) -> None:
        ctx.a.directory.put_client(ClientFacts(client_id="c-bad", active=True, qualification_passed=False,
                                                corporate_verified=True, brand_certified=False,
                                                penalty_restricted=True, mount_allow_listed=False))
        ctx.a.ledger.deposit("dep-bad", "c-bad", 500_000)
        now = await business_now(ctx)
        with pytest.raises(Refused) as refusal:
            await api.publish_task(ctx.client,
                                   publish_request(f"t-am1-{ctx.uid}", "c-bad", now, now + 10 * DAY, 100_000),
                                   ctx.task_queue)
        assert refusal.value.kind == "PublicationRefused"
        assert refusal.value.reasons == [
            "client has not passed qualification review",
            "client has not passed brand certification",
            "client is restricted by a violation penalty",
            "client is not on the platform's allow list for authorized-mount tasks",
        ]
        assert ctx.a.ledger.balance("client:c-bad:available").available_fen == 500_000
        state = await task_seen(ctx, f"t-am1-{ctx.uid}")
        assert state.stage is mt.TaskStage.DRAFT and state.money.frozen_fen == 0

    async def test_am_1_unknown_client_is_refused(self, ctx: Ctx) -> None:
        now = await business_now(ctx)
        with pytest.raises(Refused) as refusal:
            await api.publish_task(ctx.client, publish_request(f"t-am1u-{ctx.uid}", "nobody", now, now + DAY, 100),
                                   ctx.task_queue)
        assert refusal.value.reasons == ["client nobody is not registered"]


class TestAM2TaskForm:
    async def test_am_2_refusal_lists_every_missing_or_invalid_field(
            self, ctx: Ctx) -> None:
        eligible_client(ctx.a, "c-form", 1_000_000)
        now = await business_now(ctx)
        request = mt.PublishTaskRequest(task_id=f"t-am2-{ctx.uid}", client_id="c-form", task_type="live",
                                        settlement_method="authorized_mount", task_name="  ", budget_fen=0,
                                        period_start_at=now + 2 * DAY, period_end_at=now + DAY,
                                        billing_rule=mt.BillingRule(conversion_event="activation"))
        with pytest.raises(Refused) as refusal:
            await api.publish_task(ctx.client, request, ctx.task_queue)
        message = " ".join(refusal.value.reasons)
        for field in ("task_type: must be \"submission\"", "task_name: required", "task_icon_url: required",
                      "header_image_url: required", "component_id: required", "budget_fen: must be greater than 0",
                      "period_end_at: must be after period_start_at", "billing_rule.price_fen: required",
                      "public_days: required"):
            assert field in message, field
        assert ctx.a.ledger.balance("client:c-form:available").available_fen == 1_000_000


class TestAM3FeesHeld:
    async def test_am_3_freezes_budget_plus_ten_percent_once(
            self, ctx: Ctx) -> None:
        first = await published_task(ctx, f"t-am3-{ctx.uid}", budget_fen=123_455, balance_fen=200_000)
        # 10% of 123,455 fen is 12,345.5, half-up 12,346.
        assert (first.budget_fen, first.platform_fee_fen, first.frozen_fen) == (123_455, 12_346, 135_801)
        assert ctx.a.ledger.balance("client:client-1:available").available_fen == 200_000 - 135_801
        assert ctx.a.ledger.balance(f"task:t-am3-{ctx.uid}:escrow").balance_fen == 135_801
        again = await api.publish_task(ctx.client, (await task_seen(ctx, f"t-am3-{ctx.uid}")).terms,
                                       ctx.task_queue)
        assert again == first
        assert ctx.a.ledger.balance("client:client-1:available").available_fen == 200_000 - 135_801

    async def test_am_3_insufficient_balance_is_refused_and_freezes_nothing(
            self, ctx: Ctx) -> None:
        with pytest.raises(Refused) as refusal:
            # Budget 100,000 needs 110,000 frozen; the client has 109,999.
            await published_task(ctx, f"t-am3-poor-{ctx.uid}", budget_fen=100_000, balance_fen=109_999)
        assert refusal.value.kind == "PublicationRefused"
        assert "balance does not cover" in refusal.value.reasons[0]
        assert ctx.a.ledger.balance("client:client-1:available").available_fen == 109_999
        assert ctx.a.ledger.conservation_total() == 0

    async def test_am_3_republish_with_other_terms_names_each_differing_field(self, ctx: Ctx) -> None:
        task = f"t-am3-diff-{ctx.uid}"
        first = await published_task(ctx, task)
        state = await task_seen(ctx, task)
        assert state.terms is not None
        available = ctx.a.ledger.balance("client:client-1:available").available_fen
        changed = state.terms.model_copy(update={"budget_fen": 1, "public_days": 7})
        with pytest.raises(Refused) as refusal:
            await api.publish_task(ctx.client, changed, ctx.task_queue)
        assert refusal.value.kind == "PublicationRefused"
        assert refusal.value.reasons == ["budget_fen: published with 100000, this asks 1",
                                         f"public_days: published with {state.terms.public_days}, this asks 7"]
        # The same request again answers the first publication and freezes nothing more.
        assert await api.publish_task(ctx.client, state.terms, ctx.task_queue) == first
        assert (await task_seen(ctx, task)).budget_fen == 100_000
        assert ctx.a.ledger.balance("client:client-1:available").available_fen == available
        assert ctx.a.ledger.conservation_total() == 0


class TestAM4CreatorEligibility:
    @pytest.mark.parametrize(("kind", "flags", "agency_deducted", "reason"), [
        (CreatorKind.NATURAL, {"onboarded": False}, False, "creator is not onboarded and able to use the platform"),
        (CreatorKind.PGC, {"mount_barred": True}, False, "creator is restricted from authorized-mount tasks"),
        (CreatorKind.NATURAL, {"order_taking_closed": True}, False, "creator's order-taking is closed"),
        (CreatorKind.MCN, {}, True, "the MCN agency has had its deposit deducted"),
    ])
    async def test_am_4_refusal_names_the_failed_condition(
            self, ctx: Ctx, kind: CreatorKind,
            flags: dict[str, bool], agency_deducted: bool, reason: str) -> None:
        await published_task(ctx, f"t-am4-{ctx.uid}")
        ctx.a.directory.put_agency("agency-1", deposit_ever_deducted=agency_deducted)
        creator(ctx.a, "cr-1", kind, "agency-1" if kind is CreatorKind.MCN else None, **flags)
        with pytest.raises(Refused) as refusal:
            await api.join(ctx.client, f"t-am4-{ctx.uid}", "cr-1")
        assert refusal.value.kind == "JoinRefused" and refusal.value.reasons == [reason]
        assert (await task_seen(ctx, f"t-am4-{ctx.uid}")).creators == {}

    async def test_am_4_mcn_creator_is_paid_through_the_agency(
            self, ctx: Ctx) -> None:
        await published_task(ctx, f"t-am4-mcn-{ctx.uid}")
        ctx.a.directory.put_agency("agency-9")
        creator(ctx.a, "cr-mcn", CreatorKind.MCN, "agency-9", onboarded=False)
        joined = await api.join(ctx.client, f"t-am4-mcn-{ctx.uid}", "cr-mcn")
        assert joined.payee_account == "agency:agency-9:payable"


class TestAM5Joining:
    async def test_am_5_joining_twice_changes_nothing(
            self, ctx: Ctx) -> None:
        await published_task(ctx, f"t-am5-{ctx.uid}")
        creator(ctx.a, "cr-5")
        first = await api.join(ctx.client, f"t-am5-{ctx.uid}", "cr-5")
        await advance(ctx, 3600)
        second = await api.join(ctx.client, f"t-am5-{ctx.uid}", "cr-5")
        assert not first.already_joined and second.already_joined
        assert second.joined_at == first.joined_at
        assert list((await task_seen(ctx, f"t-am5-{ctx.uid}")).creators) == ["cr-5"]

    async def test_am_5_joining_after_the_period_ended_is_refused(self, ctx: Ctx) -> None:
        task = f"t-am5-late-{ctx.uid}"
        await published_task(ctx, task, days=2)
        creator(ctx.a, "cr-early")
        creator(ctx.a, "cr-late")
        await api.join(ctx.client, task, "cr-early")
        await mount(ctx, task, "c1", "cr-early", await business_now(ctx))  # keeps the task open after its end
        await advance(ctx, 2 * 86400 + 3600)
        state = await task_seen(ctx, task)
        assert state.stage is mt.TaskStage.ENDED and state.end_reason is mt.EndReason.PERIOD_OVER
        with pytest.raises(WorkflowUpdateFailedError) as rejected:
            await ctx.client.get_workflow_handle(mount_task_id(task)).execute_update(
                "join", mt.JoinRequest(creator_id="cr-late"))
        assert f"cannot join: task {task} is ended" in str(rejected.value.cause)
        assert list((await task_seen(ctx, task)).creators) == ["cr-early"]


class TestAM7AndAM13EndAndRefund:
    async def test_am_7_period_ends_at_its_end_instant_and_am_13_refunds_everything_unspent(
            self, ctx: Ctx) -> None:
        now = await business_now(ctx)
        eligible_client(ctx.a, "c-7", 300_000)
        request = publish_request(f"t-am7-{ctx.uid}", "c-7", now, now + 10 * DAY, budget_fen=200_000)
        published = await api.publish_task(ctx.client, request, ctx.task_queue)
        creator(ctx.a, "cr-7")
        await api.join(ctx.client, f"t-am7-{ctx.uid}", "cr-7")
        # Time skips through the 10-day period.
        result = await finish(ctx, mount_task_id(f"t-am7-{ctx.uid}"), mt.TaskResult)
        assert result.stage is mt.TaskStage.REFUNDED
        assert result.end_reason is mt.EndReason.PERIOD_OVER
        assert result.ended_at == now + 10 * DAY
        assert published.frozen_fen == 220_000
        assert result.refunded_fen == 220_000 and result.paid_to_creators_fen == 0
        assert ctx.a.ledger.balance("client:c-7:available").available_fen == 300_000
        assert ctx.a.ledger.balance(f"task:t-am7-{ctx.uid}:escrow").balance_fen == 0
        money = assert_conservation(ctx.a, f"t-am7-{ctx.uid}")
        assert money["refunded_fen"] == 220_000

    async def test_am_7_cancel_ends_the_period_at_the_cancel_instant_and_refunds(
            self, ctx: Ctx) -> None:
        await published_task(ctx, f"t-am7c-{ctx.uid}", budget_fen=50_000, balance_fen=55_000)
        await advance(ctx, 2 * 86400)
        cancelled_at = await business_now(ctx)
        answer = await api.cancel(ctx.client, f"t-am7c-{ctx.uid}", "client asked to stop", "ops-2")
        assert answer.end_reason is mt.EndReason.CANCELLED
        result = await finish(ctx, mount_task_id(f"t-am7c-{ctx.uid}"), mt.TaskResult)
        assert result.ended_at is not None
        assert abs((result.ended_at - cancelled_at).total_seconds()) < 5
        assert result.refunded_fen == 55_000
        assert ctx.a.ledger.balance("client:client-1:available").available_fen == 55_000
        assert_conservation(ctx.a, f"t-am7c-{ctx.uid}")
        with pytest.raises(Refused):
            await api.cancel(ctx.client, f"t-am7c-{ctx.uid}", "again", "ops-2")
