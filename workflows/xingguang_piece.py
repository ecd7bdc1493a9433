"""The messages about one piece of content of a Xingguang task (XG-4, XG-5, XG-6, R-5, R-9, R-11), as a base class
of XingguangTaskWorkflow (workflows/xingguang_task.py), which holds the pieces in its state. Updates validate (a
rejected command changes nothing) then apply; billable-event batches are signals with event ids (R-1)."""

from __future__ import annotations

from datetime import datetime

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from ports import directory, xg_ledger
    from ports.directory import PartyRequest
    from ports.xg_ledger import (
        ClaimEventsRequest,
        EventGrant,
        EventRef,
        RecordGrantsRequest,
        VoidEventsRequest,
    )
    from workflows.contract import xingguang as c
    from workflows.contract import xingguang_pieces as cp
    from workflows.contract import xingguang_state as cs
    from workflows.rules import xingguang_lifecycle as life
    from workflows.rules.clock import business_time
    from workflows.rules.eligibility import payee_account
    from workflows.rules.xingguang_money import billable_grant
    from workflows.rules.xingguang_order import creator_selection_refusals
    from workflows.rules.xingguang_windows import ESCALATION_WORKING_DAYS, billable, client_review_due_at

from workflows import metrics
from workflows.deadlines import working_days_after
from workflows.refusals import XINGGUANG_STEP_REFUSED, refused

PUBLISHED = (cs.PieceStage.PUBLISHED, cs.PieceStage.PUBLICITY)


class WorkflowBase:
    s: cs.XingguangTaskState
    _wake: bool

    async def _new_case(self, reason: str, purpose: str) -> cs.CaseRecord:
        """An objection or data dispute, escalating 7 working days after it was raised (XG-5, XG-6 as AM-17), from
        the calendar activity; at once when that year's official calendar is not published (never silently wrong)."""
        now = workflow.now()
        deadline = await working_days_after(now, ESCALATION_WORKING_DAYS, purpose)
        return cs.CaseRecord(raised_at=now, reason=reason, escalates_at=deadline or now)

    def _check_client_case(self, client_id: str, piece: cs.Piece, existing: cs.CaseRecord | None, what: str,
                           closes: datetime | None, window: str, deemed: str) -> None:
        self._require(client_id == self.s.client_id,
                      f"client_id: {client_id} is not the client of task {self.s.task_id}")
        self._require(existing is None, f"piece {piece.piece_id} already had {what}")
        self._require(closes is None or workflow.now() < closes,
                      f"the {window} closed at {business_time(closes) if closes else ''}: {deemed}")

    def _changed(self) -> None:
        """After a command: apply what time decides now (so the answer shows it) and wake the run loop."""
        self.s.messages_this_run += 1
        was_escalated = self.s.escalated
        life.advance(self.s, workflow.now())
        metrics.escalation("xingguang", was_escalated, self.s.escalated)
        self._wake = True

    def _ordered(self) -> cs.Ordered:
        """The task's order-time fields, for a step that needs them: on a task not ordered the step is refused."""
        if (ordered := cs.ordered(self.s)) is None:
            raise refused(XINGGUANG_STEP_REFUSED, f"task {self.s.task_id} is not ordered ({self.s.stage.value})")
        return ordered

    @staticmethod
    def _require(ok: bool, problem: str) -> None:
        if not ok:
            raise refused(XINGGUANG_STEP_REFUSED, problem)

    def _piece(self, piece_id: str, *stages: cs.PieceStage) -> cs.Piece:
        piece = self.s.pieces.get(piece_id)
        if piece is None:
            raise refused(XINGGUANG_STEP_REFUSED, f"piece_id: no piece {piece_id} in task {self.s.task_id}")
        if stages and piece.stage not in stages:
            allowed = ", ".join(st.value for st in stages)
            raise refused(XINGGUANG_STEP_REFUSED, f"piece_id: piece {piece_id} is {piece.stage.value}, not {allowed}")
        return piece

    def _unit_price(self) -> int:
        return self._ordered().unit_price_fen

    def _placement_left(self) -> int:
        return self._ordered().terms.placement_budget_fen - self.s.placement_spent_fen


