"""PR-2, PR-5, PR-6: personal data encrypted at rest and erasable everywhere (crypto-shredding).

Each account has a data key of its own (activities/subject_keys.py), wrapped by the payload key ring; its vault
values, exports and the personal values of its payloads in histories are sealed with it. The acceptance scenario:
after a request that brings the person's values in clear, none of them is in the database file's bytes; the vault
reads them; the subject is deleted; then neither the vault nor the decoded history (the codec and its server say
"erased") has any of them, and the destroyed key's bytes are gone from the file. Rotation re-wraps subject keys
without touching data; values written in clear before subject keys are sealed when the vault opens.
"""

from __future__ import annotations

import base64
import importlib
import inspect
import json
import pkgutil
import sqlite3
from pathlib import Path

import pytest
from google.protobuf import json_format
from pydantic import BaseModel
from structlog.testing import capture_logs
from temporalio.api.common.v1 import Payload
from temporalio.client import WorkflowHistory
from temporalio.exceptions import ApplicationError

import ports.personal_data
import workflows.contract
from activities.db import Database
from activities.directory import Directory
from activities.ledger import Ledger
from activities.personal_data import ANONYMIZED, PersonalData, PersonalDataActivities
from activities.subject_keys import SubjectKeys
from ports.personal_data import StageIntakeRequest
from starter import privacy as api
from starter.codec import (
    ERASED_METADATA,
    ERASED_VALUE,
    SEALED_ENCODING,
    KeyRing,
    PayloadKeyError,
    SubjectKeyErased,
)
from starter.codec_auth import CodecAuth
from starter.codec_server import start_in_thread
from tests import replay_helpers as rh
from tests.conftest import TEST_PAYLOAD_KEYS, Ctx, subject_keys
from tests.helpers import business_now, creator, finish
from tests.privacy_helpers import (
    EMAIL,
    ID_NUMBER,
    KEY_1,
    KEY_2,
    NAME,
    PHONE,
    fixed_calendar,
    payload_dicts,
    person,
    post,
    vault,
)
from worker import Adapters
from workflows.contract import data_subject_request as dsr
from workflows.contract.names import data_subject_request_id
from workflows.contract.privacy import PersonalField, _may_carry
from workflows.data_subject_request import DataSubjectRequestWorkflow

pytestmark = pytest.mark.replace_activities.with_args(fixed_calendar)
NEW_EMAIL = "zhang.xm@example.org"
VALUES = {"name": NAME, "phone": PHONE, "ID number": ID_NUMBER, "e-mail": EMAIL, "new e-mail": NEW_EMAIL}


def file_bytes(db: Database) -> bytes:
    """The database file and its write-ahead log, as a copy or a backup of them would hold them."""
    path = Path(db.dsn)
    return b"".join(p.read_bytes() for p in (path, Path(f"{path}-wal")) if p.exists())


def found_in(data: bytes) -> list[str]:
    return [what for what, value in VALUES.items() if value.encode() in data]


