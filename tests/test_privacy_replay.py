"""Running PR workflows outlive code (DESIGN "Running workflows outlive code"): histories recorded from the PR
scenarios replay against the current code without nondeterminism, both fresh ones and those checked in under
tests/histories/ (privacy-*.json): a deletion held by a statement dispute, an incident escalated then closed, one
whose users were all told in time (R-10), the account with the dispute, a dormant account paid out and cancelled
(PR-3, R-7), an account continued as new and its next run, an access export and a requested account cancellation
with the account it cancelled (PR-1). Personal payloads are encrypted with the tests' fixed key.

To record after a deliberate, patched change: `RECORD_PRIVACY_HISTORIES=1 .venv/bin/python -m pytest
tests/test_privacy_replay.py`, then commit tests/histories/privacy-*.json."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest
from temporalio.api.enums.v1 import EventType
from temporalio.worker import Replayer

from starter import privacy as api
from starter.codec import SEALED_ENCODING
from tests import replay_helpers as rh
from tests.conftest import Ctx
from tests.helpers import business_now, finish
from tests.privacy_helpers import EMAIL, PHONE, eventually, fixed_calendar, person, vault
from workflows.account import AccountWorkflow
from workflows.common import MAX_MESSAGES_PER_RUN
from workflows.contract import account as ac
from workflows.contract import data_subject_request as dsr
from workflows.contract import security_incident as inc
from workflows.contract.names import account_id, data_subject_request_id, security_incident_id
from workflows.contract.privacy import AccountParty, PersonalField
from workflows.data_subject_request import DataSubjectRequestWorkflow
from workflows.security_incident import SecurityIncidentWorkflow

pytestmark = pytest.mark.replace_activities.with_args(fixed_calendar)
# With the codec (tests/conftest.py data_converter): encrypted payloads replay too (PR-6).
REPLAYER = rh.family_replayer("privacy-")


async def scenario(ctx: Ctx) -> dict[str, str]:
    """A deletion held by a statement dispute and released, and an incident escalated at 72 hours then closed."""
    account, unreachable = f"acct-{ctx.uid}", f"gone-{ctx.uid}"
    person(ctx, account)
    person(ctx, unreachable, phone=False, email=False)
    now = await business_now(ctx)
    await api.record_activity(ctx.client, account, AccountParty.CLIENT, ac.AccountActivity(
        event_id="login-1", occurred_at=now), ctx.task_queue)
    await api.raise_statement_dispute(ctx.client, account, ac.RaiseStatementDispute(
        dispute_id="d1", subject=ac.StatementSubject.SPEND, transaction_at=now, reason="unknown spend"))
    deletion = dsr.DataSubjectRequestInput(
        request_id=f"del-{ctx.uid}", account_id=account, kind=dsr.RequestKind.DELETION, received_at=now,
        requester_token=api.stage_value(vault(ctx), account, PersonalField.EMAIL, EMAIL),
        evidence_tokens=[api.stage_value(vault(ctx), account, PersonalField.PHONE, PHONE)])
    await api.submit_request(ctx.client, deletion, ctx.task_queue)
    await eventually(lambda: api.request_state(ctx.client, deletion.request_id),
                     lambda s: s.stage is dsr.DsrStage.RETENTION_PENDING, "retention pending")
    await api.resolve_statement_dispute(ctx.client, account, ac.ResolveStatementDispute(
        dispute_id="d1", resolved_by="op-1", outcome="rejected", note="spend was the user's"))
    await eventually(lambda: api.request_state(ctx.client, deletion.request_id),
                     lambda s: s.stage is dsr.DsrStage.COMPLETED, "deletion completed")
    incident = f"inc-{ctx.uid}"
    await api.open_incident(ctx.client, inc.SecurityIncidentInput(
        incident_id=incident, opened_by="sec-1", summary="leak", affected_account_ids=[account, unreachable],
        confirmed_at=now, notice=inc.NoticeParts(what_happened="x", actions_taken="y", user_advice="z", remedy="none")),
        ctx.task_queue)
    await ctx.env.sleep(73 * 3600)
    await eventually(lambda: api.incident_state(ctx.client, incident), lambda s: s.escalated, "escalated")
    later = await business_now(ctx)
    await api.incident_update(ctx.client, incident, "publish_announcement", inc.PublishAnnouncement(
        published_by="sec-1", reason="no contact", channel="site banner", published_at=later))
    await api.incident_update(ctx.client, incident, "report_to_regulator", inc.ReportToRegulator(
        reported_by="sec-1", regulator="CAC", reference="R-9", reported_at=later))
    await eventually(lambda: api.incident_state(ctx.client, incident),
                     lambda s: s.stage is inc.IncidentStage.CLOSED, "incident closed")
    ids = {"account": account_id(account), "dsr-deletion": data_subject_request_id(deletion.request_id),
           "incident": security_incident_id(incident)}
    return {name: (await ctx.client.get_workflow_handle(wid).fetch_history()).to_json() for name, wid in ids.items()}


async def replay_and_maybe_record(histories: dict[str, str], replaying: Replayer = REPLAYER) -> None:
    # An account starts by signal-with-start, whose static summary the test server drops (the dev server keeps it:
    # tests/test_ui_screenshots.py); every timer is checked all the same.
    await rh.replay_and_maybe_record(replaying, histories, "RECORD_PRIVACY_HISTORIES",
                                     no_static_summary=[n for n in histories if n.startswith("privacy-account")])


async def test_pr_workflows_replay_their_fresh_histories(ctx: Ctx) -> None:
    await replay_and_maybe_record({f"privacy-{name}": text for name, text in (await scenario(ctx)).items()})


async def test_pr_3_r_7_replay_a_dormant_account_paid_out_and_cancelled(ctx: Ctx) -> None:
    account = f"cr-dorm-{ctx.uid}"
    person(ctx, account)
    ctx.a.ledger.transfer(f"fee-{ctx.uid}", "world:deposits", f"creator:{account}:payable", 4_321, "test")
    await api.record_activity(ctx.client, account, AccountParty.CREATOR, ac.AccountActivity(
        event_id="use-1", occurred_at=await business_now(ctx)), ctx.task_queue)
    result = await finish(ctx, account_id(account), ac.AccountView)
    assert (result.stage, result.cancellation_reason) == (ac.AccountStage.CANCELLED, "dormancy")
    assert [p.amount_fen for p in result.payouts] == [4_321]
    await replay_and_maybe_record({"privacy-account-dormant-cancelled": await rh.history_json(
        ctx.client, account_id(account))})


async def test_pr_1_replay_an_access_export_and_a_requested_cancellation(ctx: Ctx) -> None:
    account = f"cl-req-{ctx.uid}"
    person(ctx, account)
    ctx.a.ledger.deposit(f"top-up-{ctx.uid}", account, 700)  # paid out when the account is cancelled
    now = await business_now(ctx)
    await api.record_activity(ctx.client, account, AccountParty.CLIENT, ac.AccountActivity(
        event_id="login-1", occurred_at=now), ctx.task_queue)
    access = dsr.DataSubjectRequestInput(  # values in clear: the intake travels encrypted (PR-6)
        request_id=f"acc-{ctx.uid}", account_id=account, kind=dsr.RequestKind.ACCESS, received_at=now,
        intake=dsr.RequesterIntake(contact=dsr.GivenValue(field=PersonalField.EMAIL, value=EMAIL),
                                   evidence=[dsr.GivenValue(field=PersonalField.PHONE, value=PHONE)]))
    await api.submit_request(ctx.client, access, ctx.task_queue)
    exported = await eventually(lambda: api.request_state(ctx.client, access.request_id),
                                lambda s: s.stage is dsr.DsrStage.COMPLETED, "access request completed")
    assert exported.export is not None
    cancellation = dsr.DataSubjectRequestInput(
        request_id=f"can-{ctx.uid}", account_id=account, kind=dsr.RequestKind.ACCOUNT_CANCELLATION, received_at=now,
        evidence_tokens=[api.stage_value(vault(ctx), account, PersonalField.PHONE, PHONE)])
    await api.submit_request(ctx.client, cancellation, ctx.task_queue)
    await eventually(lambda: api.request_state(ctx.client, cancellation.request_id),
                     lambda s: s.stage is dsr.DsrStage.COMPLETED, "cancellation request completed")
    cancelled = await finish(ctx, account_id(account), ac.AccountView)
    assert (cancelled.cancellation_reason, [p.amount_fen for p in cancelled.payouts]) == ("requested", [700])
    histories = {"privacy-dsr-access-export": data_subject_request_id(access.request_id),
                 "privacy-dsr-account-cancellation": data_subject_request_id(cancellation.request_id),
                 "privacy-account-cancelled-on-request": account_id(account)}
    texts = {name: await rh.history_json(ctx.client, wid) for name, wid in histories.items()}
    # The intake is sealed with the subject's key, and replays through the codec bound to the test's subject keys.
    assert base64.b64encode(SEALED_ENCODING).decode() in texts["privacy-dsr-access-export"]
    await replay_and_maybe_record(texts, rh.replayer(DataSubjectRequestWorkflow, AccountWorkflow,
                                                     SecurityIncidentWorkflow, converter=ctx.client.data_converter))


async def test_r_10_replay_an_incident_notified_in_time_and_closed(ctx: Ctx) -> None:
    accounts = [f"n{n}-{ctx.uid}" for n in range(2)]
    for account in accounts:
        person(ctx, account)
    now, incident = await business_now(ctx), f"inc-ok-{ctx.uid}"
    await api.open_incident(ctx.client, inc.SecurityIncidentInput(
        incident_id=incident, opened_by="sec-1", summary="key leak", affected_account_ids=accounts, confirmed_at=now,
        notice=inc.NoticeParts(what_happened="x", actions_taken="y", user_advice="z", remedy="none")), ctx.task_queue)
    await eventually(lambda: api.incident_state(ctx.client, incident),
                     lambda s: s.stage is inc.IncidentStage.NOTIFIED, "every user told")
    await api.incident_update(ctx.client, incident, "report_to_regulator", inc.ReportToRegulator(
        reported_by="sec-1", regulator="CAC", reference="R-10", reported_at=now))
    result = await finish(ctx, security_incident_id(incident), inc.SecurityIncidentView)
    assert (result.stage, result.escalated) == (inc.IncidentStage.CLOSED, False)
    await replay_and_maybe_record({"privacy-incident-notified-in-time": await rh.history_json(
        ctx.client, security_incident_id(incident))})


async def test_replay_an_account_that_continued_as_new(ctx: Ctx) -> None:
    """More uses than one run takes (MAX_MESSAGES_PER_RUN): the account continues as new, keeping its state."""
    account = f"cr-can-{ctx.uid}"
    start = await business_now(ctx)
    await api.record_activity(ctx.client, account, AccountParty.CREATOR, ac.AccountActivity(
        event_id="use-0", occurred_at=start), ctx.task_queue)
    uses = [ac.AccountActivity(event_id=f"use-{n}", occurred_at=start) for n in range(1, MAX_MESSAGES_PER_RUN + 11)]
    # The run counts each message (here: each use's signal) towards its bound.
    signalled = [e async for e in ctx.client.get_workflow_handle(account_id(account)).fetch_history_events()
                 if e.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED]
    to_bound = MAX_MESSAGES_PER_RUN - len(signalled)
    first_run = await rh.continue_as_new_by_signals(ctx.client, account_id(account), "record_activity",
                                                    uses[:to_bound], uses[to_bound:])
    await eventually(lambda: api.account_state(ctx.client, account),
                     lambda s: s.activities_recorded == len(uses) + 1, "account continued as new")
    histories = {"privacy-account-continued-as-new": await rh.history_json(ctx.client, account_id(account), first_run),
                 "privacy-account-after-continue-as-new": await rh.history_json(ctx.client, account_id(account))}
    assert "WORKFLOW_EXECUTION_CONTINUED_AS_NEW" in histories["privacy-account-continued-as-new"]
    await replay_and_maybe_record(histories)


@pytest.mark.parametrize("path", rh.checked_in("privacy-"), ids=lambda p: p.name)
async def test_pr_workflows_replay_checked_in_histories(path: Path) -> None:
    await rh.replay_checked_in(REPLAYER, path)
