"""XG-1, XG-2, R-8 at the order: a synchronous answer naming every reason for refusal; the R-8 freeze."""

from __future__ import annotations

import pytest

from starter import xingguang as api
from starter.client import Refused
from tests.conftest import Ctx
from tests.helpers import DAY, business_now, eligible_client
from tests.xg_fixtures import order_request
from workflows.contract import xingguang as xg
from workflows.contract import xingguang_state as xgs


class TestXG1Order:
    async def test_xg_1_r_8_order_freezes_both_budgets_and_the_platform_fee_once(self, ctx: Ctx) -> None:
        task, client_id = f"xg-o-{ctx.uid}", f"cl-{ctx.uid}"
        eligible_client(ctx.a, client_id, 300_000)
        t0 = await business_now(ctx)
        request = order_request(task, client_id, t0 + DAY, t0 + 11 * DAY, placement_budget_fen=100_005,
                                creator_earnings_budget_fen=80_000, platform_fee_rate_bp=1_000)
        result = await api.order(ctx.client, request, ctx.task_queue)
        # 10% of 180,005 = 18,000.5 -> 18,001 half-up; frozen 198,006.
        assert (result.terms.platform_fee_frozen_fen, result.terms.frozen_fen) == (18_001, 198_006)
        assert ctx.a.ledger.balance(f"client:{client_id}:available").balance_fen == 300_000 - 198_006
        assert ctx.a.ledger.balance(f"xg_task:{task}:escrow").balance_fen == 198_006
        again = await api.order(ctx.client, request, ctx.task_queue)
        assert again == result
        assert ctx.a.ledger.balance(f"client:{client_id}:available").balance_fen == 300_000 - 198_006
        state = await api.state(ctx.client, task)
        assert state.stage is xgs.TaskStage.MATERIALS_REVIEW and state.money.frozen_fen == 198_006

    async def test_xg_1_reorder_with_other_terms_names_each_differing_field(self, ctx: Ctx) -> None:
        task, client_id = f"xg-o2-{ctx.uid}", f"cl-{ctx.uid}"
        eligible_client(ctx.a, client_id, 300_000)
        t0 = await business_now(ctx)
        request = order_request(task, client_id, t0 + DAY, t0 + 11 * DAY, placement_budget_fen=100_000,
                                creator_earnings_budget_fen=80_000)
        result = await api.order(ctx.client, request, ctx.task_queue)
        available = ctx.a.ledger.balance(f"client:{client_id}:available").balance_fen
        other = request.model_copy(update={"placement_budget_fen": 90_000, "creator_earnings_budget_fen": 70_000})
        with pytest.raises(Refused) as refusal:
            await api.order(ctx.client, other, ctx.task_queue)
        assert refusal.value.kind == "OrderRefused"
        assert refusal.value.reasons == ["placement_budget_fen: ordered with 100000, this asks 90000",
                                         "creator_earnings_budget_fen: ordered with 80000, this asks 70000"]
        assert await api.order(ctx.client, request, ctx.task_queue) == result  # the same order: the first answer
        assert ctx.a.ledger.balance(f"client:{client_id}:available").balance_fen == available
        assert ctx.a.ledger.balance(f"xg_task:{task}:escrow").balance_fen == result.terms.frozen_fen
        assert ctx.a.ledger.conservation_total() == 0

    async def test_xg_1_xg_2_refusal_lists_every_missing_field_and_forbidden_label(self, ctx: Ctx) -> None:
        task, client_id = f"xg-bad-{ctx.uid}", f"cl-{ctx.uid}"
        eligible_client(ctx.a, client_id, 300_000)
        t0 = await business_now(ctx)
        request = xg.OrderRequest(
            task_id=task, client_id=client_id, content_requirements=" ",
            targeting_labels=["interest:travel", "id_number:110101199001011234", "Overdue-Loan:yes", "religion",
                              "age:18-35"],
            placement_budget_fen=0, billing_start_at=t0 + 2 * DAY, billing_end_at=t0 + DAY,
            creator_earnings_budget_fen=50_000, client_confirms_content=True)
        with pytest.raises(Refused) as refusal:
            await api.order(ctx.client, request, ctx.task_queue)
        assert refusal.value.kind == "OrderRefused"
        assert refusal.value.reasons == [
            "content_requirements: required",
            ('targeting_labels: "id_number:110101199001011234" is forbidden by the privacy annex '
            "(real_identity: reveals the audience's real identity)"),
            ('targeting_labels: "Overdue-Loan:yes" is forbidden by the privacy annex '
            "(personal_hardship: about the data subject's personal hardship)"),
            ('targeting_labels: "religion" is forbidden by the privacy annex '
            "(bias_or_discrimination: biased or discriminatory)"),
            "placement_budget_fen: must be greater than 0",
            "unit_price_fen: required",
            ("billing_end_at: must be after billing_start_at "
            f"({(t0 + DAY).strftime('%Y-%m-%d %H:%M:%S')} +08:00 <= {(t0 + 2 * DAY).strftime('%Y-%m-%d %H:%M:%S')}"
            " +08:00)"),
            "platform_fee_rate_bp: required unless platform_fee_waiver names the promotion",
            "provider_fee_rate_bp: required",
            "client_review_hours: required",
        ]
        assert ctx.a.ledger.balance(f"client:{client_id}:available").balance_fen == 300_000
        state = await api.state(ctx.client, task)
        assert state.stage is xgs.TaskStage.DRAFT and state.money.frozen_fen == 0

    async def test_r_8_order_refused_when_the_balance_does_not_cover_the_freeze(self, ctx: Ctx) -> None:
        task, client_id = f"xg-poor-{ctx.uid}", f"cl-{ctx.uid}"
        eligible_client(ctx.a, client_id, 197_999)
        t0 = await business_now(ctx)
        with pytest.raises(Refused) as refusal:
            await api.order(ctx.client, order_request(task, client_id, t0 + DAY, t0 + 11 * DAY), ctx.task_queue)
        assert refusal.value.reasons[0].startswith("balance does not cover the order's freeze of 198000 fen")
        assert ctx.a.ledger.balance(f"client:{client_id}:available").balance_fen == 197_999

    async def test_xg_9_waived_platform_fee_freezes_no_fee(self, ctx: Ctx) -> None:
        task, client_id = f"xg-w-{ctx.uid}", f"cl-{ctx.uid}"
        eligible_client(ctx.a, client_id, 300_000)
        t0 = await business_now(ctx)
        result = await api.order(ctx.client, order_request(
            task, client_id, t0 + DAY, t0 + 11 * DAY, platform_fee_rate_bp=None,
            platform_fee_waiver="2026 Double-11 fee holiday"), ctx.task_queue)
        assert result.terms.platform_fee_waived and result.terms.platform_fee_waiver == "2026 Double-11 fee holiday"
        assert (result.terms.platform_fee_frozen_fen, result.terms.frozen_fen) == (0, 180_000)
