"""A mounted piece's conversion batches in the ledger's database (issue 21), as MountedContentWorkflow asks for
them: one call records what arrived, voids what the platform voided, and brings the piece's grants in the task's
budget in line with its counting rule (activities/content_batches.py implements it, in one transaction)."""

from __future__ import annotations

from pydantic import AwareDatetime, BaseModel, Field

from ports.port import ActivityPort
from workflows.contract.mounted_content import BatchRecord, IncomingBatch
from workflows.rules.counting import CountingRule


class ReconcileBatches(BaseModel):
    task_id: str = Field(min_length=1)
    content_id: str = Field(min_length=1)
    price_fen: int = Field(gt=0)
    first_seq: int = Field(ge=0)  # the number of the first batch given here; the next ones follow
    batches: list[IncomingBatch] = []
    voids: list[str] = []
    # Judge every batch of the piece again (the interval shrank or a freeze changed), not only those given here.
    rejudge: bool = False
    # The fee is fixed by a resolution (AM-17): batches are recorded, no grant moves.
    fee_fixed: bool = False
    rule: CountingRule
    # Batches whose current record the caller shows (its last received): answered in `records`.
    shown: list[str] = []


class ReconciledBatches(BaseModel):
    received: int  # batches new to the database (a repeat of an earlier call counts as new again)
    late: int
    counted_now: int  # conversions granted by this call
    released_now: int  # conversions whose grant this call gave back
    counted_conversions: int  # the piece's batches granted and not given back, in all
    fee_fen: int
    exhausted_at: AwareDatetime | None  # AM-10, R-3: the budget is used up (the instant the period ends)
    records: dict[str, BatchRecord]  # the batches given here and those `shown`, as the database has them now


class GiveBack(BaseModel):
    """AM-17: a resolution's amount replaces the piece's batches: every grant of theirs goes back to the budget."""

    task_id: str = Field(min_length=1)
    content_id: str = Field(min_length=1)


class GivenBack(BaseModel):
    released_fen: int
    batches: int


RECONCILE = ActivityPort[ReconcileBatches, ReconciledBatches]("content_batches.reconcile", ReconciledBatches)
GIVE_BACK = ActivityPort[GiveBack, GivenBack]("content_batches.give_back", GivenBack)
