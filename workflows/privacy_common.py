"""Workflow-side helpers of the PR workflows: working-day deadlines."""

from __future__ import annotations

from datetime import datetime

from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from ports import calendar
    from ports.calendar import CALENDAR_MISSING, AddWorkingDaysRequest


async def working_days_after(start_at: datetime, working_days: int, purpose: str) -> datetime | None:
    """The exclusive deadline of "within N working days of start_at", from the calendar activity (recorded in
    history, so it never changes on replay). None when the calendar of that year is not published: the caller
    escalates at once, never counts weekends silently."""
    try:
        result = await calendar.ADD_WORKING_DAYS(
            AddWorkingDaysRequest(start_at=start_at, working_days=working_days, purpose=purpose))
    except ActivityError as error:
        if isinstance(error.cause, ApplicationError) and error.cause.type == CALENDAR_MISSING:
            workflow.logger.warning("no working-day calendar for %s: %s", purpose, error.cause.message)
            return None
        raise
    return result.deadline_at
