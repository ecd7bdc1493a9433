"""R-14 "no silent stalls": a settlement, refund, payment (or the notices and erasures the privacy workflows owe)
that cannot complete is escalated within minutes, for every workflow type: the `escalated` search attribute is set
(an operator finds the run with one visibility query), the cause is first in the workflow's current details, and
the run keeps retrying behind the escalation, and the worker's `xingtu_money_stalls_total` counts it once (its
Prometheus endpoint, scraped). Runs on the dev server (the time-skipping server has no visibility).

Each case breaks one activity of the worker (it fails as a database constraint would) and drives one workflow to
it. A new workflow type is covered by adding an entry to CASES (a guard test fails while one is missing)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import pytest
import pytest_asyncio
from temporalio import activity
from temporalio.api.sdk.v1 import WorkflowMetadata
from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.runtime import Runtime
from temporalio.service import RPCError

import telemetry
from activities.ledger import LedgerActivities, RefundRequest, RefundResult, SettleRequest, SettleResult
from activities.notifications import IncidentNoticesRequest, IncidentNoticesResult
from activities.penalties import PenaltyAction, PenaltyEffect
from activities.xg_ledger import (
    XgCompensateRequest,
    XgLedgerActivities,
    XgMoveResult,
    XgRefundRequest,
    XgRefundResult,
)
from ports.personal_data import EraseRequest, EraseResult, PayoutRequest, PayoutResult
from starter import client as mount_api
from starter import privacy as privacy_api
from starter import xingguang as xg_api
from tests import replay_helpers as rh
from tests.conftest import scratch_adapters
from tests.dev_server import dev_server_with_worker
from tests.helpers import eligible_client, publish_request
from tests.metrics_helpers import free_port, scrape, total
from tests.violation_helpers import start_case
from tests.xg_fixtures import OPERATOR, order_request
from worker import WORKFLOWS, Adapters
from workflows import metrics
from workflows.contract import account as ac
from workflows.contract import data_subject_request as dsr
from workflows.contract import mounted_content as mc
from workflows.contract import security_incident as inc
from workflows.contract import violation_case as vc
from workflows.contract import xingguang as xg
from workflows.contract import xingguang_state as xgs
from workflows.contract.definitions import workflow_definition
from workflows.contract.names import (
    MOUNTED_CONTENT_WORKFLOW,
    account_id,
    data_subject_request_id,
    mount_task_id,
    mounted_content_id,
    security_incident_id,
    violation_case_id,
    xingguang_claims_id,
    xingguang_task_id,
)
from workflows.contract.privacy import AccountParty
from workflows.rules.clock import BUSINESS_TZ
from workflows.xingguang_task import XingguangTaskWorkflow

TASK_QUEUE = "money-stalls"
FAULT = "CHECK constraint failed: available_not_negative (test fault)"
REAL: dict[str, Callable[[Any], Any]] = {}  # activity name -> the real activity (the dev fixture fills it)
REPAIRED: set[str] = set()  # activities whose fault is repaired


def broken(name: str, request_type: type, result_type: type) -> Callable[..., Any]:
    """An activity registered as `name` that fails at every attempt for the requests of this test's stalled runs
    (their ids say "stall"), as a constraint or a bug would; others, and all once repaired, go to the real one."""

    def fail(request: Any) -> Any:
        if name in REPAIRED or "stall" not in str(request):
            return REAL[name](request)
        raise RuntimeError(f"{FAULT} in {name}")

    fail.__annotations__ = {"request": request_type, "return": result_type}
    return activity.defn(name=name)(fail)


def now() -> datetime:
    return datetime.now(BUSINESS_TZ).replace(microsecond=0)


# ---------------------------------------------------------------- one driver per workflow type
async def xingguang_refund(client: Client, a: Adapters, uid: str) -> str:
    """XingguangTaskWorkflow: materials refused, so the whole freeze goes back at once (the refund stalls)."""
    task, client_id = f"xg-stall-{uid}", f"cl-stall-{uid}"
    eligible_client(a, client_id, 300_000)
    start = now() + timedelta(days=1)
    await xg_api.order(client, order_request(task, client_id, start, start + timedelta(days=5)), TASK_QUEUE)
    await xg_api.review_materials(client, task, xg.ReviewMaterialsRequest(operator_id=OPERATOR, verdicts=[
        xg.MaterialVerdict(kind=xg.MaterialKind.QUALIFICATION, item_id="licence-1", approved=False,
                           reason="licence expired")]))
    return xingguang_task_id(task)


async def account_payout(client: Client, a: Adapters, uid: str) -> str:
    """AccountWorkflow: the user asks for cancellation; the payout of the balance stalls."""
    account = f"acct-stall-{uid}"
    await privacy_api.record_activity(client, account, AccountParty.CREATOR,
                                      ac.AccountActivity(event_id="e1", occurred_at=now()), TASK_QUEUE)
    await client.get_workflow_handle(account_id(account)).signal(
        "request_cancellation", ac.CancellationRequested(request_id=f"dsr-{uid}", requested_at=now()))
    return account_id(account)


async def incident_notices(client: Client, a: Adapters, uid: str) -> str:
    """SecurityIncidentWorkflow: confirmed at once; sending the notices stalls."""
    incident = f"inc-stall-{uid}"
    await privacy_api.open_incident(client, inc.SecurityIncidentInput(
        incident_id=incident, opened_by="sec-1", summary="API key leak", affected_account_ids=[f"a-{uid}"],
        confirmed_at=now(), notice=inc.NoticeParts(what_happened="an API key leaked", actions_taken="revoked",
                                                   user_advice="never share codes", remedy="none")), TASK_QUEUE)
    return security_incident_id(incident)


async def dsr_erasure(client: Client, a: Adapters, uid: str) -> str:
    """DataSubjectRequestWorkflow: a verified deletion request; the erasure stalls."""
    request = f"dsr-stall-{uid}"
    await privacy_api.submit_request(client, dsr.DataSubjectRequestInput(
        request_id=request, account_id=f"a-{uid}", kind=dsr.RequestKind.DELETION, received_at=now()), TASK_QUEUE)
    await privacy_api.verify_identity(client, request, dsr.VerifyIdentity(verified=True, verified_by="op-1",
                                                                          method="video call"))
    return data_subject_request_id(request)


async def claim_after_close(client: Client, a: Adapters, uid: str) -> str:
    """XingguangClaimsWorkflow: a task closes (materials refused, refunded); the damages claimed after it stall."""
    task, client_id = f"xg-late-{uid}", f"cl-late-{uid}"
    eligible_client(a, client_id, 300_000)
    start = now() + timedelta(days=1)
    await xg_api.order(client, order_request(task, client_id, start, start + timedelta(days=5)), TASK_QUEUE)
    await xg_api.review_materials(client, task, xg.ReviewMaterialsRequest(operator_id=OPERATOR, verdicts=[
        xg.MaterialVerdict(kind=xg.MaterialKind.QUALIFICATION, item_id="licence-1", approved=False,
                           reason="licence expired")]))
    await client.get_workflow_handle(xingguang_task_id(task), result_type=xgs.TaskResult).result()
    claim = xg.CompensateRequest(
        operator_id=OPERATOR, compensation_id="d-stall", kind=xg.CompensationKind.DAMAGES,
        cause=xg.AnomalyCause.PLATFORM_FAULT, amount_fen=1_000, loss_fen=1_000, note="materials lost",
        period_start_at=start - timedelta(days=1), period_end_at=start)
    CLAIMS.append(asyncio.ensure_future(xg_api.compensate(client, task, claim, TASK_QUEUE)))  # waits behind the stall
    return xingguang_claims_id(task)


async def mount_task_refund(client: Client, a: Adapters, uid: str) -> str:
    """MountTaskWorkflow: published, then cancelled with nobody joined (no late mount can come): the refund stalls."""
    task, client_id = f"mt-stall-{uid}", f"cl-mt-stall-{uid}"
    eligible_client(a, client_id, 300_000)
    start = now()
    await mount_api.publish_task(client, publish_request(task, client_id, start, start + timedelta(days=5),
                                                         100_000), TASK_QUEUE)
    await mount_api.cancel(client, task, "stall test", "ops-1")
    return mount_task_id(task)


async def content_settlement(client: Client, a: Adapters, uid: str) -> str:
    """MountedContentWorkflow: a piece mounted 18 days ago, so its billing period and publicity window have
    closed: its settlement stalls at once."""
    task, content, creator = f"mt-stall-{uid}", f"c-stall-{uid}", f"cr-stall-{uid}"
    mounted_at = now() - timedelta(days=18)
    await client.start_workflow(MOUNTED_CONTENT_WORKFLOW, mc.MountedContentInput(
        task_id=task, content_id=content, creator_id=creator, client_id=f"cl-{uid}",
        payee_account=f"creator:{creator}:payable", price_fen=100, mounted_at=mounted_at,
        task_period_end_at=mounted_at + timedelta(days=30)), id=mounted_content_id(task, content),
        task_queue=TASK_QUEUE)
    return mounted_content_id(task, content)


async def case_penalty(client: Client, a: Adapters, uid: str) -> str:
    """ViolationCaseWorkflow: a fee freeze whose application stalls at the notice."""
    case = f"v-stall-{uid}"
    await start_case(client, TASK_QUEUE, case, f"cr-stall-{uid}", now(), vc.Penalty(kind=vc.PenaltyKind.FREEZE_FEES))
    return violation_case_id(case)


CLAIMS: list[asyncio.Future[Any]] = []


@dataclass(frozen=True)
class Case:
    workflow_type: str
    activity: Callable[..., Any]  # the broken replacement
    drive: Callable[[Client, Adapters, str], Awaitable[str]]  # returns the workflow id
    what: str  # how the details name the stalled call
    kind: metrics.Kind  # the `kind` label of its metrics


CASES = {
    "XingguangTaskWorkflow": Case("XingguangTaskWorkflow",
                                  broken("xg_ledger.refund", XgRefundRequest, XgRefundResult), xingguang_refund,
                                  "refund", "xingguang"),
    "AccountWorkflow": Case("AccountWorkflow", broken("personal_data.payout", PayoutRequest, PayoutResult),
                            account_payout, "payout of the balance", "privacy"),
    "SecurityIncidentWorkflow": Case("SecurityIncidentWorkflow",
                                     broken("notifications.send_incident_notices", IncidentNoticesRequest,
                                            IncidentNoticesResult), incident_notices, "incident notices", "privacy"),
    "XingguangClaimsWorkflow": Case("XingguangClaimsWorkflow",
                                    broken("xg_ledger.compensate", XgCompensateRequest, XgMoveResult),
                                    claim_after_close, "compensation d-stall", "xingguang"),
    "DataSubjectRequestWorkflow": Case("DataSubjectRequestWorkflow",
                                       broken("personal_data.erase", EraseRequest, EraseResult), dsr_erasure,
                                       "erasure", "privacy"),
    "MountTaskWorkflow": Case("MountTaskWorkflow", broken("ledger.refund", RefundRequest, RefundResult),
                              mount_task_refund, "refund", "mount"),
    "MountedContentWorkflow": Case("MountedContentWorkflow", broken("ledger.settle", SettleRequest, SettleResult),
                                   content_settlement, "settlement", "mount"),
    "ViolationCaseWorkflow": Case("ViolationCaseWorkflow", broken("penalties.apply", PenaltyAction, PenaltyEffect),
                                  case_penalty, "apply of penalty p1 (freeze_fees)", "violation"),
}


@pytest.fixture(scope="module")
def adapters(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Adapters]:
    with scratch_adapters(tmp_path_factory.mktemp("stalls")) as opened:
        yield opened


@pytest.fixture(scope="module")
def metrics_url() -> tuple[Runtime, str]:
    bind = f"127.0.0.1:{free_port()}"
    return telemetry.runtime(bind), f"http://{bind}/metrics"


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def dev(adapters: Adapters, metrics_url: tuple[Runtime, str]) -> AsyncIterator[Client]:
    xg_ledger = XgLedgerActivities(adapters.ledger)
    ledger = LedgerActivities(adapters.ledger)
    REAL.update({"xg_ledger.refund": xg_ledger.refund, "xg_ledger.compensate": xg_ledger.compensate,
                 "ledger.refund": ledger.refund, "ledger.settle": ledger.settle})
    async with dev_server_with_worker(adapters, TASK_QUEUE,
                                      replace_activities=[case.activity for case in CASES.values()],
                                      runtime=metrics_url[0]) as client:
        yield client


def test_r_14_every_workflow_type_the_worker_runs_has_a_stall_case() -> None:
    assert set(CASES) == {workflow_definition(cls).name for cls in WORKFLOWS}


def stalls_counted(url: str, workflow_type: str) -> float:
    return total(scrape(url), metrics.MONEY_STALLS.name, task_queue=TASK_QUEUE, workflow_type=workflow_type)


@pytest.mark.parametrize("name", list(CASES))
async def test_r_14_a_stalled_money_call_is_escalated_and_found_by_search_attribute(
        dev: Client, adapters: Adapters, uid: str, name: str, metrics_url: tuple[Runtime, str]) -> None:
    case, (_, url) = CASES[name], metrics_url
    counted_before = stalls_counted(url, case.workflow_type)
    workflow_id = await case.drive(dev, adapters, uid)
    try:
        query = f"escalated = true AND WorkflowType = '{case.workflow_type}'"
        found: set[str] = set()
        for _ in range(200):  # the first phase gives up after ~15 s of failed attempts
            found = {w.id async for w in dev.list_workflows(query)} & {workflow_id}
            if found:
                break
            await asyncio.sleep(0.5)
        assert found == {workflow_id}
        metadata = await dev.get_workflow_handle(workflow_id).query("__temporal_workflow_metadata",
                                                                     result_type=WorkflowMetadata)
        shown = metadata.current_details
        assert shown.startswith(f"ESCALATED: {case.what} cannot complete"), shown
        assert FAULT in shown and "retrying" in shown
        description = await dev.get_workflow_handle(workflow_id).describe()
        assert description.status == WorkflowExecutionStatus.RUNNING  # still retrying behind the escalation
        for _ in range(50):  # the counter is exported at the next scrape after the workflow task
            if stalls_counted(url, case.workflow_type) > counted_before:
                break
            await asyncio.sleep(0.2)
        assert stalls_counted(url, case.workflow_type) == counted_before + 1  # once, though it keeps retrying
        assert total(scrape(url), metrics.MONEY_STALLS.name, task_queue=TASK_QUEUE, workflow_type=case.workflow_type,
                     kind=case.kind) == counted_before + 1
    finally:
        with contextlib.suppress(RPCError):
            await dev.get_workflow_handle(workflow_id).terminate("test over")
        for waiting in CLAIMS:
            waiting.cancel()


async def test_r_14_a_repaired_stall_completes_once_and_the_escalation_clears(dev: Client, adapters: Adapters,
                                                                             uid: str) -> None:
    workflow_id = await xingguang_refund(dev, adapters, f"fix-{uid}")
    client_id = f"cl-stall-fix-{uid}"
    try:
        query = "escalated = true AND WorkflowType = 'XingguangTaskWorkflow'"
        for _ in range(200):
            if workflow_id in {w.id async for w in dev.list_workflows(query)}:
                break
            await asyncio.sleep(0.5)
        assert adapters.ledger.balance(f"client:{client_id}:available").balance_fen == 300_000 - 198_000
        REPAIRED.add("xg_ledger.refund")
        result = await dev.get_workflow_handle(workflow_id, result_type=xgs.TaskResult).result()
        assert (result.stage, result.refunded_fen) == (xgs.TaskStage.CLOSED, 198_000)
        assert adapters.ledger.balance(f"client:{client_id}:available").balance_fen == 300_000  # refunded once
        assert adapters.ledger.balance(f"xg_task:xg-stall-fix-{uid}:escrow").balance_fen == 0
        assert adapters.ledger.conservation_total() == 0
        for _ in range(100):
            if workflow_id not in {w.id async for w in dev.list_workflows(query)}:
                break
            await asyncio.sleep(0.3)
        assert workflow_id not in {w.id async for w in dev.list_workflows(query)}
        # The escalation and its clearing replay (no non-determinism on a worker restart mid-stall).
        history = await dev.get_workflow_handle(workflow_id).fetch_history()
        await rh.replayer(XingguangTaskWorkflow).replay_workflow(history)
    finally:
        REPAIRED.discard("xg_ledger.refund")
