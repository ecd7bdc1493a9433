"""The register of a mount task's creators and pieces in the database (issue 21), as MountTaskWorkflow asks it:
local activities (one marker event each) for joins, mounts, revocations and the open pieces' windows, and one
activity that tells every open piece of the task, paging through the register itself."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from pydantic import BaseModel

from ports.port import ActivityPort
from workflows.contract import mount_task as c


class RegisteredPiece(BaseModel):
    piece: c.PieceEntry
    seq: int


class Joined(BaseModel):
    entry: c.CreatorEntry | None  # None: refused
    already_joined: bool = False
    # "JoinRefused" (the creator's eligibility), or the period is closed ("PeriodClosed"; "ValueError" in answers
    # recorded before the refusal had a type): the task refuses both with JoinRefused.
    refusal_kind: str | None = None
    reasons: list[str] = []


class JoinCreator(BaseModel):
    """AM-4, AM-5 in one local activity: `period_closed`, the task's refusal of a new join at `now` (None: open)."""

    task_id: str
    creator_id: str
    now: datetime
    period_closed: str | None


class PieceLookup(BaseModel):
    task_id: str
    content_id: str
    creator_id: str | None = None  # also answer with this creator's entry


class PieceFound(BaseModel):
    piece: RegisteredPiece | None
    creator: c.CreatorEntry | None = None


class MountRecord(BaseModel):
    task_id: str
    content_id: str
    creator_id: str
    mounted_at: datetime


class AcceptMount(BaseModel):
    """AM-6 in one local activity: the task as it is (a summary: its register is here), the report, and what the
    run decided (the workflow clock, late reports accepted, R-12 penalties checked)."""

    state: c.MountTaskState
    request: c.ReportMountRequest
    now: datetime
    late_reports: bool
    clock_skew_seconds: float
    check_penalties: bool


class MountAnswer(BaseModel):
    piece: RegisteredPiece | None = None  # the piece recorded under this content id (before, or by this call)
    existed: bool = False  # recorded before this call
    creator: c.CreatorEntry | None = None  # the reporting creator's entry
    refusals: list[str] = []


class RevokeOne(BaseModel):
    task_id: str
    content_id: str
    revoked_at: datetime


class RevokeCreator(BaseModel):
    """A revocation of all (AM-15), or with `case_id` a removal by a violation case (R-12) whose pieces are
    unmounted at `pieces_at` (the notice instant, never later than `now`)."""

    task_id: str
    creator_id: str
    now: datetime
    case_id: str | None = None
    pieces_at: datetime | None = None


class CreatorRevoked(BaseModel):
    entry: c.CreatorEntry | None  # after the change (None: never joined)
    changed: bool
    revoked_at: datetime | None = None  # when the pieces listed were unmounted
    content_ids: list[str] = []


class WithdrawRemoval(BaseModel):
    task_id: str
    creator_id: str
    case_id: str


class WindowsRequest(BaseModel):
    task_id: str
    cut_at: datetime  # the end of the task period (or its end so far): each billing period is cut there (AM-8)
    now: datetime
    up_to_seq: int
    held_content_ids: list[str] = []


class Windows(BaseModel):
    """Of the task's open pieces: when the first window closes, the next one closing after `now`, and how many are
    not held (AM-13: a refund part is due only when every open piece is held)."""

    first_closes_at: datetime | None
    next_closes_at: datetime | None
    open_pieces: int
    open_not_held: int


class SignalOpenPieces(BaseModel):
    task_id: str
    up_to_seq: int  # pieces the task has counted: a row whose workflow was never started is not waited for
    signal: str
    payload: dict[str, Any]


PIECE = ActivityPort[PieceLookup, PieceFound]("task_register.piece", PieceFound)
JOIN_CREATOR = ActivityPort[JoinCreator, Joined]("task_register.join_creator", Joined)
ACCEPT_MOUNT = ActivityPort[AcceptMount, MountAnswer]("task_register.accept_mount", MountAnswer)
REVOKE_CONTENT = ActivityPort[RevokeOne, PieceFound]("task_register.revoke_content", PieceFound)
REVOKE_CREATOR = ActivityPort[RevokeCreator, CreatorRevoked]("task_register.revoke_creator", CreatorRevoked)
WITHDRAW_REMOVAL = ActivityPort[WithdrawRemoval, bool]("task_register.withdraw_removal", bool)
WINDOWS = ActivityPort[WindowsRequest, Windows]("task_register.windows", Windows)
# Pages through every open piece of the task (heartbeating after each page): a long task takes minutes.
SIGNAL_OPEN_PIECES = ActivityPort[SignalOpenPieces, int](
    "task_register.signal_open_pieces", int, timeout=timedelta(hours=1), heartbeat=timedelta(seconds=30))
