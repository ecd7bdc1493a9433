"""MountTaskWorkflow (`mount-task:{task_id}`): one authorized-mount task from publication to refund.

Stages: draft -> published (task period open) -> ended (waiting for every piece to settle or close) -> refunded.
Pieces of content run in their own MountedContentWorkflow; this workflow starts them through an activity (not as
children: a task may have many thousands). Each piece records its closure in the ledger with its settlement, and
the task reads the closures from there, from the last one it read: waking when the next publicity window closes,
then every few seconds while pieces keep closing (docs/bench.md "Limits found" 2b: a message from every piece kept
the task from continuing as new).

Its parts: task_mounts.py and mount_reports.py (AM-6), task_revocations.py (AM-14, AM-15), task_closures.py (AM-7,
AM-13: the end, the closures, the refund), task_penalties.py (R-12), task_register.py (the register in the
database).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from ports import directory, ledger
    from ports.directory import PartyRequest
    from ports.ledger import INSUFFICIENT_FUNDS, FreezeRequest
    from workflows.contract import mount_task as c
    from workflows.contract.names import CONTINUE_AS_NEW_DUE, MOUNT_TASK_WORKFLOW, SA
    from workflows.contract.views import MountTaskView, Progress, RunInfo
    from workflows.rules import run_length
    from workflows.rules.clock import business_time, with_deadline
    from workflows.rules.eligibility import client_publication_refusals, creator_join_refusals, payee_account
    from workflows.rules.fees import platform_fee
    from workflows.rules.task_form import task_form_problems

from workflows import details, metrics
from workflows import task_register as reg
from workflows.closure_looks import ClosureLooks
from workflows.common import (
    RunLength,
    continue_as_new_when_handlers_done,
    run_info,
    stage_attributes,
    until,
    wait_summary,
)
from workflows.escalation import Stalls
from workflows.mount_reports import (
    LATE_MOUNTS_PATCH,
    wait_for_late_mounts,
)
from workflows.mount_views import task_view
from workflows.refusals import JOIN_REFUSED, PUBLICATION_REFUSED, differing_fields, refused
from workflows.task_closures import TaskClosures
from workflows.task_mounts import TaskMounts
from workflows.task_penalties import TaskPenalties
from workflows.task_revocations import TaskRevocations

# A draft that is never published closes after this long (as failed, so that its task id may be used again).
DRAFT_TTL = timedelta(hours=1)
# Runs that started before the drain keep the shared bound when their history is replayed.
DRAIN_PATCH = "task-drain-before-continue-as-new"
# Runs that record this marker read their pieces' closures from the ledger; older runs wait for content_closed.
CLOSURES_FROM_LEDGER_PATCH = "task-reads-closures-from-ledger"


@workflow.defn(name=MOUNT_TASK_WORKFLOW)
class MountTaskWorkflow(TaskClosures, TaskRevocations, TaskPenalties, TaskMounts):
    @workflow.init
    def __init__(self, input: c.MountTaskInput) -> None:
        self.s = input.carried_state or c.MountTaskState(task_id=input.task_id)
        self._publishing = False
        self._publishing_request: c.PublishTaskRequest | None = None
        self._messages_bound = run_length.MAX_MESSAGES_PER_RUN
        # Set in run (CLOSURES_FROM_LEDGER_PATCH): when to look at the ledger for closed pieces next.
        self._reads_ledger = False
        self._looks: ClosureLooks | reg.RegisterLooks | None = None
        self._look_at: datetime | None = None
        self._look_moved = False
        # Set in run (LATE_MOUNTS_PATCH): mounts reported up to 24 hours after the period are accepted (AM-6).
        self._late_mounts = True
        self._stalls = Stalls("mount")  # a refund that cannot complete is escalated
        self._progress = Progress()

    # ---------------------------------------------------------------- run
    @workflow.run
    async def run(self, input: c.MountTaskInput) -> c.TaskResult:
        s = self.s
        if input.carried_state is None and workflow.patched(reg.REGISTER_PATCH):
            s.register_in_db = True  # its runs continued as new keep it (MountTaskState.register_in_db)
        if workflow.patched(DRAIN_PATCH):
            self._messages_bound = run_length.TASK_MESSAGES_PER_RUN
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
        if (published := s.published) is None:  # every stage after the draft is published: publish sets both
            raise refused("TaskNotPublished", [f"task {s.task_id} is {s.stage.value} without published terms"])
        if self._reads_ledger and s.stage is c.TaskStage.PUBLISHED:
            self._looks = self._new_looks(published)  # pieces that settle while the period is still open
            self._look_at = await self._next_look(found=0)
        shown = False
        while s.stage is c.TaskStage.PUBLISHED:
            end_at = published.period_end_at
            if not shown:
                self._show(f"published: task period open until {business_time(end_at)}", end_at)
                shown = True
            wake_at, wake_for = end_at, wait_summary("the task period ends", end_at)
            if self._look_at is not None and self._look_at < end_at:
                wake_at = self._look_at
                wake_for = wait_summary("the next look at the ledger for closed pieces", self._look_at)
            self._look_moved, timed_out = False, False
            try:
                await workflow.wait_condition(
                    lambda: s.stage is not c.TaskStage.PUBLISHED or self._run_length.reached(s.messages_this_run)
                    or self._look_moved,
                    timeout=until(wake_at), timeout_summary=wake_for,
                )
            except TimeoutError:
                timed_out = True
            if s.stage is c.TaskStage.PUBLISHED and timed_out and workflow.now() >= end_at:
                self._end(end_at, c.EndReason.PERIOD_OVER)
            elif s.stage is c.TaskStage.PUBLISHED and timed_out:
                await self._look_at_closures()
            await self._continue_as_new_if_due()
        await self._tell_pieces_the_period_ended()
        if self._reads_ledger:
            await self._wait_for_closures_in_the_ledger(published)
            while self._late_mounts and await wait_for_late_mounts(s, published, self._run_length):
                await self._continue_as_new_if_due()  # a late mount opened a piece (AM-6), or the run is long
                await self._wait_for_closures_in_the_ledger(published)
        while s.pieces_open > 0:  # runs before the patch: every piece sends content_closed
            self._show(f"ended ({s.end_reason}): waiting for {s.pieces_open} piece(s) to settle", None)
            await workflow.wait_condition(lambda: s.pieces_open == 0 or self._run_length.reached(s.messages_this_run))
            await self._continue_as_new_if_due()
        await self._refund(published)
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
                raise refused(PUBLICATION_REFUSED, s.last_refusal)
        if s.publication is not None:
            return s.publication
        self._publishing, self._publishing_request = True, request
        try:
            if (terms := c.published_terms(request)) is None:  # the validator refused it already
                s.last_refusal = task_form_problems(request, workflow.now())
                raise refused(PUBLICATION_REFUSED, s.last_refusal)
            facts = await directory.CLIENT_FACTS(PartyRequest(party_id=request.client_id))
            reasons = client_publication_refusals(facts)
            if reasons:
                s.last_refusal = reasons
                raise refused(PUBLICATION_REFUSED, reasons)
            fee = platform_fee(terms.budget_fen)
            try:
                freeze = await ledger.FREEZE(FreezeRequest(task_id=s.task_id, client_id=request.client_id,
                                                           budget_fen=terms.budget_fen, platform_fee_fen=fee))
            except ActivityError as err:
                cause = err.cause
                if isinstance(cause, ApplicationError) and cause.type == INSUFFICIENT_FUNDS:
                    s.last_refusal = [f"balance does not cover budget + 10% platform fee: {cause.message}"]
                    raise refused(PUBLICATION_REFUSED, s.last_refusal) from None
                raise
            s.published = terms
            s.budget_fen, s.frozen_fen = terms.budget_fen, freeze.frozen_fen
            s.publication = c.PublicationResult(
                task_id=s.task_id, published_at=workflow.now(), budget_fen=terms.budget_fen,
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
            raise refused(PUBLICATION_REFUSED,
                          f"task_id: {request.task_id} does not match this workflow's task {s.task_id}")
        if s.publication is not None:
            if (p := s.published) is None or p.terms != request:  # the same request again answers the first
                raise refused(PUBLICATION_REFUSED, differing_fields(p.terms, request, "published with") if p
                              else f"task {s.task_id} is already published with different terms")
            return
        if s.stage is not c.TaskStage.DRAFT:
            raise refused(PUBLICATION_REFUSED, f"task {s.task_id} can no longer be published (stage {s.stage.value})")
        if self._publishing and self._publishing_request is not None and request != self._publishing_request:
            raise refused(PUBLICATION_REFUSED,
                          differing_fields(self._publishing_request, request, "being published by another call with"))
        problems = task_form_problems(request, workflow.now())
        if problems:
            raise refused(PUBLICATION_REFUSED, "invalid task form: " + "; ".join(problems))

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
            raise refused(JOIN_REFUSED, reasons)
        if (entry := s.creators.get(request.creator_id)) and entry.authorization_in_force:
            # A concurrent join of the same creator finished first.
            return c.JoinResult(creator_id=entry.creator_id, joined_at=entry.joined_at, already_joined=True,
                                payee_account=entry.payee_account)
        if problem := self._period_closed_problem("join"):
            raise refused(JOIN_REFUSED, [problem])
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
            if joined.refusal_kind != JOIN_REFUSED:  # the period is closed: the validator's refusal, counted
                raise reg.unchanged_refusal(s, JOIN_REFUSED, joined.reasons[0])
            raise refused(JOIN_REFUSED, joined.reasons)
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
            raise refused(JOIN_REFUSED, problem)

    @workflow.query(name="state")
    def state(self) -> MountTaskView:
        """Terms, period, the money picture, piece counts and what the task waits for (contract/views.py)."""
        return task_view(self.s, self._progress_now())

    @workflow.query(name="run")
    def run_info(self) -> RunInfo:
        """How far this run is towards continuing as new: the messages it counted, and its bound."""
        return run_info(self.s.messages_this_run, getattr(self, "_run_length", None))

    # ---------------------------------------------------------------- internals
    def _period_closed_problem(self, action: str) -> str | None:
        s = self.s
        if s.stage is not c.TaskStage.PUBLISHED or (p := s.published) is None:  # published: it has its terms
            return f"cannot {action}: task {s.task_id} is {s.stage.value}"
        now = workflow.now()
        if now < p.period_start_at:
            return f"cannot {action}: the task period opens at {business_time(p.period_start_at)}"
        if now >= p.period_end_at:
            return f"cannot {action}: the task period ended at {business_time(p.period_end_at)}"
        return None

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
            await continue_as_new_when_handlers_done(self._carry)

    def _carry(self) -> c.MountTaskInput:
        self.s.messages_this_run = 0
        return c.MountTaskInput(task_id=self.s.task_id, carried_state=self.s)

    def _show(self, details: str, next_deadline_at: datetime | None) -> None:
        self._describe(details, "deadline", next_deadline_at)
        stage_attributes(self.s.stage.value, next_deadline_at, self._stalls.escalated)

    def _describe(self, waiting_for: str, deadline: str, at: datetime | None) -> None:
        """The current details (workflows/details.py) from the same view the `state` query answers."""
        self._progress = Progress(waiting_for=waiting_for, next_deadline=deadline if at else None,
                                  next_deadline_at=at)
        view = task_view(self.s, self._progress)
        workflow.set_current_details(self._stalls.details(details.lines(
            with_deadline(f"task {self.s.task_id}: {waiting_for}", deadline, at),
            details.task_money_line(view.money), details.counts_line(view.pieces, view.creators_joined)), False))

    def _progress_now(self) -> Progress:
        return self._progress.model_copy(update={"escalations": self._stalls.escalations()})

    def _result(self) -> c.TaskResult:
        s = self.s
        return c.TaskResult(task_id=s.task_id, stage=s.stage, publication=s.publication, ended_at=s.ended_at,
                            end_reason=s.end_reason, frozen_fen=s.frozen_fen,
                            paid_to_creators_fen=s.paid_to_creators_fen, platform_fees_fen=s.platform_fees_fen,
                            refunded_fen=s.refunded_fen)
