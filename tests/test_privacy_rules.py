"""Pure rules of PR-2, PR-3 / R-7, PR-4 / R-6, PR-7 / R-10 (workflows/rules/privacy.py), to the second."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from workflows.rules.clock import BUSINESS_TZ
from workflows.rules.privacy import (
    Disposition,
    Hold,
    HoldReason,
    PersonalField,
    add_months,
    dormant_at,
    erasure_plan,
    incident_notices_due_at,
    missing_notice_parts,
    statement_dispute_closes_at,
    statement_dispute_open,
)

SECOND = timedelta(seconds=1)


def cst(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=BUSINESS_TZ)  # type: ignore[misc]


class TestR6StatementDisputes:
    @pytest.mark.parametrize(("transaction_at", "closes_at"), [
        (cst(2026, 3, 1, 0, 0, 0), cst(2026, 4, 11)),
        (cst(2026, 3, 31, 23, 59, 59), cst(2026, 4, 11)),
        (cst(2026, 12, 15, 9, 30), cst(2027, 1, 11)),  # December: the 10th of January
        (cst(2026, 1, 31, 12, 0), cst(2026, 2, 11)),
    ])
    def test_r_6_window_closes_at_00_00_of_the_11th_of_the_next_month(self, transaction_at: datetime,
                                                                      closes_at: datetime) -> None:
        assert statement_dispute_closes_at(transaction_at) == closes_at

    def test_r_6_the_whole_10th_counts_and_the_11th_does_not(self) -> None:
        spent = cst(2026, 5, 20, 14, 0)
        assert statement_dispute_open(spent, cst(2026, 6, 10, 23, 59, 59))
        assert not statement_dispute_open(spent, cst(2026, 6, 11, 0, 0, 0))
        assert statement_dispute_open(spent, cst(2026, 6, 11) - timedelta(microseconds=1))

    def test_r_6_the_month_is_the_business_month_not_utc(self) -> None:
        # 2026-05-31 17:00 UTC is already 1 June 01:00 in UTC+08:00: a June transaction, disputable until 10 July.
        assert statement_dispute_closes_at(datetime(2026, 5, 31, 17, 0, tzinfo=UTC)) == cst(2026, 7, 11)
        assert statement_dispute_closes_at(datetime(2026, 5, 31, 15, 59, 59, tzinfo=UTC)) == cst(2026, 6, 11)


class TestR7Dormancy:
    def test_r_7_24_months_to_the_second(self) -> None:
        last_use = cst(2024, 11, 25, 16, 20, 31)
        assert dormant_at(last_use) == cst(2026, 11, 25, 16, 20, 31)

    def test_r_7_from_a_leap_day(self) -> None:
        assert dormant_at(cst(2024, 2, 29, 8, 0)) == cst(2026, 2, 28, 8, 0)

    @given(st.datetimes(min_value=datetime(2001, 1, 1), max_value=datetime(2090, 1, 1)))
    def test_r_7_dormancy_is_never_early(self, naive: datetime) -> None:
        last_use = naive.replace(tzinfo=BUSINESS_TZ)
        due = dormant_at(last_use)
        assert due - last_use >= timedelta(days=365 + 365 - 1)  # never before two calendar years less a day
        assert due - last_use <= timedelta(days=366 + 365)
        assert (due.hour, due.minute, due.second, due.microsecond) == (
            last_use.hour, last_use.minute, last_use.second, last_use.microsecond)
        assert add_months(last_use, 12) < due


class TestR10Incidents:
    def test_r_10_72_hours_from_confirmation(self) -> None:
        assert incident_notices_due_at(cst(2026, 9, 30, 22, 15)) == cst(2026, 10, 3, 22, 15)

    def test_r_10_every_part_and_the_remedy_is_required(self) -> None:
        assert missing_notice_parts("leak", " ", "", None) == ["actions_taken", "user_advice", "remedy"]
        assert missing_notice_parts("leak", "revoked", "change password", " ") == ["remedy"]
        assert missing_notice_parts("leak", "revoked", "change password", "none") == []


class TestPR2ErasurePlan:
    def test_pr_2_without_holds_names_are_anonymized_and_the_rest_deleted(self) -> None:
        plan = {p.field: p.disposition for p in erasure_plan(list(PersonalField), [])}
        assert plan == {PersonalField.NAME: Disposition.ANONYMIZE, PersonalField.PHONE: Disposition.DELETE,
                        PersonalField.ID_NUMBER: Disposition.DELETE, PersonalField.EMAIL: Disposition.DELETE,
                        PersonalField.ADDRESS: Disposition.DELETE}

    def test_pr_2_a_hold_retains_only_what_it_needs(self) -> None:
        holds = [Hold("dispute:d1", HoldReason.OPEN_DISPUTE), Hold("piece:c9", HoldReason.UNSETTLED_SETTLEMENT)]
        plan = {p.field: (p.disposition, p.held_by) for p in erasure_plan(list(PersonalField), holds)}
        assert plan[PersonalField.ID_NUMBER] == (Disposition.RETAIN, ("dispute:d1", "piece:c9"))
        assert plan[PersonalField.PHONE] == (Disposition.RETAIN, ("dispute:d1",))
        assert plan[PersonalField.NAME] == (Disposition.RETAIN, ("piece:c9",))
        assert plan[PersonalField.EMAIL] == (Disposition.DELETE, ())
        assert plan[PersonalField.ADDRESS] == (Disposition.DELETE, ())