async def test_pr_2_pr_6_values_sealed_at_rest_and_a_deleted_subject_is_erased_in_vault_and_history(
        ctx: Ctx) -> None:
    account = f"p-{ctx.uid}"
    on_file = person(ctx, account)
    creator(ctx.a, account)
    now = await business_now(ctx)
    given = dsr.GivenValue
    correction = dsr.DataSubjectRequestInput(
        request_id=f"fix-{ctx.uid}", account_id=account, kind=dsr.RequestKind.CORRECTION, received_at=now,
        intake=dsr.RequesterIntake(
            contact=given(field=PersonalField.PHONE, value=PHONE),
            evidence=[given(field=PersonalField.NAME, value=NAME), given(field=PersonalField.ID_NUMBER,
                                                                         value=ID_NUMBER)],
            changes=[given(field=PersonalField.EMAIL, value=NEW_EMAIL)]))
    await api.submit_request(ctx.client, correction, ctx.task_queue)
    fixed = await finish(ctx, data_subject_request_id(correction.request_id), dsr.DataSubjectRequestView)
    assert fixed.corrected_fields == [PersonalField.EMAIL]

    # At rest: none of the values in the file's bytes; the vault reads them all.
    assert found_in(file_bytes(ctx.a.db)) == []
    v = vault(ctx)
    assert {f: value for f, (_, value, _) in v.profile(account).items()} == {
        PersonalField.NAME: NAME, PersonalField.PHONE: PHONE, PersonalField.ID_NUMBER: ID_NUMBER,
        PersonalField.EMAIL: NEW_EMAIL}
    with ctx.a.db.transaction() as tx:
        staged = [str(r[0]) for r in tx.fetchall("SELECT token FROM pd_vault WHERE account_id = ? AND purpose ="
                                                 " 'staged' AND value IS NOT NULL", (account,))]
        [(old_key, wrapped)] = tx.fetchall("SELECT key_id, wrapped_key FROM pd_subject_keys WHERE subject_id = ?",
                                           (account,))
    assert sorted(v.reveal(t) or "" for t in staged) == sorted([PHONE, NAME, ID_NUMBER])

    # The subject asks for deletion (reply to an e-mail given for it, which is kept for the reply).
    reply_to = api.stage_value(v, account, PersonalField.EMAIL, "reply.only@example.net")
    deletion = dsr.DataSubjectRequestInput(
        request_id=f"del-{ctx.uid}", account_id=account, kind=dsr.RequestKind.DELETION, received_at=now,
        requester_token=reply_to, evidence_tokens=[on_file.tokens[PersonalField.PHONE]])
    await api.submit_request(ctx.client, deletion, ctx.task_queue)
    deleted = await finish(ctx, data_subject_request_id(deletion.request_id), dsr.DataSubjectRequestView)
    assert deleted.erasure is not None and deleted.erasure.completed_at is not None and deleted.replied_at
    assert deleted.erasure.anonymized == [PersonalField.NAME]
    # The deletion's history (patch dsr-erasure-keeps-reply-contact) replays; RECORD_SHREDDING_HISTORY=1 records it.
    await rh.replay_and_maybe_record(
        rh.replayer(DataSubjectRequestWorkflow, converter=ctx.client.data_converter),
        {"privacy-dsr-deletion-keeps-reply-contact": await rh.history_json(
            ctx.client, data_subject_request_id(deletion.request_id))}, "RECORD_SHREDDING_HISTORY")

    # The vault: nothing readable but the anonymized name and the reply contact, under a new key.
    assert {f: value for f, (_, value, _) in v.profile(account).items()} == {
        PersonalField.NAME: ANONYMIZED, PersonalField.PHONE: None, PersonalField.ID_NUMBER: None,
        PersonalField.EMAIL: None}
    assert [v.reveal(t) for t in [*on_file.tokens.values(), *staged]] == [ANONYMIZED] + [None] * 6
    assert v.reveal(reply_to) == "reply.only@example.net"
    with ctx.a.db.transaction() as tx:
        keys = tx.fetchall("SELECT key_id, wrapped_key IS NULL, destroyed_by FROM pd_subject_keys WHERE"
                           " subject_id = ? ORDER BY created_at", (account,))
    assert keys[0] == (old_key, 1, f"erasure:{deletion.request_id}") and keys[1][1] == 0
    raw = file_bytes(ctx.a.db)
    assert found_in(raw) == [] and wrapped.encode() not in raw  # the destroyed key left the file's bytes

    # The history: the intake sealed under the destroyed key decodes as erased, and still replays.
    history = await ctx.client.get_workflow_handle(data_subject_request_id(correction.request_id)).fetch_history()
    sealed = [json_format.ParseDict(p, Payload()) for p in payload_dicts(json.loads(history.to_json()))
              if p["metadata"].get("encoding") == base64.b64encode(SEALED_ENCODING).decode()]
    assert len(sealed) == 2 and {p.metadata["encryption-key-id"].decode() for p in sealed} == {old_key}
    decoded = await ctx.client.data_converter.payload_codec.decode(sealed)  # type: ignore[union-attr]
    assert [p.metadata[ERASED_METADATA].decode() for p in decoded] == [old_key, old_key]
    assert all(found_in(p.data) == [] and ERASED_VALUE.encode() in p.data for p in decoded)
    erased_input = dsr.DataSubjectRequestInput.model_validate_json(decoded[0].data)
    assert erased_input.intake is not None and erased_input.intake.changes[0].value == ERASED_VALUE
    await rh.replayer(DataSubjectRequestWorkflow, converter=ctx.client.data_converter).replay_workflow(
        WorkflowHistory.from_json(history.workflow_id, history.to_json()))
    # The codec server the UI calls says the same.
    server = start_in_thread(KeyRing.parse(TEST_PAYLOAD_KEYS), 0, auth=CodecAuth(static_tokens=["t" * 24]),
                             subject_keys=subject_keys(ctx.a))
    try:
        with capture_logs() as logs:
            status, _, answer = post(f"{server.url}/decode", json.dumps(
                {"payloads": [json_format.MessageToDict(p) for p in sealed]}).encode(),
                headers={"Authorization": f"Bearer {'t' * 24}"})
    finally:
        server.shutdown()
    served = [json_format.ParseDict(p, Payload()) for p in json.loads(answer)["payloads"]]
    assert status == 200 and served == decoded
    [line] = logs
    assert (line["outcome"], line["data_subjects"], line["key_ids"], line["erased"]) == (
        "served", [account], [old_key], 2)


