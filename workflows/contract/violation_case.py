"""Public contract of ViolationCaseWorkflow (`violation:{case_id}`): AM-18..AM-22.

A case is started by the platform when it issues a penalty notice (one or more penalties against one creator or
client). Every penalty takes effect at notice (AM-19). The penalized party may `appeal` within 7 days (AM-20); an
operator answers with `decide_appeal` within 7 working days (AM-21) or marks the case complex (`mark_complex`).
Upheld: every penalty is withdrawn; rejected or not appealed: final (AM-22)."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Literal

from pydantic import Field
from pydantic.json_schema import SkipJsonSchema

from workflows.contract.common import ContractModel, Fen, Identifier, Instant, PositiveFen, StateModel, Text
from workflows.rules.penalties import PartyKind, PenaltyKind

__all__ = ["PartyKind", "PenaltyKind"]


class Penalty(ContractModel):
    """One penalty of AM-18. `until_at`: a timed restriction's end (none: for good). `amount_fen`: the part of the
    unwithdrawn fees a freeze_fees freezes (none: all). `deduct_when_final`: the frozen fees are deducted when the
    case becomes final (deduct_fees always is). `points`: credit score deducted."""

    kind: PenaltyKind
    until_at: Instant | None = None
    amount_fen: PositiveFen | None = None
    deduct_when_final: bool = False
    points: int | None = Field(None, strict=True, gt=0, le=1000)
    task_id: Identifier | None = None  # remove_from_task: the task the party is removed from


class ViolationCaseInput(ContractModel):
    case_id: Identifier
    party_kind: PartyKind
    party_id: Identifier
    notice_at: Instant  # when the notice was issued to (received by) the party: the penalties act from then
    violation: Text = Field(min_length=1)  # what was found, e.g. "faked conversions on content c-9"
    penalties: list[Penalty] = Field(min_length=1, max_length=20)
    issued_by: Identifier
    # Set only when the workflow continues as new.
    # Private: set only when the run continues as new, so not in the published schema (it may change freely).
    carried_state: SkipJsonSchema[ViolationCaseState | None] = None


class AppealRequest(ContractModel):
    party_id: Identifier  # must be the penalized party
    reason: Text = Field(min_length=1)


class AppealReceipt(ContractModel):
    case_id: str
    appealed_at: Instant
    answer_due_at: Instant | None  # None when the working-day calendar could not count it (then escalated)
    escalated: bool


class DecideAppealRequest(ContractModel):
    decision: Literal["upheld", "rejected"]
    operator_id: Identifier
    note: Text = Field(min_length=1)


class MarkComplexRequest(ContractModel):
    operator_id: Identifier
    note: Text = Field(min_length=1)


class LiftFreezeRequest(ContractModel):
    """AM-22: an operator lifts a standing freeze (of fees, or of in-flight tasks) with a reason. A freeze marked
    to be deducted cannot be lifted: it is deducted when the case is final."""

    penalty_id: Identifier
    operator_id: Identifier
    reason: Text = Field(min_length=1)


class CaseStage(StrEnum):
    IN_FORCE = "in_force"  # penalties act; the appeal window is open
    APPEALED = "appealed"  # waiting for the operator's answer (7 working days)
    APPEAL_COMPLEX = "appeal_complex"  # marked complex: no deadline, still listed
    FINAL = "final"  # not appealed, or appeal rejected: penalties stand (timed ones run to their end, freezes
    # until their end or an operator's lift_freeze)
    WITHDRAWN = "withdrawn"  # appeal upheld: every penalty withdrawn
    CLOSED = "closed"  # final and every timed restriction has run out


class PenaltyStatus(StrEnum):
    PENDING = "pending"  # not yet applied (only before the notice is processed)
    IN_FORCE = "in_force"
    FINAL = "final"  # stands for good (or until its until_at)
    DEDUCTED = "deducted"  # final: the frozen fees were deducted
    RELEASED = "released"  # final: a freeze not marked to deduct was unfrozen
    EXPIRED = "expired"  # a timed restriction reached its until_at
    WITHDRAWN = "withdrawn"  # appeal upheld
    LIFTED = "lifted"  # a freeze lifted by an operator with a reason (AM-22)


class PenaltyRecord(StateModel):
    penalty_id: str
    kind: PenaltyKind
    until_at: datetime | None = None
    amount_fen: int | None = None
    deduct_when_final: bool = False
    points: int | None = None
    status: PenaltyStatus = PenaltyStatus.PENDING
    applied_at: datetime | None = None
    frozen_fen: int = 0  # held in the ledger at notice
    deducted_fen: int = 0
    ended_at: datetime | None = None  # withdrawn, released, deducted, expired or lifted
    task_id: str | None = None  # remove_from_task
    lift_requested_at: datetime | None = None
    lifted_by: str | None = None
    lift_reason: str | None = None


class AppealRecord(StateModel):
    appealed_at: datetime
    reason: str
    answer_due_at: datetime | None = None
    calendar_problem: str | None = None
    complex: bool = False
    marked_complex_at: datetime | None = None
    marked_complex_by: str | None = None
    complex_note: str | None = None
    decision: Literal["upheld", "rejected"] | None = None
    decided_at: datetime | None = None
    decided_by: str | None = None
    note: str | None = None


class HeldSettlements(StateModel):
    released: int = 0
    deducted: int = 0
    passed_to_other_cases: int = 0
    done: bool = False


class ViolationCaseView(StateModel):
    """A violation case (the `state` query): penalties and their status, the appeal, every deadline, and whether it
    is escalated."""

    case_id: str
    party_kind: PartyKind
    party_id: str
    violation: str
    issued_by: str
    notice_at: datetime
    stage: CaseStage = CaseStage.IN_FORCE
    penalties: list[PenaltyRecord]
    appeal_window_closes_at: datetime  # exclusive; the last valid instant is one second before
    appeal: AppealRecord | None = None
    final_at: datetime | None = None
    withdrawn_at: datetime | None = None
    held_settlements: HeldSettlements = HeldSettlements()
    escalated: bool = False
    escalation_reason: str | None = None
    next_deadline_at: datetime | None = None
    next_deadline: str | None = None  # what the next deadline is for


class ViolationCaseState(ViolationCaseView):
    """What the workflow carries across continue-as-new: the view, which rules its run follows, its counter."""

    # Cases started with R-12/AM-22 (patch): freezes stand after finality; penalties act on tasks.
    freezes_stand: bool = False
    messages_this_run: int = 0


class ViolationCaseResult(ContractModel):
    case_id: str
    stage: CaseStage
    penalties: list[PenaltyRecord]
    appeal: AppealRecord | None
    deducted_fen: Fen
    closed_at: Instant


ViolationCaseInput.model_rebuild()
