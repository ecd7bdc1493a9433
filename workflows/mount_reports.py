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

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from ports import main_site
    from ports.main_site import REFUSED_MOUNT, UnmountRequest
    from workflows.contract import mount_task as c
    from workflows.rules.clock import business_time, with_deadline
    from workflows.rules.mounts import (
        LATE_MOUNT_REPORTS,
        late_reports_close_at,
        mount_refusals,
        period_cut_at,
    )

from workflows.common import RunLength, stage_attributes, until, wait_summary

__all__ = ["LATE_MOUNTS_PATCH", "LATE_MOUNT_REPORTS", "MOUNT_REFUSED", "NO_WAIT_WITHOUT_CREATORS_PATCH",
           "late_reports_close_at", "mount_refusals", "period_cut_at", "unmount_refused", "wait_for_late_mounts"]

# Runs that record this marker accept late mount reports and wait for them before refunding; older runs refuse
# every mount after the period, and refund as soon as their pieces have closed.
LATE_MOUNTS_PATCH = "am-6-late-mount-reports"
MOUNT_REFUSED = "MountRefused"
# Runs that record this marker do not wait for late reports when no creator of the task could still have a mount
# accepted (none joined, or every one revoked or was removed): a cancelled task nobody joined refunds at once.
NO_WAIT_WITHOUT_CREATORS_PATCH = "am-6-no-late-wait-without-creators"


async def unmount_refused(task_id: str, request: c.ReportMountRequest, reasons: list[str]) -> None:
    """AM-6 reading: the component of a refused mount comes down on the main site (idempotent)."""
    await main_site.UNMOUNT(UnmountRequest(task_id=task_id, content_id=request.content_id, unmounted_at=workflow.now(),
                                           reason=f"{REFUSED_MOUNT}{reasons[0]}"))


async def wait_for_late_mounts(s: c.MountTaskState, published: c.Published, run_length: RunLength) -> bool:
    """Every piece has closed: waits until a late mount opens a piece, the run is due to continue as new, or the
    late reports can no longer come. True when there is more to do (read closures again, or continue as new)."""
    closes_at = late_reports_close_at(s, published)
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
                                      timeout_summary=wait_summary("late mount reports close", closes_at))
    except TimeoutError:
        return False
    return True
