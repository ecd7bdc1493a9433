"""Windows of a Xingguang piece (XG-4..XG-7, R-5, R-9): review deadline, objection window, promotion, publicity
window, pause extensions. Half-open intervals [start, end); instants timezone-aware."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from workflows.rules.clock import business_time, window_closes_at

if TYPE_CHECKING:
    from workflows.contract.xingguang import PauseRequest

OBJECTION_WINDOW_DAYS = 3
PUBLICITY_WINDOW_DAYS = 3
ESCALATION_WORKING_DAYS = 7  # XG-5 / XG-6 as AM-17: undecided cases escalate (calendar.add_working_days)

# A pause as (paused_at, resumed_at); resumed_at None while it lasts.
Interval = tuple[datetime, datetime | None]


def client_review_due_at(provider_approved_at: datetime, review_hours: int) -> datetime:
    """XG-4: the client decides within the task's review deadline; silence past it approves."""
    return provider_approved_at + timedelta(hours=review_hours)


def objection_window_closes_at(published_at: datetime) -> datetime:
    """XG-5: objections within 3 days of publication; afterwards the content is deemed accepted."""
    return window_closes_at(published_at, OBJECTION_WINDOW_DAYS)


def publicity_window_closes_at(promotion_ends_at: datetime) -> datetime:
    """XG-6 (Reading): data disputes until 3 days after the piece's promotion ends; it settles then (R-5)."""
    return window_closes_at(promotion_ends_at, PUBLICITY_WINDOW_DAYS)


def promotion_starts_at(published_at: datetime, billing_start_at: datetime) -> datetime:
    """XG-6: promoted from publication, or the billing period's start if later."""
    return max(published_at, billing_start_at)


def extended_end(billing_end_at: datetime, billing_start_at: datetime, pauses: Iterable[Interval]) -> datetime | None:
    """R-9: the billing period extended by every pause that began before the (extended) end, counting only the part
    after the period's start. None while a pause that counts is still running: the end is not known yet."""
    end = billing_end_at
    for paused_at, resumed_at in sorted(pauses, key=lambda p: p[0]):
        if paused_at >= end:
            continue
        if resumed_at is None:
            return None
        start = max(paused_at, billing_start_at)
        if resumed_at > start:
            end += resumed_at - start
    return end


def paused_at_instant(instant: datetime, pauses: Iterable[Interval]) -> bool:
    return any(p <= instant and (r is None or instant < r) for p, r in pauses)


def billable(occurred_at: datetime, promotion_start_at: datetime, promotion_end_at: datetime | None,
             pauses: Iterable[Interval], cheating: bool) -> bool:
    """XG-6 / R-1 / R-9: an event bills when it is not cheating, lies in [start, end) and not inside a pause."""
    if cheating or occurred_at < promotion_start_at:
        return False
    if promotion_end_at is not None and occurred_at >= promotion_end_at:
        return False
    return not paused_at_instant(occurred_at, pauses)


def changes_due_at(notice_received_at: datetime, days: int) -> datetime:
    """XG-7: the deadline for changes runs from the client's receipt of the notice: N days, half-open (the exclusive
    end; the last valid instant is just before it)."""
    return window_closes_at(notice_received_at, days)


def pause_notice_problems(request: PauseRequest, now: datetime) -> list[str]:
    """XG-7: the operator gives when the notice was sent (received then, JG 十二, unless the client proves a later
    receipt) and the days for changes; the workflow computes the deadline, which must lie ahead."""
    problems: list[str] = []
    if request.changes_due_at is not None:
        problems.append("changes_due_at: not accepted: give notice_sent_at (and notice_received_at if the client "
                        "proves a later receipt) and changes_within_days; the deadline runs from the receipt (XG-7)")
    if request.notice_sent_at is None:
        problems.append("notice_sent_at: required: the deadline for changes runs from the notice's receipt (XG-7)")
    elif request.notice_sent_at > now:
        problems.append(f"notice_sent_at: {business_time(request.notice_sent_at)} is in the future")
    received = request.notice_received_at or request.notice_sent_at
    if request.notice_sent_at is not None and received is not None and received < request.notice_sent_at:
        problems.append("notice_received_at: before notice_sent_at")
    if request.changes_within_days is None:
        problems.append("changes_within_days: required (XG-7)")
    if problems or received is None or request.changes_within_days is None:  # each None named a problem above
        return problems
    due = changes_due_at(received, request.changes_within_days)
    if due <= now:
        problems.append(f"the deadline for changes, {business_time(due)} ({request.changes_within_days} days from "
                        f"the receipt {business_time(received)}), has passed")
    return problems
