"""Working-day deadlines inside workflows: asked of the `calendar.add_working_days` activity, so the answer is
recorded in history and never changes on replay (DESIGN "Working days"). One rule for every workflow: a calendar
that cannot answer (the year's statutory calendar not published, or any other final fault) gives no deadline and a
reason, and the caller escalates at once instead of counting weekdays silently or failing."""

from __future__ import annotations

from datetime import datetime

from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from ports import calendar
    from ports.calendar import CALENDAR_MISSING, AddWorkingDaysRequest

# Runs that record it ask the calendar as working_days_deadline does for the PR and XG deadlines too; before it,
# those re-raised a fault other than a missing year (failing the update or the workflow) instead of escalating.
ONE_CALENDAR_RULE_PATCH = "working-days-one-escalation-rule"


async def working_days_deadline(start_at: datetime, working_days: int, purpose: str
                                ) -> tuple[datetime | None, str | None]:
    """(exclusive deadline, None), or (None, why) when the calendar cannot answer: the caller escalates at once
    with that reason."""
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


async def working_days_after(start_at: datetime, working_days: int, purpose: str) -> datetime | None:
    """working_days_deadline for callers that escalate on None (the PR and XG workflows); the reason is logged."""
    if workflow.patched(ONE_CALENDAR_RULE_PATCH):
        deadline, why = await working_days_deadline(start_at, working_days, purpose)
        if why is not None:
            workflow.logger.warning("no working-day deadline for %s: %s", purpose, why)
        return deadline
    try:
        result = await calendar.ADD_WORKING_DAYS(
            AddWorkingDaysRequest(start_at=start_at, working_days=working_days, purpose=purpose))
    except ActivityError as error:
        if isinstance(error.cause, ApplicationError) and error.cause.type == CALENDAR_MISSING:
            workflow.logger.warning("no working-day calendar for %s: %s", purpose, error.cause.message)
            return None
        raise
    return result.deadline_at
