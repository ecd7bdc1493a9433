"""Money arithmetic of authorized-mount tasks (AM-3, AM-9, R-3, R-4). Integer fen only."""

from __future__ import annotations

PLATFORM_FEE_PERCENT = 10


def platform_fee(fee_fen: int) -> int:
    """R-4: the platform's technical service fee is 10% of the fee, rounded half-up to the fen."""
    if fee_fen < 0:
        raise ValueError(f"fee_fen must be >= 0, got {fee_fen}")
    return (fee_fen * PLATFORM_FEE_PERCENT + 50) // 100


def frozen_at_publication(budget_fen: int) -> int:
    """AM-3: publication freezes the budget plus the platform fee on it."""
    return budget_fen + platform_fee(budget_fen)


def counted_fee(price_fen: int, counted_conversions: int) -> int:
    """AM-9 / R-4: price per conversion x counted conversions, exact."""
    return price_fen * counted_conversions


def platform_fee_of_piece(settled_before_fen: int, fee_fen: int, charged_before_fen: int) -> int:
    """R-4: the platform fee is 10% of the task's total fees, charged piece by piece as they settle: this piece's
    part is half_up(10% x the fees settled through it) - what was charged before it, so the task's platform fees
    always sum to half_up(10% x its total fees), whatever the order. Never below 0 (a task whose earlier pieces
    were charged per piece, rounded up, may already have been charged more)."""
    for name, value in (("settled_before_fen", settled_before_fen), ("fee_fen", fee_fen),
                        ("charged_before_fen", charged_before_fen)):
        if value < 0:
            raise ValueError(f"{name} must be >= 0, got {value}")
    return max(0, platform_fee(settled_before_fen + fee_fen) - charged_before_fen)


def refund_reserve(held_accrued_fen: int, budget_free_fen: int, settled_fen: int, platform_fee_charged_fen: int
                   ) -> int:
    """AM-13 (its Reading): the most that pieces held by a dispute, an objection or a penalty may still cost the
    client: their accrued fees plus the budget still free (a resolution may raise a fee up to it), and the
    platform fee on that under R-4's cumulative rule. Everything else in escrow may be refunded now."""
    most_fees = held_accrued_fen + budget_free_fen
    if held_accrued_fen < 0 or budget_free_fen < 0:
        raise ValueError(f"held and free amounts must be >= 0, got {held_accrued_fen} and {budget_free_fen}")
    return most_fees + platform_fee_of_piece(settled_fen, most_fees, platform_fee_charged_fen)
