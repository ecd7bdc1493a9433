"""PR-6: the payload codec (starter/codec.py) and its codec server (starter/codec_server.py).

A data-subject request that brings the person's name, phone number and ID number in clear (its intake) leaves
none of them readable in its recorded history, neither in the history JSON nor in any payload's decoded bytes;
decoding the history's payloads with the key finds all three. Keys rotate by key id; a payload under an unknown
key id fails naming it; payloads without personal data stay plain JSON (clients without the key keep working);
the codec server answers the UI's /decode and its CORS preflight.
"""

from __future__ import annotations

import base64
import json
import os
import socket
import stat
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from google.protobuf import json_format
from temporalio.api.common.v1 import Payload
from temporalio.client import WorkflowHistory
from temporalio.worker import Replayer

import worker
from activities.personal_data import PersonalData, PersonalDataActivities
from activities.subject_keys import SubjectKeys
from ports.personal_data import CorrectRequest, StageIntakeRequest
from starter import privacy as api
from starter.codec import (
    KEY_ID_METADATA,
    SEALED_ENCODING,
    EncryptionCodec,
    KeyRing,
    PayloadKeyError,
    load_keys,
    with_subject_keys,
)
from starter.codec_auth import CodecAuth
from starter.codec_server import start_in_thread
from tests.conftest import TEST_PAYLOAD_KEYS, Ctx, data_converter, subject_keys
from tests.helpers import business_now, creator, finish
from tests.privacy_helpers import (
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
from workflows.contract import data_subject_request as dsr
from workflows.contract import mount_task as mt
from workflows.contract.converter import data_converter as plain_converter
from workflows.contract.names import data_subject_request_id
from workflows.contract.privacy import PERSONAL_DATA_METADATA, PERSONAL_SUBJECT_METADATA, PersonalField
from workflows.data_subject_request import DataSubjectRequestWorkflow

pytestmark = pytest.mark.replace_activities.with_args(fixed_calendar)
ROOT = Path(__file__).resolve().parent.parent
NEW_EMAIL = "zhang.xm@example.org"
UI = "http://localhost:8233"


def encoding(payload: dict[str, Any]) -> bytes:
    return base64.b64decode(payload["metadata"].get("encoding", ""))


def intake_request(ctx: Ctx, account: str, now: Any) -> dsr.DataSubjectRequestInput:
    return intake_request_for(f"fix-{ctx.uid}", account, now)


def intake_request_for(request_id: str, account: str,
                       now: Any = "2026-01-05T10:00:00+08:00") -> dsr.DataSubjectRequestInput:
    given = dsr.GivenValue
    return dsr.DataSubjectRequestInput(
        request_id=request_id, account_id=account, kind=dsr.RequestKind.CORRECTION, received_at=now,
        intake=dsr.RequesterIntake(
            contact=given(field=PersonalField.PHONE, value=PHONE),
            evidence=[given(field=PersonalField.NAME, value=NAME), given(field=PersonalField.PHONE, value=PHONE),
                      given(field=PersonalField.ID_NUMBER, value=ID_NUMBER)],
            changes=[given(field=PersonalField.EMAIL, value=NEW_EMAIL)]))


async def test_pr_6_a_request_with_name_phone_and_id_in_clear_leaves_none_of_them_readable_in_its_history(
        ctx: Ctx) -> None:
    account = f"p-{ctx.uid}"
    person(ctx, account)
    creator(ctx.a, account)
    request = intake_request(ctx, account, await business_now(ctx))
    await api.submit_request(ctx.client, request, ctx.task_queue)
    workflow_id = data_subject_request_id(request.request_id)
    state = await finish(ctx, workflow_id, dsr.DataSubjectRequestView)
    # The request was served from the intake: evidence matched the file, the correction applied, reply sent.
    assert state.stage is dsr.DsrStage.COMPLETED and state.verified_by == "vault"
    assert state.corrected_fields == [PersonalField.EMAIL]
    assert vault(ctx).profile(account)[PersonalField.EMAIL][1] == NEW_EMAIL

    history = await ctx.client.get_workflow_handle(workflow_id).fetch_history()
    raw = history.to_json()
    payloads = payload_dicts(json.loads(raw))
    readable = "\n".join([raw, *(base64.b64decode(p["data"]).decode("utf-8", errors="replace") for p in payloads)])
    plain = {"name": NAME, "name (JSON-escaped)": json.dumps(NAME)[1:-1], "phone": PHONE, "ID number": ID_NUMBER,
             "new e-mail": NEW_EMAIL}
    assert [what for what, value in plain.items() if value in readable] == []

    # The intake travelled sealed with the subject's own key (crypto-shredding): the workflow input and the
    # stage_intake activity input; the rest of those payloads (ids, kinds) is plain JSON.
    sealed = [p for p in payloads if encoding(p) == SEALED_ENCODING]
    assert len(sealed) == 2
    key_ids = {base64.b64decode(p["metadata"][KEY_ID_METADATA]).decode() for p in sealed}
    assert len(key_ids) == 1 and next(iter(key_ids)).startswith("sk-")
    assert {base64.b64decode(p["metadata"][PERSONAL_SUBJECT_METADATA]) for p in sealed} == {account.encode()}

    # The holder of the ring key and of the ledger (the subject keys) reads them all.
    codec = EncryptionCodec(KeyRing.parse(TEST_PAYLOAD_KEYS), subject_keys(ctx.a))
    decoded = codec.decode_sync([json_format.ParseDict(p, Payload()) for p in sealed])
    texts = [p.data.decode() for p in decoded]
    assert all(p.metadata[PERSONAL_DATA_METADATA] == b"1" for p in decoded)
    for value in (NAME, PHONE, ID_NUMBER, NEW_EMAIL):
        assert all(value in text for text in texts), value
    started = dsr.DataSubjectRequestInput.model_validate_json(texts[0])
    assert started.intake == request.intake
    # Every payload after the intake's staging carries tokens only, and the history replays through the codec.
    await Replayer(workflows=[DataSubjectRequestWorkflow],
                   data_converter=with_subject_keys(data_converter, subject_keys(ctx.a))).replay_workflow(
        WorkflowHistory.from_json(workflow_id, raw))


def test_pr_6_stage_intake_is_repeat_safe(adapters: worker.Adapters) -> None:
    """A retried stage_intake returns the same tokens and writes nothing more, also after the correction consumed
    its staged value; tokens derive from the workflow's random key and the slot, never from the values."""
    vault = PersonalData(adapters.db, adapters.ledger, adapters.directory, subject_keys(adapters))
    activities = PersonalDataActivities(vault)
    intake = intake_request_for("r1", "a1").intake
    assert intake is not None
    request = StageIntakeRequest(account_id="a1", staging_key="f" * 32, intake=intake)
    first = activities.stage_intake(request)
    assert [vault.reveal(t) for t in first.evidence_tokens] == [NAME, PHONE, ID_NUMBER]
    assert vault.reveal(first.contact_token or "") == PHONE and vault.reveal(first.changes[0].value_token) == NEW_EMAIL
    activities.correct(CorrectRequest(account_id="a1", request_id="r1", changes=first.changes))
    assert activities.stage_intake(request) == first
    assert vault.reveal(first.changes[0].value_token) is None  # consumed stays consumed
    with adapters.db.transaction() as tx:
        assert tx.fetchone("SELECT COUNT(*) FROM pd_vault WHERE purpose = 'staged'", ())[0] == 5
    other = activities.stage_intake(request.model_copy(update={"staging_key": "e" * 32}))
    assert set(other.evidence_tokens).isdisjoint(first.evidence_tokens)


async def test_pr_6_payloads_without_personal_data_stay_plain_json(adapters: worker.Adapters) -> None:
    """Mount-task messages, a request carrying tokens only, states: plain JSON, no flag, readable without a key.
    A request with an intake (and an activity request nesting it) is flagged and sealed with the subject's key."""
    codec = EncryptionCodec(KeyRing.parse(KEY_1), SubjectKeys(adapters.db, KeyRing.parse(KEY_1)))
    tokens_only = dsr.DataSubjectRequestInput(
        request_id="r1", account_id="a1", kind=dsr.RequestKind.ACCESS, received_at="2026-01-05T10:00:00+08:00",
        requester_token="pdt_" + "0" * 32)
    with_intake = tokens_only.model_copy(update={"intake": dsr.RequesterIntake(
        evidence=[dsr.GivenValue(field=PersonalField.PHONE, value=PHONE)])})
    plain_values = [mt.JoinRequest(creator_id="c1"), tokens_only,
                    dsr.DataSubjectRequestView(request_id="r1", account_id="a1", kind=dsr.RequestKind.ACCESS,
                                                received_at=tokens_only.received_at), "text", 42, None]
    converted = plain_converter.payload_converter.to_payloads(plain_values)
    assert [PERSONAL_DATA_METADATA in p.metadata for p in converted] == [False] * len(plain_values)
    assert codec.encode_sync(converted) == converted  # untouched: the TypeScript client reads them as before
    flagged = plain_converter.payload_converter.to_payloads(
        [with_intake, StageIntakeRequest(account_id="a1", staging_key="k" * 32, intake=with_intake.intake)])
    assert [p.metadata[PERSONAL_DATA_METADATA] for p in flagged] == [b"1", b"1"]
    sealed = codec.encode_sync(flagged)
    assert [p.metadata["encoding"] for p in sealed] == [SEALED_ENCODING, SEALED_ENCODING]
    assert all(PHONE.encode() not in p.data for p in sealed)
    assert codec.decode_sync(sealed) == flagged
    # Without a key nothing personal leaves the process, and plain payloads still go through.
    empty = EncryptionCodec(KeyRing())
    assert empty.encode_sync(converted) == converted
    with pytest.raises(PayloadKeyError, match="no subject key store"):
        empty.encode_sync(flagged)
    with pytest.raises(PayloadKeyError, match="without a payload key"):  # a personal value naming no subject
        empty.encode_sync(plain_converter.payload_converter.to_payloads([dsr.GivenValue(field=PersonalField.NAME,
                                                                                            value=NAME)]))


def test_pr_6_key_rotation_by_key_id() -> None:
    flagged = plain_converter.payload_converter.to_payloads([dsr.GivenValue(field=PersonalField.NAME, value=NAME)])
    old = EncryptionCodec(KeyRing.parse(KEY_1)).encode_sync(flagged)
    assert old[0].metadata[KEY_ID_METADATA] == b"k1"
    rotated = EncryptionCodec(KeyRing.parse(f"{KEY_2},{KEY_1}"))  # k2 now current, k1 kept for old histories
    assert rotated.decode_sync(old) == flagged
    new = rotated.encode_sync(flagged)
    assert new[0].metadata[KEY_ID_METADATA] == b"k2" and rotated.decode_sync(new) == flagged
    assert new[0].data[:12] != rotated.encode_sync(flagged)[0].data[:12]  # a fresh nonce per payload
    with pytest.raises(PayloadKeyError, match=r"key id 'k1'.*known: k2"):
        EncryptionCodec(KeyRing.parse(KEY_2)).decode_sync(old)
    tampered = Payload()
    tampered.CopyFrom(new[0])
    tampered.data = new[0].data[:-1] + bytes([new[0].data[-1] ^ 1])
    with pytest.raises(PayloadKeyError, match="failed authentication"):
        rotated.decode_sync([tampered])
    same_id_other_key = "k2:" + base64.b64encode(bytes(32)).decode()
    with pytest.raises(PayloadKeyError, match="failed authentication"):
        EncryptionCodec(KeyRing.parse(same_id_other_key)).decode_sync(new)


def test_pr_6_keys_from_the_environment_or_the_key_file(tmp_path: Path) -> None:
    ring = load_keys({"PAYLOAD_KEYS": f"{KEY_2},{KEY_1}"})
    assert list(ring.keys) == ["k2", "k1"] and ring.current == "k2"
    assert "k2" in repr(ring) and base64.b64encode(bytes(range(32))).decode() not in repr(ring)
    for bad, problem in [("k1", "not '<id>:<base64 key>'"), ("k1:!!!", "not valid base64"),
                         ("k1:" + base64.b64encode(bytes(16)).decode(), "has 16 bytes"),
                         (f"{KEY_1},{KEY_1}", "listed twice"), (" , ", "no key")]:
        with pytest.raises(PayloadKeyError, match=problem):
            load_keys({"PAYLOAD_KEYS": bad})
    key_file = tmp_path / "keys" / "payload-keys"
    with pytest.raises(PayloadKeyError, match="PAYLOAD_KEYS is not set"):
        load_keys({"PAYLOAD_KEYS_FILE": str(key_file)}, required=True)
    assert load_keys({"PAYLOAD_KEYS_FILE": str(key_file)}).keys == {}
    created = load_keys({"PAYLOAD_KEYS_FILE": str(key_file)}, create=True)
    assert list(created.keys) == ["dev1"] and stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert load_keys({"PAYLOAD_KEYS_FILE": str(key_file)}, create=True) == created  # made once, then kept
    # A worker against a real server refuses to start without keys; the embedded run makes its file.
    settings = worker.Settings(address="temporal:7233", namespace="default", task_queue="q", ledger_dsn=":memory:",
                               port=7233, ui_port=8233, payload_keys_file=str(tmp_path / "none"))
    with pytest.raises(SystemExit, match=r"no payload keys.*PAYLOAD_KEYS"):
        worker.payload_keys(settings)


TOKEN = "local-test-token-0123456789"
BEARER = {"Authorization": f"Bearer {TOKEN}"}


def test_pr_6_codec_server_decodes_for_the_ui_with_cors() -> None:
    keys = KeyRing.parse(f"{KEY_2},{KEY_1}")
    server = start_in_thread(keys, 0, origins=[UI], auth=CodecAuth(static_tokens=[TOKEN]))
    try:
        flagged = plain_converter.payload_converter.to_payloads(
            [dsr.GivenValue(field=PersonalField.ID_NUMBER, value=ID_NUMBER), mt.JoinRequest(creator_id="c1")])
        sealed = EncryptionCodec(KeyRing.parse(KEY_1)).encode_sync(flagged)
        body = json.dumps({"payloads": [json_format.MessageToDict(p) for p in sealed]}).encode()
        # The browser's preflight for a JSON POST with X-Namespace, from the UI's origin.
        status, headers, _ = post(f"{server.url}/decode", method="OPTIONS", headers={
            "Origin": UI, "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type,x-namespace"})
        assert status == 204
        assert headers["Access-Control-Allow-Origin"] == UI
        assert "POST" in headers["Access-Control-Allow-Methods"]
        assert "x-namespace" in headers["Access-Control-Allow-Headers"].lower()
        assert "x-workflow-id" in headers["Access-Control-Allow-Headers"].lower()  # audited when a page sends it
        for path in ("/decode", "/default/decode"):  # also under a namespace segment (CLI templating)
            status, headers, answer = post(f"{server.url}{path}", body, headers={
                "Origin": UI, "Content-Type": "application/json", "X-Namespace": "default", **BEARER})
            assert status == 200 and headers["Access-Control-Allow-Origin"] == UI
            decoded = [json_format.ParseDict(p, Payload()) for p in json.loads(answer)["payloads"]]
            assert decoded == flagged and ID_NUMBER in decoded[0].data.decode()
        # /encode seals what is flagged, under the current key; the rest passes.
        plain_body = json.dumps({"payloads": [json_format.MessageToDict(p) for p in flagged]}).encode()
        status, _, answer = post(f"{server.url}/encode", plain_body,
                                 headers={"Content-Type": "application/json", **BEARER})
        encoded = [json_format.ParseDict(p, Payload()) for p in json.loads(answer)["payloads"]]
        assert status == 200 and encoded[0].metadata[KEY_ID_METADATA] == b"k2" and encoded[1] == flagged[1]
        # Another web page cannot use the operator's codec server.
        status, headers, _ = post(f"{server.url}/decode", body, headers={"Origin": "https://evil.example"})
        assert status == 403 and "Access-Control-Allow-Origin" not in headers
        status, _, answer = post(f"{server.url}/decode", method="OPTIONS", headers={"Origin": "https://evil.example"})
        assert status == 403
        # A payload under a key the server lacks: an error naming the key id.
        unknown = EncryptionCodec(KeyRing.parse("k0:" + base64.b64encode(bytes(32)).decode())).encode_sync(flagged)
        status, _, answer = post(f"{server.url}/decode", json.dumps(
            {"payloads": [json_format.MessageToDict(p) for p in unknown]}).encode(), headers=BEARER)
        assert status == 422 and "key id 'k0'" in json.loads(answer)["error"]
        assert post(f"{server.url}/nothing", b"{}")[0] == 404
        assert post(f"{server.url}/decode", b"not json", headers=BEARER)[0] == 400
        # A program that sends no Origin is not a browser: it still needs the token.
        assert post(f"{server.url}/decode", body)[0] == 401
    finally:
        server.shutdown()


def test_pr_6_python_m_starter_codec_server(tmp_path: Path) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PAYLOAD_KEYS": KEY_1, "LEDGER_DSN": str(tmp_path / "ledger.db")}
    token_file = tmp_path / "codec-token"
    process = subprocess.Popen([sys.executable, "-m", "starter", "codec-server", "--port", str(port), "--origin", UI,
                                "--token-file", str(token_file), "--create-token-file"],
                               env=env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        assert f"codec server on http://localhost:{port}" in line and "k1" in line
        for _ in range(50):
            try:
                status, headers, _ = post(f"http://127.0.0.1:{port}/decode", method="OPTIONS",
                                          headers={"Origin": UI})
                break
            except urllib.error.URLError:
                time.sleep(0.1)
        assert status == 204 and headers["Access-Control-Allow-Origin"] == UI
        assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
        assert post(f"http://127.0.0.1:{port}/decode", b"{}")[0] == 401
        token = token_file.read_text().strip()
        assert post(f"http://127.0.0.1:{port}/decode", b"{}", headers={"Authorization": f"Bearer {token}"})[0] == 200
    finally:
        process.terminate()
        process.wait(timeout=10)
    no_keys = {k: v for k, v in env.items() if k != "PAYLOAD_KEYS"}
    refused = subprocess.run([sys.executable, "-m", "starter", "codec-server", "--port", str(port)], env=no_keys,
                             cwd=tmp_path, capture_output=True, text=True, timeout=30, check=False)
    assert refused.returncode == 2 and "PAYLOAD_KEYS" in refused.stderr
