"""The task register's activities (activities/task_register.py): local activities of MountTaskWorkflow, and the
fan-out that tells every open piece of a task, reading the register page by page."""

from __future__ import annotations

from typing import Any

from temporalio import activity

from activities.task_register import TaskRegister
from ports import task_register as port
from ports.fanout import SignalContentsRequest
from ports.task_register import (
    AcceptMount,
    CreatorRevoked,
    JoinCreator,
    Joined,
    MountAnswer,
    PieceFound,
    PieceLookup,
    RevokeCreator,
    RevokeOne,
    SignalOpenPieces,
    Windows,
    WindowsRequest,
    WithdrawRemoval,
)


class TaskRegisterActivities:
    """Called by MountTaskWorkflow as local activities (one marker event each, no round trip to the server)."""

    def __init__(self, register: TaskRegister, directory: Any) -> None:
        self.register = register
        self.directory = directory  # activities.directory.Directory: R-12 penalties of a reporting creator

    @activity.defn(name=port.PIECE.name)
    def piece(self, request: PieceLookup) -> PieceFound:
        with self.register.db.transaction() as tx:
            piece = self.register.piece(tx, request.task_id, request.content_id)
            creator = (self.register.creator(tx, request.task_id, request.creator_id)
                       if request.creator_id is not None else None)
        return PieceFound(piece=piece, creator=creator)

    @activity.defn(name=port.JOIN_CREATOR.name)
    def join_creator(self, request: JoinCreator) -> Joined:
        return self.register.join_creator(request, self.directory)

    @activity.defn(name=port.ACCEPT_MOUNT.name)
    def accept_mount(self, request: AcceptMount) -> MountAnswer:
        return self.register.accept_mount(request, self.directory)

    @activity.defn(name=port.REVOKE_CONTENT.name)
    def revoke_content(self, request: RevokeOne) -> PieceFound:
        return PieceFound(piece=self.register.revoke_content(request))

    @activity.defn(name=port.REVOKE_CREATOR.name)
    def revoke_creator(self, request: RevokeCreator) -> CreatorRevoked:
        return self.register.revoke_creator(request)

    @activity.defn(name=port.WITHDRAW_REMOVAL.name)
    def withdraw_removal(self, request: WithdrawRemoval) -> bool:
        return self.register.withdraw_removal(request)

    @activity.defn(name=port.WINDOWS.name)
    def windows(self, request: WindowsRequest) -> Windows:
        return self.register.windows(request)

    def all(self) -> list[Any]:
        return [self.piece, self.join_creator, self.accept_mount, self.revoke_content, self.revoke_creator,
                self.withdraw_removal, self.windows]


class RegisterFanout:
    """Tells every open piece of a task (AM-7: the period ended), reading the register page by page: the task's
    history holds one activity, whatever the number of pieces. Resumes after the last page it heartbeated."""

    PAGE = 500

    def __init__(self, register: TaskRegister, fanout: Any) -> None:
        self.register = register
        self.fanout = fanout  # activities.fanout.FanoutActivities

    @activity.defn(name=port.SIGNAL_OPEN_PIECES.name)
    async def signal_open_pieces(self, request: SignalOpenPieces) -> int:
        # Resumes after the last page heartbeated; signal_contents heartbeats its own counts within a page, and a
        # retry that finds one of those starts over (a signal told twice changes nothing).
        details = activity.info().heartbeat_details
        after = int(details[1]) if len(details) == 2 and details[0] == "after" else 0
        told = 0
        while True:
            page = self.register.open_pieces_after(request.task_id, after, request.up_to_seq, self.PAGE)
            if not page:
                return told
            await self.fanout.signal_contents(SignalContentsRequest(
                task_id=request.task_id, content_ids=[cid for _, cid in page], signal=request.signal,
                payload=request.payload))
            after, told = page[-1][0], told + len(page)
            activity.heartbeat("after", after)
