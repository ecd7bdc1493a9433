"""Workflow-side helpers of the PR workflows: working-day deadlines and activity calls by name."""

from __future__ import annotations

from datetime import datetime
from typing import TypeVar

from pydantic import BaseModel
from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from activities.calendar import CALENDAR_MISSING, AddWorkingDaysRequest, AddWorkingDaysResult

from workflows.common import ACTIVITY_RETRY, ACTIVITY_TIMEOUT

R = TypeVar("R", bound=BaseModel)


async def call(name: str, request: BaseModel, result_type: type[R]) -> R:
    """An activity by its registered name, with the project's timeout and retry policy."""
    result: R = await workflow.execute_activity(name, request, result_type=result_type,
                                                start_to_close_timeout=ACTIVITY_TIMEOUT, retry_policy=ACTIVITY_RETRY)
    return result


async def working_days_after(start_at: datetime, working_days: int, purpose: str) -> datetime | None:
    """The exclusive deadline of "within N working days of start_at", from the calendar activity (recorded in
    history, so it never changes on replay). None when the calendar of that year is not published: the caller
    escalates at once, never counts weekends silently."""
    try:
        result = await call("calendar.add_working_days",
                            AddWorkingDaysRequest(start_at=start_at, working_days=working_days, purpose=purpose),
                            AddWorkingDaysResult)
    except ActivityError as error:
        if isinstance(error.cause, ApplicationError) and error.cause.type == CALENDAR_MISSING:
            workflow.logger.warning("no working-day calendar for %s: %s", purpose, error.cause.message)
            return None
        raise
    return result.deadline_at
