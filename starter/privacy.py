"""Typed helpers for services that talk to the PR workflows: DataSubjectRequestWorkflow (`dsr:{request_id}`),
AccountWorkflow (`account:{account_id}`), SecurityIncidentWorkflow (`incident:{incident_id}`).

PR-6: personal values go into the vault first (`stage_value` / `PersonalData.put`, a database call outside
Temporal) and only the returned token is sent; or a request carries them in clear in its `intake`, which the payload
codec encrypts (connect with `starter.client.connect`, which loads the payload keys) and the workflow's first
activity puts into the vault. A business refusal raises starter.client.Refused.

Operators (LEDGER_DSN selects the database, as for the worker):
  python -m starter.privacy put ACCOUNT_ID FIELD VALUE     store a profile value; prints its token
  python -m starter.privacy reveal TOKEN                   the value behind a token seen in a history
  python -m starter.privacy export-file REQUEST_ID OUT     write a request's export (the file handed over)
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from pydantic import BaseModel
from temporalio.client import Client, WorkflowHandle
from temporalio.common import WorkflowIDConflictPolicy, WorkflowIDReusePolicy
from temporalio.exceptions import WorkflowAlreadyStartedError

from activities.personal_data import PersonalData
from starter.client import Refused, _update
from workflows.contract import account as ac
from workflows.contract import data_subject_request as dsr
from workflows.contract import security_incident as inc
from workflows.contract.common import DEFAULT_TASK_QUEUE
from workflows.contract.names import (
    ACCOUNT_WORKFLOW,
    DATA_SUBJECT_REQUEST_WORKFLOW,
    SECURITY_INCIDENT_WORKFLOW,
    account_id,
    data_subject_request_id,
    security_incident_id,
)
from workflows.contract.privacy import AccountParty, PersonalField
from workflows.rules.privacy import notice_refusals


def stage_value(vault: PersonalData, account: str, field: PersonalField, value: str) -> str:
    """A value a request brings (a corrected phone number, the requester's contact or evidence): kept in the vault,
    returned as the token to put in the request."""
    return vault.put(account, field, value, staged=True)


# ---- accounts -----------------------------------------------------------------------------------------------

async def record_activity(client: Client, account: str, party: AccountParty, event: ac.AccountActivity,
                          task_queue: str = DEFAULT_TASK_QUEUE) -> None:
    """A sign-in or use (R-7). Starts the account's workflow on its first activity (signal-with-start); a cancelled
    account is never started again: that raises Refused("AccountCancelled")."""
    try:
        await client.start_workflow(
            ACCOUNT_WORKFLOW, ac.AccountInput(account_id=account, party=party, opened_at=event.occurred_at),
            id=account_id(account), task_queue=task_queue, start_signal="record_activity", start_signal_args=[event],
            id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE, static_summary=f"account {account}")
    except WorkflowAlreadyStartedError:
        raise Refused("AccountCancelled", [f"account {account} is closed (cancelled)"]) from None


async def obligations_changed(client: Client, account: str, task_id: str | None = None) -> None:
    await client.get_workflow_handle(account_id(account)).signal(
        "obligations_changed", ac.ObligationsChanged(task_id=task_id))


async def raise_statement_dispute(client: Client, account: str,
                                  request: ac.RaiseStatementDispute) -> ac.StatementDisputeRecord:
    return await _update(client, account_id(account), "raise_statement_dispute", request,
                         ac.StatementDisputeRecord)


async def resolve_statement_dispute(client: Client, account: str,
                                    request: ac.ResolveStatementDispute) -> ac.StatementDisputeRecord:
    return await _update(client, account_id(account), "resolve_statement_dispute", request,
                         ac.StatementDisputeRecord)


async def account_state(client: Client, account: str) -> ac.AccountView:
    state: ac.AccountView = await client.get_workflow_handle(account_id(account)).query(
        "state", result_type=ac.AccountView)
    return state


# ---- data-subject requests ----------------------------------------------------------------------------------

async def submit_request(client: Client, request: dsr.DataSubjectRequestInput,
                         task_queue: str = DEFAULT_TASK_QUEUE) -> WorkflowHandle[object, dsr.DataSubjectRequestView]:
    """Starts the request (the same request id again finds the running one)."""
    return await client.start_workflow(
        DATA_SUBJECT_REQUEST_WORKFLOW, request, id=data_subject_request_id(request.request_id),
        task_queue=task_queue, id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
        id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE, result_type=dsr.DataSubjectRequestView,
        static_summary=f"{request.kind.value} request {request.request_id} of account {request.account_id}")


async def verify_identity(client: Client, request_id: str,
                          request: dsr.VerifyIdentity) -> dsr.DataSubjectRequestView:
    return await _update(client, data_subject_request_id(request_id), "verify_identity", request,
                         dsr.DataSubjectRequestView)


async def reply(client: Client, request_id: str, request: dsr.OperatorReply) -> dsr.DataSubjectRequestView:
    return await _update(client, data_subject_request_id(request_id), "reply", request, dsr.DataSubjectRequestView)


async def request_state(client: Client, request_id: str) -> dsr.DataSubjectRequestView:
    state: dsr.DataSubjectRequestView = await client.get_workflow_handle(data_subject_request_id(request_id)).query(
        "state", result_type=dsr.DataSubjectRequestView)
    return state


# ---- security incidents -------------------------------------------------------------------------------------

async def open_incident(client: Client, request: inc.SecurityIncidentInput,
                        task_queue: str = DEFAULT_TASK_QUEUE) -> WorkflowHandle[object, inc.SecurityIncidentView]:
    n = request.notice
    if problems := notice_refusals(n.what_happened, n.actions_taken, n.user_advice, n.remedy):
        raise Refused("IncidentNoticeRefused", problems)  # refused before anything starts
    return await client.start_workflow(
        SECURITY_INCIDENT_WORKFLOW, request, id=security_incident_id(request.incident_id), task_queue=task_queue,
        id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
        id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE, result_type=inc.SecurityIncidentView,
        static_summary=f"security incident {request.incident_id}")


async def incident_update(client: Client, incident_id: str, name: str,
                          request: BaseModel) -> inc.SecurityIncidentView:
    """confirm, add_affected_accounts, publish_announcement or report_to_regulator."""
    return await _update(client, security_incident_id(incident_id), name, request, inc.SecurityIncidentView)


async def incident_state(client: Client, incident_id: str) -> inc.SecurityIncidentView:
    state: inc.SecurityIncidentView = await client.get_workflow_handle(security_incident_id(incident_id)).query(
        "state", result_type=inc.SecurityIncidentView)
    return state


# ---- CLI ----------------------------------------------------------------------------------------------------

def main(argv: Sequence[str] | None = None) -> int:
    from activities.db import Database
    from activities.directory import Directory
    from activities.ledger import Ledger
    from activities.subject_keys import SubjectKeys
    from starter import config
    from starter.codec import load_keys

    parser = argparse.ArgumentParser(prog="python -m starter.privacy")
    sub = parser.add_subparsers(dest="command", required=True)
    export = sub.add_parser("export-file", help="write the export of an access/copy/portability request to a file")
    export.add_argument("request_id")
    export.add_argument("out", type=Path)
    put = sub.add_parser("put", help="store a profile value of an account; prints its token")
    put.add_argument("account_id")
    put.add_argument("field", choices=[f.value for f in PersonalField])
    put.add_argument("value")
    reveal = sub.add_parser("reveal", help="print the value behind a vault token")
    reveal.add_argument("token")
    sub.add_parser("rewrap", help="after a key-ring rotation (a new payload key first in PAYLOAD_KEYS): wrap every "
                   "subject key under the new key; no data is touched, the old key can then leave the vault")
    args = parser.parse_args(argv)
    keys = load_keys(config.payload_key_env(os.environ, config.read_state()), required=True)
    dsn = config.ledger_dsn(state=config.read_state())  # the running embedded run's, wherever run from
    try:
        config.require_ledger(dsn, init=False)
    except config.LedgerMissing as error:
        print(f"ledger: {error}", file=sys.stderr)
        return 2
    db = Database(dsn)
    try:
        subject_keys = SubjectKeys(db, keys)
        if args.command == "rewrap":
            print(f"re-wrapped {subject_keys.rewrap()} subject keys under payload key {keys.current}")
            return 0
        vault = PersonalData(db, Ledger(db), Directory(db), subject_keys)
        if args.command == "put":
            print(vault.put(args.account_id, PersonalField(args.field), args.value))
            return 0
        if args.command == "reveal":
            value = vault.reveal(args.token)
            print(value if value is not None else "(erased or unknown token)")
            return 0 if value is not None else 1
        document = vault.stored_export(args.request_id)
        if document is None:
            print(f"no export for request {args.request_id} (not an export request, or not processed yet)",
                  file=sys.stderr)
            return 1
        args.out.write_text(document, encoding="utf-8")
        print(f"wrote {args.out}")
        return 0
    finally:
        db.close()


if __name__ == "__main__":
    raise SystemExit(main())
