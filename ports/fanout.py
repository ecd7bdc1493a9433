"""Starting and signalling a task's content workflows through a client (activities/fanout.py): a task may have
more pieces than it could hold as children or signal one by one from its own history."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from pydantic import BaseModel

from ports.port import ActivityPort
from workflows.contract.mounted_content import MountedContentInput


class StartContentResult(BaseModel):
    workflow_id: str


class SignalContentsRequest(BaseModel):
    task_id: str
    content_ids: list[str]
    signal: str
    payload: dict[str, Any]


class SignalContentsResult(BaseModel):
    signalled: int
    already_closed: int


START_CONTENT_WORKFLOW = ActivityPort[MountedContentInput, StartContentResult](
    "fanout.start_content_workflow", StartContentResult)
# A batch of signals heartbeats after each one; the workflow reads nothing back (result_type None).
SIGNAL_CONTENTS = ActivityPort[SignalContentsRequest, object](
    "fanout.signal_contents", None, timeout=timedelta(minutes=5), heartbeat=timedelta(seconds=30))
