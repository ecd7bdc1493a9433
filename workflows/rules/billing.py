"""Windows of one mounted piece of content (AM-8, AM-9, AM-11, AM-12)."""

from __future__ import annotations

from datetime import datetime

from workflows.rules.clock import window_closes_at

BILLING_PERIOD_DAYS = 14
PUBLICITY_WINDOW_DAYS = 3


def billing_period_end(mounted_at: datetime, task_period_end_at: datetime) -> datetime:
    """AM-8: mount + 14 days, or the end of the task period if that comes first."""
    return min(window_closes_at(mounted_at, BILLING_PERIOD_DAYS), task_period_end_at)


def publicity_window_closes_at(billing_period_end_at: datetime) -> datetime:
    """AM-11: the 3 days after the billing period; AM-12 settles at this instant."""
    return window_closes_at(billing_period_end_at, PUBLICITY_WINDOW_DAYS)


def counting_stops_at(billing_period_end_at: datetime, *stops: datetime | None) -> datetime:
    """AM-9: conversions count from the mount until the earliest of the billing period end, a revocation
    (AM-14/15) and the loss of public visibility (AM-16)."""
    return min([billing_period_end_at, *[s for s in stops if s is not None]])


def conversion_counts(occurred_at: datetime, mounted_at: datetime, stops_at: datetime, cheating: bool,
                      budget_exhausted_at: datetime | None = None) -> bool:
    """AM-9 and XG 5.1: a batch counts when it is not cheating and happened in [mounted_at, stops_at).

    R-3: a used-up budget ends the task period at the latest instant it paid for, and the batches granted at
    that instant still count; so when counting stops exactly there, that instant is included."""
    if cheating or occurred_at < mounted_at:
        return False
    if occurred_at < stops_at:
        return True
    return budget_exhausted_at is not None and occurred_at == budget_exhausted_at == stops_at
