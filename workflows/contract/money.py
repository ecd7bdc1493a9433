"""The money picture: one set of names for where a task's or a piece's money is, wherever it is read.

The `state` answer of a task or a piece, `python -m starter ledger`, the ledger's `task_money` and the TypeScript
client all report these figures under these names. A task's figures always add up (R-4, to the fen):

    frozen = accrued + platform_fee_on_accrued + paid + platform_fees + refunded + refund_to_come

`accrued` is counted but not settled yet; `held` is the part of it whose settlement waits for a dispute or a
penalty (AM-13, AM-19); `refund_to_come` is what goes back to the client if everything accrued settles as it
stands, and `refund_expected_at` says from when.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import AwareDatetime, PlainSerializer

from workflows.contract.common import Fen, StateModel
from workflows.rules.clock import BUSINESS_TZ


def _business_instant(value: datetime) -> str:
    return value.astimezone(BUSINESS_TZ).isoformat()


# An instant as views give it: in business time, e.g. 2026-12-09T10:00:00+08:00. A fraction of a second is kept
# where the workflow's clock had one, so that a view's instant equals the one an update answered; what people read
# (the CLI, the UI's details) is cut to the second.
BusinessInstant = Annotated[AwareDatetime, PlainSerializer(_business_instant, return_type=str, when_used="json")]


class TaskMoney(StateModel):
    """Where a task's money is, in fen (the identity in the module's docstring holds to the fen)."""

    frozen_fen: Fen = 0
    accrued_fen: Fen = 0
    platform_fee_on_accrued_fen: Fen = 0
    paid_fen: Fen = 0
    platform_fees_fen: Fen = 0
    held_fen: Fen = 0
    refunded_fen: Fen = 0
    refund_to_come_fen: Fen = 0
    # Known only where the task is: None once refunded, else the earliest the rest can go back (AM-13).
    refund_expected_at: BusinessInstant | None = None
    refund_waits_for: str | None = None
    # When the figures were read from the ledger (a task reads them when it looks there; `ledger` reads them live).
    as_of: BusinessInstant | None = None


class PieceMoney(StateModel):
    """Where one piece's money is: counted and not settled (accrued, of which held), or settled (paid to the payee
    and the platform's part of it)."""

    accrued_fen: Fen = 0
    held_fen: Fen = 0
    paid_fen: Fen = 0
    platform_fee_fen: Fen = 0
    payee_account: str


class XingguangMoney(TaskMoney):
    """A Xingguang task's money picture (R-8): the task money's names, and the kinds only Xingguang has. Its
    identity: frozen = accrued + platform_fee_on_accrued + paid + promotion_spend + platform_fees + delay_fee
    + deducted + refunded + refund_to_come. Accrued is the promotion billed and the creator earnings of the pieces
    published and not settled yet; the provider's fees are paid by the platform, not from the frozen amount."""

    promotion_spend_fen: Fen = 0
    delay_fee_fen: Fen = 0
    deducted_fen: Fen = 0
    provider_fees_fen: Fen = 0
