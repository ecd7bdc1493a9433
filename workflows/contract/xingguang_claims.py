"""Public contract of XingguangClaimsWorkflow (`xg-claims:{task_id}`): claims of compensation or damages against the
platform after a Xingguang task closed (XG-10, R-14: "a claim of damages may be made after the task closed").

  update   compensate (update-with-start; the request and result of XingguangTaskWorkflow's `compensate`)
  query    state

The claim is judged by the closed task's record (its compliance pauses, XG-7) and the ledger (the order amount and
every compensation already paid for the task, during it or after): the same cap as while the task ran. The
workflow completes after a week without claims; a later claim starts it again.
"""

from __future__ import annotations

from datetime import datetime

from pydantic import Field

from workflows.contract.common import ContractModel, Identifier, StateModel
from workflows.contract.xingguang_state import MoneyRecord


class XingguangClaimsInput(ContractModel):
    task_id: Identifier


class XingguangClaimsView(StateModel):
    """Claims on a closed Xingguang task (the `state` query): what was paid after it closed."""

    task_id: str
    claims: list[MoneyRecord] = Field(default_factory=list)  # paid by this workflow (after the task closed)
    order_amount_fen: int = 0  # as the ledger's freeze shows it, once a claim was judged
    last_claim_at: datetime | None = None


class XingguangClaimsState(XingguangClaimsView):
    """What the workflow carries across continue-as-new (today exactly its view)."""
