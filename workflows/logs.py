"""Log lines from workflow code (issue 9 item 4): bound to the workflow's ids, silent during replay.

`wlog()` gives a structlog-style logger bound with `workflow_id`, `run_id`, `workflow_type` and the business ids read
from the workflow id (`task_id`, `content_id`, `case_id`, ...); while the workflow replays history it gives a
logger that drops every line, so a line is written once, by the run that lived it. The SDK's `workflow.logger`
(used by older code) is replay-safe too; the worker's log configuration (telemetry.py) adds the same ids to its
lines and to activities' lines with `business_ids`.
"""

from __future__ import annotations

import re
from typing import Any

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from ports.logs import FIELDS, LOGGER, BoundLog
    from workflows.contract import names

__all__ = ["FIELDS", "LOGGER", "BoundLog", "business_ids", "wlog"]

_ID = r"[A-Za-z0-9_.\-]+"  # workflows.contract.common.Identifier: never a ':'
_FORMS: list[tuple[re.Pattern[str], str]] = [
    (re.compile("^" + form(*(f"(?P<{field}>{_ID})" for field in fields)) + "$"), workflow_type)
    for form, fields, workflow_type in (
        (names.mount_task_id, ("task_id",), names.MOUNT_TASK_WORKFLOW),
        (names.mounted_content_id, ("task_id", "content_id"), names.MOUNTED_CONTENT_WORKFLOW),
        (names.xingguang_task_id, ("task_id",), names.XINGGUANG_TASK_WORKFLOW),
        (names.violation_case_id, ("case_id",), names.VIOLATION_CASE_WORKFLOW),
        (names.data_subject_request_id, ("request_id",), names.DATA_SUBJECT_REQUEST_WORKFLOW),
        (names.account_id, ("account_id",), names.ACCOUNT_WORKFLOW),
        (names.security_incident_id, ("incident_id",), names.SECURITY_INCIDENT_WORKFLOW),
    )
]


def business_ids(workflow_id: str | None) -> dict[str, str]:
    """The business ids a workflow id carries: `mount-content:t1:c1` -> task_id=t1, content_id=c1."""
    if workflow_id:
        for pattern, _ in _FORMS:
            if matched := pattern.match(workflow_id):
                return matched.groupdict()
    return {}


def wlog(**fields: Any) -> BoundLog:
    """This workflow's logger: `wlog().info("piece settled", fee_fen=1000)`; silent while replaying history."""
    if workflow.unsafe.is_replaying_history_events():
        return BoundLog(silent=True)
    info = workflow.info()
    return BoundLog({"workflow_id": info.workflow_id, "run_id": info.run_id,
                        "workflow_type": info.workflow_type, **business_ids(info.workflow_id), **fields})
