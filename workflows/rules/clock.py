"""Business time: China Standard Time as a fixed offset (no DST; `zoneinfo` is not available in the sandbox)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

BUSINESS_TZ = timezone(timedelta(hours=8), name="UTC+08:00")
DAY = timedelta(days=1)


def with_deadline(details: str, what: str, at: datetime | None) -> str:
    """A workflow's current details (the Temporal UI's one line) end with its next deadline in business time,
    unless they already show that instant."""
    if at is None or business_time(at) in details:
        return details
    return f"{details}; next: {what} {business_time(at)}"


def window_closes_at(start_at: datetime, days: int) -> datetime:
    """A window of N days is the half-open interval [start, start + N x 24h); this returns its exclusive end."""
    require_aware(start_at, "start_at")
    return start_at + days * DAY


def within(instant: datetime, start_at: datetime, end_at: datetime) -> bool:
    """True when `instant` lies in the half-open interval [start_at, end_at)."""
    return start_at <= instant < end_at


def business_time(instant: datetime) -> str:
    """How an instant is shown to people: business time to the second, e.g. 2026-12-09 10:00:00 +08:00."""
    return instant.astimezone(BUSINESS_TZ).strftime("%Y-%m-%d %H:%M:%S +08:00")


def start_of_business_day(instant: datetime) -> datetime:
    local = instant.astimezone(BUSINESS_TZ)
    return local.replace(hour=0, minute=0, second=0, microsecond=0)


def require_aware(instant: datetime, name: str) -> None:
    if instant.tzinfo is None or instant.utcoffset() is None:
        raise ValueError(f"{name} must be timezone-aware, got naive {instant.isoformat()}")
