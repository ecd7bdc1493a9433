"""Pure Xingguang rules, tested directly: XG-2 (forbidden targeting as data), R-8 / XG-9 (money), XG-10 (cap),
XG-4..XG-6 and R-9 (windows, pause extension)."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from workflows.rules.clock import BUSINESS_TZ
from workflows.rules.xingguang_money import (
    billable_grant,
    damages_cap,
    damages_payable,
    frozen_at_order,
    piece_platform_fee,
    provider_fee,
    rate_of,
)
from workflows.rules.xingguang_targeting import FORBIDDEN_CATEGORIES, forbidden_category, targeting_refusals
from workflows.rules.xingguang_windows import (
    billable,
    client_review_due_at,
    extended_end,
    objection_window_closes_at,
    promotion_starts_at,
    publicity_window_closes_at,
)

T0 = datetime(2026, 12, 1, 10, 0, tzinfo=BUSINESS_TZ)
DAY, HOUR, SECOND = timedelta(days=1), timedelta(hours=1), timedelta(seconds=1)


class TestXG2ForbiddenTargeting:
    def test_xg_2_the_three_categories_of_the_privacy_annex_are_data(self) -> None:
        assert [c.code for c in FORBIDDEN_CATEGORIES] == ["real_identity", "personal_hardship",
                                                          "bias_or_discrimination"]
        assert {"name", "id_number"} <= next(c for c in FORBIDDEN_CATEGORIES if c.code == "real_identity").dimensions
        assert all(c.dimensions for c in FORBIDDEN_CATEGORIES)
        dimensions = [d for c in FORBIDDEN_CATEGORIES for d in c.dimensions]
        assert len(dimensions) == len(set(dimensions)), "a dimension belongs to one category"

    @pytest.mark.parametrize(("label", "code"), [
        ("name:Zhang San", "real_identity"), ("ID-Number:1101", "real_identity"), ("phone_number", "real_identity"),
        ("overdue_loan:yes", "personal_hardship"), ("Serious Illness:cancer", "personal_hardship"),
        ("ethnicity:any", "bias_or_discrimination"), ("sexual_orientation", "bias_or_discrimination"),
        ("interest:travel", None), ("age:18-24", None), ("city_tier:1", None), ("gender:female", None),
    ])
    def test_xg_2_label_dimension_decides(self, label: str, code: str | None) -> None:
        category = forbidden_category(label)
        assert (category.code if category else None) == code

    def test_xg_2_each_offending_label_is_named_once_in_order(self) -> None:
        reasons = targeting_refusals(["interest:cars", "religion:any", "debt:high", "religion:any"])
        assert reasons == [
            ('targeting_labels: "religion:any" is forbidden by the privacy annex (bias_or_discrimination: biased or '
            "discriminatory)"),
            ('targeting_labels: "debt:high" is forbidden by the privacy annex (personal_hardship: about the data '
            "subject's personal hardship)"),
        ]


class TestR8Money:
    def test_r_8_rates_round_half_up_to_the_fen(self) -> None:
        assert rate_of(23_005, 1_000) == 2_301  # 2,300.5
        assert rate_of(23_004, 1_000) == 2_300  # 2,300.4
        assert rate_of(15_005, 500) == 750  # 750.25
        assert rate_of(15_010, 500) == 751  # 750.5
        with pytest.raises(ValueError):
            rate_of(-1, 100)

    def test_r_8_freeze_is_both_budgets_plus_the_platform_fee_on_both(self) -> None:
        assert frozen_at_order(100_005, 80_000, 1_000, waived=False) == (18_001, 198_006)
        assert frozen_at_order(100_000, 80_000, 1_000, waived=True) == (0, 180_000)  # XG-9 waiver

    def test_r_8_piece_fee_never_passes_the_fee_frozen(self) -> None:
        assert piece_platform_fee(5, 0, 1_000, False, fee_frozen_fen=100, fee_charged_so_far_fen=0) == 1  # 0.5 -> 1
        assert piece_platform_fee(5, 0, 1_000, False, fee_frozen_fen=100, fee_charged_so_far_fen=100) == 0
        assert piece_platform_fee(10_000, 5_000, 1_000, True, fee_frozen_fen=0, fee_charged_so_far_fen=0) == 0

    def test_r_8_provider_fee_is_a_rate_of_creator_earnings(self) -> None:
        assert provider_fee(20_000, 500) == 1_000
        assert provider_fee(0, 500) == 0

    def test_r_8_promotion_never_passes_the_placement_budget(self) -> None:
        assert billable_grant(100, 50, 10_000) == 100
        assert billable_grant(100, 50, 2_549) == 50  # whole events only
        assert billable_grant(100, 50, 0) == 0


class TestXG10CompensationCap:
    def test_xg_10_cap_is_twenty_percent_rounded_down_and_reachable(self) -> None:
        assert damages_cap(198_006) == 39_601  # 39,601.2
        assert damages_cap(198_004) == 39_600  # 39,600.8 rounds down
        assert damages_payable(50_000, 198_006) == 39_601
        assert damages_payable(1_000, 198_006) == 1_000
        assert damages_payable(50_000, 198_006, already_paid_fen=39_000) == 601


class TestWindows:
    def test_xg_4_client_review_deadline(self) -> None:
        assert client_review_due_at(T0, 48) == T0 + 2 * DAY

    def test_xg_5_objection_window_is_three_days_half_open(self) -> None:
        assert objection_window_closes_at(T0) == T0 + 3 * DAY

    def test_xg_6_promotion_starts_at_publication_or_billing_start(self) -> None:
        assert promotion_starts_at(T0, T0 + DAY) == T0 + DAY
        assert promotion_starts_at(T0 + 2 * DAY, T0 + DAY) == T0 + 2 * DAY
        assert publicity_window_closes_at(T0 + 10 * DAY) == T0 + 13 * DAY

    def test_r_9_pauses_extend_the_billing_period(self) -> None:
        start, end = T0, T0 + 10 * DAY
        assert extended_end(end, start, []) == end
        assert extended_end(end, start, [(T0 + 2 * DAY, T0 + 3 * DAY + HOUR)]) == end + DAY + HOUR
        # Only the part after the period's start counts; a pause after the (extended) end does not.
        assert extended_end(end, start, [(T0 - DAY, T0 + HOUR), (T0 + 11 * DAY, T0 + 12 * DAY)]) == end + HOUR
        # A pause that starts inside the extension counts too.
        assert extended_end(end, start, [(T0 + 9 * DAY, T0 + 11 * DAY), (T0 + 11 * DAY + HOUR, T0 + 12 * DAY)]) \
            == end + 2 * DAY + 23 * HOUR
        assert extended_end(end, start, [(T0 + 2 * DAY, None)]) is None

    def test_r_1_r_9_what_bills(self) -> None:
        pauses = [(T0 + 2 * DAY, T0 + 3 * DAY)]
        assert billable(T0 + DAY, T0, T0 + 10 * DAY, pauses, cheating=False)
        assert not billable(T0 + DAY, T0, T0 + 10 * DAY, pauses, cheating=True)
        assert not billable(T0 + 2 * DAY, T0, T0 + 10 * DAY, pauses, cheating=False)
        assert billable(T0 + 3 * DAY, T0, T0 + 10 * DAY, pauses, cheating=False)
        assert not billable(T0 + 10 * DAY, T0, T0 + 10 * DAY, [], cheating=False)
        assert billable(T0 + 10 * DAY - SECOND, T0, T0 + 10 * DAY, [], cheating=False)
        assert not billable(T0 - SECOND, T0, None, [], cheating=False)
