"""Penalties acting on a mount task (R-12): a mixin of MountTaskWorkflow.

- A new mount of a creator whom a violation case restricts, bars, closes for orders, freezes or removed from this
  task is refused (`MountRefused`, each reason naming the case); joining is refused the same way (`JoinRefused`,
  through the directory's facts, eligibility.creator_join_refusals).
- `remove_creator` (sent by the case, 清退): every piece of the creator here is unmounted at the notice instant,
  as a revocation of all (AM-15) that the creator did not ask for; `removal_withdrawn` (appeal upheld) clears the
  mark, and the creator may join again (the register no longer refuses them).
"""

from __future__ import annotations

from collections.abc import Awaitable
from datetime import datetime

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from ports import directory
    from ports.directory import PartyRequest
    from workflows.contract import mount_task as c
    from workflows.contract.mounted_content import ContentRevoked, TaskPeriodEnded
    from workflows.rules.eligibility import creator_penalty_refusals

from workflows import task_register as reg

# Runs that record this marker ask the directory about penalties before accepting a new mount.
MOUNT_PENALTY_PATCH = "r-12-mount-refused-by-penalty"
# Runs that record this marker take the component of a mount refused by a penalty down, as every refused mount
# (AM-6 reading); runs recorded before only refused it.
PENALIZED_MOUNT_UNMOUNTED_PATCH = "r-12-refused-mount-unmounted"


class TaskPenalties:
    s: c.MountTaskState

    def _signal_pieces(self, content_ids: list[str], signal: str, payload: ContentRevoked | TaskPeriodEnded
                       ) -> Awaitable[None]:
        raise NotImplementedError

    async def _penalty_refusals(self, request: c.ReportMountRequest) -> list[str]:
        """R-12: no new mount of a penalized creator, in any task; each reason names its case."""
        if request.content_id in self.s.pieces or not workflow.patched(MOUNT_PENALTY_PATCH):
            return []
        # A local activity: one marker event, not an activity's three and a workflow task's, on a path taken by
        # every mount (a run's length is counted in mounts: run_length.TASK_MESSAGES_PER_RUN).
        facts = await directory.CREATOR_FACTS.local(PartyRequest(party_id=request.creator_id))
        return creator_penalty_refusals(facts, self.s.task_id)

    @workflow.signal(name="remove_creator")
    async def remove_creator(self, signal: c.CreatorRemoved) -> None:
        """R-12 (清退): the creator's pieces in this task are unmounted at once; what they earned before the notice
        settles as the case's fee penalties say (held, then paid, frozen or deducted)."""
        s = self.s
        s.messages_this_run += 1
        if s.register_in_db:
            revoked = await reg.revoke_creator(s, signal.creator_id, case_id=signal.case_id,
                                               pieces_at=min(signal.removed_at, workflow.now()))
            if revoked.changed and revoked.revoked_at is not None:
                await self._signal_pieces(revoked.content_ids, "content_revoked",
                                          ContentRevoked(revoked_at=revoked.revoked_at, scope="all"))
            return
        entry = s.creators.get(signal.creator_id)
        if entry is None or entry.removed_by_case == signal.case_id:
            return  # never joined (the directory refuses their joining), or told twice
        now = workflow.now()
        at: datetime = min(signal.removed_at, now)
        entry.removed_by_case = signal.case_id
        if entry.authorization_in_force:
            entry.authorization_in_force, entry.revoked_all_at = False, now
        removed = [p for p in s.pieces.values()
                   if p.creator_id == signal.creator_id and p.revoked_at is None and p.status == "mounted"]
        for piece in removed:
            piece.revoked_at, piece.status = at, "unmounted"
        await self._signal_pieces([p.content_id for p in removed], "content_revoked",
                                  ContentRevoked(revoked_at=at, scope="all"))

    @workflow.signal(name="removal_withdrawn")
    async def removal_withdrawn(self, signal: c.RemovalWithdrawn) -> None:
        self.s.messages_this_run += 1
        if self.s.register_in_db:
            await reg.withdraw_removal(self.s, signal)
            return
        entry = self.s.creators.get(signal.creator_id)
        if entry is not None and entry.removed_by_case == signal.case_id:
            entry.removed_by_case = None
