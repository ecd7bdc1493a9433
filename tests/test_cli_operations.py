"""Issue 23 acceptance: an operator's work from `python -m starter` commands alone, against the README's embedded run
(dev server + worker + ledger): a fee dispute raised and resolved (AM-11, AM-17), a penalty issued, appealed and
decided (AM-18..AM-21), a data-subject request (PR-1), and a Xingguang pause that ends in a cancellation and a
compensation (XG-7, R-9, XG-10). Money is checked to the fen, and conservation through `ledger`. Money commands take
the caller's key and answer "already done (same key)" with the first answer when it is used again."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.cli_helpers import ROOT, Cli, embedded_run
from workflows.rules.clock import BUSINESS_TZ

pytestmark = pytest.mark.timeout(600)


@pytest.fixture(scope="module")
def cli(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cli]:
    with embedded_run(tmp_path_factory.mktemp("cli-run")) as run:
        yield run


def conserved(cli: Cli, ident: str) -> Any:
    shown = cli.json("ledger", ident)
    assert shown["conservation_total"] == 0
    return shown


def test_issue_23_r_4_am_3_a_top_up_takes_the_callers_key_and_says_when_it_was_used(cli: Cli) -> None:
    first = cli.json("client", "cl-k", "--deposit", "70000", "--deposit-id", "dep-k-1")
    assert first["available_fen"] == 70_000 and first["deposit"]["already_done"] is False
    # The same amount under a new key is a new top-up (the key is no longer derived from the amount).
    assert cli.json("deposit", "cl-k", "70000", "dep-k-2")["amount_fen"] == 70_000
    again = cli.json("deposit", "cl-k", "70000", "dep-k-2")
    assert again["already_done"] is True and again["first_answer"]["amount_fen"] == 70_000
    text = cli.run("deposit", "cl-k", "70000", "dep-k-2")
    assert text.returncode == 0 and text.stdout.startswith("already done (same key), first answer:")
    other = cli.json("deposit", "cl-k", "1", "dep-k-2", code=2)["error"]
    assert other["type"] == "DepositRefused" and other["reasons"][0]["field"] == "deposit_id"
    assert cli.json("balances", "client:cl-k:")[0]["available_fen"] == 140_000
    assert cli.json("deposit", "nobody", "1", "dep-x", code=1)["error"]["type"] == "NotFound"


def test_am_11_am_17_a_fee_dispute_raised_and_resolved_from_commands(cli: Cli, tmp_path: Path) -> None:
    cli.json("client", "cl-d", "--deposit", "1000000", "--deposit-id", "dep-d-1")
    cli.json("creator", "cr-d")
    task = {**json.loads((ROOT / "examples" / "task.json").read_text()), "task_id": "cli-d", "client_id": "cl-d"}
    (tmp_path / "task.json").write_text(json.dumps(task))
    published = cli.json("publish", str(tmp_path / "task.json"))
    assert published["frozen_fen"] == 550_000
    # Publishing the same file again: the first answer (the period it was published with, not a new "now").
    again = cli.json("publish", str(tmp_path / "task.json"))
    assert again == {"already_done": True, "first_answer": published}
    (tmp_path / "other.json").write_text(json.dumps({**task, "budget_fen": 400_000}))
    conflict = cli.json("publish", str(tmp_path / "other.json"), code=2)["error"]
    assert conflict["type"] == "PublicationRefused"
    assert [r["field"] for r in conflict["reasons"]] == ["budget_fen"]

    cli.json("join", "cli-d", "cr-d")
    cli.json("mount", "cli-d", "v-d", "cr-d")
    cli.json("conversions", "cli-d", "v-d", "b-1", "10")
    piece = cli.until(("state", "cli-d", "v-d"), lambda s: s["counted_conversions"] == 10)
    assert piece["fee_fen"] == 1_500  # 10 x 150 fen

    receipt = cli.json("dispute", "cli-d", "v-d", "--raised-by", "client", "--party-id", "cl-d",
                       "--reason", "half of the activations were bots")
    assert receipt["fee_fen"] == 1_500
    dispute_id = receipt["dispute_id"]
    resolved = cli.json("resolve", "cli-d", "v-d", dispute_id, "--amount-fen", "500", "--operator-id", "op-1",
                        "--note", "bots removed")
    assert (resolved["fee_before_fen"], resolved["amount_fen"], resolved["budget_adjustment_fen"]) == (
        1_500, 500, -1_000)
    replay = cli.json("resolve", "cli-d", "v-d", dispute_id, "--amount-fen", "500", "--operator-id", "op-1",
                      "--note", "bots removed")
    assert replay == {"already_done": True, "first_answer": resolved}
    text = cli.run("resolve", "cli-d", "v-d", dispute_id, "--amount-fen", "500", "--operator-id", "op-1",
                   "--note", "bots removed")
    assert text.returncode == 0 and text.stdout.startswith("already done (same key), first answer:")
    differs = cli.json("resolve", "cli-d", "v-d", dispute_id, "--amount-fen", "900", "--operator-id", "op-1",
                       "--note", "more", code=2)["error"]
    assert differs["type"] == "ResolutionRefused"
    assert [r["field"] for r in differs["reasons"]] == ["dispute_id", "amount_fen", "note"]
    assert "by op-1 with 500 fen" in differs["reasons"][0]["message"]

    state = cli.json("state", "cli-d", "v-d")
    assert state["agreed_fee_fen"] == 500 and state["disputes"][0]["resolved_by"] == "op-1"
    money = conserved(cli, "cli-d")["money"]
    # The money picture: the resolved 500 fen accrued (not settled yet), its platform fee, the rest to come back.
    assert (money["frozen_fen"], money["accrued_fen"], money["platform_fee_on_accrued_fen"],
            money["refund_to_come_fen"], money["budget"]["counted_fen"]) == (550_000, 500, 50, 549_450, 500)
    # One money picture (issue 23): `state` of the task shows the ledger's figures under the same names.
    figures = [name for name in money if name.endswith("_fen") and name != "escrow_balance_fen"]
    shown = cli.json("state", "cli-d")["money"]
    assert {name: shown[name] for name in figures} == {name: money[name] for name in figures}
    assert shown["refund_expected_at"].endswith("+08:00") and shown["as_of"] is not None
    assert cli.json("balances", "client:cl-d:")[0]["available_fen"] == 450_000
    assert conserved(cli, "mount-content:cli-d:v-d")["kind"] == "content"
    pieces = cli.json("pieces", "cli-d")["pieces"]
    assert [(p["content_id"], p["creator_id"]) for p in pieces] == [("v-d", "cr-d")]


def test_am_18_am_20_am_21_a_penalty_issued_appealed_and_upheld_from_commands(cli: Cli) -> None:
    cli.json("creator", "cr-p")
    until = (datetime.now(BUSINESS_TZ) + timedelta(days=30)).replace(microsecond=0).isoformat()
    issued = cli.json("penalty-issue", "case-p", "--party-kind", "creator", "--party-id", "cr-p", "--notice-at",
                      "now", "--violation", "faked conversions on v-9", "--issued-by", "op-1",
                      "--penalty", f"close_order_taking:until_at={until}", "--penalty", "restrict_event_signups")
    assert issued["stage"] == "in_force" and [p["kind"] for p in issued["penalties"]] == [
        "close_order_taking", "restrict_event_signups"]
    assert cli.json("penalty-issue", "case-p", "--party-kind", "creator", "--party-id", "cr-p", "--notice-at",
                    "now", "--violation", "again", "--issued-by", "op-1",
                    "--penalty", "restrict_event_signups")["already_done"] is True
    wrong = cli.json("penalty-appeal", "case-p", "--party-id", "cr-other", "--reason", "not me", code=2)["error"]
    assert wrong["type"] != "InternalError" and wrong["reasons"]
    receipt = cli.json("penalty-appeal", "case-p", "--party-id", "cr-p", "--reason", "the traffic was real")
    assert receipt["case_id"] == "case-p" and receipt["answer_due_at"] is not None
    decided = cli.json("penalty-decide", "case-p", "--decision", "upheld", "--operator-id", "op-2",
                       "--note", "server logs show real users")
    assert decided["stage"] == "withdrawn" and decided["withdrawn_at"] is not None
    assert cli.json("state", "case-p")["stage"] == "withdrawn"
    shown = conserved(cli, "case-p")
    assert (shown["kind"], shown["postings"]) == ("case", [])  # these penalties move no money


def test_r_1_am_16_a_batch_voided_and_a_piece_gone_from_commands(cli: Cli) -> None:
    """Runs after the dispute test: its task cli-d gets a second piece."""
    cli.json("creator", "cr-e")
    cli.json("join", "cli-d", "cr-e")
    cli.json("mount", "cli-d", "v-e", "cr-e")
    cli.json("conversions", "cli-d", "v-e", "b-e1", "4")
    cli.until(("state", "cli-d", "v-e"), lambda s: s["fee_fen"] == 600)
    sent = cli.json("void", "cli-d", "v-e", "--event-id", "b-e1", "--reason", "cheating found by risk control")
    assert sent["sent"] == "void_conversions"
    voided = cli.until(("state", "cli-d", "v-e"), lambda s: s["recent_batches"]["b-e1"]["voided"])
    assert (voided["fee_fen"], voided["counted_conversions"]) == (0, 0)
    cli.json("visibility-lost", "cli-d", "v-e", "--kind", "deleted", "--occurred-at", "now")
    gone = cli.until(("state", "cli-d", "v-e"), lambda s: s["visibility_lost_at"] is not None)
    assert gone["visibility_lost_kind"] == "deleted"
    money = conserved(cli, "cli-d")["money"]
    # The first piece's resolved fee; the voided 600 went back to the budget.
    assert (money["accrued_fen"], money["budget"]["counted_fen"]) == (500, 500)


def test_am_21_am_22_a_complex_appeal_and_a_lifted_freeze_from_commands(cli: Cli) -> None:
    cli.json("creator", "cr-q")
    issued = cli.json("penalty-issue", "case-q", "--party-kind", "creator", "--party-id", "cr-q", "--notice-at",
                      "now", "--violation", "bought followers", "--issued-by", "op-1",
                      "--penalty", "freeze_in_flight_tasks")
    assert [p["penalty_id"] for p in issued["penalties"]] == ["p1"]
    cli.json("penalty-appeal", "case-q", "--party-id", "cr-q", "--reason", "an agency did it")
    complex_ = cli.json("penalty-mark-complex", "case-q", "--operator-id", "op-2", "--note", "needs the agency")
    assert complex_["stage"] == "appeal_complex"
    lifted = cli.json("penalty-lift-freeze", "case-q", "--penalty-id", "p1", "--operator-id", "op-2",
                      "--reason", "the agency confessed")
    assert (lifted["penalties"][0]["status"], lifted["penalties"][0]["lifted_by"]) == ("lifted", "op-2")
    again = cli.json("penalty-lift-freeze", "case-q", "--penalty-id", "p1", "--operator-id", "op-2",
                     "--reason", "twice", code=2)["error"]
    assert again["reasons"][0]["field"] == "penalty_id" and "was lifted by op-2" in again["reasons"][0]["message"]
    final = cli.json("penalty-decide", "case-q", "--decision", "rejected", "--operator-id", "op-2",
                     "--note", "the creator profited")
    assert final["stage"] in ("final", "closed")


def test_pr_1_an_access_request_verified_and_its_export_written_from_commands(cli: Cli, tmp_path: Path) -> None:
    cli.json("dsr-submit", "r-a", "--account-id", "cr-d", "--kind", "access", "--received-at", "now")
    cli.json("dsr-verify", "r-a", "--verified", "--verified-by", "op-1", "--method", "video call")
    waiting = cli.until(("state", "r-a"), lambda s: s["stage"] == "awaiting_reply")  # no contact on file
    assert waiting["export"]["size_bytes"] > 0
    shown = cli.json("dsr-export", "r-a", str(tmp_path / "export.json"))
    assert shown["written"] == str(tmp_path / "export.json")
    assert "cr-d" in (tmp_path / "export.json").read_text(encoding="utf-8")
    assert cli.json("dsr-export", "r-nobody", str(tmp_path / "none.json"), code=1)["error"]["type"] == "NotFound"
    cli.json("dsr-reply", "r-a", "--replied-by", "op-1", "--summary", "export handed over at the counter")
    assert cli.until(("state", "r-a"), lambda s: s["stage"] == "completed")["replied_by"] == "op-1"


def test_pr_1_a_complaint_verified_and_answered_from_commands(cli: Cli) -> None:
    submitted = cli.json("dsr-submit", "r-c", "--account-id", "cr-d", "--kind", "complaint", "--received-at",
                         "now", "--intake-contact-field", "email", "--intake-contact-value", "a@example.com")
    assert submitted["stage"] == "awaiting_verification"
    verified = cli.json("dsr-verify", "r-c", "--verified", "--verified-by", "op-1", "--method", "video call")
    assert verified["verified_by"] == "op-1"
    # Every instant the CLI shows is in business time to the second (the workflow keeps microseconds, UTC).
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+08:00", verified["verified_at"]), verified
    waiting = cli.until(("state", "r-c"), lambda s: s["stage"] == "awaiting_reply")
    assert waiting["reply_due_at"] is not None
    cli.json("dsr-reply", "r-c", "--replied-by", "op-1", "--summary", "the fee was recomputed")
    done = cli.until(("state", "dsr:r-c"), lambda s: s["stage"] == "completed")
    assert done["replied_by"] == "op-1" and done["reply_summary"] == "the fee was recomputed"
    # A completed request takes no more messages: refused as not running (exit 1), in the one error shape.
    twice = cli.json("dsr-reply", "r-c", "--replied-by", "op-1", "--summary", "again", code=1)["error"]
    assert twice["type"] == "NotRunning" and "completed" in twice["message"]
    assert cli.json("state", "r-nobody", code=1)["error"]["type"] == "NotFound"


def test_xg_7_r_9_xg_10_a_pause_ends_in_cancellation_and_compensation_from_commands(cli: Cli, tmp_path: Path
                                                                                    ) -> None:
    cli.json("client", "cl-x", "--deposit", "300000", "--deposit-id", "dep-x-1")
    start = datetime.now(BUSINESS_TZ).replace(microsecond=0) + timedelta(days=1)
    order = {"client_id": "cl-x", "content_requirements": "show the new map", "targeting_labels": ["interest:travel"],
             "placement_budget_fen": 100_000, "unit_price_fen": 50, "billing_start_at": start.isoformat(),
             "billing_end_at": (start + timedelta(days=10)).isoformat(), "creator_earnings_budget_fen": 80_000,
             "platform_fee_rate_bp": 1_000, "provider_fee_rate_bp": 500, "client_confirms_content": True,
             "client_review_hours": 48}
    (tmp_path / "order.json").write_text(json.dumps(order))
    ordered = cli.json("xg-order", "xg-c", "--body", f"@{tmp_path / 'order.json'}")
    assert ordered["terms"]["frozen_fen"] == 198_000  # 100,000 + 80,000 + 10% platform fee
    assert cli.json("xg-order", "xg-c", "--body", f"@{tmp_path / 'order.json'}")["already_done"] is True
    other = cli.json("xg-order", "xg-c", "--body", f"@{tmp_path / 'order.json'}", "--unit-price-fen", "60",
                     code=2)["error"]
    assert other["type"] == "OrderRefused" and [r["field"] for r in other["reasons"]] == ["unit_price_fen"]
    cli.json("xg-review-materials", "xg-c", "--operator-id", "op-1", "--approve", "qualification:licence-1",
             "--approve", "component:app-card-1")
    cli.json("xg-assign-provider", "xg-c", "--operator-id", "op-1", "--provider-id", "prov-1")
    paused = cli.json("xg-pause", "xg-c", "--operator-id", "op-1", "--pause-id", "pz-1", "--reason",
                      "health claim in the voice-over", "--notice-sent-at", "now", "--changes-within-days", "3")
    assert paused["changes_due_at"] is not None
    refused = cli.json("xg-refuse-changes", "xg-c", "--client-id", "cl-x", "--pause-id", "pz-1", "--note", "no")
    assert refused["refused_at"] is not None
    cancelled = cli.json("xg-cancel", "xg-c", "--operator-id", "op-1", "--pause-id", "pz-1", "--delay-fee-fen",
                         "1000", "--delay-fee-reason", "a day of delay")
    assert cancelled["promotion_stopped_at"] is not None
    again = cli.json("xg-cancel", "xg-c", "--operator-id", "op-1", "--pause-id", "pz-1", "--delay-fee-fen",
                     "1000", "--delay-fee-reason", "a day of delay")
    assert again["already_done"] is True  # the task (no pieces) may have closed meanwhile: its last state answers
    assert {k: again["first_answer"][k] for k in ("applied_at", "end_reason", "promotion_stopped_at")} == {
        k: cancelled[k] for k in ("applied_at", "end_reason", "promotion_stopped_at")}
    other = cli.json("xg-cancel", "xg-c", "--operator-id", "op-1", "--pause-id", "pz-1", "--delay-fee-fen",
                     "2000", "--delay-fee-reason", "a day of delay", code=2)["error"]
    assert other["type"] == "XingguangStepRefused"
    assert [r["field"] for r in other["reasons"]] == ["pause_id", "delay_fee_fen"]
    # The task (no pieces) has closed meanwhile: its last state names the first cancellation, the operator in its
    # end reason.
    first = other["reasons"][0]["message"]
    assert "was already cancelled after pause pz-1 at" in first and "with a delay fee of 1000 fen" in first
    assert "by op-1" in first
    closed = cli.until(("state", "xg-c"), lambda s: s["stage"] == "closed")
    assert (closed["money"]["delay_fee_fen"], closed["money"]["refunded_fen"]) == (1_000, 197_000)

    claim = ("xg-compensate", "xg-c", "--operator-id", "op-1", "--compensation-id", "k-1", "--kind",
             "delivery_anomaly", "--cause", "platform_fault", "--period-start-at", "2026-03-02T10:00:00+08:00",
             "--period-end-at", "2026-03-02T12:00:00+08:00", "--amount-fen", "3000", "--policy", "policy 2026-11",
             "--note", "ads served to the wrong region")
    paid = cli.json(*claim)
    assert paid["paid_fen"] == 3_000
    assert cli.json(*claim)["first_answer"]["paid_fen"] == 3_000  # after close: on xg-claims, same key
    assert cli.json("balances", "client:cl-x:")[0]["available_fen"] == 102_000 + 197_000 + 3_000
    money = conserved(cli, "xg-c")["money"]
    assert (money["escrow_balance_fen"], money["compensation_fen"]) == (0, 3_000), money
    assert (money["freeze_fen"], money["refund_fen"]) == (198_000, 197_000), money
    assert cli.json("pieces", "xg-c")["pieces"] == []  # a Xingguang task's pieces (none were selected)


# Commands that answer for any id: registering a party, listing what a task has (nothing, for an unknown one).
ANSWER_ANY_ID = {"client", "creator", "late", "balances", "platform", "payload-key"}


def test_issue_23_unknown_ids_on_the_live_server_are_refused_in_one_shape(
        cli: Cli, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    """Every command (from the parser) with unknown ids, in-process against the live run: exit 1 or 2, one JSON
    object, never the InternalError guard; the id-only ones say NotFound (exit 1)."""
    import argparse

    from starter import __main__ as main

    for name, value in cli.env.items():
        monkeypatch.setenv(name, value)
    sub = next(a for a in main.build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    for name, parser in sub.choices.items():
        if name in ANSWER_ANY_ID or name == "codec-server":
            continue
        ids = [f"nobody-{i}" if a.type is None else "1" for i, a in enumerate(parser._actions)
               if not a.option_strings and a.nargs != "?"]
        code = main.main([name, *ids, "--json"])
        out, err = capsys.readouterr()
        assert code in (1, 2) and "Traceback" not in out + err, (name, code, out, err)
        assert json.loads(out)["error"]["type"] != "InternalError", (name, out)
    for argv in (["state", "nobody"], ["ledger", "nobody"], ["state", "cli-d", "nobody"],
                 ["state", "xg-c", "nobody", "--kind", "xg-piece"], ["ledger", "violation:nobody"],
                 ["penalty-appeal", "nobody", "--party-id", "cr-p", "--reason", "r"],
                 ["dsr-verify", "nobody", "--verified", "--verified-by", "op", "--method", "m"],
                 ["incident-confirm", "nobody", "--confirmed-by", "op", "--confirmed-at", "now"],
                 ["account-close", "nobody", "--request-id", "r-1", "--requested-at", "now"],
                 ["xg-assign-provider", "nobody", "--operator-id", "op", "--provider-id", "p"],
                 ["xg-assign-provider", "cli-d", "--operator-id", "op", "--provider-id", "p"],  # not an xg task
                 ["void", "cli-d", "nobody", "--event-id", "e", "--reason", "r"]):
        assert main.main([*argv, "--json"]) == 1, argv
        out, _ = capsys.readouterr()
        assert json.loads(out)["error"]["type"] == "NotFound", (argv, out)
