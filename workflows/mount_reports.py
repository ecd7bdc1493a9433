"""Mount reports of MountTaskWorkflow (AM-6): which are refused, the late ones, and taking refused ones down.

Reading (AM-6, 2026-12): the main site reports mounts asynchronously, so a mount whose instant lies in the task
period is accepted when its report arrives up to 24 hours after the period ended (the piece counts conversions only
until the end: its billing period is cut there, AM-8); a mount refused for any reason is unmounted on the main site,
because the component must not stay up unpaid.

A validator cannot run an activity, and an update it refuses leaves no trace; so these refusals are made by the
`report_mount` handler: it takes the component down (`main_site.unmount`, idempotent by task and content) and then
fails with `MountRefused` and every reason. The unmount is the one effect of a refused mount, the one the reading
asks for; nothing else changes. What stays in the validator changes nothing on the main site: a payload the contract
refuses, `ContinueAsNewDue` (send again), and a report for content already mounted in this task (its component is
up for the accepted mount, which must not be taken down by a conflicting report).

After the period ends, a task whose pieces have all closed waits until the late reports can no longer come before it
refunds (AM-13), so a late mount still finds a running task that counts it among its open pieces.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from activities.main_site import REFUSED_MOUNT, UnmountRequest, UnmountResult
    from workflows.contract import mount_task as c
    from workflows.rules.clock import business_time, start_of_business_day, with_deadline, within

from workflows.common import ACTIVITY_RETRY, ACTIVITY_TIMEOUT, RunLength, stage_attributes, until

# How long after the end of the task period a mount inside it may still be reported (AM-6 reading).
LATE_MOUNT_REPORTS = timedelta(hours=24)
# Runs that record this marker accept late mount reports and wait for them before refunding; older runs refuse
# every mount after the period, and refund as soon as their pieces have closed.
LATE_MOUNTS_PATCH = "am-6-late-mount-reports"
MOUNT_REFUSED = "MountRefused"
# Runs that record this marker do not wait for late reports when no creator of the task could still have a mount
# accepted (none joined, or every one revoked or was removed): a cancelled task nobody joined refunds at once.
NO_WAIT_WITHOUT_CREATORS_PATCH = "am-6-no-late-wait-without-creators"


def period_cut_at(s: c.MountTaskState) -> datetime:
    """Where the task period ends (or ended): its end instant, or earlier by cancel or a used-up budget (AM-7)."""
    assert s.period_end_at is not None
    return s.ended_at or s.period_end_at


def late_reports_close_at(s: c.MountTaskState) -> datetime:
    return period_cut_at(s) + LATE_MOUNT_REPORTS


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
    assert s.period_start_at is not None and s.period_end_at is not None
    if now < s.period_start_at:
        return [f"cannot mount: the task period opens at {business_time(s.period_start_at)}"]
    end = period_cut_at(s)
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
    if not within(request.mounted_at, s.period_start_at, end):
        reasons.append(f"mounted_at: {business_time(request.mounted_at)} is outside the task period "
                       f"[{business_time(s.period_start_at)}, {business_time(end)})")
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


async def unmount_refused(task_id: str, request: c.ReportMountRequest, reasons: list[str]) -> None:
    """AM-6 reading: the component of a refused mount comes down on the main site (idempotent)."""
    await workflow.execute_activity(
        "main_site.unmount",
        UnmountRequest(task_id=task_id, content_id=request.content_id, unmounted_at=workflow.now(),
                       reason=f"{REFUSED_MOUNT}{reasons[0]}"),
        result_type=UnmountResult, start_to_close_timeout=ACTIVITY_TIMEOUT, retry_policy=ACTIVITY_RETRY,
    )


async def wait_for_late_mounts(s: c.MountTaskState, run_length: RunLength) -> bool:
    """Every piece has closed: waits until a late mount opens a piece, the run is due to continue as new, or the
    late reports can no longer come. True when there is more to do (read closures again, or continue as new)."""
    closes_at = late_reports_close_at(s)
    if s.pieces_open > 0 or workflow.now() >= closes_at:
        return s.pieces_open > 0
    # With the register in the database (task_register.py) the task knows only how many joined.
    nobody = s.creators_joined == 0 and not any(
        e.authorization_in_force and e.removed_by_case is None for e in s.creators.values())
    if nobody and workflow.patched(NO_WAIT_WITHOUT_CREATORS_PATCH):
        return False  # mount_refusals would refuse every report: nobody may mount
    stage_attributes(s.stage.value, closes_at)  # an operator's filter on the next deadline finds it
    workflow.set_current_details(with_deadline(
        f"task {s.task_id}: ended ({s.end_reason}): every piece settled or closed; mounts inside the period may "
        f"still be reported until {business_time(closes_at)} (AM-6), then the rest is refunded",
        "late mount reports close", closes_at))
    try:
        await workflow.wait_condition(lambda: s.pieces_open > 0 or run_length.reached(s.messages_this_run),
                                      timeout=until(closes_at),
                                      timeout_summary=f"late mount reports close {business_time(closes_at)}")
    except TimeoutError:
        return False
    return True
