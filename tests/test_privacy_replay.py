"""Running PR workflows outlive code (DESIGN "Running workflows outlive code"): histories recorded from the PR
scenarios replay against the current code without nondeterminism, both fresh ones and those checked in under
tests/histories/ (privacy-*.json). `RECORD_PRIVACY_HISTORIES=1` rewrites the checked-in ones."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from temporalio.client import WorkflowHistory
from temporalio.worker import Replayer

from starter import privacy as api
from tests.conftest import Ctx, data_converter
from tests.helpers import business_now
from tests.privacy_helpers import EMAIL, PHONE, eventually, fixed_calendar, person, vault
from tests.ui_metadata import assert_operator_metadata
from workflows.account import AccountWorkflow
from workflows.contract import account as ac
from workflows.contract import data_subject_request as dsr
from workflows.contract import security_incident as inc
from workflows.contract.names import account_id, data_subject_request_id, security_incident_id
from workflows.contract.privacy import AccountParty, PersonalField
from workflows.data_subject_request import DataSubjectRequestWorkflow
from workflows.security_incident import SecurityIncidentWorkflow

pytestmark = pytest.mark.replace_activities.with_args(fixed_calendar)
HISTORIES = Path(__file__).parent / "histories"
REPLAYER = Replayer(workflows=[DataSubjectRequestWorkflow, AccountWorkflow, SecurityIncidentWorkflow],
                    data_converter=data_converter)  # with the codec: encrypted payloads replay too (PR-6)


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
        confirmed_at=now, notice=inc.NoticeParts(what_happened="x", actions_taken="y", user_advice="z")),
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


async def test_pr_workflows_replay_their_fresh_histories(ctx: Ctx) -> None:
    histories = await scenario(ctx)
    for name, text in histories.items():
        history = WorkflowHistory.from_json(name, text)
        assert len(history.events) > 5
        await REPLAYER.replay_workflow(history)  # raises on nondeterminism
        # The account starts by signal-with-start, whose metadata the test server drops (the dev server keeps it:
        # tests/test_ui_screenshots.py); every timer is checked here all the same.
        assert_operator_metadata(history, static=name != "account")
        if os.environ.get("RECORD_PRIVACY_HISTORIES"):
            (HISTORIES / f"privacy-{name}.json").write_text(text, encoding="utf-8")


@pytest.mark.parametrize("path", sorted(HISTORIES.glob("privacy-*.json")), ids=lambda p: p.name)
async def test_pr_workflows_replay_checked_in_histories(path: Path) -> None:
    await REPLAYER.replay_workflow(WorkflowHistory.from_json(path.stem, path.read_text(encoding="utf-8")))
