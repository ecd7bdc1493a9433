"""Workflow types, ids, message names and search attributes: the stable names of the contract."""

from __future__ import annotations

from typing import Any

from temporalio.common import SearchAttributeKey

MOUNT_TASK_WORKFLOW = "MountTaskWorkflow"
MOUNTED_CONTENT_WORKFLOW = "MountedContentWorkflow"
XINGGUANG_TASK_WORKFLOW = "XingguangTaskWorkflow"
XINGGUANG_CLAIMS_WORKFLOW = "XingguangClaimsWorkflow"  # XG-10 / R-14: claims after the task closed
VIOLATION_CASE_WORKFLOW = "ViolationCaseWorkflow"
DATA_SUBJECT_REQUEST_WORKFLOW = "DataSubjectRequestWorkflow"
ACCOUNT_WORKFLOW = "AccountWorkflow"
SECURITY_INCIDENT_WORKFLOW = "SecurityIncidentWorkflow"
# Error type of an update refused while a run drains before continuing as new: send it again (same workflow id).
CONTINUE_AS_NEW_DUE = "ContinueAsNewDue"


def mount_task_id(task_id: str) -> str:
    return f"mount-task:{task_id}"


def mounted_content_id(task_id: str, content_id: str) -> str:
    return f"mount-content:{task_id}:{content_id}"


def xingguang_task_id(task_id: str) -> str:
    return f"xg-task:{task_id}"


def xingguang_claims_id(task_id: str) -> str:
    return f"xg-claims:{task_id}"


def violation_case_id(case_id: str) -> str:
    return f"violation:{case_id}"


def data_subject_request_id(request_id: str) -> str:
    return f"dsr:{request_id}"


def account_id(account_id: str) -> str:  # named for AccountWorkflow: the schema index finds ids by type name
    return f"account:{account_id}"


def security_incident_id(incident_id: str) -> str:
    return f"incident:{incident_id}"


class SA:
    """Search attributes an operator filters on in the Temporal UI (upserted at every stage change)."""

    STAGE = SearchAttributeKey.for_keyword("stage")
    TASK_ID = SearchAttributeKey.for_keyword("task_id")
    CONTENT_ID = SearchAttributeKey.for_keyword("content_id")
    CREATOR_ID = SearchAttributeKey.for_keyword("creator_id")
    CLIENT_ID = SearchAttributeKey.for_keyword("client_id")
    NEXT_DEADLINE_AT = SearchAttributeKey.for_datetime("next_deadline_at")
    ESCALATED = SearchAttributeKey.for_bool("escalated")
    # A piece with a fee dispute open (AM-11, AM-17), or whose settlement or counting a penalty holds (AM-19, R-12):
    # findable while its publicity window is still open, before the stage says so.
    OPEN_DISPUTE = SearchAttributeKey.for_bool("open_dispute")
    HELD = SearchAttributeKey.for_bool("held")


ALL_SEARCH_ATTRIBUTES: list[SearchAttributeKey[Any]] = [
    SA.STAGE,
    SA.TASK_ID,
    SA.CONTENT_ID,
    SA.CREATOR_ID,
    SA.CLIENT_ID,
    SA.NEXT_DEADLINE_AT,
    SA.ESCALATED,
    SA.OPEN_DISPUTE,
    SA.HELD,
]
