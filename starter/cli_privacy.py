"""`python -m starter dsr-... | account-... | incident-...`: data-subject requests (PR-1, PR-2), accounts (PR-3..PR-5,
R-6, R-7: activity, closure, statement disputes) and security incidents (PR-7, R-10)."""

from __future__ import annotations

import argparse
from typing import Any

from temporalio.client import Client

from starter import client as api
from starter import privacy
from starter.cli_common import Action, dump, global_flags, store, task_queue
from starter.cli_errors import CliError, Reason
from workflows.contract import account as ac
from workflows.contract import data_subject_request as dsr
from workflows.contract import security_incident as inc
from workflows.contract.names import account_id, data_subject_request_id
from workflows.contract.privacy import AccountParty

EXAMPLE = "python -m starter"


async def _exists(client: Client, workflow_id: str, what: str, field: str, value: str) -> None:
    if await api.workflow_status(client, workflow_id) is None:
        raise CliError("NotFound", f"{what} {value} not found: it was never started",
                       [Reason(f"{value} not found", field)], exit_code=1)


# ------------------------------------------------------------------ data-subject requests
async def _submit(client: Client, args: argparse.Namespace, request: dsr.DataSubjectRequestInput) -> Any:
    await privacy.submit_request(client, request, task_queue(args))
    return await privacy.request_state(client, request.request_id)


async def _submitted_before(client: Client, args: argparse.Namespace, request: dsr.DataSubjectRequestInput) -> bool:
    return await api.workflow_status(client, data_subject_request_id(request.request_id)) is not None


# ------------------------------------------------------------------ accounts
def _party_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--party", choices=[p.value for p in AccountParty], default=None,
                        help="which ledger accounts are the account's (required when the account is new)")


async def _activity(client: Client, args: argparse.Namespace, event: ac.AccountActivity) -> Any:
    workflow_id = account_id(args.account_id)
    if await api.workflow_status(client, workflow_id) is None:
        if args.party is None:
            raise CliError("InvalidRequest", "party: required for an account's first activity",
                           [Reason("required for an account's first activity", "party")])
        await privacy.record_activity(client, args.account_id, AccountParty(args.party), event, task_queue(args))
    else:
        await client.get_workflow_handle(workflow_id).signal("record_activity", event)
    return await privacy.account_state(client, args.account_id)


async def _close(client: Client, args: argparse.Namespace, event: ac.CancellationRequested) -> Any:
    await _exists(client, account_id(args.account_id), "account", "account_id", args.account_id)
    state = await privacy.account_state(client, args.account_id)
    if state.cancellation_request_id == event.request_id:
        return state
    await client.get_workflow_handle(account_id(args.account_id)).signal("request_cancellation", event)
    return {"sent": "request_cancellation", "to": account_id(args.account_id), **dump(event),
            "waits_for_tasks": state.open_task_ids}


async def _statement_resolved_before(client: Client, args: argparse.Namespace,
                                     request: ac.ResolveStatementDispute) -> bool:
    if await api.workflow_status(client, account_id(args.account_id)) is None:
        return False
    record = (await privacy.account_state(client, args.account_id)).statement_disputes.get(request.dispute_id)
    if record is None or record.status == "open":
        return False
    if (record.status, record.adjustment_fen) != (request.outcome, request.adjustment_fen):
        raise CliError("StatementDisputeRefused", f"dispute_id: {request.dispute_id} is already resolved",
                       [Reason(f"resolved {record.status} with {record.adjustment_fen} fen; this asks "
                               f"{request.outcome} with {request.adjustment_fen} fen", "adjustment_fen")])
    return True


async def _statement_resolve(client: Client, args: argparse.Namespace, request: ac.ResolveStatementDispute) -> Any:
    await _exists(client, account_id(args.account_id), "account", "account_id", args.account_id)
    record = (await privacy.account_state(client, args.account_id)).statement_disputes.get(request.dispute_id)
    if record is not None and record.status != "open":
        return record
    return await privacy.resolve_statement_dispute(client, args.account_id, request)


# ------------------------------------------------------------------ security incidents
async def _open_incident(client: Client, args: argparse.Namespace, request: inc.SecurityIncidentInput) -> Any:
    await privacy.open_incident(client, request, task_queue(args))
    return await privacy.incident_state(client, request.incident_id)


def _incident(name: str) -> Any:
    async def call(client: Client, args: argparse.Namespace, request: Any) -> Any:
        return await privacy.incident_update(client, args.incident_id, name, request)
    return call


