"""Deadlines counted in China's statutory working days (AM-17, AM-21; XG-5/XG-6 as AM-17; PR-1).

"Within N working days of receiving X" is counted as Chinese law counts periods (Civil Code art. 201-203): the day
of receipt is not counted, counting starts the next calendar day, only statutory working days count (weekdays that
are not public holidays, plus the make-up working weekends the State Council announces), and the period ends at the
end (24:00, business time) of the Nth working day. The deadline is returned as that exclusive end, 00:00 +08:00 of
the following calendar day, so the window is half-open like every other window here.

Which days are working days is data, published yearly: `is_working_day` is passed in (the calendar activity reads
it from the `holidays` package and refuses years whose official schedule is not published). This module stays pure.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime, timedelta

from workflows.rules.clock import BUSINESS_TZ, require_aware

DISPUTE_RESOLUTION_WORKING_DAYS = 7  # AM-17 (reading: mirrors AM-21)
APPEAL_ANSWER_WORKING_DAYS = 7  # AM-21
MAX_WORKING_DAYS = 366  # a deadline further out than this is a mistake in the request, not a rule


def counting_dates(start_at: datetime, working_days: int,
                   is_working_day: Callable[[date], bool]) -> list[date]:
    """The calendar dates examined, in order, from the day after `start_at`'s business date to the Nth working
    day inclusive; the last one is the Nth working day."""
    require_aware(start_at, "start_at")
    if not 1 <= working_days <= MAX_WORKING_DAYS:
        raise ValueError(f"working_days must be 1..{MAX_WORKING_DAYS}, got {working_days}")
    day = start_at.astimezone(BUSINESS_TZ).date()
    examined: list[date] = []
    counted = 0
    while counted < working_days:
        day += timedelta(days=1)
        examined.append(day)
        if is_working_day(day):
            counted += 1
    return examined


def end_of_business_day(day: date) -> datetime:
    """The exclusive end of a business-time calendar day: 00:00 +08:00 of the next day."""
    return datetime.combine(day + timedelta(days=1), datetime.min.time(), tzinfo=BUSINESS_TZ)


def working_days_deadline(start_at: datetime, working_days: int, is_working_day: Callable[[date], bool]) -> datetime:
    """The exclusive end of "within `working_days` working days of `start_at`" (see the module docstring)."""
    return end_of_business_day(counting_dates(start_at, working_days, is_working_day)[-1])
