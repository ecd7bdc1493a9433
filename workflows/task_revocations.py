"""Revocations in a mount task (AM-14: one piece; AM-15: all of a creator's pieces), a part of MountTaskWorkflow
(mount_task.py): the pieces are unmounted and told; with the register in the database (task_register.py) the
refusals are asked of it by the handler, otherwise the validators refuse from the task's state."""

from __future__ import annotations

from collections.abc import Awaitable

from temporalio import workflow
from temporalio.exceptions import ApplicationError

with workflow.unsafe.imports_passed_through():
    from workflows.contract import mount_task as c
    from workflows.contract.mounted_content import ContentRevoked, TaskPeriodEnded
    from workflows.rules.mounts import revocation_instant_refusals

from workflows import task_register as reg
from workflows.refusals import REVOCATION_REFUSED, refused


class TaskRevocations:
    s: c.MountTaskState

    def _signal_pieces(self, content_ids: list[str], signal: str, payload: ContentRevoked | TaskPeriodEnded
                       ) -> Awaitable[None]:
        raise NotImplementedError

    @workflow.update(name="revoke_content")
    async def revoke_content(self, request: c.RevokeContentRequest) -> c.RevocationResult:
        return await self._revoke_content(request)

    async def _revoke_content(self, request: c.RevokeContentRequest) -> c.RevocationResult:
        if self.s.register_in_db:
            piece, changed = await reg.revoke_content(self.s, request)  # the validator's refusals, from the register
            if (revoked_at := piece.revoked_at) is None:  # the register revokes it or refuses
                raise reg.unchanged_refusal(self.s, REVOCATION_REFUSED, f"content_id: {request.content_id} "
                                            "was not revoked")
            if changed:
                self.s.messages_this_run += 1
                await self._signal_pieces([piece.content_id], "content_revoked",
                                          ContentRevoked(revoked_at=revoked_at, scope="content"))
            return c.RevocationResult(creator_id=request.creator_id, revoked_at=revoked_at,
                                      content_ids=[piece.content_id])
        piece = self.s.pieces[request.content_id]
        if piece.revoked_at is None:
            piece.revoked_at = request.revoked_at or workflow.now()
            piece.status = "unmounted"
            self.s.messages_this_run += 1
            await self._signal_pieces([piece.content_id], "content_revoked",
                                      ContentRevoked(revoked_at=piece.revoked_at, scope="content"))
        return c.RevocationResult(creator_id=request.creator_id, revoked_at=piece.revoked_at,
                                  content_ids=[piece.content_id])

    @revoke_content.validator
    def validate_revoke_content(self, request: c.RevokeContentRequest) -> None:
        if reasons := revocation_instant_refusals(request.revoked_at, workflow.now()):
            raise refused(REVOCATION_REFUSED, reasons)
        if self.s.register_in_db:
            return  # asked of the register by the handler (task_register.revoke_content)
        piece = self.s.pieces.get(request.content_id)
        if piece is None:
            raise refused(REVOCATION_REFUSED,
                          f"content_id: {request.content_id} is not mounted in task {self.s.task_id}")
        if piece.creator_id != request.creator_id:
            raise refused(REVOCATION_REFUSED,
                          f"creator_id: only the creator who owns content {request.content_id} may revoke it")
        if piece.status in ("settled", "closed"):
            raise refused(REVOCATION_REFUSED, f"content_id: {request.content_id} is already {piece.status}")
        if reasons := revocation_instant_refusals(request.revoked_at, workflow.now(), piece.mounted_at):
            raise refused(REVOCATION_REFUSED, reasons)

    @workflow.update(name="revoke_all")
    async def revoke_all(self, request: c.RevokeAllRequest) -> c.RevocationResult:
        return await self._revoke_all(request)

    async def _revoke_all(self, request: c.RevokeAllRequest) -> c.RevocationResult:
        if self.s.register_in_db:
            revoked = await reg.revoke_creator(self.s, request.creator_id, at=request.revoked_at)
            if revoked.entry is None:
                problem = f"creator_id: creator {request.creator_id} has not joined task {self.s.task_id}"
                raise reg.unchanged_refusal(self.s, REVOCATION_REFUSED, problem)
            if (revoked_at := revoked.revoked_at) is None:  # the register answers a joined creator's revocation
                raise reg.unchanged_refusal(self.s, REVOCATION_REFUSED, f"creator_id: creator {request.creator_id} "
                                            "was not revoked")
            if revoked.changed:
                self.s.messages_this_run += 1
                await self._signal_pieces(revoked.content_ids, "content_revoked",
                                          ContentRevoked(revoked_at=revoked_at, scope="all"))
            return c.RevocationResult(creator_id=request.creator_id, revoked_at=revoked_at,
                                      content_ids=revoked.content_ids)
        entry = self.s.creators[request.creator_id]
        if not entry.authorization_in_force:
            # A repeat: answered like the first call (the pieces that revocation unmounted).
            if (revoked_at := entry.revoked_all_at) is None:  # out of force only by revoke_all (or a removal)
                raise refused(REVOCATION_REFUSED, f"creator_id: creator {entry.creator_id} has no authorization "
                              f"in force in task {self.s.task_id}")
            return c.RevocationResult(creator_id=entry.creator_id, revoked_at=revoked_at, content_ids=[
                p.content_id for p in self.s.pieces.values()
                if p.creator_id == entry.creator_id and p.revoked_at == revoked_at])
        now = request.revoked_at or workflow.now()
        entry.authorization_in_force, entry.revoked_all_at = False, now
        unmounted = [p for p in self.s.pieces.values()
                     if p.creator_id == request.creator_id and p.revoked_at is None and p.status == "mounted"]
        for piece in unmounted:
            piece.revoked_at, piece.status = now, "unmounted"
        self.s.messages_this_run += 1
        await self._signal_pieces([p.content_id for p in unmounted], "content_revoked",
                                  ContentRevoked(revoked_at=now, scope="all"))
        return c.RevocationResult(creator_id=entry.creator_id, revoked_at=now,
                                  content_ids=[p.content_id for p in unmounted])

    @revoke_all.validator
    def validate_revoke_all(self, request: c.RevokeAllRequest) -> None:
        if reasons := revocation_instant_refusals(request.revoked_at, workflow.now()):
            raise refused(REVOCATION_REFUSED, reasons)
        if not self.s.register_in_db and request.creator_id not in self.s.creators:
            raise refused(REVOCATION_REFUSED,
                          f"creator_id: creator {request.creator_id} has not joined task {self.s.task_id}")

    @workflow.signal(name="revoke_authorization")
    async def revoke_authorization(self, signal: c.RevokeAuthorizationSignal) -> None:
        """Fire-and-forget form used by creators' apps; an invalid revocation is logged and changes nothing."""
        try:
            if signal.content_id is None:
                request_all = c.RevokeAllRequest(creator_id=signal.creator_id, revoked_at=signal.revoked_at)
                self.validate_revoke_all(request_all)
                await self._revoke_all(request_all)
            else:
                request_one = c.RevokeContentRequest(creator_id=signal.creator_id, content_id=signal.content_id,
                                                     revoked_at=signal.revoked_at)
                self.validate_revoke_content(request_one)
                await self._revoke_content(request_one)
        except ValueError as err:  # a request model the signal's fields do not fit (a pydantic ValidationError)
            workflow.logger.warning("revocation ignored: %s", err)
        except ApplicationError as err:  # refused by the validators, or by the handler when the register is in the db
            if err.type != REVOCATION_REFUSED:
                raise
            workflow.logger.warning("revocation ignored: %s", err)