REQUEST, ACCOUNT, INCIDENT = ("request_id",), ("account_id",), ("incident_id",)
ACTIONS = [
    Action("dsr-submit", "receive a data-subject request (PR-1, PR-2): access, copy, portability, correction, "
           "supplement, deletion, minor data report, consent withdrawal, account cancellation, complaint; the request "
           "id is the key", f"{EXAMPLE} dsr-submit r-1 --account-id cr-demo --kind access --received-at now "
           "--intake-contact-field email --intake-contact-value a@example.com", REQUEST, dsr.DataSubjectRequestInput,
           _submit, replayed=_submitted_before),
    Action("dsr-verify", "an operator records the identity check of a request (PR-1): the 15 working days start",
           f"{EXAMPLE} dsr-verify r-1 --verified --verified-by op-1 --method 'video call'", REQUEST,
           dsr.VerifyIdentity, lambda c, a, r: privacy.verify_identity(c, a.request_id, r)),
    Action("dsr-reply", "an operator records the reply to a request (PR-1)",
           f"{EXAMPLE} dsr-reply r-1 --replied-by op-1 --summary 'export sent to the contact on file'", REQUEST,
           dsr.OperatorReply, lambda c, a, r: privacy.reply(c, a.request_id, r)),
    Action("account-activity", "record a sign-in or use of an account (R-7: resets its 24 months); starts the "
           "account's workflow on its first activity", f"{EXAMPLE} account-activity cr-demo --party creator "
           "--event-id login-1 --occurred-at now --kind sign_in", ACCOUNT, ac.AccountActivity, _activity,
           extra_flags=_party_flag),
    Action("account-close", "the user asks to close (cancel) the account (PR-5): cancelled once its tasks and "
           "payouts are done", f"{EXAMPLE} account-close cr-demo --request-id r-9 --requested-at now", ACCOUNT,
           ac.CancellationRequested, _close),
    Action("account-dispute-raise", "the account disputes a statement entry (PR-4, R-6: before the 11th of the next "
           "month)", f"{EXAMPLE} account-dispute-raise demo-client --dispute-id sd-1 --subject top_up "
           "--transaction-at 2026-11-30T10:00:00+08:00 --amount-fen 5000 --reason 'charged twice'", ACCOUNT,
           ac.RaiseStatementDispute, lambda c, a, r: privacy.raise_statement_dispute(c, a.account_id, r)),
    Action("account-dispute-resolve", "an operator resolves a statement dispute (PR-4); upheld credits the "
           "adjustment; the dispute id is the key", f"{EXAMPLE} account-dispute-resolve demo-client --dispute-id "
           "sd-1 --resolved-by op-1 --outcome upheld --adjustment-fen 5000 --note 'double top-up refunded'",
           ACCOUNT, ac.ResolveStatementDispute, _statement_resolve, replayed=_statement_resolved_before),
    Action("incident-open", "open a security incident (PR-7, R-10): affected users are told what happened, what was "
           "done, what to do and the remedy", f"{EXAMPLE} incident-open inc-1 --opened-by sec-1 --summary 'leaked "
           "export' --affected-account-ids cr-demo --notice-what-happened '...' --notice-actions-taken '...' "
           "--notice-user-advice '...' --notice-remedy none --confirmed-at now", INCIDENT,
           inc.SecurityIncidentInput, _open_incident),
    Action("incident-confirm", "confirm an incident: notices go out (PR-7)",
           f"{EXAMPLE} incident-confirm inc-1 --confirmed-by sec-1 --confirmed-at now", INCIDENT,
           inc.ConfirmIncident, _incident("confirm")),
    Action("incident-add-accounts", "add affected accounts to an incident",
           f"{EXAMPLE} incident-add-accounts inc-1 --account-ids cr-2 --account-ids cr-3", INCIDENT,
           inc.AddAffectedAccounts, _incident("add_affected_accounts")),
    Action("incident-announce", "publish one announcement instead of notices not delivered (R-10)",
           f"{EXAMPLE} incident-announce inc-1 --published-by sec-1 --reason 'no contact on file' --channel "
           "'site banner' --published-at now", INCIDENT, inc.PublishAnnouncement, _incident("publish_announcement")),
    Action("incident-report", "record the report to the regulator (PR-7)",
           f"{EXAMPLE} incident-report inc-1 --reported-by sec-1 --regulator CAC --reference 2026-771 --reported-at "
           "now", INCIDENT, inc.ReportToRegulator, _incident("report_to_regulator")),
]


def cmd_export(args: argparse.Namespace, out: Any) -> None:
    """The file handed to the requester of an access, copy or portability request (PR-1, PR-2)."""
    import os
    from pathlib import Path

    from activities.personal_data import PersonalData
    from activities.subject_keys import SubjectKeys
    from starter import config
    from starter.codec import load_keys

    keys = load_keys(config.payload_key_env(os.environ, config.read_state()), required=True)
    s = store(args)
    document = PersonalData(s.db, s.ledger, s.directory, SubjectKeys(s.db, keys)).stored_export(args.request_id)
    if document is None:
        raise CliError("NotFound", f"no export for request {args.request_id}",
                       [Reason("not an access, copy or portability request, or not processed yet", "request_id")],
                       exit_code=1)
    Path(args.out).write_text(document, encoding="utf-8")
    out.show({"request_id": args.request_id, "written": str(args.out), "characters": len(document)})


def add_commands(sub: Any) -> None:
    for action in ACTIONS:
        action.add(sub)
    p = sub.add_parser("dsr-export", help="write the export of an access, copy or portability request to a file, "
                       "to hand over (PR-1, PR-2)", parents=[global_flags(suppress=True)],
                       epilog=f"example:\n  {EXAMPLE} dsr-export r-1 export-r-1.json")
    p.add_argument("request_id")
    p.add_argument("out", help="the file to write")
    p.set_defaults(run=cmd_export)
