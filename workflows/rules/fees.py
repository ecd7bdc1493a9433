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
