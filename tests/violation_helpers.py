"""Helpers for dispute, penalty and appeal tests: fixed working-day calendars, cases, balances."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from temporalio import activity
from temporalio.client import Client

from activities.calendar import (
    AddWorkingDaysRequest,
    AddWorkingDaysResult,
    CalendarActivities,
    ChinaWorkingDays,
)
from activities.directory import PenaltyRegister
from starter.violations import issue_notice
from worker import Adapters
from workflows.contract import violation_case as vc
from workflows.contract.names import violation_case_id


def fixed_calendar(span: timedelta) -> Callable[[Adapters], list[Callable[..., Any]]]:
    """A `replace_activities` factory: "N working days" is always `span` after the start.

    The time-skipping server's clock runs ahead over a session (into years whose official calendar is not
    published), so workflow tests fix the calendar's answer; the real calendar is tested on fixed dates."""

    @activity.defn(name="calendar.add_working_days")
    def add_working_days(request: AddWorkingDaysRequest) -> AddWorkingDaysResult:
        deadline = request.start_at + span
        return AddWorkingDaysResult(start_at=request.start_at, working_days=request.working_days,
                                    deadline_at=deadline, last_working_day=deadline.date(), source="test: fixed")

    return lambda adapters: [add_working_days]


def missing_calendar(adapters: Adapters) -> list[Callable[..., Any]]:
    """The real activity over a calendar that has no published year: every deadline fails as unpublished."""
    return [CalendarActivities(ChinaWorkingDays(covered=frozenset())).add_working_days]


async def start_case(client: Client, task_queue: str, case_id: str, party_id: str, notice_at: datetime,
                     *penalties: vc.Penalty, party_kind: vc.PartyKind = vc.PartyKind.CREATOR) -> str:
    return await issue_notice(client, vc.ViolationCaseInput(
        case_id=case_id, party_kind=party_kind, party_id=party_id, notice_at=notice_at,
        violation="faked conversions on content c-9", penalties=list(penalties), issued_by="op-7"), task_queue)


async def case_state(client: Client, case_id: str) -> vc.ViolationCaseView:
    return await client.get_workflow_handle(violation_case_id(case_id)).query("state",
                                                                              result_type=vc.ViolationCaseView)


async def case_when(client: Client, case_id: str,
                    predicate: Callable[[vc.ViolationCaseView], bool]) -> vc.ViolationCaseView:
    state = await case_state(client, case_id)
    for _ in range(200):
        if predicate(state):
            return state
        await asyncio.sleep(0.05)
        state = await case_state(client, case_id)
    raise AssertionError(f"case {case_id} never reached the expected state: {state}")


async def case_update(client: Client, case_id: str, update: str, arg: Any, result_type: type) -> Any:
    return await client.get_workflow_handle(violation_case_id(case_id)).execute_update(
        update, arg, result_type=result_type)


def earn(adapters: Adapters, creator_id: str, amount_fen: int, key: str) -> None:
    """Unwithdrawn fees already in the creator's payable account (from earlier tasks)."""
    adapters.ledger.transfer(key, "world:deposits", f"creator:{creator_id}:payable", amount_fen, "test_seed")


def register(adapters: Adapters) -> PenaltyRegister:
    return PenaltyRegister(adapters.db)