def test_pr_2_a_destroyed_subject_key_leaves_the_database_file(tmp_path: Path) -> None:
    """secure_delete zeroes the freed row space and the checkpoint empties the write-ahead log."""
    db = Database(str(tmp_path / "ledger.db"))
    try:
        keys = SubjectKeys(db, KeyRing.parse(KEY_1))
        key_id, _ = keys.key_for_subject("a1")
        keys.key_for_subject("a2")
        with db.transaction() as tx:
            [wrapped] = tx.fetchone("SELECT wrapped_key FROM pd_subject_keys WHERE key_id = ?", (key_id,)) or ()
            assert keys.destroy(tx, "a1", "erasure:r1") == [key_id]
        db.checkpoint()
        left = file_bytes(db)
        assert [i for i in range(len(wrapped) - 8) if wrapped[i:i + 8].encode() in left] == []  # not a fragment
        with pytest.raises(SubjectKeyErased):
            keys.key_by_id(key_id)
        assert keys.key_for_subject("a1")[0] != key_id  # a later value of that account: a new key
    finally:
        db.close()


def test_pr_2_key_ring_rotation_rewraps_subject_keys_without_touching_data(tmp_path: Path) -> None:
    db = Database(str(tmp_path / "ledger.db"))
    try:
        old = PersonalData(db, Ledger(db), Directory(db), SubjectKeys(db, KeyRing.parse(KEY_1)))
        token = old.put("a1", PersonalField.PHONE, PHONE)
        with db.transaction() as tx:
            before = tx.fetchone("SELECT value, key_id FROM pd_vault WHERE token = ?", (token,))
        rotated = SubjectKeys(db, KeyRing.parse(f"{KEY_2},{KEY_1}"))
        assert rotated.rewrap() == 1 and rotated.rewrap() == 0
        with db.transaction() as tx:
            assert tx.fetchone("SELECT value, key_id FROM pd_vault WHERE token = ?", (token,)) == before
            assert tx.fetchone("SELECT wrapped_by FROM pd_subject_keys", ()) == ("k2",)
        # The old ring key can leave: the vault reads with k2 alone; k1 alone no longer opens the subject key.
        assert PersonalData(db, Ledger(db), Directory(db), SubjectKeys(db, KeyRing.parse(KEY_2))).reveal(token) == PHONE
        with pytest.raises(PayloadKeyError, match="wrapped by payload key 'k2'"):
            PersonalData(db, Ledger(db), Directory(db), SubjectKeys(db, KeyRing.parse(KEY_1))).reveal(token)
    finally:
        db.close()


