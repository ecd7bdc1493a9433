"""Money operations of Xingguang tasks (R-8, R-9, XG-8, XG-10), on the project's double-entry ledger.

Built only on activities/ledger.py's public methods (`transfer`, `hold`, `balance`, `transfers`): each operation is
a short sequence of transfers whose business keys come from the business event (`xg:settle:{task}:{piece}:...`), so
a retried activity posts nothing twice and a crash between two transfers is completed by the retry. The amounts are
computed by the workflow (workflows/rules/xingguang_money.py) and recorded in its history, so a retry asks for the
same amounts. The ledger's own CHECKs keep every account but `world:*` and `platform:*` from going negative (R-14:
provider fees and damages are the platform's expenses, paid when due whatever its revenue account holds).

Accounts:
  client:{id}:available     the client's balance           xg_task:{task}:escrow   what the order froze
  creator:{id}:payable /    creator earnings (MCN: agency) platform:promotion      promotion spend
  agency:{id}:payable
  platform:revenue          platform fees, delay fees, deductions; pays provider fees and compensation
  provider:{id}:payable     service-provider fees          client:{id}:frozen      XG-8 freezes (holds)
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

from temporalio import activity

# Refusals (insufficient funds, a rule broken) are final, anything else is retried: the ledger's own mapping.
from activities.ledger import PLATFORM_REVENUE, Ledger, Transfer
from activities.ledger_activities import as_refusals
from ports import xg_ledger as port
from ports.xg_ledger import (
    ClaimedEvent,
    ClaimEventsRequest,
    ClaimEventsResult,
    RecordGrantsRequest,
    VoidedEvent,
    VoidEventsRequest,
    VoidEventsResult,
    XgChargeRequest,
    XgChargeResult,
    XgCompensateRequest,
    XgFreezeBalanceRequest,
    XgFreezeRequest,
    XgFreezeResult,
    XgMoveResult,
    XgRefundRequest,
    XgRefundResult,
    XgSettleRequest,
    XgSettleResult,
)

PLATFORM_PROMOTION = "platform:promotion"

# R-1 for XG-6: which billable-event batches a task has seen and what each billed. Kept here, not in the workflow's
# state, so that the state stays small however many batches a task receives (DESIGN "Limits": 2 MB per payload).
# `op_key` makes each claim and void idempotent: a retried activity gets the first answer back.
_EVENTS_DDL = """
CREATE TABLE IF NOT EXISTS xg_billable_events (
    task_id TEXT NOT NULL,
    event_id TEXT NOT NULL,
    piece_id TEXT NOT NULL,
    claimed_by TEXT NOT NULL,
    billed_events BIGINT NOT NULL DEFAULT 0 CHECK (billed_events >= 0),
    voided_by TEXT,
    PRIMARY KEY (task_id, event_id)
);
"""


def xg_escrow(task_id: str) -> str:
    return f"xg_task:{task_id}:escrow"


def client_available(client_id: str) -> str:
    return f"client:{client_id}:available"


def client_frozen(client_id: str) -> str:
    return f"client:{client_id}:frozen"


def provider_payable(provider_id: str) -> str:
    return f"provider:{provider_id}:payable"


class XgLedger:
    """The XG money operations, each idempotent by its business keys."""

    def __init__(self, ledger: Ledger) -> None:
        self.ledger = ledger
        ledger.db.ensure_schema(_EVENTS_DDL, _EVENTS_DDL)

    def claim_events(self, r: ClaimEventsRequest) -> ClaimEventsResult:
        out: list[ClaimedEvent] = []
        with self.ledger.db.transaction() as tx:
            for event in r.events:
                tx.execute("INSERT INTO xg_billable_events (task_id, event_id, piece_id, claimed_by)"
                           " VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING",
                           (r.task_id, event.event_id, event.piece_id, r.op_key))
                row = tx.fetchone("SELECT claimed_by, voided_by FROM xg_billable_events WHERE task_id = ? AND"
                                  " event_id = ?", (r.task_id, event.event_id))
                assert row is not None
                status: Literal["new", "duplicate", "voided"] = (
                    "voided" if row[1] is not None and row[0] == row[1] else
                    "new" if row[0] == r.op_key else "duplicate")
                out.append(ClaimedEvent(event_id=event.event_id, status=status))
        return ClaimEventsResult(events=out)

    def record_grants(self, r: RecordGrantsRequest) -> None:
        with self.ledger.db.transaction() as tx:
            for grant in r.grants:
                tx.execute("UPDATE xg_billable_events SET billed_events = ? WHERE task_id = ? AND event_id = ?"
                           " AND voided_by IS NULL", (grant.billed_events, r.task_id, grant.event_id))

    def void_events(self, r: VoidEventsRequest) -> VoidEventsResult:
        out: list[VoidedEvent] = []
        with self.ledger.db.transaction() as tx:
            for event_id in r.event_ids:
                # Unknown: a tombstone claimed and voided by this op, so the batch, when it comes, is "voided".
                tx.execute("INSERT INTO xg_billable_events (task_id, event_id, piece_id, claimed_by, voided_by)"
                           " VALUES (?, ?, '', ?, ?) ON CONFLICT DO NOTHING", (r.task_id, event_id, r.op_key, r.op_key))
                tx.execute("UPDATE xg_billable_events SET voided_by = ? WHERE task_id = ? AND event_id = ?"
                           " AND voided_by IS NULL", (r.op_key, r.task_id, event_id))
                row = tx.fetchone("SELECT piece_id, billed_events, voided_by, claimed_by FROM xg_billable_events"
                                  " WHERE task_id = ? AND event_id = ?", (r.task_id, event_id))
                assert row is not None
                mine = row[2] == r.op_key and row[3] != r.op_key
                out.append(VoidedEvent(event_id=event_id, piece_id=row[0] if mine else "",
                                       billed_events=int(row[1]) if mine else 0))
        return VoidEventsResult(events=out)

    def posted(self, business_key: str) -> Transfer | None:
        """The transfer already posted under exactly this key, if any."""
        return next((t for t in self.ledger.transfers(business_key_prefix=business_key, limit=50)
                     if t.business_key == business_key), None)

    def freeze(self, task_id: str, client_id: str, amount_fen: int) -> Transfer:
        """R-8: placement budget + creator earnings budget + platform fee on both, client balance to escrow."""
        return self.ledger.transfer(f"xg:freeze:{task_id}", client_available(client_id), xg_escrow(task_id),
                                    amount_fen, "xg_freeze", "R-8 order freeze")

    def settle_piece(self, r: XgSettleRequest) -> list[Transfer]:
        """R-8: creator earnings, promotion spend and platform fee out of escrow; the provider fee out of platform
        revenue. Escrow transfers come first, so the platform fee of this piece is in revenue before the provider
        is paid from it."""
        key, escrow = f"xg:settle:{r.task_id}:{r.piece_id}", xg_escrow(r.task_id)
        legs = [
            (f"{key}:earnings", escrow, r.payee_account, r.creator_earnings_fen, "xg_creator_earnings"),
            (f"{key}:promotion", escrow, PLATFORM_PROMOTION, r.promotion_spend_fen, "xg_promotion_spend"),
            (f"{key}:platform_fee", escrow, PLATFORM_REVENUE, r.platform_fee_fen, "xg_platform_fee"),
        ]
        if r.provider_fee_fen:
            if not r.provider_id:
                raise ValueError("provider_id is required to pay a provider fee")
            legs.append((f"{key}:provider_fee", PLATFORM_REVENUE, provider_payable(r.provider_id),
                         r.provider_fee_fen, "xg_provider_fee"))
        return [self.ledger.transfer(k, debit, credit, amount, kind, f"piece {r.piece_id}")
                for k, debit, credit, amount, kind in legs if amount > 0]

    def charge(self, r: XgChargeRequest) -> Transfer | None:
        """At most what the escrow still holds (R-9: "at most what remains frozen"); a repeat returns the first."""
        key = f"xg:charge:{r.task_id}:{r.charge_id}"
        if (done := self.posted(key)) is not None:
            return done
        amount = min(r.amount_fen, self.ledger.balance(xg_escrow(r.task_id)).available_fen)
        if amount == 0:
            return None
        return self.ledger.transfer(key, xg_escrow(r.task_id), PLATFORM_REVENUE, amount, "xg_delay_fee", r.reason)

    def refund(self, r: XgRefundRequest) -> XgRefundResult:
        """Deduction first (never more than escrow holds), then whatever is left goes back to the client. A repeat,
        even after the escrow is empty, reports the first refund."""
        escrow = xg_escrow(r.task_id)
        deduct_key, refund_key = f"xg:deduct:{r.task_id}", f"xg:refund:{r.task_id}"
        deducted = self.posted(deduct_key)
        if deducted is None and r.deduction_fen:
            amount = min(r.deduction_fen, self.ledger.balance(escrow).available_fen)
            if amount:
                deducted = self.ledger.transfer(deduct_key, escrow, PLATFORM_REVENUE, amount, "xg_deduction",
                                                r.deduction_reason)
        refunded = self.posted(refund_key)
        if refunded is None:
            left = self.ledger.balance(escrow).available_fen
            if left:
                refunded = self.ledger.transfer(refund_key, escrow, client_available(r.client_id), left,
                                                "xg_refund", "R-8 remainder")
        return XgRefundResult(deducted_fen=deducted.amount_fen if deducted else 0,
                              refunded_fen=refunded.amount_fen if refunded else 0)

    def compensate(self, r: XgCompensateRequest) -> Transfer:
        return self.ledger.transfer(f"xg:compensation:{r.task_id}:{r.compensation_id}", PLATFORM_REVENUE,
                                    client_available(r.client_id), r.amount_fen, "xg_compensation", r.memo)

    def freeze_balance(self, r: XgFreezeBalanceRequest) -> Transfer:
        return self.ledger.hold(f"xg:penalty:{r.task_id}:{r.penalty_id}", client_available(r.client_id),
                                client_frozen(r.client_id), r.amount_fen, r.reason)


def platform_position(ledger: Ledger) -> dict[str, Any]:
    """R-14 for operators: the platform's net position (the sum of its `platform:*` balances, which may be
    negative) and what went in and out of its revenue account, by kind."""
    accounts = {a.name: a.balance_fen for a in ledger.accounts("platform:")}
    with ledger.db.transaction() as tx:
        flows = tx.fetchall(
            "SELECT kind, CAST(SUM(CASE WHEN credit_account = ? THEN amount_fen ELSE 0 END) AS BIGINT),"
            " CAST(SUM(CASE WHEN debit_account = ? THEN amount_fen ELSE 0 END) AS BIGINT) FROM transfers"
            " WHERE (credit_account = ? OR debit_account = ?) AND status IN ('posted', 'posted_pending')"
            " GROUP BY kind ORDER BY kind", (PLATFORM_REVENUE,) * 4)
    into = {kind: int(i) for kind, i, _ in flows if int(i)}
    out = {kind: int(o) for kind, _, o in flows if int(o)}
    provider = out.pop("xg_provider_fee", 0)
    damages = out.pop("xg_compensation", 0)
    return {"net_fen": sum(accounts.values()), "accounts": accounts, "revenue_in_fen": sum(into.values()),
            "revenue_in_by_kind": into, "provider_fees_fen": provider, "damages_and_compensation_fen": damages,
            "other_out_by_kind": out}


def _moved(t: Transfer) -> XgMoveResult:
    return XgMoveResult(transfer_id=t.id, amount_fen=t.amount_fen, duplicate=t.duplicate)


class XgLedgerActivities:
    def __init__(self, ledger: Ledger) -> None:
        self.xg = XgLedger(ledger)

    @activity.defn(name=port.FREEZE.name)
    def freeze(self, request: XgFreezeRequest) -> XgFreezeResult:
        with as_refusals():
            moved = self.xg.freeze(request.task_id, request.client_id, request.amount_fen)
        return XgFreezeResult(transfer_id=moved.id, frozen_fen=moved.amount_fen, duplicate=moved.duplicate,
                              mismatch=moved.mismatch)

    @activity.defn(name=port.SETTLE_PIECE.name)
    def settle_piece(self, request: XgSettleRequest) -> XgSettleResult:
        # Not wrapped in as_refusals: nothing here is a business refusal (R-14: platform revenue pays a provider fee
        # whatever it holds), so any failure is a fault, retried behind the workflow's escalation.
        moved = self.xg.settle_piece(request)
        return XgSettleResult(task_id=request.task_id, piece_id=request.piece_id,
                              creator_earnings_fen=request.creator_earnings_fen,
                              promotion_spend_fen=request.promotion_spend_fen,
                              platform_fee_fen=request.platform_fee_fen, provider_fee_fen=request.provider_fee_fen,
                              transfer_ids=[t.id for t in moved])

    @activity.defn(name=port.CHARGE.name)
    def charge(self, request: XgChargeRequest) -> XgChargeResult:
        with as_refusals():
            moved = self.xg.charge(request)
        return XgChargeResult(transfer_id=moved.id if moved else "", amount_fen=moved.amount_fen if moved else 0)

    @activity.defn(name=port.REFUND.name)
    def refund(self, request: XgRefundRequest) -> XgRefundResult:
        with as_refusals():
            return self.xg.refund(request)

    @activity.defn(name=port.COMPENSATE.name)
    def compensate(self, request: XgCompensateRequest) -> XgMoveResult:
        with as_refusals():
            return _moved(self.xg.compensate(request))

    @activity.defn(name=port.FREEZE_BALANCE.name)
    def freeze_balance(self, request: XgFreezeBalanceRequest) -> XgMoveResult:
        with as_refusals():
            return _moved(self.xg.freeze_balance(request))

    @activity.defn(name=port.CLAIM_EVENTS.name)
    def claim_events(self, request: ClaimEventsRequest) -> ClaimEventsResult:
        return self.xg.claim_events(request)

    @activity.defn(name=port.RECORD_GRANTS.name)
    def record_grants(self, request: RecordGrantsRequest) -> None:
        self.xg.record_grants(request)

    @activity.defn(name=port.VOID_EVENTS.name)
    def void_events(self, request: VoidEventsRequest) -> VoidEventsResult:
        return self.xg.void_events(request)

    def all(self) -> list[Callable[..., Any]]:
        return [self.freeze, self.settle_piece, self.charge, self.refund, self.compensate, self.freeze_balance,
                self.claim_events, self.record_grants, self.void_events]
