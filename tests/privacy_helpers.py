"""Helpers of the PR tests: a person in the vault, a fixed working-day calendar, polling a workflow's state."""

from __future__ import annotations

import asyncio
import base64
import urllib.error
import urllib.request
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any, TypeVar

from temporalio import activity
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError

from activities.calendar import CALENDAR_MISSING, AddWorkingDaysRequest, AddWorkingDaysResult
from activities.personal_data import PersonalData
from tests.conftest import Ctx, subject_keys
from worker import Adapters
from workflows.rules.clock import BUSINESS_TZ
from workflows.rules.privacy import PersonalField
from workflows.rules.working_days import end_of_business_day

T = TypeVar("T")

NAME, PHONE, ID_NUMBER, EMAIL = "张晓明", "13912345678", "110101199003074514", "xiaoming.zhang@example.cn"
KEY_1 = "k1:" + base64.b64encode(bytes(range(32))).decode()  # payload keys of the codec tests (never real ones)
KEY_2 = "k2:" + base64.b64encode(bytes(range(32, 64))).decode()


def fixed_last_working_day(start_at: datetime, working_days: int) -> date:
    """The test calendar: weekends only, counted as N working days = N + 2 x (N // 5) calendar days."""
    return start_at.astimezone(BUSINESS_TZ).date() + timedelta(days=working_days + 2 * (working_days // 5))


def fixed_deadline(start_at: datetime, working_days: int) -> datetime:
    return end_of_business_day(fixed_last_working_day(start_at, working_days))


def fixed_calendar(adapters: Adapters) -> list[Callable[..., Any]]:
    """Replaces calendar.add_working_days: the shared test server's clock runs into years whose official
    calendar is not published, so workflow tests use fixed answers (the real calendar is tested directly)."""

    @activity.defn(name="calendar.add_working_days")
    def add_working_days(request: AddWorkingDaysRequest) -> AddWorkingDaysResult:
        last = fixed_last_working_day(request.start_at, request.working_days)
        return AddWorkingDaysResult(start_at=request.start_at, working_days=request.working_days,
                                    deadline_at=end_of_business_day(last), last_working_day=last, source="test")

    return [add_working_days]


def missing_calendar(adapters: Adapters) -> list[Callable[..., Any]]:
    @activity.defn(name="calendar.add_working_days")
    def add_working_days(request: AddWorkingDaysRequest) -> AddWorkingDaysResult:
        raise ApplicationError("no calendar for 2099", type=CALENDAR_MISSING, non_retryable=True)

    return [add_working_days]


def broken_calendar(adapters: Adapters) -> list[Callable[..., Any]]:
    """A calendar that fails for good for another reason than an unpublished year (a final fault)."""

    @activity.defn(name="calendar.add_working_days")
    def add_working_days(request: AddWorkingDaysRequest) -> AddWorkingDaysResult:
        raise ApplicationError("calendar source unreadable", type="CalendarBroken", non_retryable=True)

    return [add_working_days]


def vault(ctx: Ctx) -> PersonalData:
    return PersonalData(ctx.a.db, ctx.a.ledger, ctx.a.directory, subject_keys(ctx.a))


@dataclass
class Person:
    account_id: str
    tokens: dict[PersonalField, str]


def person(ctx: Ctx, account_id: str, *, email: bool = True, phone: bool = True) -> Person:
    """A person on file: name, phone, ID number (and e-mail) in the vault."""
    v = vault(ctx)
    values = {PersonalField.NAME: NAME, PersonalField.ID_NUMBER: ID_NUMBER}
    if phone:
        values[PersonalField.PHONE] = PHONE
    if email:
        values[PersonalField.EMAIL] = EMAIL
    return Person(account_id, {field: v.put(account_id, field, value) for field, value in values.items()})


def payload_dicts(node: Any) -> list[dict[str, Any]]:
    """Every payload in a history's JSON, wherever it sits: inputs, results, signals, updates, queries recorded,
    search attributes, memos, failures, headers (a dict with `metadata` and base64 `data`)."""
    found: list[dict[str, Any]] = []
    if isinstance(node, dict):
        if "metadata" in node and isinstance(node.get("data"), str):
            found.append(node)
        for value in node.values():
            found += payload_dicts(value)
    elif isinstance(node, list):
        for value in node:
            found += payload_dicts(value)
    return found


async def eventually(read: Callable[[], Awaitable[T]], predicate: Callable[[T], bool], what: str) -> T:
    """Polls `read` until `predicate` holds. A query that lands on a run closing by continue-as-new can time out:
    it is asked again."""
    value: T | None = None
    for _ in range(300):
        try:
            value = await read()
        except RPCError:
            await asyncio.sleep(0.1)
            continue
        if predicate(value):
            return value
        await asyncio.sleep(0.05)
    raise AssertionError(f"{what} never held: {value}")


def post(url: str, body: bytes | None = None, method: str = "POST",
         headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    request = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            return answer.status, dict(answer.headers), answer.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()
