"""Working-day deadlines from China's statutory calendar (AM-17, AM-21; DESIGN "Working days").

Source: the `holidays` package (`holidays.China`): public holidays, the days off moved by the State Council's
yearly notice, and the make-up working weekends (调休上班). Which years are authoritative is read from the same
data: a year counts only when the package carries that year's official notice (`ChinaStaticHolidays.
special_public_holidays`, one entry per published year: 2001-2026 in holidays 0.109). For a later year the package
fills holidays in by rule and knows no make-up weekends (2027 in 0.109), which would silently shift deadlines, so
such a year is refused with a non-retryable `WorkingDayCalendarMissing` and the calling workflow escalates.
(`chinese-calendar` 1.11 covers 2004-2026 too and raises for 2027; `holidays` is the maintained dependency we ship.)
When the State Council publishes a year (usually in November) upgrading `holidays` extends coverage, no code change.

The result is recorded in the workflow's history, so a deadline once computed never changes on replay, even after
the data is upgraded.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import date, datetime
from importlib.metadata import version
from typing import Any

from holidays.countries.china import China, ChinaStaticHolidays
from temporalio import activity
from temporalio.exceptions import ApplicationError

from ports import calendar as port
from ports.calendar import CALENDAR_MISSING, AddWorkingDaysRequest, AddWorkingDaysResult
from workflows.rules.working_days import counting_dates, end_of_business_day

__all__ = ["CALENDAR_MISSING", "AddWorkingDaysRequest", "AddWorkingDaysResult", "CalendarActivities",
           "ChinaWorkingDays", "WorkingDayCalendarMissing", "published_years"]

FIRST_AUTHORITATIVE_YEAR = 2001
HOLIDAYS_VERSION = version("holidays")  # the package is checked against the official notices from 2001 on


def published_years() -> frozenset[int]:
    """Years whose official holiday schedule (with its make-up working weekends) the installed data carries."""
    return frozenset(year for year in ChinaStaticHolidays.special_public_holidays if year >= FIRST_AUTHORITATIVE_YEAR)


class WorkingDayCalendarMissing(Exception):
    def __init__(self, year: int, covered: frozenset[int]) -> None:
        span = f"{min(covered)}-{max(covered)}" if covered else "none"
        super().__init__(
            f"China's statutory working-day calendar for {year} is not published in the installed data"
            f" (holidays {HOLIDAYS_VERSION}, official schedules {span}): cannot count working days into {year}")
        self.year = year


class ChinaWorkingDays:
    """`is_working_day` over the authoritative years only; thread-safe (activities run in a thread pool)."""

    def __init__(self, covered: frozenset[int] | None = None) -> None:
        self.covered = published_years() if covered is None else covered
        self._years: dict[int, Any] = {}
        self._lock = threading.Lock()

    def is_working_day(self, day: date) -> bool:
        if day.year not in self.covered:
            raise WorkingDayCalendarMissing(day.year, self.covered)
        with self._lock:
            calendar = self._years.get(day.year)
            if calendar is None:
                calendar = self._years[day.year] = China(years=[day.year])  # type: ignore[no-untyped-call]
        return bool(calendar.is_working_day(day))

    def deadline(self, start_at: datetime, working_days: int) -> tuple[datetime, date]:
        """(exclusive deadline, last working day): see workflows.rules.working_days."""
        last = counting_dates(start_at, working_days, self.is_working_day)[-1]
        return end_of_business_day(last), last


class CalendarActivities:
    def __init__(self, calendar: ChinaWorkingDays | None = None) -> None:
        self.calendar = calendar or ChinaWorkingDays()

    @activity.defn(name=port.ADD_WORKING_DAYS.name)
    def add_working_days(self, request: AddWorkingDaysRequest) -> AddWorkingDaysResult:
        try:
            deadline_at, last = self.calendar.deadline(request.start_at, request.working_days)
        except WorkingDayCalendarMissing as missing:
            # Retrying cannot help until the data is upgraded: fail at once and let the workflow escalate.
            raise ApplicationError(str(missing), {"year": missing.year}, type=CALENDAR_MISSING,
                                   non_retryable=True) from missing
        covered = self.calendar.covered
        return AddWorkingDaysResult(
            start_at=request.start_at, working_days=request.working_days, deadline_at=deadline_at,
            last_working_day=last,
            source=f"holidays {HOLIDAYS_VERSION} China, official schedules {min(covered)}-{max(covered)}")

    def all(self) -> list[Callable[..., Any]]:
        return [self.add_working_days]
