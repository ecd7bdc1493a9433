"""MountTaskWorkflow (`mount-task:{task_id}`): one authorized-mount task from publication to refund.

Stages: draft -> published (task period open) -> ended (waiting for every piece to settle or close) -> refunded.
Pieces of content run in their own MountedContentWorkflow; this workflow starts them through an activity (not as
children: a task may have many thousands). Each piece records its closure in the ledger with its settlement, and
the task reads the closures from there, from the last one it read: waking when the next publicity window closes,
then every few seconds while pieces keep closing (docs/bench.md "Limits found" 2b: a message from every piece kept
the task from continuing as new).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from ports import directory, fanout, ledger
    from ports.directory import PartyRequest
    from ports.fanout import SignalContentsRequest
    from ports.ledger import INSUFFICIENT_FUNDS, FreezeRequest, RefundRequest, TaskClosuresRequest
    from workflows.contract import mount_task as c
    from workflows.contract.mounted_content import ContentRevoked, MountedContentInput, TaskPeriodEnded
    from workflows.contract.names import CONTINUE_AS_NEW_DUE, MOUNT_TASK_WORKFLOW, SA
    from workflows.rules.billing import billing_period_end
    from workflows.rules.clock import business_time, with_deadline
    from workflows.rules.eligibility import (
        client_publication_refusals,
        creator_join_refusals,
        payee_account,
    )
    from workflows.rules.fees import platform_fee
    from workflows.rules.task_form import task_form_problems

from workflows import metrics, partial_refunds
from workflows import task_register as reg
from workflows.closure_looks import LOOK_AFTER, ClosureLooks
from workflows.common import (
    MAX_MESSAGES_PER_RUN,
    RunLength,
    stage_attributes,
    until,
)
from workflows.escalation import Stalls
from workflows.mount_reports import (
    LATE_MOUNTS_PATCH,
    MOUNT_REFUSED,
    mount_refusals,
    period_cut_at,
    unmount_refused,
    wait_for_late_mounts,
)
from workflows.task_penalties import MOUNT_PENALTY_PATCH, PENALIZED_MOUNT_UNMOUNTED_PATCH, TaskPenalties

# A draft that is never published closes after this long (as failed, so that its task id may be used again).
DRAFT_TTL = timedelta(hours=1)
# Pieces are told of the end of the period in batches of this size (one activity each).
FANOUT_BATCH = 500
# A mount reported this far ahead of the workflow clock is refused as a clock error.
MOUNT_CLOCK_SKEW = timedelta(minutes=5)
# Messages (joins, new mounts, revocations, reports from pieces) one run of a task takes before it continues as new:
# a mount costs ~6.7 history events, so ~7,000 events a run, under the server's 10,240 warning (docs/bench.md,
# "Limits found" 1; the shared bound MAX_MESSAGES_PER_RUN let a run reach ~13,400).
TASK_MESSAGES_PER_RUN = 1_000
# Runs that started before the drain keep the shared bound when their history is replayed.
DRAIN_PATCH = "task-drain-before-continue-as-new"
# Runs that record this marker read their pieces' closures from the ledger; older runs wait for content_closed.
CLOSURES_FROM_LEDGER_PATCH = "task-reads-closures-from-ledger"
# Closures read from the ledger in one activity call (~100 bytes each).
CLOSURE_PAGE = 1_000
# A look costs ~11 history events (activity, timer, workflow tasks), a message ~7: it counts as two.
CLOSURE_LOOK_MESSAGES = 2


def refused(kind: str, reasons: list[str]) -> ApplicationError:
    return ApplicationError("; ".join(reasons), {"reasons": reasons}, type=kind, non_retryable=True)


@workflow.defn(name=MOUNT_TASK_WORKFLOW)
class MountTaskWorkflow(TaskPenalties):
    @workflow.init
    def __init__(self, input: c.MountTaskInput) -> None:
        self.s = input.carried_state or c.MountTaskState(task_id=input.task_id)
        self._publishing = False
        self._publishing_request: c.PublishTaskRequest | None = None
        self._messages_bound = MAX_MESSAGES_PER_RUN
        # Set in run (CLOSURES_FROM_LEDGER_PATCH): when to look at the ledger for closed pieces next.
        self._reads_ledger = False
        self._looks: ClosureLooks | reg.RegisterLooks | None = None
        self._look_at: datetime | None = None
        self._look_moved = False
        # Set in run (LATE_MOUNTS_PATCH): mounts reported up to 24 hours after the period are accepted (AM-6).
        self._late_mounts = True
        self._stalls = Stalls("mount")  # a refund that cannot complete is escalated

    # ---------------------------------------------------------------- run
    @workflow.run
    async def run(self, input: c.MountTaskInput) -> c.TaskResult:
        s = self.s
        if input.carried_state is None and workflow.patched(reg.REGISTER_PATCH):
            s.register_in_db = True  # its runs continued as new keep it (MountTaskState.register_in_db)
        if workflow.patched(DRAIN_PATCH):
            self._messages_bound = TASK_MESSAGES_PER_RUN
        self._reads_ledger = workflow.patched(CLOSURES_FROM_LEDGER_PATCH)
        self._late_mounts = workflow.patched(LATE_MOUNTS_PATCH)
        self._run_length = RunLength(self._messages_bound)
        if s.stage is c.TaskStage.DRAFT:
            expires = f"draft expires unpublished {business_time(workflow.now() + DRAFT_TTL)}"
            self._show(f"draft: waiting for the publish update; {expires}", None)
            try:
                await workflow.wait_condition(
                    lambda: s.stage is not c.TaskStage.DRAFT and not self._publishing,
                    timeout=DRAFT_TTL, timeout_summary=expires,
                )
            except TimeoutError:
                # A publication under way (its activities retrying) finishes before the draft may expire.
                await workflow.wait_condition(lambda: not self._publishing)
            if s.stage is c.TaskStage.DRAFT:
                s.stage = c.TaskStage.NOT_PUBLISHED
                self._show("not published", None)
                raise refused("TaskNotPublished", [f"task {s.task_id} was not published within {DRAFT_TTL}",
                                                   *s.last_refusal])
        if self._reads_ledger and s.stage is c.TaskStage.PUBLISHED:
            self._looks = self._new_looks()  # pieces that settle while the period is still open
            self._look_at = await self._next_look(found=0)
        shown = False
        while s.stage is c.TaskStage.PUBLISHED:
            assert s.period_end_at is not None
            if not shown:
                self._show(f"published: task period open until {business_time(s.period_end_at)}", s.period_end_at)
                shown = True
            period_ends = f"task period ends {business_time(s.period_end_at)}"
            wake_at, wake_for = s.period_end_at, period_ends
            if self._look_at is not None and self._look_at < s.period_end_at:
                wake_at, wake_for = self._look_at, f"look at the ledger for closed pieces {business_time(self._look_at)}"
            self._look_moved, timed_out = False, False
            try:
                await workflow.wait_condition(
                    lambda: s.stage is not c.TaskStage.PUBLISHED or self._run_length.reached(s.messages_this_run)
                    or self._look_moved,
                    timeout=until(wake_at), timeout_summary=wake_for,
                )
            except TimeoutError:
                timed_out = True
            if s.stage is c.TaskStage.PUBLISHED and timed_out and workflow.now() >= s.period_end_at:
                self._end(s.period_end_at, c.EndReason.PERIOD_OVER)
            elif s.stage is c.TaskStage.PUBLISHED and timed_out:
                await self._look_at_closures()
            await self._continue_as_new_if_due()
        await self._tell_pieces_the_period_ended()
        if self._reads_ledger:
            await self._wait_for_closures_in_the_ledger()
            while self._late_mounts and await wait_for_late_mounts(s, self._run_length):
                await self._continue_as_new_if_due()  # a late mount opened a piece (AM-6), or the run is long
                await self._wait_for_closures_in_the_ledger()
        while s.pieces_open > 0:  # runs before the patch: every piece sends content_closed
            self._show(f"ended ({s.end_reason}): waiting for {s.pieces_open} piece(s) to settle", None)
            await workflow.wait_condition(lambda: s.pieces_open == 0 or self._run_length.reached(s.messages_this_run))
            await self._continue_as_new_if_due()
        await self._refund()
        await workflow.wait_condition(workflow.all_handlers_finished)
        return self._result()

    # ---------------------------------------------------------------- publication (AM-1, AM-2, AM-3)
    @workflow.update(name="publish")
    async def publish(self, request: c.PublishTaskRequest) -> c.PublicationResult:
        s = self.s
        if self._publishing:
            # The same publication is already under way (a caller retried): answer with its outcome.
            await workflow.wait_condition(lambda: not self._publishing)
            if s.publication is None:
                raise refused("PublicationRefused", s.last_refusal)
        if s.publication is not None:
            return s.publication
        self._publishing, self._publishing_request = True, request
        try:
            facts = await directory.CLIENT_FACTS(PartyRequest(party_id=request.client_id))
            reasons = client_publication_refusals(facts)
            if reasons:
                s.last_refusal = reasons
                raise refused("PublicationRefused", reasons)
            assert request.budget_fen is not None and request.period_end_at and request.period_start_at
            fee = platform_fee(request.budget_fen)
            try:
                freeze = await ledger.FREEZE(FreezeRequest(task_id=s.task_id, client_id=request.client_id,
                                                           budget_fen=request.budget_fen, platform_fee_fen=fee))
            except ActivityError as err:
                cause = err.cause
                if isinstance(cause, ApplicationError) and cause.type == INSUFFICIENT_FUNDS:
                    s.last_refusal = [f"balance does not cover budget + 10% platform fee: {cause.message}"]
                    raise refused("PublicationRefused", s.last_refusal) from None
                raise
            s.request, s.client_id = request, request.client_id
            s.period_start_at, s.period_end_at = request.period_start_at, request.period_end_at
            s.budget_fen, s.frozen_fen = request.budget_fen, freeze.frozen_fen
            s.publication = c.PublicationResult(
                task_id=s.task_id, published_at=workflow.now(), budget_fen=request.budget_fen,
                frozen_fen=freeze.frozen_fen, platform_fee_fen=fee, freeze_transfer_id=freeze.transfer_id,
            )
            s.last_refusal = []
            s.stage = c.TaskStage.PUBLISHED
            metrics.task_published("mount", freeze.frozen_fen)
            workflow.upsert_search_attributes([SA.CLIENT_ID.value_set(request.client_id)])
            return s.publication
        finally:
            self._publishing = False

    @publish.validator
    def validate_publish(self, request: c.PublishTaskRequest) -> None:
        s = self.s
        if request.task_id != s.task_id:
            raise ValueError(f"task_id: {request.task_id} does not match this workflow's task {s.task_id}")
        if s.publication is not None:
            if s.request != request:
                raise ValueError(f"task {s.task_id} is already published with different terms")
            return
        if s.stage is not c.TaskStage.DRAFT:
            raise ValueError(f"task {s.task_id} can no longer be published (stage {s.stage.value})")
        if self._publishing and request != self._publishing_request:
            raise ValueError(f"task {s.task_id} is being published with different terms by another call")
        problems = task_form_problems(request, workflow.now())
        if problems:
            raise ValueError("invalid task form: " + "; ".join(problems))

    # ---------------------------------------------------------------- joining (AM-4, AM-5)
    @workflow.update(name="join")
    async def join(self, request: c.JoinRequest) -> c.JoinResult:
        s = self.s
        if s.register_in_db:
            return await self._join_in_register(request)
        if (entry := s.creators.get(request.creator_id)) and entry.authorization_in_force:
            return c.JoinResult(creator_id=entry.creator_id, joined_at=entry.joined_at, already_joined=True,
                                payee_account=entry.payee_account)
        facts = await directory.CREATOR_FACTS(PartyRequest(party_id=request.creator_id))
        reasons = creator_join_refusals(facts, s.task_id)
        if reasons:
            raise refused("JoinRefused", reasons)
        if (entry := s.creators.get(request.creator_id)) and entry.authorization_in_force:
            # A concurrent join of the same creator finished first.
            return c.JoinResult(creator_id=entry.creator_id, joined_at=entry.joined_at, already_joined=True,
                                payee_account=entry.payee_account)
        if problem := self._period_closed_problem("join"):
            raise refused("JoinRefused", [problem])
        entry = c.CreatorEntry(creator_id=request.creator_id, payee_account=payee_account(facts),
                               joined_at=workflow.now(),
                               revoked_all_at=entry.revoked_all_at if entry else None)
        s.creators[request.creator_id] = entry
        s.messages_this_run += 1
        return c.JoinResult(creator_id=entry.creator_id, joined_at=entry.joined_at, already_joined=False,
                            payee_account=entry.payee_account)

    async def _join_in_register(self, request: c.JoinRequest) -> c.JoinResult:
        """AM-4, AM-5 with the register in the database, in one local activity: a creator who joined is answered
        (even after the period); otherwise the validator's refusal (period closed) and JoinRefused are made there."""
        s = self.s
        joined = await reg.join(s, request.creator_id, self._period_closed_problem("join"))
        if joined.entry is None:
            if joined.refusal_kind == "ValueError":
                raise reg.unchanged_refusal(s, joined.reasons[0])
            raise refused("JoinRefused", joined.reasons)
        if not joined.already_joined:
            s.messages_this_run += 1
        return c.JoinResult(creator_id=joined.entry.creator_id, joined_at=joined.entry.joined_at,
                            already_joined=joined.already_joined, payee_account=joined.entry.payee_account)

    @join.validator
    def validate_join(self, request: c.JoinRequest) -> None:
        if self.s.register_in_db:
            self._refuse_while_draining("join")  # the rest is asked of the register by the handler
            return
        entry = self.s.creators.get(request.creator_id)
        if entry and entry.authorization_in_force:
            return  # joining twice changes nothing (AM-5), and the answer needs no activity
        self._refuse_while_draining("join")
        if problem := self._period_closed_problem("join"):
            raise ValueError(problem)

    # ---------------------------------------------------------------- mounting (AM-6)
    @workflow.update(name="report_mount")
    async def report_mount(self, request: c.ReportMountRequest) -> c.MountResult:
        s = self.s
        if s.register_in_db:
            return await self._report_mount_in_register(request)
        piece = s.pieces.get(request.content_id)
        late = piece is None and s.stage is c.TaskStage.ENDED
        if piece is None and (reasons := mount_refusals(s, request, workflow.now(), late_reports=self._late_mounts,
                                                        clock_skew=MOUNT_CLOCK_SKEW)):
            s.messages_this_run += 1
            await unmount_refused(s.task_id, request, reasons)  # AM-6 reading: the refused component comes down
            raise refused(MOUNT_REFUSED, reasons)
        assert s.period_end_at is not None and s.client_id is not None and s.request is not None
        assert s.request.billing_rule is not None and s.request.billing_rule.price_fen is not None
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
        content_input = MountedContentInput(
            task_id=s.task_id, content_id=piece.content_id, creator_id=piece.creator_id, client_id=s.client_id,
            payee_account=s.creators[piece.creator_id].payee_account, price_fen=s.request.billing_rule.price_fen,
            mounted_at=piece.mounted_at, task_period_end_at=period_cut_at(s),
        )
        started = await fanout.START_CONTENT_WORKFLOW(content_input)
        if late and s.ended_at is not None and s.end_reason is not None:  # reported after the end (AM-6, AM-7)
            await self._signal_pieces([piece.content_id], "task_period_ended",
                                      TaskPeriodEnded(ended_at=s.ended_at, reason=s.end_reason.value))
        return c.MountResult(content_id=piece.content_id, content_workflow_id=started.workflow_id,
                             billing_period_ends_at=billing_period_end(piece.mounted_at, period_cut_at(s)))

    async def _report_mount_in_register(self, request: c.ReportMountRequest) -> c.MountResult:
        """AM-6 with the register in the database (workflows/task_register.py)."""
        s = self.s
        answer, new = await reg.accept_mount(s, request, late_reports=self._late_mounts, clock_skew=MOUNT_CLOCK_SKEW,
                                             check_penalties=workflow.patched(MOUNT_PENALTY_PATCH))
        if answer.refusals:  # AM-6 (mount_reports.py) or R-12 (task_penalties.py), as the register answered them
            s.messages_this_run += 1
            await unmount_refused(s.task_id, request, answer.refusals)  # AM-6 reading: the component comes down
            raise refused(MOUNT_REFUSED, answer.refusals)
        registered = answer.piece
        assert registered is not None
        late = not answer.existed and s.stage is c.TaskStage.ENDED
        if new:
            s.messages_this_run += 1
            metrics.piece_mounted("mount", request.content_id)
        if problem := reg.conflict(s, request, registered.piece):
            raise problem  # mounted meanwhile for another creator or instant: the accepted one stays up
        assert s.period_end_at is not None and s.client_id is not None and s.request is not None
        assert s.request.billing_rule is not None and s.request.billing_rule.price_fen is not None
        assert answer.creator is not None
        piece = registered.piece
        if isinstance(self._looks, reg.RegisterLooks):  # the run's loop looks once this piece's window closes
            look_at = self._looks.add(piece.mounted_at) + LOOK_AFTER
            if self._look_at is None or look_at < self._look_at:
                self._look_at, self._look_moved = look_at, True
        content_input = MountedContentInput(
            task_id=s.task_id, content_id=piece.content_id, creator_id=piece.creator_id, client_id=s.client_id,
            payee_account=answer.creator.payee_account, price_fen=s.request.billing_rule.price_fen,
            mounted_at=piece.mounted_at, task_period_end_at=period_cut_at(s),
        )
        started = await fanout.START_CONTENT_WORKFLOW(content_input)
        if late and s.ended_at is not None and s.end_reason is not None:  # reported after the end (AM-6, AM-7)
            await self._signal_pieces([piece.content_id], "task_period_ended",
                                      TaskPeriodEnded(ended_at=s.ended_at, reason=s.end_reason.value))
        return c.MountResult(content_id=piece.content_id, content_workflow_id=started.workflow_id,
                             billing_period_ends_at=billing_period_end(piece.mounted_at, period_cut_at(s)))

    @report_mount.validator
    def validate_report_mount(self, request: c.ReportMountRequest) -> None:
        s = self.s
        self._refuse_while_draining("report_mount")
        if s.register_in_db:
            return  # the register answers in the handler (a repeated report, or content already mounted)
        if (piece := s.pieces.get(request.content_id)) is not None:
            if piece.creator_id == request.creator_id and piece.mounted_at == request.mounted_at:
                return  # the same report again: answered with the same result
            raise ValueError(f"content_id: {request.content_id} is already mounted in task {s.task_id} "
                             f"(at {business_time(piece.mounted_at)} for creator {piece.creator_id})")
        # Every other refusal is made by the handler, which takes the refused component down (mount_reports.py).

    # ---------------------------------------------------------------- revocation (AM-14, AM-15)
    @workflow.update(name="revoke_content")
    async def revoke_content(self, request: c.RevokeContentRequest) -> c.RevocationResult:
        if self.s.register_in_db:
            piece, changed = await reg.revoke_content(self.s, request)  # the validator's refusals, from the register
            if changed and piece.revoked_at is not None:
                self.s.messages_this_run += 1
                await self._signal_pieces([piece.content_id], "content_revoked",
                                          ContentRevoked(revoked_at=piece.revoked_at, scope="content"))
            assert piece.revoked_at is not None
            return c.RevocationResult(creator_id=request.creator_id, revoked_at=piece.revoked_at,
                                      content_ids=[piece.content_id])
        piece = self.s.pieces[request.content_id]
        if piece.revoked_at is None:
            piece.revoked_at = workflow.now()
            piece.status = "unmounted"
            self.s.messages_this_run += 1
            await self._signal_pieces([piece.content_id], "content_revoked",
                                      ContentRevoked(revoked_at=piece.revoked_at, scope="content"))
        return c.RevocationResult(creator_id=request.creator_id, revoked_at=piece.revoked_at,
                                  content_ids=[piece.content_id])

    @revoke_content.validator
    def validate_revoke_content(self, request: c.RevokeContentRequest) -> None:
        if self.s.register_in_db:
            return  # asked of the register by the handler (task_register.revoke_content)
        piece = self.s.pieces.get(request.content_id)
        if piece is None:
            raise ValueError(f"content_id: {request.content_id} is not mounted in task {self.s.task_id}")
        if piece.creator_id != request.creator_id:
            raise ValueError(f"creator_id: only the creator who owns content {request.content_id} may revoke it")
        if piece.status in ("settled", "closed"):
            raise ValueError(f"content_id: {request.content_id} is already {piece.status}")

    @workflow.update(name="revoke_all")
    async def revoke_all(self, request: c.RevokeAllRequest) -> c.RevocationResult:
        if self.s.register_in_db:
            revoked = await reg.revoke_creator(self.s, request.creator_id)
            if revoked.entry is None:
                raise reg.unchanged_refusal(self.s,
                    f"creator_id: creator {request.creator_id} has not joined task {self.s.task_id}")
            assert revoked.revoked_at is not None
            if revoked.changed:
                self.s.messages_this_run += 1
                await self._signal_pieces(revoked.content_ids, "content_revoked",
                                          ContentRevoked(revoked_at=revoked.revoked_at, scope="all"))
            return c.RevocationResult(creator_id=request.creator_id, revoked_at=revoked.revoked_at,
                                      content_ids=revoked.content_ids)
        entry = self.s.creators[request.creator_id]
        if not entry.authorization_in_force:
            # A repeat: answered like the first call (the pieces that revocation unmounted).
            assert entry.revoked_all_at is not None
            return c.RevocationResult(creator_id=entry.creator_id, revoked_at=entry.revoked_all_at, content_ids=[
                p.content_id for p in self.s.pieces.values()
                if p.creator_id == entry.creator_id and p.revoked_at == entry.revoked_all_at])
        now = workflow.now()
        entry.authorization_in_force, entry.revoked_all_at = False, now
        revoked = [p for p in self.s.pieces.values()
                   if p.creator_id == request.creator_id and p.revoked_at is None and p.status == "mounted"]
        for piece in revoked:
            piece.revoked_at, piece.status = now, "unmounted"
        self.s.messages_this_run += 1
        await self._signal_pieces([p.content_id for p in revoked], "content_revoked",
                                  ContentRevoked(revoked_at=now, scope="all"))
        return c.RevocationResult(creator_id=entry.creator_id, revoked_at=now,
                                  content_ids=[p.content_id for p in revoked])

    @revoke_all.validator
    def validate_revoke_all(self, request: c.RevokeAllRequest) -> None:
        if not self.s.register_in_db and request.creator_id not in self.s.creators:
            raise ValueError(f"creator_id: creator {request.creator_id} has not joined task {self.s.task_id}")

    @workflow.signal(name="revoke_authorization")
    async def revoke_authorization(self, signal: c.RevokeAuthorizationSignal) -> None:
        """Fire-and-forget form used by creators' apps; an invalid revocation is logged and changes nothing."""
        try:
            if signal.content_id is None:
                request_all = c.RevokeAllRequest(creator_id=signal.creator_id)
                self.validate_revoke_all(request_all)
                await self.revoke_all(request_all)
            else:
                request_one = c.RevokeContentRequest(creator_id=signal.creator_id, content_id=signal.content_id)
                self.validate_revoke_content(request_one)
                await self.revoke_content(request_one)
        except ValueError as err:
            workflow.logger.warning("revocation ignored: %s", err)
        except ApplicationError as err:  # the same refusals, made by the handler when the register is in the database
            if err.type != "ValueError":
                raise
            workflow.logger.warning("revocation ignored: %s", err)

    # ---------------------------------------------------------------- cancel (AM-7)
    @workflow.update(name="cancel")
    def cancel(self, request: c.CancelRequest) -> c.TaskResult:
        self.s.cancel_reason = f"{request.reason} (by {request.requested_by})"
        self._end(workflow.now(), c.EndReason.CANCELLED)
        return self._result()

    @cancel.validator
    def validate_cancel(self, request: c.CancelRequest) -> None:
        s = self.s
        if s.end_reason is c.EndReason.CANCELLED and s.ended_at is not None:
            raise ValueError(f"task {s.task_id} was already cancelled at {business_time(s.ended_at)}: "
                             f"{s.cancel_reason}")
        if self.s.stage is not c.TaskStage.PUBLISHED:
            raise ValueError(f"task {self.s.task_id} cannot be cancelled: it is {self.s.stage.value}")

    # ---------------------------------------------------------------- from content workflows
    @workflow.signal(name="budget_exhausted")
    def budget_exhausted(self, signal: c.BudgetExhaustedSignal) -> None:
        """AM-10 / R-3: the ledger's budget counter reached the budget at `exhausted_at`."""
        self.s.messages_this_run += 1
        if self.s.stage is c.TaskStage.PUBLISHED:
            self._end(signal.exhausted_at, c.EndReason.BUDGET_USED_UP)

    @workflow.signal(name="content_closed")
    def content_closed(self, signal: c.ContentClosedSignal) -> None:
        """Sent by pieces that started before CLOSURE_IN_LEDGER (mounted_content.py); newer ones only write it to
        the ledger. The same closure read both ways counts once."""
        self.s.messages_this_run += 1
        if self.s.register_in_db:  # its pieces write their closures to the ledger only, and are read from there
            workflow.logger.warning("content_closed from %s ignored: read from the ledger", signal.content_id)
            return
        self._piece_closed(signal.content_id, signal.settled, signal.fee_fen, signal.platform_fee_fen)

    @workflow.query(name="state")
    def state(self) -> c.MountTaskState:
        return self.s

    # ---------------------------------------------------------------- internals
    def _period_closed_problem(self, action: str) -> str | None:
        s = self.s
        if s.stage is not c.TaskStage.PUBLISHED:
            return f"cannot {action}: task {s.task_id} is {s.stage.value}"
        assert s.period_start_at is not None and s.period_end_at is not None
        now = workflow.now()
        if now < s.period_start_at:
            return f"cannot {action}: the task period opens at {business_time(s.period_start_at)}"
        if now >= s.period_end_at:
            return f"cannot {action}: the task period ended at {business_time(s.period_end_at)}"
        return None

    def _end(self, ended_at: datetime, reason: c.EndReason) -> None:
        """AM-7: the task period ends; no new mounts; pieces are told (and unmount) in the run loop."""
        s = self.s
        s.stage, s.ended_at, s.end_reason = c.TaskStage.ENDED, ended_at, reason
        self._show(f"ended ({reason.value}) at {business_time(ended_at)}", None)

    async def _tell_pieces_the_period_ended(self) -> None:
        s = self.s
        assert s.ended_at is not None and s.end_reason is not None
        if s.register_in_db:
            if s.end_notified_count < s.pieces_count:
                await reg.tell_open_pieces(s, "task_period_ended", TaskPeriodEnded(
                    ended_at=s.ended_at, reason=s.end_reason.value).model_dump(mode="json"))
            return
        content_ids = list(s.pieces)
        while s.end_notified_count < len(content_ids):
            batch = [cid for cid in content_ids[s.end_notified_count:s.end_notified_count + FANOUT_BATCH]
                     if s.pieces[cid].status in ("mounted", "unmounted")]
            await self._signal_pieces(batch, "task_period_ended",
                                      TaskPeriodEnded(ended_at=s.ended_at, reason=s.end_reason.value))
            s.end_notified_count += FANOUT_BATCH

    async def _signal_pieces(self, content_ids: list[str], signal: str, payload: ContentRevoked | TaskPeriodEnded
                             ) -> None:
        for start in range(0, len(content_ids), FANOUT_BATCH):
            await fanout.SIGNAL_CONTENTS(
                SignalContentsRequest(task_id=self.s.task_id, content_ids=content_ids[start:start + FANOUT_BATCH],
                                      signal=signal, payload=payload.model_dump(mode="json")))

    def _piece_closed(self, content_id: str, settled: bool, fee_fen: int, platform_fee_fen: int) -> None:
        s = self.s
        piece = s.pieces.get(content_id)
        if piece is None:
            workflow.logger.warning("closure of content %s, which is not mounted in task %s: ignored",
                                    content_id, s.task_id)
            return
        if piece.status in ("settled", "closed"):
            return  # read again, or reported both by signal and in the ledger
        piece.status = "settled" if settled else "closed"
        piece.fee_fen, piece.platform_fee_fen = fee_fen, platform_fee_fen
        s.paid_to_creators_fen += fee_fen
        s.platform_fees_fen += platform_fee_fen
        s.pieces_open -= 1

    async def _wait_for_closures_in_the_ledger(self) -> None:
        """AM-13 waits for every piece to settle or close: the task reads that from the ledger (ClosureLooks)."""
        s = self.s
        self._looks = self._new_looks()  # the windows as the end of the task cut them
        self._look_at = workflow.now()
        shown_deadline: datetime | None = None
        while s.pieces_open > 0:
            if self._look_at is not None and workflow.now() >= self._look_at:
                await self._look_at_closures()
                if s.pieces_open == 0:
                    break
                open_not_held = self._looks.open_not_held if isinstance(self._looks, reg.RegisterLooks) else None
                # AM-13: held pieces do not keep the rest frozen
                await partial_refunds.refund_part_if_due(s, self._stalls, open_not_held)
            assert self._look_at is not None
            next_window = self._looks.next_window(workflow.now())
            if next_window != shown_deadline:
                stage_attributes(s.stage.value, next_window)
                shown_deadline = next_window
            workflow.set_current_details(with_deadline(
                f"task {s.task_id}: ended ({s.end_reason}): waiting for {s.pieces_open} of {self._pieces()} "
                f"piece(s) to settle ({s.closures_read_seq} closure(s) read from the ledger"
                f"{partial_refunds.describe(s)}); next look at the ledger {business_time(self._look_at)}",
                "publicity window closes", next_window))
            try:
                await workflow.wait_condition(
                    lambda: s.pieces_open == 0 or self._run_length.reached(s.messages_this_run),
                    timeout=until(self._look_at),
                    timeout_summary=f"look at the ledger for closed pieces {business_time(self._look_at)}")
            except TimeoutError:
                pass  # time to look
            await self._continue_as_new_if_due()

    async def _look_at_closures(self) -> None:
        assert self._looks is not None
        found = await self._read_closures()
        self._look_at = await self._next_look(found)

    def _new_looks(self) -> ClosureLooks | reg.RegisterLooks:
        return reg.RegisterLooks(self.s) if self.s.register_in_db else ClosureLooks(self.s)

    async def _next_look(self, found: int) -> datetime | None:
        if isinstance(self._looks, reg.RegisterLooks):
            return await self._looks.next_look(workflow.now(), found)
        assert self._looks is not None
        return self._looks.next_look(workflow.now(), found)

    def _pieces(self) -> int:
        return self.s.pieces_count if self.s.register_in_db else len(self.s.pieces)

    async def _read_closures(self) -> int:
        """Reads the closures written since the last one read; returns how many there were."""
        s = self.s
        read = 0
        while True:
            page = await ledger.TASK_CLOSURES(
                TaskClosuresRequest(task_id=s.task_id, after_seq=s.closures_read_seq, limit=CLOSURE_PAGE))
            for closure in page.closures:
                if s.register_in_db:
                    reg.closed(s, closure.outcome == "settled", closure.fee_fen, closure.platform_fee_fen)
                    continue
                self._piece_closed(closure.content_id, closure.outcome == "settled", closure.fee_fen,
                                   closure.platform_fee_fen)
            s.closures_read_seq, s.closures_read_at = page.last_seq, workflow.now()
            s.held_content_ids = page.held_content_ids
            s.messages_this_run += CLOSURE_LOOK_MESSAGES
            read += len(page.closures)
            if len(page.closures) < CLOSURE_PAGE:
                return read

    async def _refund(self) -> None:
        """AM-13: every piece settled or closed; whatever is still frozen goes back to the client."""
        s = self.s
        assert s.client_id is not None
        refund = await self._stalls.call("refund", ledger.REFUND, RefundRequest(task_id=s.task_id,
                                                                                client_id=s.client_id))
        partial_refunds.record_final_refund(s, refund.refunded_fen)
        s.spent_fen = s.paid_to_creators_fen
        metrics.task_refunded("mount", refund.refunded_fen)
        s.stage = c.TaskStage.REFUNDED
        self._show(f"refunded {s.refunded_fen} fen to client {s.client_id} in {len(s.refund_parts)} part(s)", None)

    def _refuse_while_draining(self, update: str) -> None:
        """Once this run is due to continue as new, new joins and mounts are refused (a refused update writes no
        event) so that the updates in flight finish and the run can continue as new: with a steady stream of
        them it otherwise never could (docs/bench.md, "Limits found" 1). The refusal is retryable and typed
        (CONTINUE_AS_NEW_DUE); starter.client sends the call again, and it reaches the new run. After the period
        new joins and mounts are refused anyway (_period_closed_problem), so only a published task drains."""
        s = self.s
        # The refusal follows the message count only, not the server's continue-as-new suggestion: the suggestion
        # is a property of the workflow task, and a run refusing on it while its loop waited on it broke replay
        # (common.RunLength). A suggested run still continues as new, from straight-line code, once its loop
        # wakes and its updates in flight are finished (_continue_as_new_if_due).
        if s.stage is c.TaskStage.PUBLISHED and s.messages_this_run >= self._messages_bound:
            raise ApplicationError(
                f"task {s.task_id} is about to continue as new ({s.messages_this_run} messages in this run): "
                f"send {update} again in a moment, it will reach the new run", type=CONTINUE_AS_NEW_DUE)

    async def _continue_as_new_if_due(self) -> None:
        if self._run_length.due(self.s.messages_this_run):
            await workflow.wait_condition(workflow.all_handlers_finished)
            self.s.messages_this_run = 0
            workflow.continue_as_new(c.MountTaskInput(task_id=self.s.task_id, carried_state=self.s))

    def _show(self, details: str, next_deadline_at: datetime | None) -> None:
        workflow.set_current_details(self._stalls.details(
            with_deadline(f"task {self.s.task_id}: {details}", "deadline", next_deadline_at), False))
        stage_attributes(self.s.stage.value, next_deadline_at, self._stalls.escalated)

    def _result(self) -> c.TaskResult:
        s = self.s
        return c.TaskResult(task_id=s.task_id, stage=s.stage, publication=s.publication, ended_at=s.ended_at,
                            end_reason=s.end_reason, frozen_fen=s.frozen_fen,
                            paid_to_creators_fen=s.paid_to_creators_fen, platform_fees_fen=s.platform_fees_fen,
                            refunded_fen=s.refunded_fen)
