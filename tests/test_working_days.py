"""Working-day deadlines (AM-17, AM-21): China's statutory calendar, holidays and make-up working weekends.

The calendar is driven directly for fixed 2022/2025 dates, so nothing here depends on the test server's clock."""

from __future__ import annotations

from datetime import date, datetime, timedelta

import pytest
from temporalio.exceptions import ApplicationError

from activities.calendar import AddWorkingDaysRequest, CalendarActivities, ChinaWorkingDays, published_years
from workflows.rules.clock import BUSINESS_TZ
from workflows.rules.working_days import counting_dates, working_days_deadline

SECOND = timedelta(seconds=1)


def at(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=BUSINESS_TZ)  # type: ignore[misc]


def weekdays(day: date) -> bool:
    return day.weekday() < 5


class TestRule:
    def test_day_of_receipt_is_not_counted_and_the_deadline_is_the_end_of_the_nth_day(self) -> None:
        # Received Monday 2022-07-04 23:00: Tue..Fri are 4 days, Mon..Wed the next 3; ends Wed 24:00.
        assert working_days_deadline(at(2022, 7, 4, 23), 7, weekdays) == at(2022, 7, 14)

    def test_receipt_instant_is_read_in_business_time(self) -> None:
        # 2022-07-03 17:00 UTC is already Monday 01:00 in Beijing: Monday is the day of receipt.
        from datetime import UTC
        start = datetime(2022, 7, 3, 17, tzinfo=UTC)
        assert working_days_deadline(start, 1, weekdays) == at(2022, 7, 6)

    def test_refuses_a_count_out_of_range(self) -> None:
        with pytest.raises(ValueError, match="working_days"):
            counting_dates(at(2022, 7, 1), 0, weekdays)


class TestAM21ChinaCalendar:
    calendar = ChinaWorkingDays()

    def test_am_21_deadline_across_national_day_2025_counts_the_make_up_saturday(self) -> None:
        # Appeal received Tue 2025-09-30 10:00. Oct 1-8 are days off (National Day + Mid-Autumn, with Oct 7-8
        # moved from the make-up days); Sat Oct 11 is a make-up working day. Working days: Oct 9, 10, 11, 13, 14,
        # 15, 16: the answer is due before 2025-10-17 00:00 +08:00.
        deadline, last = self.calendar.deadline(at(2025, 9, 30, 10), 7)
        assert (deadline, last) == (at(2025, 10, 17), date(2025, 10, 16))
        assert deadline - SECOND == at(2025, 10, 16, 23, 59, 59)  # last valid instant
        # Weekdays alone would have said 2025-10-10 00:00: the holiday moves it a week.
        assert working_days_deadline(at(2025, 9, 30, 10), 7, weekdays) == at(2025, 10, 10)

    def test_am_21_make_up_sunday_before_the_holiday_counts(self) -> None:
        # Received Fri 2025-09-26: Sun Sep 28 (make-up), Mon 29, Tue 30, then Oct 9, 10, 11 (make-up), 13.
        assert self.calendar.deadline(at(2025, 9, 26, 18), 7) == (at(2025, 10, 14), date(2025, 10, 13))

    def test_am_17_spring_festival_2026(self) -> None:
        # Feb 15-23 2026 are days off; Sat Feb 14 and Sat Feb 28 are make-up working days.
        assert self.calendar.is_working_day(date(2026, 2, 14))
        assert not self.calendar.is_working_day(date(2026, 2, 23))
        assert self.calendar.deadline(at(2026, 2, 13, 9), 2) == (at(2026, 2, 25), date(2026, 2, 24))

    def test_2022_example_week(self) -> None:
        # AM-20's notice date: 2022-07-01 was a Friday; no holiday until the Mid-Autumn Festival.
        assert self.calendar.deadline(at(2022, 7, 1, 13), 7) == (at(2022, 7, 13), date(2022, 7, 12))


class TestUnpublishedYear:
    def test_authoritative_years_are_the_published_official_schedules(self) -> None:
        years = published_years()
        assert min(years) == 2001 and {2022, 2025, 2026} <= years
        assert years == frozenset(range(2001, max(years) + 1))  # contiguous: no gap silently counted

    def test_a_deadline_reaching_an_unpublished_year_fails_loudly_and_is_not_retried(self) -> None:
        year = max(published_years()) + 1
        request = AddWorkingDaysRequest(start_at=at(year - 1, 12, 28, 12), working_days=7)
        with pytest.raises(ApplicationError) as raised:
            CalendarActivities().add_working_days(request)
        assert raised.value.type == "WorkingDayCalendarMissing" and raised.value.non_retryable
        assert f"for {year} is not published" in raised.value.message

    def test_a_deadline_inside_the_published_years_is_answered(self) -> None:
        result = CalendarActivities().add_working_days(
            AddWorkingDaysRequest(start_at=at(2025, 9, 30, 10), working_days=7))
        assert (result.deadline_at, result.last_working_day) == (at(2025, 10, 17), date(2025, 10, 16))
        assert result.source.startswith("holidays ")
