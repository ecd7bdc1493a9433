"""Activity faults converge to the same money (AM-12, AM-13, R-4).

Every ledger and main-site activity fails on its first attempt, in one of the ways a real deployment fails:
an exception before the write, an exception after the write (the reply is lost), the database locked. The
wrapper is used only here, around the real adapters; the workflows retry and must end with exactly the money of
the same scenario without faults."""

from __future__ import annotations

import sqlite3
import typing
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from temporalio import activity

from activities.ledger import LedgerActivities
from activities.main_site import MainSiteActivities
from starter import client as api
from tests.conftest import Ctx
from tests.helpers import (
    assert_conservation,
    business_now,
    content_when,
    convert,
    creator,
    finish,
    mount,
    published_task,
)
from worker import Adapters
from workflows.contract import mount_task as mt
from workflows.contract import mounted_content as mc
from workflows.contract.definitions import activity_name
from workflows.contract.names import mount_task_id, mounted_content_id

FAULTS = ("before_write", "after_write", "database_locked")
SECOND = timedelta(seconds=1)


def failing_first_attempt(fault: str) -> Callable[[Adapters], list[Callable[..., Any]]]:
    def factory(adapters: Adapters) -> list[Callable[..., Any]]:
        ledger, main_site = LedgerActivities(adapters.ledger), MainSiteActivities(adapters.main_site)
        real = [ledger.freeze, ledger.accrue, ledger.release, ledger.settle, ledger.refund, main_site.unmount]
        return [wrap(fn, fault) for fn in real]
    return factory


def wrap(fn: Callable[..., Any], fault: str) -> Callable[..., Any]:
    def faulty(request: Any) -> Any:
        first = activity.info().attempt == 1
        if first and fault == "before_write":
            raise ConnectionError(f"{activity_name(fn)}: connection reset before the write")
        if first and fault == "database_locked":
            raise sqlite3.OperationalError("database is locked")
        result = fn(request)
        if first and fault == "after_write":
            raise ConnectionError(f"{activity_name(fn)}: reply lost after the write")
        return result

    faulty.__annotations__ = typing.get_type_hints(fn)  # the real input and result models, for the converter
    return activity.defn(name=activity_name(fn))(faulty)


async def run_scenario(ctx: Ctx) -> tuple[dict[str, int], dict[str, int]]:
    """Two pieces, a revocation, a void and the budget used up; returns (task money, payee balances)."""
    task = f"t-faults-{ctx.uid}"
    await published_task(ctx, task, budget_fen=2_550, price_fen=100)
    creator(ctx.a, "cr-1")
    await api.join(ctx.client, task, "cr-1")
    now = await business_now(ctx)
    await mount(ctx, task, "c1", "cr-1", now)
    await mount(ctx, task, "c2", "cr-1", now)
    await convert(ctx, task, "c1", "e1", 7, now + 60 * SECOND)
    await convert(ctx, task, "c1", "e2", 3, now + 61 * SECOND)
    await convert(ctx, task, "c2", "e3", 4, now + 62 * SECOND)
    await content_when(ctx, task, "c2", lambda s: s.counted_conversions == 4)
    await api.content_signal(ctx.client, task, "c1", "void_conversions",
                             mc.VoidConversions(event_id="e2", reason="cheating found"))
    await content_when(ctx, task, "c1", lambda s: s.counted_conversions == 7)
    await convert(ctx, task, "c2", "e4", 30, now + 63 * SECOND)  # 1,450 fen left: 14 whole conversions
    for content in ("c1", "c2"):
        await finish(ctx, mounted_content_id(task, content), mc.ContentResult)
    result = await finish(ctx, mount_task_id(task), mt.TaskResult)
    assert result.end_reason is mt.EndReason.BUDGET_USED_UP
    money = assert_conservation(ctx.a, task)
    payees = {a.name: a.balance_fen for a in ctx.a.ledger.accounts("creator:")}
    keys = [t.business_key for t in ctx.a.ledger.transfers(business_key_prefix="")]
    assert len(keys) == len(set(keys))
    task_money = {k: money[k] for k in ("frozen_fen", "spent_fen", "paid_fen", "platform_fees_fen",
                                         "refunded_fen")}
    return task_money, payees


EXPECTED_MONEY = {"frozen_fen": 2_805, "spent_fen": 2_500, "paid_fen": 2_500, "platform_fees_fen": 250,
                  "refunded_fen": 55}
EXPECTED_PAYEES = {"creator:cr-1:payable": 2_500}


async def test_scenario_without_faults_gives_the_reference_money(ctx: Ctx) -> None:
    assert await run_scenario(ctx) == (EXPECTED_MONEY, EXPECTED_PAYEES)


@pytest.mark.parametrize("fault", [
    pytest.param(fault, marks=pytest.mark.replace_activities.with_args(failing_first_attempt(fault)))
    for fault in FAULTS])
async def test_activity_faults_converge_to_the_same_money(ctx: Ctx, fault: str) -> None:
    assert await run_scenario(ctx) == (EXPECTED_MONEY, EXPECTED_PAYEES)
