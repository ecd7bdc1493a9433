"""The workflow classes this project runs: the worker registers them (worker.py), the contract describes their
messages (workflows/contract/schemas.py), the history guard checks each has recorded histories."""

from __future__ import annotations

from collections.abc import Sequence

from workflows.account import AccountWorkflow
from workflows.data_subject_request import DataSubjectRequestWorkflow
from workflows.mount_task import MountTaskWorkflow
from workflows.mounted_content import MountedContentWorkflow
from workflows.security_incident import SecurityIncidentWorkflow
from workflows.violation_case import ViolationCaseWorkflow
from workflows.xingguang_late_claims import XingguangClaimsWorkflow
from workflows.xingguang_task import XingguangTaskWorkflow

WORKFLOWS: Sequence[type] = (MountTaskWorkflow, MountedContentWorkflow, XingguangTaskWorkflow,
                              ViolationCaseWorkflow,
                              DataSubjectRequestWorkflow, AccountWorkflow, SecurityIncidentWorkflow,
                              XingguangClaimsWorkflow)
