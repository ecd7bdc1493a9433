"""China's statutory working-day calendar as the workflows see it (AM-17, AM-21, PR-*; DESIGN "Working days"): the
deadline of "within N working days", asked of an activity so that the answer is recorded in history."""

from __future__ import annotations

from datetime import date

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from ports.port import ActivityPort
from workflows.rules.working_days import MAX_WORKING_DAYS

# The error type of a year whose calendar is not published (non-retryable: the workflow escalates at once).
CALENDAR_MISSING = "WorkingDayCalendarMissing"


class AddWorkingDaysRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    start_at: AwareDatetime  # when the thing was received (the day itself is not counted)
    working_days: int = Field(strict=True, ge=1, le=MAX_WORKING_DAYS)
    purpose: str = ""  # for logs: "appeal answer violation:c-1", "dispute d1 of mount-content:t:c"


class AddWorkingDaysResult(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    start_at: AwareDatetime
    working_days: int
    deadline_at: AwareDatetime  # exclusive: 00:00 +08:00 after the last working day
    last_working_day: date
    source: str


ADD_WORKING_DAYS = ActivityPort[AddWorkingDaysRequest, AddWorkingDaysResult](
    "calendar.add_working_days", AddWorkingDaysResult)
