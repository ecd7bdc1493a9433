"""PR-6: names, phone numbers, ID numbers and contact details never appear in plain text in workflow inputs, results,
search attributes or histories. The PR workflows carry vault tokens; this test runs a scenario through all three,
reads every recorded history (every payload decoded), finds none of the person's values, then resolves the tokens
the histories carry through the vault (the holder of the key) and finds them there."""

from __future__ import annotations

import base64
import json
import re
from typing import Any

import pytest

from starter import privacy as api
from tests.conftest import Ctx
from tests.helpers import business_now, creator
from tests.privacy_helpers import (
    EMAIL,
    ID_NUMBER,
    NAME,
    PHONE,
    eventually,
    fixed_calendar,
    payload_dicts,
    person,
    vault,
)
from workflows.contract import account as ac
from workflows.contract import data_subject_request as dsr
from workflows.contract import security_incident as inc
from workflows.contract.names import account_id, data_subject_request_id, security_incident_id
from workflows.contract.privacy import TOKEN_PATTERN, AccountParty, PersonalField

pytestmark = pytest.mark.replace_activities.with_args(fixed_calendar)
NEW_PHONE = "13700001111"


def decoded_payloads(node: Any) -> list[str]:
    """Every payload's bytes (base64 in the history JSON) as text, wherever it sits."""
    return [base64.b64decode(p["data"]).decode("utf-8", errors="replace") for p in payload_dicts(node)]


async def history_text(ctx: Ctx, workflow_id: str) -> str:
    history = await ctx.client.get_workflow_handle(workflow_id).fetch_history()
    raw = history.to_json()
    return "\n".join([raw, *decoded_payloads(json.loads(raw))])


async def test_pr_6_no_personal_data_in_any_history_and_the_vault_resolves_the_tokens(ctx: Ctx) -> None:
    account = f"p-{ctx.uid}"
    person(ctx, account)
    creator(ctx.a, account)
    v = vault(ctx)
    now = await business_now(ctx)
    # What a requester brings goes into the vault first; the workflows get tokens.
    said_name = api.stage_value(v, account, PersonalField.NAME, NAME)
    said_phone = api.stage_value(v, account, PersonalField.PHONE, PHONE)
    said_id = api.stage_value(v, account, PersonalField.ID_NUMBER, ID_NUMBER)
    reply_to = api.stage_value(v, account, PersonalField.EMAIL, EMAIL)
    new_phone = api.stage_value(v, account, PersonalField.PHONE, NEW_PHONE)

    await api.record_activity(ctx.client, account, AccountParty.CREATOR, ac.AccountActivity(
        event_id="login-1", occurred_at=now, kind="sign_in"), ctx.task_queue)
    await api.raise_statement_dispute(ctx.client, account, ac.RaiseStatementDispute(
        dispute_id="d1", subject=ac.StatementSubject.BALANCE, transaction_at=now, reason="balance looks wrong"))
    await api.resolve_statement_dispute(ctx.client, account, ac.ResolveStatementDispute(
        dispute_id="d1", resolved_by="op-1", outcome="rejected", note="balance is right"))
    access = dsr.DataSubjectRequestInput(
        request_id=f"access-{ctx.uid}", account_id=account, kind=dsr.RequestKind.ACCESS, received_at=now,
        requester_token=reply_to, evidence_tokens=[said_name, said_phone, said_id])
    correction = dsr.DataSubjectRequestInput(
        request_id=f"fix-{ctx.uid}", account_id=account, kind=dsr.RequestKind.CORRECTION, received_at=now,
        requester_token=reply_to, evidence_tokens=[said_id],
        changes=[dsr.FieldChange(field=PersonalField.PHONE, value_token=new_phone)])
    for request in (access, correction):
        await api.submit_request(ctx.client, request, ctx.task_queue)
        # Polled, not `finish`ed: unlocked time skipping would leap over the account's 24 months meanwhile.
        await eventually(lambda: api.request_state(ctx.client, request.request_id),  # noqa: B023
                         lambda s: s.stage is dsr.DsrStage.COMPLETED, f"{request.kind.value} completed")
    incident = f"i-{ctx.uid}"
    await api.open_incident(ctx.client, inc.SecurityIncidentInput(
        incident_id=incident, opened_by="sec-1", summary="leak", affected_account_ids=[account], confirmed_at=now,
        notice=inc.NoticeParts(what_happened="phone numbers exposed", actions_taken="key revoked",
                               user_advice="ignore calls asking for codes", remedy="none")), ctx.task_queue)
    await eventually(lambda: api.incident_state(ctx.client, incident), lambda s: s.notified == [account],
                     "notice sent")
    # The work was real: the export file holds the plain values, the vault has the corrected phone.
    assert NAME in (vault(ctx).stored_export(access.request_id) or "")
    assert v.profile(account)[PersonalField.PHONE][1] == NEW_PHONE

    ids = [account_id(account), data_subject_request_id(access.request_id),
           data_subject_request_id(correction.request_id), security_incident_id(incident)]
    texts = {workflow_id: await history_text(ctx, workflow_id) for workflow_id in ids}
    plain = {"name": NAME, "name (JSON-escaped)": json.dumps(NAME)[1:-1], "phone": PHONE, "new phone": NEW_PHONE,
             "ID number": ID_NUMBER, "e-mail": EMAIL}
    leaks = [(workflow_id, what) for workflow_id, text in texts.items() for what, value in plain.items()
             if value in text]
    assert leaks == []

    # The holder of the key (the vault) turns the histories' tokens back into the values.
    tokens = set(re.findall(TOKEN_PATTERN.strip("^$"), "\n".join(texts.values())))
    assert {said_name, said_phone, said_id, reply_to, new_phone} <= tokens
    revealed = {v.reveal(token) for token in tokens}
    assert {NAME, PHONE, ID_NUMBER, EMAIL} <= revealed
    assert NEW_PHONE not in revealed  # applied to the profile; the staged copy the history points at is gone

