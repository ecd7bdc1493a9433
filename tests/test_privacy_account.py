"""AccountWorkflow (`account:{account_id}`): PR-3 / R-7 dormancy and cancellation, PR-4 / R-6 statement disputes,
PR-5 what cancellation removes and keeps, and a history bounded by continue-as-new."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta

import pytest

from activities.notifications import Notifications
from activities.personal_data import AccountClosure, PersonalData
from starter import privacy as api
from starter.client import Refused
from tests.conftest import Ctx, subject_keys
from tests.helpers import business_now, eligible_client, finish
from tests.privacy_helpers import NAME, eventually, fixed_calendar, fixed_deadline, person, vault
from worker import Adapters
from workflows.contract import account as ac
from workflows.contract.names import account_id
from workflows.contract.privacy import AccountParty, PersonalField
from workflows.rules.clock import BUSINESS_TZ
from workflows.rules.privacy import add_months, statement_dispute_closes_at

pytestmark = pytest.mark.replace_activities.with_args(fixed_calendar)
SECOND = timedelta(seconds=1)


async def used(ctx: Ctx, account: str, at: datetime, event_id: str, party: AccountParty = AccountParty.CLIENT) -> None:
    await api.record_activity(ctx.client, account, party, ac.AccountActivity(event_id=event_id, occurred_at=at),
                              ctx.task_queue)


async def state_when(ctx: Ctx, account: str, predicate: object) -> ac.AccountView:
    return await eventually(lambda: api.account_state(ctx.client, account), predicate,  # type: ignore[arg-type]
                            f"account {account}")


async def sleep_until(ctx: Ctx, instant: datetime) -> None:
    now = await ctx.env.get_current_time()
    await ctx.env.sleep((instant - now).total_seconds())


class TestPR3R7Dormancy:
    async def test_pr_3_r_7_dormant_at_24_months_to_the_second_then_cancelled_after_its_task_and_payout(
            self, ctx: Ctx) -> None:
        account = f"cl-{ctx.uid}"
        eligible_client(ctx.a, account, 100_000)
        person(ctx, account)
        ctx.a.ledger.freeze(f"task-{ctx.uid}", account, 30_000, 3_000)  # an open task: 33,000 fen frozen
        last_use = await business_now(ctx)
        await used(ctx, account, last_use, "login-1")
        state = await api.account_state(ctx.client, account)
        assert state.dormant_at == add_months(last_use, 24) == last_use.replace(year=last_use.year + 2) or (
            last_use.month == 2 and last_use.day == 29)

        await sleep_until(ctx, state.dormant_at - SECOND)
        assert (await api.account_state(ctx.client, account)).stage is ac.AccountStage.ACTIVE
        await sleep_until(ctx, state.dormant_at + SECOND)  # a notice first, cancellation 30 days later
        noticed = await state_when(ctx, account, lambda s: s.stage is ac.AccountStage.DORMANCY_NOTICE)
        assert noticed.dormancy_notice_at is not None and noticed.dormancy_cancels_at is not None
        assert state.dormant_at <= noticed.dormancy_notice_at < state.dormant_at + 2 * SECOND
        await sleep_until(ctx, noticed.dormancy_cancels_at + SECOND)
        dormant = await state_when(ctx, account, lambda s: s.open_task_ids)
        assert dormant.stage is ac.AccountStage.DORMANT and dormant.cancellation_reason == "dormancy"
        assert dormant.flagged_dormant_at is not None
        assert noticed.dormancy_cancels_at <= dormant.flagged_dormant_at < noticed.dormancy_cancels_at + 2 * SECOND
        assert dormant.open_task_ids == [f"task-{ctx.uid}"]
        assert ctx.a.ledger.balance(f"client:{account}:available").available_fen == 67_000

        ctx.a.ledger.refund(f"task-{ctx.uid}", account)  # the task ends: its money comes back, then is paid out
        await api.obligations_changed(ctx.client, account, f"task-{ctx.uid}")
        result = await finish(ctx, account_id(account), ac.AccountView)
        assert result.stage is ac.AccountStage.CANCELLED and result.cancelled_at is not None
        assert [(p.ledger_account, p.amount_fen) for p in result.payouts] == [(f"client:{account}:available", 100_000)]
        assert ctx.a.ledger.balance(f"client:{account}:available").balance_fen == 0
        assert ctx.a.ledger.balance("world:withdrawals").balance_fen == 100_000
        ctx.a.ledger.check_conservation()
        # PR-5: out of the active directory, personal data erased, conduct and money records kept.
        assert not ctx.a.directory.client(account).known
        profile = vault(ctx).profile(account)
        assert profile[PersonalField.NAME][1:] == ("[anonymized]", "anonymized")
        assert profile[PersonalField.PHONE][1:] == (None, "deleted")
        assert len(ctx.a.ledger.transfers(account_prefix=f"client:{account}:")) == 4  # deposit, freeze, refund, payout
        with pytest.raises(Refused, match="cancelled"):
            await used(ctx, account, await business_now(ctx), "login-after")

    async def test_r_7_any_use_resets_the_24_months(self, ctx: Ctx) -> None:
        account = f"cr-{ctx.uid}"
        first = await business_now(ctx)
        await used(ctx, account, first, "use-1", AccountParty.CREATOR)
        await ctx.env.sleep(300 * 86400)
        second = await business_now(ctx)
        await used(ctx, account, second, "use-2", AccountParty.CREATOR)
        await used(ctx, account, first, "use-1", AccountParty.CREATOR)  # a late repeat changes nothing
        state = await state_when(ctx, account, lambda s: s.activities_recorded == 3)
        assert (state.last_activity_at, state.dormant_at) == (second, add_months(second, 24))
        await sleep_until(ctx, add_months(first, 24) + SECOND)  # the old deadline passes: still active
        assert (await api.account_state(ctx.client, account)).stage is ac.AccountStage.ACTIVE

    async def test_r_7_notice_at_24_months_then_a_use_within_30_days_keeps_the_account(self, ctx: Ctx) -> None:
        account = f"cr-{ctx.uid}"
        person(ctx, account)
        ctx.a.ledger.transfer(f"fee-{ctx.uid}", "world:deposits", f"creator:{account}:payable", 1_234, "test")
        await used(ctx, account, await business_now(ctx), "use-1", AccountParty.CREATOR)
        state = await api.account_state(ctx.client, account)
        await sleep_until(ctx, state.dormant_at + SECOND)
        noticed = await state_when(ctx, account, lambda s: s.stage is ac.AccountStage.DORMANCY_NOTICE)
        assert noticed.dormancy_cancels_at is not None and noticed.dormancy_notice_at is not None
        assert noticed.dormancy_cancels_at == noticed.dormancy_notice_at + timedelta(days=30)
        [notice] = Notifications(ctx.a.db, vault(ctx)).sent(f"dormancy:{account}:")
        assert notice["kind"] == "dormancy_notice"
        assert notice["body"]["cancelled_from"] == noticed.dormancy_cancels_at.isoformat()
        await sleep_until(ctx, noticed.dormancy_cancels_at - SECOND)  # the last second of the 30 days
        use = await business_now(ctx)
        await used(ctx, account, use, "use-2", AccountParty.CREATOR)
        kept = await state_when(ctx, account, lambda s: s.stage is ac.AccountStage.ACTIVE)
        assert (kept.dormancy_notice_at, kept.dormant_at, kept.dormancy_notices) == (None, add_months(use, 24), 1)
        await sleep_until(ctx, noticed.dormancy_cancels_at + 2 * SECOND)
        assert (await api.account_state(ctx.client, account)).stage is ac.AccountStage.ACTIVE
        assert ctx.a.ledger.balance(f"creator:{account}:payable").balance_fen == 1_234  # nothing paid out

    async def test_r_7_notice_then_no_use_for_30_days_cancels_the_account(self, ctx: Ctx) -> None:
        account = f"cr-{ctx.uid}"
        ctx.a.ledger.transfer(f"fee-{ctx.uid}", "world:deposits", f"creator:{account}:payable", 4_321, "test")
        await used(ctx, account, await business_now(ctx), "use-1", AccountParty.CREATOR)
        result = await finish(ctx, account_id(account), ac.AccountView)
        assert result.stage is ac.AccountStage.CANCELLED and result.dormancy_notices == 1
        assert result.dormancy_cancels_at is not None and result.cancelled_at is not None
        assert timedelta(0) <= result.dormancy_cancels_at - (result.dormant_at + timedelta(days=30)) < SECOND
        assert result.cancelled_at >= result.dormancy_cancels_at
        assert ctx.a.ledger.balance(f"creator:{account}:payable").balance_fen == 0
        assert [p.amount_fen for p in result.payouts] == [4_321]


class TestPR4R6StatementDisputes:
    async def test_r_6_accepted_on_the_10th_refused_from_00_00_of_the_11th(self, ctx: Ctx) -> None:
        account = f"cl-{ctx.uid}"
        now = await business_now(ctx)
        await used(ctx, account, now, "login-1")
        closes_at = statement_dispute_closes_at(now)
        assert (closes_at.day, closes_at.hour, closes_at.minute, closes_at.utcoffset()) == (
            11, 0, 0, timedelta(hours=8))
        await sleep_until(ctx, closes_at - 5 * SECOND)  # 23:59:55 on the 10th
        accepted = await api.raise_statement_dispute(ctx.client, account, ac.RaiseStatementDispute(
            dispute_id="d-10th", subject=ac.StatementSubject.SPEND, transaction_at=now, reason="spend not mine"))
        assert (accepted.status, accepted.window_closed_at) == ("open", closes_at)
        assert accepted.escalation_due_at == fixed_deadline(accepted.raised_at, 7)
        await sleep_until(ctx, closes_at + SECOND)
        with pytest.raises(Refused) as refusal:
            await api.raise_statement_dispute(ctx.client, account, ac.RaiseStatementDispute(
                dispute_id="d-11th", subject=ac.StatementSubject.SPEND, transaction_at=now, reason="late"))
        assert refusal.value.kind == "StatementDisputeWindowClosed"
        assert closes_at.strftime("%Y-%m-%d 00:00:00 +08:00") in refusal.value.reasons[0]
        state = await api.account_state(ctx.client, account)
        assert list(state.statement_disputes) == ["d-10th"]

    async def test_pr_4_dispute_escalates_and_an_upheld_one_credits_the_account(self, ctx: Ctx) -> None:
        account = f"cl-{ctx.uid}"
        ctx.a.ledger.deposit(f"top-up-{ctx.uid}", account, 10_000)
        now = await business_now(ctx)
        await used(ctx, account, now, "login-1")
        raised = await api.raise_statement_dispute(ctx.client, account, ac.RaiseStatementDispute(
            dispute_id="d1", subject=ac.StatementSubject.TOP_UP, transaction_at=now, amount_fen=10_000,
            reason="top-up credited 100 yuan short"))
        again = await api.raise_statement_dispute(ctx.client, account, ac.RaiseStatementDispute(
            dispute_id="d1", subject=ac.StatementSubject.TOP_UP, transaction_at=now, reason="repeat"))
        assert again == raised
        assert raised.escalation_due_at is not None
        await sleep_until(ctx, raised.escalation_due_at + SECOND)
        state = await state_when(ctx, account, lambda s: s.statement_disputes["d1"].escalated)
        assert state.statement_disputes["d1"].status == "open"
        resolved = await api.resolve_statement_dispute(ctx.client, account, ac.ResolveStatementDispute(
            dispute_id="d1", resolved_by="op-1", outcome="upheld", adjustment_fen=10_000, note="gateway lost it"))
        assert (resolved.status, resolved.adjustment_fen, resolved.escalated) == ("upheld", 10_000, False)
        assert ctx.a.ledger.balance(f"client:{account}:available").balance_fen == 20_000
        with pytest.raises(Refused, match="already upheld"):
            await api.resolve_statement_dispute(ctx.client, account, ac.ResolveStatementDispute(
                dispute_id="d1", resolved_by="op-1", outcome="upheld", adjustment_fen=10_000, note="twice"))
        assert ctx.a.ledger.balance(f"client:{account}:available").balance_fen == 20_000

    async def test_pr_4_a_future_transaction_is_refused(self, ctx: Ctx) -> None:
        account = f"cl-{ctx.uid}"
        now = await business_now(ctx)
        await used(ctx, account, now, "login-1")
        with pytest.raises(Refused, match=r"transaction_at: .* is in the future"):
            await api.raise_statement_dispute(ctx.client, account, ac.RaiseStatementDispute(
                dispute_id="d1", subject=ac.StatementSubject.BALANCE, transaction_at=now + timedelta(days=2),
                reason="x"))


class TestPR5Cancellation:
    async def test_pr_5_requested_cancellation_waits_for_an_open_dispute(self, ctx: Ctx) -> None:
        account = f"cl-{ctx.uid}"
        eligible_client(ctx.a, account, 2_500)
        person(ctx, account)
        now = await business_now(ctx)
        await used(ctx, account, now, "login-1")
        await api.raise_statement_dispute(ctx.client, account, ac.RaiseStatementDispute(
            dispute_id="d1", subject=ac.StatementSubject.BALANCE, transaction_at=now, reason="balance wrong"))
        await ctx.client.get_workflow_handle(account_id(account)).signal(
            "request_cancellation", ac.CancellationRequested(request_id=f"r-{ctx.uid}", requested_at=now))
        waiting = await state_when(ctx, account, lambda s: s.obligations_checked_at is not None)
        assert waiting.stage is ac.AccountStage.CANCELLING and waiting.cancelled_at is None
        assert ctx.a.directory.client(account).known
        assert vault(ctx).profile(account)[PersonalField.NAME][1] == NAME
        await api.resolve_statement_dispute(ctx.client, account, ac.ResolveStatementDispute(
            dispute_id="d1", resolved_by="op-1", outcome="rejected", note="balance is right"))
        result = await finish(ctx, account_id(account), ac.AccountView)
        assert (result.stage, result.cancellation_reason) == (ac.AccountStage.CANCELLED, "requested")
        assert [p.amount_fen for p in result.payouts] == [2_500]
        assert not ctx.a.directory.client(account).known
        assert vault(ctx).profile(account)[PersonalField.PHONE][1:] == (None, "deleted")
        # PR-5 crypto-shredding: the key the account's data was sealed with is destroyed by the cancellation.
        with ctx.a.db.transaction() as tx:
            keys = tx.fetchall("SELECT wrapped_key IS NULL, destroyed_by FROM pd_subject_keys WHERE subject_id = ?"
                               " ORDER BY created_at", (account,))
        assert keys[0][0] == 1 and str(keys[0][1]).startswith("erasure:")


class TestBoundedHistory:
    async def test_account_continues_as_new_and_keeps_its_state(self, ctx: Ctx) -> None:
        account = f"cr-{ctx.uid}"
        start = await business_now(ctx)
        await used(ctx, account, start, "use-0", AccountParty.CREATOR)
        handle = ctx.client.get_workflow_handle(account_id(account))
        first_run = (await handle.describe()).run_id
        signals = 2_100
        for batch in range(0, signals, 100):
            await asyncio.gather(*(handle.signal("record_activity", ac.AccountActivity(
                event_id=f"use-{n}", occurred_at=start)) for n in range(batch + 1, batch + 101)))
        # A query may still reach the closing run's state for a moment: wait for the new run.
        await eventually(handle.describe, lambda d: d.run_id != first_run, "a new run")
        state = await state_when(ctx, account, lambda s: s.activities_recorded == signals + 1)
        events = [e async for e in handle.fetch_history_events()]
        assert events[0].workflow_execution_started_event_attributes.continued_execution_run_id  # a later run
        assert len(events) < 1_000  # this run's history holds only what came after the last continue-as-new
        assert state.last_activity_at == start and state.stage is ac.AccountStage.ACTIVE
        assert state.dormant_at == add_months(start, 24)


def test_r_7_24_months_keeps_the_time_of_day_and_clamps_the_day() -> None:
    at = datetime(2024, 2, 29, 13, 5, 7, tzinfo=BUSINESS_TZ)
    assert add_months(at, 24) == datetime(2026, 2, 28, 13, 5, 7, tzinfo=BUSINESS_TZ)


def test_r_7_open_obligations_include_xingguang_escrow_and_penalty_freezes(adapters: Adapters) -> None:
    v = AccountClosure(PersonalData(adapters.db, adapters.ledger, adapters.directory, subject_keys(adapters)))
    adapters.ledger.deposit("d1", "cl-x", 50_000)
    assert v.open_tasks("cl-x", AccountParty.CLIENT) == []
    adapters.ledger.transfer("xg:freeze:xg-1", "client:cl-x:available", "xg_task:xg-1:escrow", 20_000, "xg_freeze")
    adapters.ledger.hold("penalty-1", "client:cl-x:available", "client:cl-x:frozen", 1_000)
    assert v.open_tasks("cl-x", AccountParty.CLIENT) == ["xg-1"]  # a hold is pending, not yet frozen money
    adapters.ledger.post_pending("penalty-1:post", "penalty-1")
    assert v.open_tasks("cl-x", AccountParty.CLIENT) == ["xg-1", "penalty-freeze:client:cl-x"]
    adapters.ledger.transfer("xg:refund:xg-1", "xg_task:xg-1:escrow", "client:cl-x:available", 20_000, "xg_refund")
    assert v.open_tasks("cl-x", AccountParty.CLIENT) == ["penalty-freeze:client:cl-x"]
