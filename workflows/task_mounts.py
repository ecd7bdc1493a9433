"""Mounts reported to a mount task (AM-6), a part of MountTaskWorkflow (mount_task.py): `report_mount` accepts a
piece and starts its MountedContentWorkflow, or refuses the mount and takes the refused component down
(mount_reports.py for the rules, task_penalties.py for R-12); with the register in the database
(task_register.py) the register answers."""

from __future__ import annotations

from collections.abc import Awaitable
from datetime import datetime

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from ports import fanout
    from workflows.contract import mount_task as c
    from workflows.contract.mounted_content import ContentRevoked, MountedContentInput, TaskPeriodEnded
    from workflows.rules.billing import billing_period_end
    from workflows.rules.clock import business_time
    from workflows.rules.mounts import CLOCK_SKEW

from workflows import metrics
from workflows import task_register as reg
from workflows.closure_looks import LOOK_AFTER, ClosureLooks
from workflows.mount_reports import MOUNT_REFUSED, mount_refusals, period_cut_at, unmount_refused
from workflows.refusals import ALREADY_MOUNTED, refused
from workflows.task_penalties import MOUNT_PENALTY_PATCH, PENALIZED_MOUNT_UNMOUNTED_PATCH


class TaskMounts:
    s: c.MountTaskState
    _looks: ClosureLooks | reg.RegisterLooks | None
    _look_at: datetime | None
    _look_moved: bool
    _late_mounts: bool

    def _signal_pieces(self, content_ids: list[str], signal: str, payload: ContentRevoked | TaskPeriodEnded
                       ) -> Awaitable[None]:
        raise NotImplementedError  # task_closures.py

    def _penalty_refusals(self, request: c.ReportMountRequest) -> Awaitable[list[str]]:
        raise NotImplementedError  # task_penalties.py

    def _refuse_while_draining(self, update: str) -> None:
        raise NotImplementedError  # mount_task.py

    # ---------------------------------------------------------------- mounting (AM-6)
    @workflow.update(name="report_mount")
    async def report_mount(self, request: c.ReportMountRequest) -> c.MountResult:
        s = self.s
        if s.register_in_db:
            return await self._report_mount_in_register(request)
        piece = s.pieces.get(request.content_id)
        late = piece is None and s.stage is c.TaskStage.ENDED
        if piece is None and (reasons := mount_refusals(s, request, workflow.now(), late_reports=self._late_mounts,
                                                        clock_skew=CLOCK_SKEW)):
            s.messages_this_run += 1
            await unmount_refused(s.task_id, request, reasons)  # AM-6 reading: the refused component comes down
            raise refused(MOUNT_REFUSED, reasons)
        if (p := s.published) is None:  # mount_refusals refused it already; said for the type's sake
            raise refused(MOUNT_REFUSED, f"cannot mount: task {s.task_id} is not published")
        if piece is None and (reasons := await self._penalty_refusals(request)):  # R-12 (task_penalties.py)
            s.messages_this_run += 1
            if workflow.patched(PENALIZED_MOUNT_UNMOUNTED_PATCH):
                await unmount_refused(s.task_id, request, reasons)  # AM-6 reading, as for every refused mount
            raise refused(MOUNT_REFUSED, reasons)
        piece = s.pieces.get(request.content_id)  # the same report may have been accepted meanwhile
        if piece is None:
            piece = c.PieceEntry(content_id=request.content_id, creator_id=request.creator_id,
                                 mounted_at=request.mounted_at)
            s.pieces[request.content_id] = piece
            s.pieces_open += 1
            s.messages_this_run += 1
            metrics.piece_mounted("mount", piece.content_id)
            if isinstance(self._looks, ClosureLooks):  # the run's loop looks at the ledger once its window closes
                look_at = self._looks.add(piece) + LOOK_AFTER
                if self._look_at is None or look_at < self._look_at:
                    self._look_at, self._look_moved = look_at, True
        return await self._start_piece(piece, s.creators[piece.creator_id].payee_account, p, late)

    async def _report_mount_in_register(self, request: c.ReportMountRequest) -> c.MountResult:
        """AM-6 with the register in the database (workflows/task_register.py)."""
        s = self.s
        answer, new = await reg.accept_mount(s, request, late_reports=self._late_mounts, clock_skew=CLOCK_SKEW,
                                             check_penalties=workflow.patched(MOUNT_PENALTY_PATCH))
        if answer.refusals:  # AM-6 (mount_reports.py) or R-12 (task_penalties.py), as the register answered them
            s.messages_this_run += 1
            await unmount_refused(s.task_id, request, answer.refusals)  # AM-6 reading: the component comes down
            raise refused(MOUNT_REFUSED, answer.refusals)
        if (registered := answer.piece) is None:  # the register answers a piece or refusals
            raise refused(MOUNT_REFUSED, f"content_id: {request.content_id} was not registered")
        late = not answer.existed and s.stage is c.TaskStage.ENDED
        if new:
            s.messages_this_run += 1
            metrics.piece_mounted("mount", request.content_id)
        if problem := reg.conflict(s, request, registered.piece):
            raise problem  # mounted meanwhile for another creator or instant: the accepted one stays up
        if (p := s.published) is None or answer.creator is None:  # the register refused it already otherwise
            raise refused(MOUNT_REFUSED, f"cannot mount: task {s.task_id} is not published"
                          if p is None else f"creator_id: creator {request.creator_id} has not joined")
        piece = registered.piece
        if isinstance(self._looks, reg.RegisterLooks):  # the run's loop looks once this piece's window closes
            look_at = self._looks.add(piece.mounted_at) + LOOK_AFTER
            if self._look_at is None or look_at < self._look_at:
                self._look_at, self._look_moved = look_at, True
        return await self._start_piece(piece, answer.creator.payee_account, p, late)

    async def _start_piece(self, piece: c.PieceEntry, payee_account: str, p: c.Published, late: bool
                           ) -> c.MountResult:
        """Starts the piece's workflow (once: its workflow id is its key), and tells a piece reported after the end
        that the period has ended (AM-6, AM-7)."""
        s = self.s
        content_input = MountedContentInput(
            task_id=s.task_id, content_id=piece.content_id, creator_id=piece.creator_id, client_id=p.client_id,
            payee_account=payee_account, price_fen=p.price_fen, mounted_at=piece.mounted_at,
            task_period_end_at=period_cut_at(s, p))
        started = await fanout.START_CONTENT_WORKFLOW(content_input)
        if late and s.ended_at is not None and s.end_reason is not None:
            await self._signal_pieces([piece.content_id], "task_period_ended",
                                      TaskPeriodEnded(ended_at=s.ended_at, reason=s.end_reason.value))
        return c.MountResult(content_id=piece.content_id, content_workflow_id=started.workflow_id,
                             billing_period_ends_at=billing_period_end(piece.mounted_at, period_cut_at(s, p)))

    @report_mount.validator
    def validate_report_mount(self, request: c.ReportMountRequest) -> None:
        s = self.s
        self._refuse_while_draining("report_mount")
        if s.register_in_db:
            return  # the register answers in the handler (a repeated report, or content already mounted)
        if (piece := s.pieces.get(request.content_id)) is not None:
            if piece.creator_id == request.creator_id and piece.mounted_at == request.mounted_at:
                return  # the same report again: answered with the same result
            raise refused(ALREADY_MOUNTED, f"content_id: {request.content_id} is already mounted in task {s.task_id} "
                                           f"(at {business_time(piece.mounted_at)} for creator {piece.creator_id})")
        # Every other refusal is made by the handler, which takes the refused component down (mount_reports.py).
