"""Public contract of AccountWorkflow (`account:{account_id}`): PR-3, PR-4, PR-5 with readings R-6, R-7.

One long-lived workflow per account (started by signal-with-start on its first `record_activity`; see
starter/privacy.py). Messages (all on `account:{account_id}`):
  signals  record_activity (any sign-in or use: resets the 24 months), obligations_changed (a task of the account
           ended: re-check what blocks cancellation), request_cancellation (the user, or a data-subject request)
  updates  raise_statement_dispute, resolve_statement_dispute
  query    state
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Literal

from pydantic import Field
from pydantic.json_schema import SkipJsonSchema

from workflows.contract.common import ContractModel, Fen, Identifier, Instant, StateModel, Text
from workflows.contract.privacy import AccountParty


class AccountInput(ContractModel):
    account_id: Identifier
    party: AccountParty
    opened_at: Instant
    # Private: set only when the run continues as new, so not in the published schema (it may change freely).
    carried_state: SkipJsonSchema[AccountState | None] = None


class AccountActivity(ContractModel):
    """A sign-in or any use of the account, reported by the services (repeat-safe: the latest instant wins)."""

    event_id: Identifier
    occurred_at: Instant
    kind: Literal["sign_in", "use"] = "use"


class ObligationsChanged(ContractModel):
    task_id: Identifier | None = None


class CancellationRequested(ContractModel):
    request_id: Identifier  # e.g. the data-subject request that asked for it
    requested_at: Instant


class StatementSubject(StrEnum):
    TOP_UP = "top_up"
    SPEND = "spend"
    BALANCE = "balance"


class RaiseStatementDispute(ContractModel):
    """PR-4 / R-6: accepted before 00:00 (UTC+08:00) of the 11th of the month after the transaction."""

    dispute_id: Identifier
    subject: StatementSubject
    transaction_at: Instant
    transaction_ref: Text | None = Field(None, description="ledger transfer id or business key, if known")
    amount_fen: Fen | None = None
    reason: Text = Field(min_length=1)


class ResolveStatementDispute(ContractModel):
    dispute_id: Identifier
    resolved_by: Identifier
    outcome: Literal["upheld", "rejected"]
    adjustment_fen: Fen = Field(0, description="upheld: credited to the account's money account")
    note: Text = Field(min_length=1)


class AccountStage(StrEnum):
    ACTIVE = "active"
    DORMANCY_NOTICE = "dormancy_notice"  # 24 months unused: notice sent; kept if used in the next 30 days
    DORMANT = "dormant"  # and 30 more days unused: flagged; cancelled once its obligations are done
    CANCELLING = "cancelling"  # the user asked: cancelled once its obligations are done
    CANCELLED = "cancelled"


class StatementDisputeRecord(StateModel):
    dispute_id: str
    subject: StatementSubject
    transaction_at: datetime
    transaction_ref: str | None = None
    amount_fen: int | None = None
    reason: str
    raised_at: datetime
    window_closed_at: datetime  # R-6 deadline of this transaction
    escalation_due_at: datetime | None = None  # 7 working days after raising (as fee disputes, AM-17)
    escalated: bool = False
    status: Literal["open", "upheld", "rejected"] = "open"
    resolved_at: datetime | None = None
    resolved_by: str | None = None
    adjustment_fen: int = 0
    note: str = ""


class Payout(StateModel):
    ledger_account: str
    amount_fen: int
    transfer_key: str


class AccountView(StateModel):
    """An account (the `state` query): its dormancy clock, cancellation, payouts and statement disputes."""

    account_id: str
    party: AccountParty
    stage: AccountStage = AccountStage.ACTIVE
    opened_at: datetime
    last_activity_at: datetime
    dormant_at: datetime  # last_activity_at + 24 months (PR-3)
    flagged_dormant_at: datetime | None = None
    dormancy_notice_at: datetime | None = None  # the notice at 24 months (None once a use keeps the account)
    dormancy_cancels_at: datetime | None = None  # the notice + 30 days: cancelled from then if still unused
    dormancy_notices: int = 0  # notices sent over the account's life
    cancellation_reason: Literal["dormancy", "requested"] | None = None
    cancellation_request_id: str | None = None
    open_task_ids: list[str] = Field(default_factory=list)  # what cancellation waits for, as last checked
    obligations_checked_at: datetime | None = None
    payouts: list[Payout] = Field(default_factory=list)
    cancelled_at: datetime | None = None
    statement_disputes: dict[str, StatementDisputeRecord] = Field(default_factory=dict)
    activities_recorded: int = 0  # uses (sign-ins, orders, ...) recorded over the account's life


class AccountState(AccountView):
    """What the workflow carries across continue-as-new: the view and its own counters."""

    messages_this_run: int = 0
    runs: int = 1


AccountInput.model_rebuild()
