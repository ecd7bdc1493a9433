"""MountTaskWorkflow with its register of pieces and creators in the database (issue 21), for runs that record
REGISTER_PATCH. The task carries counts and sums only (its state does not grow with its pieces); who joined, which
content is mounted by whom, and what was revoked are asked of the register (activities/task_register.py) through
local activities: one marker event each, so a mount costs about what it cost before.

Refusals stay synchronous and complete: a validator cannot read the database, so the handler asks the register
before it answers, and refuses with the same type and message the validator gives (workflows/refusals.py) and
changes nothing. A repeated report gets the first answer, read from the register.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from temporalio import workflow
from temporalio.exceptions import ApplicationError

with workflow.unsafe.imports_passed_through():
    from ports import task_register as register
    from ports.task_register import (
        AcceptMount,
        CreatorRevoked,
        JoinCreator,
        Joined,
        MountAnswer,
        PieceFound,
        PieceLookup,
        RegisteredPiece,
        RevokeCreator,
        RevokeOne,
        SignalOpenPieces,
        WindowsRequest,
        WithdrawRemoval,
    )
    from workflows.contract import mount_task as c
    from workflows.rules.billing import billing_period_end, publicity_window_closes_at
    from workflows.rules.clock import business_time
    from workflows.rules.mounts import revocation_instant_refusals

from workflows.refusals import ALREADY_MOUNTED, REVOCATION_REFUSED, refused

# Runs started with this marker keep their register in the database; runs before it (and every run they continue
# as new into: MountTaskState.register_in_db) keep it in their state.
REGISTER_PATCH = "task-register-in-database"
LOOK_AFTER = timedelta(seconds=2)
LOOK_AT_LEAST_EVERY = timedelta(hours=1)


def unchanged_refusal(s: c.MountTaskState, kind: str, message: str) -> ApplicationError:
    """The refusal the validator makes when the register is in the state: the same type and message.
    Made by a handler, it is written to the history (a validator's is not): it counts as a message of the run, so
    that a stream of refused calls still makes the run continue as new."""
    s.messages_this_run += 1
    return refused(kind, message)


async def join(s: c.MountTaskState, creator_id: str, period_closed: str | None) -> Joined:
    """AM-4, AM-5: the register's answer (joined, joined before, or refused with its kind and reasons)."""
    joined = await register.JOIN_CREATOR.local(JoinCreator(
        task_id=s.task_id, creator_id=creator_id, now=workflow.now(), period_closed=period_closed))
    if joined.entry is not None and not joined.already_joined:
        s.creators_joined += 1
    return joined


async def piece(s: c.MountTaskState, content_id: str, creator_id: str | None = None) -> PieceFound:
    found = await register.PIECE.local(PieceLookup(task_id=s.task_id, content_id=content_id, creator_id=creator_id))
    if found.piece is not None:
        count(s, found.piece)
    return found


async def accept_mount(s: c.MountTaskState, request: c.ReportMountRequest, *, late_reports: bool,
                       clock_skew: timedelta, check_penalties: bool) -> tuple[MountAnswer, bool]:
    """The register's answer to a report (the piece recorded, or every refusal), and whether the piece is new to
    the task (counted now)."""
    answer = await register.ACCEPT_MOUNT.local(AcceptMount(
        state=s, request=request, now=workflow.now(), late_reports=late_reports,
        clock_skew_seconds=clock_skew.total_seconds(), check_penalties=check_penalties))
    return answer, answer.piece is not None and count(s, answer.piece)


def count(s: c.MountTaskState, registered: RegisteredPiece) -> bool:
    """Pieces are numbered 1, 2, ... in the register: the task has as many as the highest number it has seen (a
    mount whose answer was lost with a failed workflow task is counted when its number is seen again). True when
    this piece was not counted before."""
    if registered.seq <= s.pieces_count:
        return False
    s.pieces_open += registered.seq - s.pieces_count
    s.pieces_count = registered.seq
    return True


def conflict(s: c.MountTaskState, request: c.ReportMountRequest, found: c.PieceEntry) -> ApplicationError | None:
    """AM-6: a content id is mounted once in a task; the same report again is answered as the first."""
    if found.creator_id == request.creator_id and found.mounted_at == request.mounted_at:
        return None
    return unchanged_refusal(s, ALREADY_MOUNTED,
                             f"content_id: {request.content_id} is already mounted in task {s.task_id} "
                             f"(at {_business(found.mounted_at)} for creator {found.creator_id})")


async def revoke_content(s: c.MountTaskState, request: c.RevokeContentRequest) -> tuple[c.PieceEntry, bool]:
    """AM-14, with the validator's refusals (asked of the register first). True when this call unmounted it."""
    found = (await piece(s, request.content_id)).piece
    if found is None:
        raise unchanged_refusal(s, REVOCATION_REFUSED,
                                f"content_id: {request.content_id} is not mounted in task {s.task_id}")
    if found.piece.creator_id != request.creator_id:
        raise unchanged_refusal(s, REVOCATION_REFUSED,
                                f"creator_id: only the creator who owns content {request.content_id} may revoke it")
    if found.piece.status in ("settled", "closed"):
        raise unchanged_refusal(s, REVOCATION_REFUSED,
                                f"content_id: {request.content_id} is already {found.piece.status}")
    if found.piece.revoked_at is not None:
        return found.piece, False
    if reasons := revocation_instant_refusals(request.revoked_at, workflow.now(), found.piece.mounted_at):
        raise unchanged_refusal(s, REVOCATION_REFUSED, "; ".join(reasons))
    revoked = await register.REVOKE_CONTENT.local(RevokeOne(
        task_id=s.task_id, content_id=request.content_id, revoked_at=request.revoked_at or workflow.now()))
    if revoked.piece is None:  # found above: the register revokes it
        raise unchanged_refusal(s, REVOCATION_REFUSED, f"content_id: {request.content_id} is not mounted in task "
                                f"{s.task_id}")
    return revoked.piece.piece, revoked.piece.piece.revoked_at is not None


async def revoke_creator(s: c.MountTaskState, creator_id: str, case_id: str | None = None,
                         pieces_at: datetime | None = None, at: datetime | None = None) -> CreatorRevoked:
    """AM-15 (all of a creator's pieces, revoked `at` the app's instant when given) or, with case_id, R-12's
    removal."""
    return await register.REVOKE_CREATOR.local(RevokeCreator(
        task_id=s.task_id, creator_id=creator_id, now=at or workflow.now(), case_id=case_id, pieces_at=pieces_at))


async def withdraw_removal(s: c.MountTaskState, signal: c.RemovalWithdrawn) -> None:
    await register.WITHDRAW_REMOVAL.local(WithdrawRemoval(
        task_id=s.task_id, creator_id=signal.creator_id, case_id=signal.case_id))


async def tell_open_pieces(s: c.MountTaskState, signal: str, payload: dict[str, Any]) -> None:
    """AM-7: every open piece hears that the period ended; the activity pages through the register itself."""
    await register.SIGNAL_OPEN_PIECES(
        SignalOpenPieces(task_id=s.task_id, up_to_seq=s.pieces_count, signal=signal, payload=payload))
    s.end_notified_count = s.pieces_count


def closed(s: c.MountTaskState, settled: bool, fee_fen: int, platform_fee_fen: int) -> None:
    """A closure read from the ledger (one row per piece there: content_closures is unique by content)."""
    s.paid_to_creators_fen += fee_fen
    s.platform_fees_fen += platform_fee_fen
    s.pieces_open -= 1
    s.pieces_closed += 1
    if settled:
        s.pieces_settled += 1


def _business(instant: datetime) -> str:
    return business_time(instant)


class RegisterLooks:
    """closure_looks.ClosureLooks for a task whose register is in the database: the same decisions, with the open
    pieces' windows asked of the register at each look instead of kept in memory."""

    def __init__(self, s: c.MountTaskState, published: c.Published) -> None:
        self.s, self.published = s, published
        self.pause = LOOK_AFTER
        self.upcoming: datetime | None = None
        self.open_not_held: int | None = None

    def window_closes_at(self, mounted_at: datetime) -> datetime:
        cut_at = self.s.ended_at or self.published.period_end_at
        return publicity_window_closes_at(billing_period_end(mounted_at, cut_at))

    def add(self, mounted_at: datetime) -> datetime:
        closes_at = self.window_closes_at(mounted_at)
        if self.upcoming is None or closes_at < self.upcoming:
            self.upcoming = closes_at
        return closes_at

    async def next_look(self, now: datetime, found: int) -> datetime | None:
        s = self.s
        if s.pieces_open <= 0:
            return None
        cut_at = s.ended_at or self.published.period_end_at
        windows = await register.WINDOWS.local(WindowsRequest(
            task_id=s.task_id, cut_at=cut_at, now=now, up_to_seq=s.pieces_count,
            held_content_ids=s.held_content_ids))
        self.upcoming, self.open_not_held = windows.next_closes_at, windows.open_not_held
        overdue = windows.first_closes_at is not None and windows.first_closes_at <= now
        if not found and not overdue:
            self.pause = LOOK_AFTER
            return (self.upcoming or now) + LOOK_AFTER
        self.pause = LOOK_AFTER if found else min(self.pause * 2, LOOK_AT_LEAST_EVERY)
        look_at = now + self.pause
        return look_at if self.upcoming is None else min(look_at, self.upcoming + LOOK_AFTER)

    def next_window(self, now: datetime) -> datetime | None:
        return self.upcoming if self.upcoming is not None and self.upcoming > now else None
