"""Money of Xingguang tasks (R-8, R-9, XG-9, XG-10). Integer fen; rates in basis points; rounding half-up."""

from __future__ import annotations

BP = 10_000
DAMAGES_CAP_PERCENT = 20


def rate_of(amount_fen: int, rate_bp: int) -> int:
    """amount x rate, rounded half-up to the fen (SPEC: rounding, where needed, is half-up)."""
    if amount_fen < 0 or not 0 <= rate_bp <= BP:
        raise ValueError(f"amount_fen must be >= 0 and rate_bp in [0, {BP}], got {amount_fen}, {rate_bp}")
    return (amount_fen * rate_bp + BP // 2) // BP


def platform_fee(base_fen: int, rate_bp: int, waived: bool) -> int:
    """R-8: the platform service fee on creator earnings + promotion spend; 0 when a promotion waives it."""
    return 0 if waived else rate_of(base_fen, rate_bp)


def frozen_at_order(placement_budget_fen: int, creator_earnings_budget_fen: int, rate_bp: int,
                    waived: bool) -> tuple[int, int]:
    """R-8: (platform fee frozen, total frozen) = fee on both budgets, and both budgets plus that fee."""
    base = placement_budget_fen + creator_earnings_budget_fen
    fee = platform_fee(base, rate_bp, waived)
    return fee, base + fee


def provider_fee(creator_earnings_fen: int, rate_bp: int) -> int:
    """R-8: the service-provider fee, a rate of creator earnings, paid by the platform out of its own revenue."""
    return rate_of(creator_earnings_fen, rate_bp)


def piece_platform_fee(creator_earnings_fen: int, promotion_spend_fen: int, rate_bp: int, waived: bool,
                       fee_frozen_fen: int, fee_charged_so_far_fen: int) -> int:
    """R-8 per piece, never past the fee frozen at order (per-piece rounding could otherwise pass it by a fen)."""
    fee = platform_fee(creator_earnings_fen + promotion_spend_fen, rate_bp, waived)
    return max(0, min(fee, fee_frozen_fen - fee_charged_so_far_fen))


def billable_grant(count: int, unit_price_fen: int, placement_left_fen: int) -> int:
    """R-8 / R-3: the whole events the remaining placement budget pays for (all of them while it lasts)."""
    if unit_price_fen <= 0:
        return 0
    return max(0, min(count, placement_left_fen // unit_price_fen))


def damages_cap(order_amount_fen: int) -> int:
    """XG-10: floor(20% x order amount), rounded down and reachable."""
    return order_amount_fen * DAMAGES_CAP_PERCENT // 100


def damages_payable(loss_fen: int, order_amount_fen: int, already_paid_fen: int = 0) -> int:
    """XG-10: payment = min(loss, cap), less damages already paid for this order."""
    return max(0, min(loss_fen, damages_cap(order_amount_fen) - already_paid_fen))


def delay_fee_limit(frozen_fen: int, committed_fen: int) -> int:
    """R-9: the delay-period task service fee is at most what remains frozen after what is owed."""
    return max(0, frozen_fen - committed_fen)
