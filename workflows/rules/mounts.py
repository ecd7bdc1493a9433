"""Which mount reports a mount task accepts (AM-6 and its 2026-12 reading), as a pure function of the task and
the report: MountTaskWorkflow asks it with its register in its state (workflows/mount_reports.py), the task register
in the database with its own rows (activities/task_register.py), so both refuse alike."""

from __future__ import annotations

from datetime import datetime, timedelta

from workflows.contract import mount_task as c
from workflows.rules.clock import business_time, start_of_business_day, within

# How long after the end of the task period a mount inside it may still be reported (AM-6 reading).
LATE_MOUNT_REPORTS = timedelta(hours=24)


def period_cut_at(s: c.MountTaskState, p: c.Published) -> datetime:
    """Where the task period ends (or ended): its end instant, or earlier by cancel or a used-up budget (AM-7)."""
    return s.ended_at or p.period_end_at


def late_reports_close_at(s: c.MountTaskState, p: c.Published) -> datetime:
    return period_cut_at(s, p) + LATE_MOUNT_REPORTS


# How far a creator app's clock may run ahead of the platform's: a mount's instant (AM-6) may be this much in the
# future; a revocation's instant (AM-14, AM-15) this much on either side of its receipt.
CLOCK_SKEW = timedelta(minutes=5)

_IN_STATE = c.CreatorEntry(creator_id="", payee_account="", joined_at=datetime.min)


def mount_refusals(s: c.MountTaskState, request: c.ReportMountRequest, now: datetime, *, late_reports: bool,
                   clock_skew: timedelta, entry: c.CreatorEntry | None = _IN_STATE) -> list[str]:
    """Every reason a new mount is refused (AM-6), empty when it is accepted. `late_reports`: the run accepts
    reports after the end of the period (LATE_MOUNTS_PATCH). `entry`: the creator as the register in the database
    has them (workflows/task_register.py); left out, as the task's state has them."""
    # Compared by value: without the worker's sandbox pass-through (a bare Replayer) this module may see another
    # copy of the contract module than the workflow's (closure_looks imports it outside the pass-through).
    if s.stage != c.TaskStage.PUBLISHED and not (late_reports and s.stage == c.TaskStage.ENDED):
        return [f"cannot mount: task {s.task_id} is {s.stage.value}"]
    if (p := s.published) is None:  # published and ended tasks have their terms; said for the type's sake
        return [f"cannot mount: task {s.task_id} is not published"]
    if now < p.period_start_at:
        return [f"cannot mount: the task period opens at {business_time(p.period_start_at)}"]
    end = period_cut_at(s, p)
    reasons: list[str] = []
    if now >= end and not late_reports:
        reasons.append(f"cannot mount: the task period ended at {business_time(end)}")
    elif now >= end + LATE_MOUNT_REPORTS:
        hours = int(LATE_MOUNT_REPORTS.total_seconds() // 3600)
        reasons.append(f"reported at {business_time(now)}: more than {hours} hours after the task period ended at "
                       f"{business_time(end)}, mounts are no longer accepted (AM-6)")
    if entry is _IN_STATE:
        entry = s.creators.get(request.creator_id)
    if entry is None:
        reasons.append(f"creator_id: creator {request.creator_id} has not joined task {s.task_id}")
    elif entry.removed_by_case is not None:  # R-12 (task_penalties.py)
        reasons.append(f"creator_id: creator {request.creator_id} was removed from task {s.task_id} by violation "
                       f"case {entry.removed_by_case}")
    elif not entry.authorization_in_force:
        reasons.append(f"creator_id: creator {request.creator_id} revoked authorization in task {s.task_id} and "
                       "has not joined again")
    if not within(request.mounted_at, p.period_start_at, end):
        reasons.append(f"mounted_at: {business_time(request.mounted_at)} is outside the task period "
                       f"[{business_time(p.period_start_at)}, {business_time(end)})")
    elif request.mounted_at > now + clock_skew:
        reasons.append(f"mounted_at: {business_time(request.mounted_at)} is in the future")
    if entry is not None and entry.authorization_in_force:
        earliest = start_of_business_day(entry.joined_at)
        if entry.revoked_all_at is not None:
            earliest = max(earliest, entry.revoked_all_at)
        if request.mounted_at < earliest:
            reasons.append(f"mounted_at: {business_time(request.mounted_at)} is before creator "
                           f"{request.creator_id} joined (content may be mounted from {business_time(earliest)})")
    return reasons


def revocation_instant_refusals(revoked_at: datetime | None, now: datetime, mounted_at: datetime | None = None
                                ) -> list[str]:
    """The creator app's instant of a revocation (AM-14, AM-15), bounded like a mount's by CLOCK_SKEW, but on both
    sides: a revocation takes effect when made, and an app cannot date one far back to take back counted
    conversions. `mounted_at`: the piece's, for one piece."""
    if revoked_at is None:
        return []
    reasons = []
    if revoked_at > now + CLOCK_SKEW:
        reasons.append(f"revoked_at: {business_time(revoked_at)} is in the future")
    elif revoked_at < now - CLOCK_SKEW:
        minutes = int(CLOCK_SKEW.total_seconds() // 60)
        reasons.append(f"revoked_at: {business_time(revoked_at)} is more than {minutes} minutes before it was "
                       f"received at {business_time(now)}")
    if mounted_at is not None and revoked_at < mounted_at:
        reasons.append(f"revoked_at: {business_time(revoked_at)} is before the content was mounted at "
                       f"{business_time(mounted_at)}")
    return reasons