def test_pr_6_values_stored_in_clear_before_subject_keys_are_sealed_when_the_vault_opens(tmp_path: Path) -> None:
    path = tmp_path / "ledger.db"
    with sqlite3.connect(path) as old:  # the vault's tables as they were: no key_id columns, values in clear
        old.execute("CREATE TABLE pd_vault (token TEXT PRIMARY KEY, account_id TEXT NOT NULL, field TEXT NOT NULL,"
                    " purpose TEXT NOT NULL, value TEXT, status TEXT NOT NULL DEFAULT 'active', erase_request TEXT,"
                    " updated_at TEXT NOT NULL)")
        old.execute("CREATE TABLE pd_exports (request_id TEXT PRIMARY KEY, account_id TEXT NOT NULL, document TEXT"
                    " NOT NULL, sha256 TEXT NOT NULL, created_at TEXT NOT NULL)")
        old.execute("INSERT INTO pd_vault VALUES ('pdt_" + "1" * 32 + "', 'a1', 'id_number', 'profile', ?,"
                    " 'active', NULL, '2026-01-01')", (ID_NUMBER,))
        old.execute("INSERT INTO pd_exports VALUES ('r1', 'a1', ?, 'x', '2026-01-01')", (json.dumps({"n": NAME}),))
    assert ID_NUMBER.encode() in path.read_bytes()
    db = Database(str(path))
    try:
        v = PersonalData(db, Ledger(db), Directory(db), SubjectKeys(db, KeyRing.parse(KEY_1)))
        assert v.reveal("pdt_" + "1" * 32) == ID_NUMBER and json.loads(v.stored_export("r1") or "") == {"n": NAME}
        assert found_in(file_bytes(db)) == []
    finally:
        db.close()


def test_pr_6_every_model_that_can_carry_personal_values_names_its_subject() -> None:
    """The codec seals personal values with the key of the payload's `account_id`; a payload without one would be
    under the ring key only, out of reach of erasure."""
    modules = [ports.personal_data, *(importlib.import_module(f"workflows.contract.{m.name}")
                                                  for m in pkgutil.iter_modules(workflows.contract.__path__))]
    models = {cls for module in modules for _, cls in inspect.getmembers(module, inspect.isclass)
              if issubclass(cls, BaseModel) and cls.__module__ == module.__name__}
    carriers = {cls.__name__ for cls in models
                if _may_carry(cls) and not getattr(cls, "carries_personal_data", False)}
    assert carriers >= {"DataSubjectRequestInput", "StageIntakeRequest"}
    assert sorted(name for name in carriers if "account_id" not in next(
        cls for cls in models if cls.__name__ == name).model_fields) == []


def test_pr_2_an_intake_erased_before_it_was_staged_is_refused_not_stored(adapters: Adapters) -> None:
    """A request sent before its subject's erasure and staged after it: its values decode `[erased]`, which must
    never become evidence or a corrected value."""
    activities = PersonalDataActivities(PersonalData(adapters.db, adapters.ledger, adapters.directory,
                                                     subject_keys(adapters)))
    intake = dsr.RequesterIntake(changes=[dsr.GivenValue(field=PersonalField.EMAIL, value=ERASED_VALUE)])
    with pytest.raises(ApplicationError) as refused:
        activities.stage_intake(StageIntakeRequest(account_id="a1", staging_key="e" * 32, intake=intake))
    assert refused.value.type == "IntakeErased" and refused.value.non_retryable
    with adapters.db.transaction() as tx:
        assert tx.fetchone("SELECT COUNT(*) FROM pd_vault", ()) == (0,)
