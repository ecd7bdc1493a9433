"""The XG money operations on the ledger (R-8, R-9, R-1 event register), on SQLite and PostgreSQL: every operation
is idempotent by its business keys; a retry moves nothing twice and answers as the first time."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from activities.ledger import InsufficientFunds, Ledger
from activities.xg_ledger import XgLedger, platform_position
from ports.xg_ledger import (
    ClaimEventsRequest,
    EventGrant,
    EventRef,
    RecordGrantsRequest,
    VoidEventsRequest,
    XgChargeRequest,
    XgCompensateRequest,
    XgRefundRequest,
    XgSettleRequest,
)
from tests.ledger_fixtures import (  # noqa: F401  (fixtures)
    ledger_db_fixture,
    ledger_dsn_fixture,
    ledger_fixture,
    postgresql_schema_dsn_fixture,
)

ROOT = Path(__file__).resolve().parents[1]


def funded(book: Ledger, task: str = "t1", frozen: int = 198_000) -> XgLedger:
    xg = XgLedger(book)
    book.deposit("dep-1", "c1", 300_000)
    xg.freeze(task, "c1", frozen)
    return xg


def test_r_8_freeze_once_and_refused_without_funds(ledger: Ledger) -> None:
    xg = funded(ledger)
    again = xg.freeze("t1", "c1", 198_000)
    assert again.duplicate and ledger.balance("client:c1:available").balance_fen == 102_000
    with pytest.raises(InsufficientFunds):
        xg.freeze("t2", "c1", 102_001)
    assert ledger.balance("client:c1:available").balance_fen == 102_000


def test_r_8_settle_piece_pays_each_leg_once_and_the_provider_from_revenue(ledger: Ledger) -> None:
    xg = funded(ledger)
    request = XgSettleRequest(task_id="t1", piece_id="p1", payee_account="creator:a:payable",
                              creator_earnings_fen=20_000, promotion_spend_fen=15_000, platform_fee_fen=3_500,
                              provider_id="prov", provider_fee_fen=1_000)
    first = xg.settle_piece(request)
    again = xg.settle_piece(request)
    assert [t.amount_fen for t in first] == [20_000, 15_000, 3_500, 1_000]
    assert all(t.duplicate for t in again)
    assert ledger.balance("creator:a:payable").balance_fen == 20_000
    assert ledger.balance("platform:promotion").balance_fen == 15_000
    assert ledger.balance("platform:revenue").balance_fen == 2_500
    assert ledger.balance("provider:prov:payable").balance_fen == 1_000
    assert ledger.balance("xg_task:t1:escrow").balance_fen == 198_000 - 38_500


def test_r_9_delay_fee_and_deduction_are_capped_at_escrow_and_refund_reports_the_first(ledger: Ledger) -> None:
    xg = funded(ledger, frozen=10_000)
    charged = xg.charge(XgChargeRequest(task_id="t1", charge_id="delay_fee", amount_fen=4_000, reason="delay"))
    assert charged is not None and charged.amount_fen == 4_000
    assert xg.charge(XgChargeRequest(task_id="t1", charge_id="delay_fee", amount_fen=9_000, reason="x")) == charged
    refund = xg.refund(XgRefundRequest(task_id="t1", client_id="c1", deduction_fen=7_000, deduction_reason="XG-8"))
    assert (refund.deducted_fen, refund.refunded_fen) == (6_000, 0)
    assert xg.refund(XgRefundRequest(task_id="t1", client_id="c1", deduction_fen=7_000)) == refund
    assert ledger.balance("platform:revenue").balance_fen == 10_000


def test_r_1_event_register_claims_once_and_a_retry_gets_the_first_answer(ledger: Ledger) -> None:
    xg = XgLedger(ledger)
    claim = ClaimEventsRequest(task_id="t1", op_key="t1:data:1",
                               events=[EventRef(event_id="e1", piece_id="p1"), EventRef(event_id="e2", piece_id="p1")])
    assert [e.status for e in xg.claim_events(claim).events] == ["new", "new"]
    assert [e.status for e in xg.claim_events(claim).events] == ["new", "new"]  # the same op retried
    again = ClaimEventsRequest(task_id="t1", op_key="t1:data:2", events=[EventRef(event_id="e1", piece_id="p1")])
    assert [e.status for e in xg.claim_events(again).events] == ["duplicate"]
    xg.record_grants(RecordGrantsRequest(task_id="t1", grants=[EventGrant(event_id="e1", billed_events=40)]))
    void = VoidEventsRequest(task_id="t1", op_key="t1:data:3", event_ids=["e1", "e9"])
    first = xg.void_events(void)
    assert [(e.piece_id, e.billed_events) for e in first.events] == [("p1", 40), ("", 0)]
    assert xg.void_events(void) == first  # retried: same answer
    later = xg.void_events(VoidEventsRequest(task_id="t1", op_key="t1:data:4", event_ids=["e1"]))
    assert later.events[0].billed_events == 0  # voided once only
    arrives = ClaimEventsRequest(task_id="t1", op_key="t1:data:5", events=[EventRef(event_id="e9", piece_id="p2")])
    assert [e.status for e in xg.claim_events(arrives).events] == ["voided"]  # voided before it arrived


def test_r_14_provider_fee_and_damages_are_paid_from_an_unfunded_platform(ledger: Ledger) -> None:
    xg = funded(ledger)
    xg.settle_piece(XgSettleRequest(task_id="t1", piece_id="p1", payee_account="creator:a:payable",
                                    creator_earnings_fen=20_000, promotion_spend_fen=0, platform_fee_fen=0,
                                    provider_id="prov", provider_fee_fen=1_000))
    xg.compensate(XgCompensateRequest(task_id="t1", compensation_id="d1", client_id="c1", amount_fen=39_600,
                                      memo="damages: late launch"))
    assert ledger.balance("platform:revenue").balance_fen == -40_600
    assert ledger.balance("provider:prov:payable").balance_fen == 1_000
    assert ledger.balance("client:c1:available").balance_fen == 102_000 + 39_600
    position = platform_position(ledger)
    assert (position["net_fen"], position["provider_fees_fen"], position["damages_and_compensation_fen"]) == (
        -40_600, 1_000, 39_600)
    with pytest.raises(InsufficientFunds):  # everyone else's accounts are still kept from going negative
        ledger.transfer("over", "client:c1:available", "platform:revenue", 141_601, "correction")


def test_r_14_an_existing_database_lets_platform_accounts_go_negative_at_open(ledger: Ledger) -> None:
    ledger.deposit("dep-1", "c1", 100)
    ledger.transfer("fee", "client:c1:available", "platform:revenue", 100, "fee")
    with ledger.db.transaction() as tx:  # as a database made before R-14 has it
        tx.execute("UPDATE accounts SET may_go_negative = 0 WHERE name = ?", ("platform:revenue",))
    assert not ledger.balance("platform:revenue").may_go_negative
    reopened = Ledger(ledger.db)
    assert reopened.balance("platform:revenue").may_go_negative
    assert not reopened.balance("client:c1:available").may_go_negative
    reopened.transfer("provider", "platform:revenue", "provider:p:payable", 250, "xg_provider_fee")
    assert reopened.balance("platform:revenue").balance_fen == -150


def test_r_14_the_operator_cli_shows_the_platform_net_position(tmp_path: Path) -> None:
    dsn = str(tmp_path / "ledger.db")
    book = Ledger.open(dsn)
    xg = funded(book)
    xg.settle_piece(XgSettleRequest(task_id="t1", piece_id="p1", payee_account="creator:a:payable",
                                    creator_earnings_fen=20_000, promotion_spend_fen=5_000, platform_fee_fen=2_500,
                                    provider_id="prov", provider_fee_fen=4_000))
    assert book.conservation_total() == 0
    book.db.close()
    env = {**os.environ, "LEDGER_DSN": dsn, "PYTHONPATH": str(ROOT)}
    shown = subprocess.run([sys.executable, "-m", "starter", "--json", "platform"], env=env, cwd=ROOT,
                           capture_output=True, text=True, check=True, timeout=60)
    position = json.loads(shown.stdout)
    assert position["accounts"] == {"platform:promotion": 5_000, "platform:revenue": 2_500 - 4_000}
    assert (position["net_fen"], position["revenue_in_fen"], position["provider_fees_fen"]) == (3_500, 2_500, 4_000)
