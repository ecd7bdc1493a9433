"""Working-day deadlines inside workflows: asked of the `calendar.add_working_days` activity, so the answer is
recorded in history and never changes on replay (DESIGN "Working days")."""

from __future__ import annotations

from datetime import datetime

from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from ports import calendar
    from ports.calendar import CALENDAR_MISSING, AddWorkingDaysRequest


async def working_days_deadline(start_at: datetime, working_days: int, purpose: str
                                ) -> tuple[datetime | None, str | None]:
    """(exclusive deadline, None), or (None, why) when the statutory calendar of a year it needs is not published:
    the caller escalates at once with that reason instead of counting weekdays silently."""
    try:
        result = await calendar.ADD_WORKING_DAYS(
            AddWorkingDaysRequest(start_at=start_at, working_days=working_days, purpose=purpose),
            summary=f"{working_days} working days: {purpose}")
    except ActivityError as err:
        # Transient faults are retried by the policy; what reaches here is final. A missing year is the expected
        # case; anything else is escalated too rather than leaving a deadline unset and silent.
        if isinstance(err.cause, ApplicationError) and err.cause.type == CALENDAR_MISSING:
            return None, err.cause.message
        return None, f"the working-day calendar failed: {err.cause or err}"
    return result.deadline_at, None
