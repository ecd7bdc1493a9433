"""The personal-data vault (activities/personal_data.py) and the notification outbox on both backends: PR-1 export
and correction, PR-2 erasure with holds, PR-5 archive, R-7 payout once, PR-7 notices once per key."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from activities.db import Database
from activities.directory import Directory
from activities.ledger import Ledger
from activities.notifications import Notifications
from activities.personal_data import ANONYMIZED, AccountClosure, PersonalData
from activities.subject_keys import SubjectKeys
from starter.codec import KeyRing
from tests.conftest import TEST_PAYLOAD_KEYS
from tests.ledger_fixtures import (  # noqa: F401  (fixtures)
    ledger_db_fixture,
    ledger_dsn_fixture,
    postgresql_schema_dsn_fixture,
)
from tests.privacy_helpers import EMAIL, ID_NUMBER, NAME, PHONE
from workflows.contract.privacy import AccountParty
from workflows.rules.eligibility import ClientFacts
from workflows.rules.privacy import Disposition, HoldReason, PersonalField


@pytest.fixture
def vault(ledger_db: Database) -> Iterator[PersonalData]:
    ledger = Ledger(ledger_db)
    yield PersonalData(ledger_db, ledger, Directory(ledger_db),
                       SubjectKeys(ledger_db, KeyRing.parse(TEST_PAYLOAD_KEYS)))
    ledger.check_conservation()


def on_file(vault: PersonalData, account: str) -> None:
    for field, value in ((PersonalField.NAME, NAME), (PersonalField.PHONE, PHONE),
                         (PersonalField.ID_NUMBER, ID_NUMBER), (PersonalField.EMAIL, EMAIL)):
        vault.put(account, field, value)


def test_pr_6_tokens_are_random_and_a_profile_field_keeps_its_token(vault: PersonalData) -> None:
    first = vault.put("a1", PersonalField.PHONE, PHONE)
    assert first.startswith("pdt_") and PHONE not in first
    assert vault.put("a1", PersonalField.PHONE, "13700000000") == first
    assert vault.reveal(first) == "13700000000"
    assert vault.put("a2", PersonalField.PHONE, PHONE) != first


def test_pr_1_identity_evidence_matches_a_phone_email_or_id_number_never_a_name(vault: PersonalData) -> None:
    on_file(vault, "a1")
    assert vault.check_identity("a1", [vault.put("a1", PersonalField.ID_NUMBER, ID_NUMBER, staged=True)])
    assert not vault.check_identity("a1", [vault.put("a1", PersonalField.NAME, NAME, staged=True)])
    assert not vault.check_identity("a2", [vault.put("a2", PersonalField.PHONE, PHONE, staged=True)])


def test_pr_2_erasure_waits_for_holds_and_repeats_safely(vault: PersonalData) -> None:
    on_file(vault, "a1")
    vault.hold("a1", "piece:t1:c1", HoldReason.UNSETTLED_SETTLEMENT)
    first = {o.field: (o.disposition, o.held_by) for o in vault.erase("a1", "r1")}
    assert first == {PersonalField.NAME: (Disposition.RETAIN, ["piece:t1:c1"]),
                     PersonalField.ID_NUMBER: (Disposition.RETAIN, ["piece:t1:c1"]),
                     PersonalField.PHONE: (Disposition.DELETE, []), PersonalField.EMAIL: (Disposition.DELETE, [])}
    assert vault.erase("a1", "r1") == vault.erase("a1", "r1")
    assert vault.release_hold("piece:t1:c1") == ("a1", ["r1"])
    after = {o.field: o.disposition for o in vault.erase("a1", "r1")}
    assert after[PersonalField.NAME] is Disposition.ANONYMIZE and after[PersonalField.ID_NUMBER] is Disposition.DELETE
    assert {f: v for f, (_, v, _) in vault.profile("a1").items()} == {
        PersonalField.NAME: ANONYMIZED, PersonalField.PHONE: None, PersonalField.ID_NUMBER: None,
        PersonalField.EMAIL: None}
    assert vault.release_hold("piece:t1:c1") == ("a1", [])


def test_pr_1_export_is_kept_once_and_pr_5_archive_leaves_the_active_directory(vault: PersonalData) -> None:
    on_file(vault, "cl-1")
    vault.directory.put_client(ClientFacts(client_id="cl-1", active=True, qualification_passed=True))
    vault.ledger.deposit("dep-1", "cl-1", 9_000)
    path, sha, size, sections = vault.export("r1", "cl-1")
    document = json.loads(path.read_text(encoding="utf-8"))
    assert document["personal_data"]["id_number"]["value"] == ID_NUMBER
    assert document["directory"]["client"]["qualification_passed"] is True
    assert sections == {"personal_data": 4, "ledger_accounts": 1, "ledger_transfers": 1, "directory_entries": 1}
    vault.ledger.deposit("dep-2", "cl-1", 1_000)
    assert vault.export("r1", "cl-1")[1] == sha  # the first document stands
    assert AccountClosure(vault).archive_directory_entry("cl-1") == ["client"]
    assert AccountClosure(vault).archive_directory_entry("cl-1") == ["client"]
    assert not vault.directory.client("cl-1").known
    archived = json.loads(vault.export("r2", "cl-1")[0].read_text(encoding="utf-8"))
    assert archived["directory"]["archived_client"]["active"] == 1
    assert size > 0


def test_r_7_payout_once_and_pr_4_adjustment_once(vault: PersonalData) -> None:
    vault.ledger.deposit("dep-1", "cl-1", 9_000)
    assert AccountClosure(vault).statement_adjustment("cl-1", AccountParty.CLIENT, "d1", 500)[1] == 500
    assert AccountClosure(vault).statement_adjustment("cl-1", AccountParty.CLIENT, "d1", 500)[1] == 500
    assert AccountClosure(vault).payout("cl-1", AccountParty.CLIENT)[:2] == ("client:cl-1:available", 9_500)
    assert AccountClosure(vault).payout("cl-1", AccountParty.CLIENT)[:2] == ("client:cl-1:available", 9_500)
    assert vault.ledger.balance("client:cl-1:available").balance_fen == 0


def test_pr_7_a_notice_is_sent_once_per_key_and_never_without_a_contact(vault: PersonalData) -> None:
    outbox = Notifications(vault.db, vault)
    on_file(vault, "a1")
    vault.put("a2", PersonalField.NAME, NAME)
    assert outbox.send("incident:i1:a1", "a1", "security_incident", {"what_happened": "x"}) == "sent"
    assert outbox.send("incident:i1:a1", "a1", "security_incident", {"what_happened": "x"}) == "duplicate"
    assert outbox.send("incident:i1:a2", "a2", "security_incident", {"what_happened": "x"}) == "undeliverable"
    [sent] = outbox.sent("incident:i1:")
    assert sent["contact_token"] == vault.profile("a1")[PersonalField.PHONE][0]
    assert PHONE not in json.dumps(sent)