class PieceMessages(WorkflowBase):
    # ---------------------------------------------------------------- the provider selects a creator (XG-4, R-8)
    @workflow.update(name="select_creator")
    async def select_creator(self, request: cp.SelectCreatorRequest) -> cs.Piece:
        s = self.s
        if (existing := s.pieces.get(request.piece_id)) is not None:
            return existing
        facts = await directory.CREATOR_FACTS(PartyRequest(party_id=request.creator_id))
        reasons = creator_selection_refusals(facts)
        if (existing := s.pieces.get(request.piece_id)) is not None:
            return existing
        if s.stage is not cs.TaskStage.IN_PROGRESS or s.promotion_stopped_at is not None:
            reasons.append(f"task {s.task_id} is {s.stage.value}: creators are selected while it is in progress")
        if problem := self._earnings_problem(request.creator_earnings_fen):
            reasons.append(problem)  # a concurrent selection used the budget meanwhile
        if reasons:
            raise refused("SelectionRefused", reasons)
        piece = cs.Piece(piece_id=request.piece_id, creator_id=request.creator_id, payee_account=payee_account(facts),
                         agreed_earnings_fen=request.creator_earnings_fen, selected_at=workflow.now())
        s.pieces[piece.piece_id] = piece
        s.earnings_committed_fen += piece.agreed_earnings_fen
        metrics.piece_mounted("xingguang", piece.piece_id)
        self._changed()
        return piece

    @select_creator.validator
    def validate_select_creator(self, request: cp.SelectCreatorRequest) -> None:
        # The rules the handler checks again (stage, earnings budget) refuse with its type: SelectionRefused.
        s = self.s
        if (existing := s.pieces.get(request.piece_id)) is not None:
            if (existing.creator_id, existing.agreed_earnings_fen) != (request.creator_id,
                                                                        request.creator_earnings_fen):
                raise refused("SelectionRefused", [(f"piece_id: {request.piece_id} is already selected for creator "
                                                   f"{existing.creator_id} at {existing.agreed_earnings_fen} fen")])
            return
        reasons: list[str] = []
        if s.stage is not cs.TaskStage.IN_PROGRESS or s.promotion_stopped_at is not None:
            reasons.append(f"task {s.task_id} is {s.stage.value}: creators are selected while it is in progress")
        if request.provider_id != s.provider_id:
            reasons.append(f"provider_id: {request.provider_id} is not the provider assigned to task {s.task_id}")
        elif problem := self._earnings_problem(request.creator_earnings_fen):
            reasons.append(problem)
        if reasons:
            raise refused("SelectionRefused", reasons)

    def _earnings_problem(self, earnings_fen: int) -> str | None:
        s, budget = self.s, self._ordered().terms.creator_earnings_budget_fen
        left = budget - s.earnings_committed_fen
        if earnings_fen > left:
            return (f"creator_earnings_fen: {earnings_fen} passes what is left of the creator earnings budget "
                    f"({left} of {budget} fen)")
        return None

    # ---------------------------------------------------------------- creator submits, provider reviews (XG-4)
    @workflow.update(name="submit_content")
    def submit_content(self, request: cp.SubmitContentRequest) -> cs.Piece:
        piece = self.s.pieces[request.piece_id]
        if piece.stage is cs.PieceStage.PROVIDER_REVIEW and piece.content_id == request.content_id:
            return piece  # the same submission again
        piece.content_id, piece.submitted_at = request.content_id, workflow.now()
        piece.stage = cs.PieceStage.PROVIDER_REVIEW
        self._changed()
        return piece

    @submit_content.validator
    def validate_submit_content(self, request: cp.SubmitContentRequest) -> None:
        piece = self._piece(request.piece_id)
        self._require(piece.creator_id == request.creator_id,
                      f"creator_id: piece {piece.piece_id} belongs to creator {piece.creator_id}")
        if piece.stage is cs.PieceStage.PROVIDER_REVIEW and piece.content_id == request.content_id:
            return
        self._piece(request.piece_id, cs.PieceStage.SELECTED, cs.PieceStage.REVISION)
        self._require(self.s.stage is cs.TaskStage.IN_PROGRESS, f"task {self.s.task_id} is {self.s.stage.value}")

    @workflow.update(name="provider_review")
    def provider_review(self, request: cp.ProviderReviewRequest) -> cs.Piece:
        piece, now = self.s.pieces[request.piece_id], workflow.now()
        order = self._ordered().order
        confirms, hours = order.client_confirms_content, order.client_review_hours
        if confirms and hours is None:  # the order form requires the hours when the client confirms (XG-4)
            raise refused(XINGGUANG_STEP_REFUSED, f"task {self.s.task_id}: the order names no client_review_hours")
        piece.reviews.append(cs.ReviewRecord(by="provider", approved=request.approved, reason=request.reason, at=now))
        if not request.approved:
            piece.stage, piece.revisions = cs.PieceStage.REVISION, piece.revisions + 1
        elif confirms and hours is not None:
            piece.stage = cs.PieceStage.CLIENT_REVIEW
            piece.client_review_due_at = client_review_due_at(now, hours)
        else:
            piece.stage, piece.approved_at = cs.PieceStage.APPROVED, now
        self._changed()
        return piece

    @provider_review.validator
    def validate_provider_review(self, request: cp.ProviderReviewRequest) -> None:
        self._piece(request.piece_id, cs.PieceStage.PROVIDER_REVIEW)
        self._require(request.provider_id == self.s.provider_id,
                      f"provider_id: {request.provider_id} is not the provider of task {self.s.task_id}")
        self._require(request.approved or bool(request.reason.strip()),
                      "reason: required when sending content back for revision")

    @workflow.update(name="client_review")
    def client_review(self, request: cp.ClientReviewRequest) -> cs.Piece:
        piece, now = self.s.pieces[request.piece_id], workflow.now()
        piece.reviews.append(cs.ReviewRecord(by="client", approved=request.approved, reason=request.reason, at=now))
        if request.approved:
            piece.stage, piece.approved_at = cs.PieceStage.APPROVED, now
        else:
            piece.stage, piece.revisions = cs.PieceStage.REVISION, piece.revisions + 1
        self._changed()
        return piece

    @client_review.validator
    def validate_client_review(self, request: cp.ClientReviewRequest) -> None:
        piece = self._piece(request.piece_id, cs.PieceStage.CLIENT_REVIEW)
        self._require(request.client_id == self.s.client_id,
                      f"client_id: {request.client_id} is not the client of task {self.s.task_id}")
        if (due_at := piece.client_review_due_at) is None:  # set with the stage (provider_review)
            raise refused(XINGGUANG_STEP_REFUSED, f"piece_id: piece {piece.piece_id} has no review deadline")
        self._require(workflow.now() < due_at,
                      f"the review deadline passed at {business_time(due_at)}: "
                      "silence approved the content (XG-4)")
        self._require(request.approved or bool(request.reason.strip()), "reason: required when rejecting content")

    # ---------------------------------------------------------------- objections (XG-5)
    @workflow.update(name="raise_objection")
    async def raise_objection(self, request: cp.RaiseObjectionRequest) -> cs.Piece:
        piece = self.s.pieces[request.piece_id]
        if piece.objection is None:
            case = await self._new_case(request.reason, f"objection on piece {piece.piece_id} of {self.s.task_id}")
            if piece.objection is None:  # not raised by a concurrent call meanwhile
                piece.objection = case
                metrics.dispute_raised("xingguang", "objection")
                self._changed()
        return piece

    @raise_objection.validator
    def validate_raise_objection(self, request: cp.RaiseObjectionRequest) -> None:
        piece = self._piece(request.piece_id, *life.BEFORE_PUBLICATION, *PUBLISHED)
        self._check_client_case(request.client_id, piece, piece.objection, "an objection",
                                piece.objection_window_closes_at, "objection window",
                                "the content is deemed accepted (XG-5)")

    @workflow.update(name="decide_objection")
    def decide_objection(self, request: cp.DecideObjectionRequest) -> cs.Piece:
        s, piece, now = self.s, self.s.pieces[request.piece_id], workflow.now()
        if (objection := piece.objection) is None:  # the validator refused it already
            raise refused(XINGGUANG_STEP_REFUSED, f"piece {piece.piece_id} has no open objection")
        objection.decided_at = now
        metrics.dispute_resolved("xingguang", "objection")
        objection.outcome = f"{'upheld' if request.upheld else 'dismissed'}: {request.note}"
        if request.upheld:
            # The piece stops promoting and settles at the operator's amounts, now.
            s.placement_spent_fen -= piece.billed_spend_fen - request.promotion_spend_fen
            piece.operator_amounts = cs.PieceMoney(creator_earnings_fen=request.creator_earnings_fen,
                                                   promotion_spend_fen=request.promotion_spend_fen)
            if piece.stage is cs.PieceStage.PUBLISHED:
                life.end_promotion(piece, now)
            piece.settlement_due = True
        self._changed()
        return piece

    @decide_objection.validator
    def validate_decide_objection(self, request: cp.DecideObjectionRequest) -> None:
        piece = self._piece(request.piece_id)
        self._require(life.open_case(piece.objection), f"piece {piece.piece_id} has no open objection")
        if request.upheld:
            earned = piece.agreed_earnings_fen if piece.published_at is not None else 0
            self._require(request.creator_earnings_fen <= earned,
                          f"creator_earnings_fen: at most what the piece earned ({earned} fen)")
            self._require(request.promotion_spend_fen <= piece.billed_spend_fen,
                          f"promotion_spend_fen: at most the promotion billed ({piece.billed_spend_fen} fen)")

    # ---------------------------------------------------------------- promotion data (XG-6, R-1, R-9)
    @workflow.signal(name="report_billable_events")
    def report_billable_events(self, batch: cp.BillableEventBatch) -> None:
        """R-1 / XG-6: a batch from the platform's statistics. Each event id bills once; cheating never; outside the
        piece's promotion or during a pause, never; after the piece settled, logged as late. The batch that uses up
        the placement budget ends promotion for every piece at its instant (R-11)."""
        self.s.messages_this_run += 1
        self.s.batches_received += 1
        self.s.pending_batches.append(batch)
        self._wake = True

    @workflow.signal(name="void_billable_events")
    def void_billable_events(self, void: cp.VoidBillableEvents) -> None:
        """R-1: the platform voids a batch (cheating found later) until its piece is settled."""
        self.s.messages_this_run += 1
        self.s.pending_voids.append(void)
        self._wake = True

    async def _apply_data(self) -> None:
        """Bill and void what arrived, in batches, until nothing is pending."""
        s = self.s
        while s.pending_batches or s.pending_voids:
            batches, s.pending_batches = s.pending_batches, []
            voids, s.pending_voids = s.pending_voids, []
            if batches:
                await self._bill(batches)
            if voids:
                await self._void(voids)

    async def _bill(self, batches: list[cp.BillableEventBatch]) -> None:
        """R-1, R-2, R-9, XG-6: each event id bills once; cheating never; outside promotion or inside a pause, never;
        after its piece settled, logged as late. Whole events while the placement budget lasts; the batch that uses
        it up ends promotion for every piece at its instant (R-11)."""
        s = self.s
        unique: dict[str, cp.BillableEventBatch] = {}
        for batch in batches:
            piece = s.pieces.get(batch.piece_id)
            if piece is None or piece.stage in life.DONE:
                s.late_batches += 1
                workflow.logger.info("batch %s for piece %s arrived when nothing can bill: logged as late",
                                     batch.event_id, batch.piece_id)
            else:
                unique.setdefault(batch.event_id, batch)
        if not unique:
            return
        s.data_ops += 1
        claimed = await xg_ledger.CLAIM_EVENTS(
            ClaimEventsRequest(task_id=s.task_id, op_key=f"{s.task_id}:data:{s.data_ops}",
                               events=[EventRef(event_id=b.event_id, piece_id=b.piece_id) for b in unique.values()]))
        price, grants = self._unit_price(), []
        for batch, answer in zip(unique.values(), claimed.events, strict=True):
            piece = s.pieces[batch.piece_id]
            if answer.status != "new" or piece.promotion_starts_at is None or not billable(
                    batch.occurred_at, piece.promotion_starts_at, life.piece_promotion_end(s, piece),
                    life.pause_intervals(s, piece.piece_id), batch.cheating):
                continue
            granted = billable_grant(batch.count, price, self._placement_left())
            metrics.conversions("xingguang", counted=granted)
            piece.billable_events += granted
            piece.billed_spend_fen += granted * price
            s.placement_spent_fen += granted * price
            if granted:
                grants.append(EventGrant(event_id=batch.event_id, billed_events=granted))
            if (granted < batch.count or self._placement_left() < price) and (
                    s.promotion_stopped_at is None or batch.occurred_at < s.promotion_stopped_at):
                s.promotion_stopped_at, s.end_reason = batch.occurred_at, "placement budget used up"
        if grants:
            await xg_ledger.RECORD_GRANTS(RecordGrantsRequest(task_id=s.task_id, grants=grants))

    async def _void(self, voids: list[cp.VoidBillableEvents]) -> None:
        s = self.s
        s.data_ops += 1
        voided = await xg_ledger.VOID_EVENTS(
            VoidEventsRequest(task_id=s.task_id, op_key=f"{s.task_id}:data:{s.data_ops}",
                              event_ids=list(dict.fromkeys(v.event_id for v in voids))))
        price = self._unit_price()
        for event in voided.events:
            piece = s.pieces.get(event.piece_id)
            if piece is None or not event.billed_events or piece.stage in life.DONE:
                continue  # not arrived yet (it will bill nothing), billed nothing, or settled already
            piece.billable_events -= event.billed_events
            metrics.conversions("xingguang", released=event.billed_events)
            piece.billed_spend_fen -= event.billed_events * price
            s.placement_spent_fen -= event.billed_events * price

    @workflow.update(name="raise_data_dispute")
    async def raise_data_dispute(self, request: cp.RaiseDataDisputeRequest) -> cs.Piece:
        piece = self.s.pieces[request.piece_id]
        if piece.data_dispute is None:
            case = await self._new_case(request.reason, f"data dispute on piece {piece.piece_id} of {self.s.task_id}")
            if piece.data_dispute is None:
                piece.data_dispute = case
                metrics.dispute_raised("xingguang", "data")
                self._changed()
        return piece

    @raise_data_dispute.validator
    def validate_raise_data_dispute(self, request: cp.RaiseDataDisputeRequest) -> None:
        piece = self._piece(request.piece_id, *PUBLISHED)
        self._check_client_case(request.client_id, piece, piece.data_dispute, "a data dispute",
                                piece.publicity_window_closes_at, "publicity window",
                                "the data is deemed confirmed (XG-6)")

    @workflow.update(name="resolve_data_dispute")
    def resolve_data_dispute(self, request: cp.ResolveDataDisputeRequest) -> cs.Piece:
        s, piece, price = self.s, self.s.pieces[request.piece_id], self._unit_price()
        if (dispute := piece.data_dispute) is None:  # the validator refused it already
            raise refused(XINGGUANG_STEP_REFUSED, f"piece {piece.piece_id} has no open data dispute")
        events = min(request.billable_events, piece.billable_events + self._placement_left() // price)
        metrics.conversions("xingguang", counted=max(events - piece.billable_events, 0),
                            released=max(piece.billable_events - events, 0))
        s.placement_spent_fen += (events - piece.billable_events) * price
        piece.billable_events, piece.billed_spend_fen = events, events * price
        dispute.decided_at = workflow.now()
        metrics.dispute_resolved("xingguang", "data")
        dispute.outcome = f"{events} billable events: {request.note}"
        self._changed()
        return piece

    @resolve_data_dispute.validator
    def validate_resolve_data_dispute(self, request: cp.ResolveDataDisputeRequest) -> None:
        piece = self._piece(request.piece_id)
        self._require(life.open_case(piece.data_dispute), f"piece {piece.piece_id} has no open data dispute")

    # ---------------------------------------------------------------- per-piece decisions on a stop
    @workflow.update(name="decide_piece")
    def decide_piece(self, request: c.DecidePieceRequest) -> cs.Piece:
        piece = self.s.pieces[request.piece_id]
        piece.stop_decision = "settle" if request.settle else "decline"
        piece.decision_needed, piece.settlement_due = False, True
        self._changed()
        return piece

    @decide_piece.validator
    def validate_decide_piece(self, request: c.DecidePieceRequest) -> None:
        piece = self._piece(request.piece_id)
        self._require(piece.decision_needed, f"piece {piece.piece_id} is not waiting for a settle-or-decline decision")
