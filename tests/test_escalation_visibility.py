"""AM-17 and AM-21 escalations are findable where an operator looks: one visibility query on the `escalated`
search attribute finds both an unresolved fee dispute (MountedContentWorkflow) and an unanswered appeal
(ViolationCaseWorkflow). Needs visibility, so it runs on the dev server (the time-skipping server has none).

On the dev server windows cannot be crossed by skipping time: the piece is mounted 15 days in the past (its
publicity window is open now), the notice was issued an hour ago, and "7 working days" is answered by a calendar
fixed at a few seconds (the real calendar is tested on fixed dates in test_working_days.py)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterator
from datetime import datetime, timedelta

import pytest
import pytest_asyncio
from temporalio.client import Client
from temporalio.common import SearchAttributePair, TypedSearchAttributes
from temporalio.service import RPCError

from tests.conftest import scratch_adapters
from tests.dev_server import dev_server_with_worker
from tests.helpers import creator
from tests.violation_helpers import case_state, fixed_calendar, start_case
from worker import Adapters
from workflows.contract import mounted_content as mc
from workflows.contract import violation_case as vc
from workflows.contract.names import MOUNTED_CONTENT_WORKFLOW, SA, mounted_content_id
from workflows.contract.views import MountedContentView
from workflows.rules.clock import BUSINESS_TZ

TASK_QUEUE = "escalation-visibility"
DUE_AFTER = timedelta(seconds=3)


@pytest.fixture(scope="module")
def adapters(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Adapters]:
    with scratch_adapters(tmp_path_factory.mktemp("escvis")) as opened:
        yield opened


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def dev(adapters: Adapters) -> AsyncIterator[Client]:
    calendar = fixed_calendar(DUE_AFTER)(adapters)
    async with dev_server_with_worker(adapters, TASK_QUEUE, replace_activities=calendar) as client:
        yield client


async def listed(client: Client, query: str) -> set[str]:
    return {w.id async for w in client.list_workflows(query)}


async def test_am_17_am_21_escalated_dispute_and_appeal_found_by_one_query(dev: Client, adapters: Adapters,
                                                                           uid: str) -> None:
    now = datetime.now(BUSINESS_TZ).replace(microsecond=0)
    task, content, who, case = f"t-{uid}", "c1", f"cr-{uid}", f"v-{uid}"
    creator(adapters, who)
    content_id = mounted_content_id(task, content)
    await dev.start_workflow(
        MOUNTED_CONTENT_WORKFLOW,
        mc.MountedContentInput(task_id=task, content_id=content, creator_id=who, client_id="client-1",
                               payee_account=f"creator:{who}:payable", price_fen=100,
                               mounted_at=now - timedelta(days=15), task_period_end_at=now + timedelta(days=15)),
        id=content_id, task_queue=TASK_QUEUE,
        search_attributes=TypedSearchAttributes([SearchAttributePair(SA.TASK_ID, task),
                                                 SearchAttributePair(SA.CONTENT_ID, content)]))
    case_id = await start_case(dev, TASK_QUEUE, case, who, now - timedelta(hours=1),
                               vc.Penalty(kind=vc.PenaltyKind.BAR_FROM_MOUNT_TASKS))
    try:
        receipt = await dev.get_workflow_handle(content_id).execute_update(
            "raise_dispute", mc.RaiseDisputeRequest(raised_by="client", party_id="client-1",
                                                    reason="activations from our own QA devices"),
            result_type=mc.DisputeReceipt)
        assert receipt.resolution_due_at == receipt.raised_at + DUE_AFTER
        appeal = await dev.get_workflow_handle(case_id).execute_update(
            "appeal", vc.AppealRequest(party_id=who, reason="the conversions were real"),
            result_type=vc.AppealReceipt)
        assert appeal.answer_due_at == appeal.appealed_at + DUE_AFTER

        # One query, as an operator types it in the UI: both are found (and nothing of this test before).
        query = "escalated = true"
        found: set[str] = set()
        for _ in range(100):
            found = await listed(dev, query) & {content_id, case_id}
            if found == {content_id, case_id}:
                break
            await asyncio.sleep(0.3)
        assert found == {content_id, case_id}

        state = await dev.get_workflow_handle(content_id).query("state", result_type=MountedContentView)
        assert state.escalated and state.escalation_reason is not None
        assert "fee dispute d1" in state.escalation_reason and "unresolved past" in state.escalation_reason
        case_now = await case_state(dev, case)
        assert case_now.escalated and case_now.stage is vc.CaseStage.APPEALED
        assert case_now.escalation_reason is not None and "unanswered past" in case_now.escalation_reason

        # Deciding the appeal clears the flag: the list shows what still needs a human.
        await dev.get_workflow_handle(case_id).execute_update("decide_appeal", vc.DecideAppealRequest(
            decision="rejected", operator_id="op-1", note="scripted installs"), result_type=vc.ViolationCaseView)
        for _ in range(100):
            if await listed(dev, query) & {content_id, case_id} == {content_id}:
                break
            await asyncio.sleep(0.3)
        assert await listed(dev, query) & {content_id, case_id} == {content_id}
    finally:
        for workflow_id in (content_id, case_id):
            with contextlib.suppress(RPCError):  # already closed
                await dev.get_workflow_handle(workflow_id).terminate("test over")
