"""The main sites (short-video and news apps) as the workflows see them: taking a piece's component down."""

from __future__ import annotations

from datetime import datetime

from pydantic import AwareDatetime, BaseModel

from ports.port import ActivityPort

# The reason given when a refused mount report is taken down (workflows/mount_reports.py).
REFUSED_MOUNT = "mount refused: "


class UnmountRequest(BaseModel):
    task_id: str
    content_id: str
    unmounted_at: AwareDatetime
    reason: str


class UnmountResult(BaseModel):
    unmounted_at: datetime
    reason: str
    already_unmounted: bool


UNMOUNT = ActivityPort[UnmountRequest, UnmountResult]("main_site.unmount", UnmountResult)
