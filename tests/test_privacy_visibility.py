"""PR-1, PR-4: escalations an operator finds in the Temporal UI by the `escalated` search attribute, on the dev server
(the time-skipping server has no visibility). A reply deadline or a statement dispute whose working-day calendar is
not published escalates at once (the calendar activity is replaced to refuse), is found by one query, and is no
longer found once an operator acts. Search attributes carry ids and stages only (PR-6)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from datetime import datetime

import pytest
import pytest_asyncio
from temporalio.client import Client

from activities.personal_data import PersonalData
from starter import privacy as api
from tests.conftest import scratch_adapters, subject_keys
from tests.dev_server import dev_server_with_worker
from tests.privacy_helpers import NAME, PHONE, missing_calendar
from worker import Adapters
from workflows.contract import account as ac
from workflows.contract import data_subject_request as dsr
from workflows.contract.privacy import AccountParty, PersonalField
from workflows.rules.clock import BUSINESS_TZ

TASK_QUEUE = "privacy-visibility"


@pytest.fixture(scope="module")
def adapters(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Adapters]:
    with scratch_adapters(tmp_path_factory.mktemp("prvis")) as opened:
        yield opened


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def dev(adapters: Adapters) -> AsyncIterator[Client]:
    calendar = missing_calendar(adapters)
    async with dev_server_with_worker(adapters, TASK_QUEUE, replace_activities=calendar) as client:
        yield client


async def found(client: Client, query: str, expected: int, timeout: float = 20.0) -> list[str]:
    """Visibility is eventually consistent: poll until `expected` workflows match."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        ids = [w.id async for w in client.list_workflows(query)]
        if len(ids) == expected:
            return ids
        assert asyncio.get_running_loop().time() < deadline, f"{query}: {ids}, {expected} expected"
        await asyncio.sleep(0.3)


async def test_pr_1_pr_4_escalations_are_found_by_escalated_and_leave_when_handled(
        dev: Client, adapters: Adapters, uid: str) -> None:
    account = f"vis-{uid}"
    vault = PersonalData(adapters.db, adapters.ledger, adapters.directory, subject_keys(adapters))
    vault.put(account, PersonalField.NAME, NAME)
    vault.put(account, PersonalField.PHONE, PHONE)
    now = datetime.now(BUSINESS_TZ).replace(microsecond=0)
    await api.record_activity(dev, account, AccountParty.CLIENT, ac.AccountActivity(event_id="l1", occurred_at=now),
                              TASK_QUEUE)
    await api.raise_statement_dispute(dev, account, ac.RaiseStatementDispute(
        dispute_id="d1", subject=ac.StatementSubject.SPEND, transaction_at=now, reason="unknown spend"))
    request = dsr.DataSubjectRequestInput(
        request_id=f"vis-{uid}", account_id=account, kind=dsr.RequestKind.COMPLAINT, received_at=now,
        evidence_tokens=[vault.put(account, PersonalField.PHONE, PHONE, staged=True)])
    await api.submit_request(dev, request, TASK_QUEUE)

    escalated = 'escalated = true AND WorkflowId STARTS_WITH "{}:' + f'vis-{uid}"'
    assert await found(dev, escalated.format("dsr"), 1) == [f"dsr:vis-{uid}"]
    assert await found(dev, escalated.format("account"), 1) == [f"account:vis-{uid}"]
    assert await found(dev, f'client_id = "{account}" AND stage = "active"', 1) == [f"account:vis-{uid}"]

    await api.reply(dev, request.request_id, dsr.OperatorReply(replied_by="op-1", summary="answered"))
    await api.resolve_statement_dispute(dev, account, ac.ResolveStatementDispute(
        dispute_id="d1", resolved_by="op-1", outcome="rejected", note="the user's own spend"))
    await found(dev, escalated.format("dsr"), 0)
    await found(dev, f'WorkflowId = "dsr:vis-{uid}" AND stage = "completed" AND escalated = false', 1)
    await found(dev, escalated.format("account"), 0)
