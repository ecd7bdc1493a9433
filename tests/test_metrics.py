"""Prometheus metrics of the worker (issue 9 item 3).

A worker whose client runs on a runtime serving Prometheus on a free port (telemetry.runtime, as worker.py builds
it from METRICS_PORT) lives through one authorized-mount task on the time-skipping server: publication (AM-1..3),
two mounts (AM-6), conversions with a void (AM-9, R-1), a fee dispute left past its 7 working days (AM-17: it
escalates) then resolved with a lower amount, settlement of both pieces (AM-12) and the refund (AM-13). The
endpoint, scraped with urllib, shows each business counter of workflows/metrics.py with the value the scenario
implies (the fen ones equal the ledger's payouts and refund), SDK metrics beside them, and replaying the recorded
histories counts nothing again. A Xingguang task (XG-6, R-8) shows the same counters with kind="xingguang",
a violation case's escalated appeal (AM-20, AM-21) with kind="violation".
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import pytest_asyncio
from temporalio.client import Client
from temporalio.runtime import Runtime
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Replayer

import telemetry
from starter import client as api
from starter import violations
from starter import xingguang as xg_api
from tests.conftest import Ctx, StartedWorkflows
from tests.helpers import (
    DAY,
    assert_conservation,
    business_now,
    content_when,
    convert,
    creator,
    finish,
    mount,
    published_task,
)
from tests.metrics_helpers import free_port, scrape, total
from tests.violation_helpers import case_update, case_when, fixed_calendar, start_case
from tests.xg_fixtures import (
    HOUR,
    OPERATOR,
    events,
    ids,
    ordered_task,
    published_piece,
    sleep_until,
    xg_money,
)
from tests.xg_fixtures import task_when as xg_task_when
from worker import WORKFLOWS, Adapters, build_worker
from workflows import metrics
from workflows.contract import mount_task as mt
from workflows.contract import mounted_content as mc
from workflows.contract import violation_case as vc
from workflows.contract import xingguang as xg
from workflows.contract import xingguang_pieces as xgp
from workflows.contract import xingguang_state as xgs
from workflows.contract.names import mount_task_id, mounted_content_id, violation_case_id

SECOND = DAY / 86400


@pytest.fixture(scope="module")
def metrics_url() -> Iterator[tuple[Runtime, str]]:
    """One runtime per module: its Prometheus endpoint lives as long as the process."""
    bind = f"127.0.0.1:{free_port()}"
    yield telemetry.runtime(bind), f"http://{bind}/metrics"


@pytest_asyncio.fixture(loop_scope="session")
async def mctx(env: WorkflowEnvironment, adapters: Adapters, task_queue: str, uid: str,
               metrics_url: tuple[Runtime, str]) -> AsyncIterator[Ctx]:
    """Like conftest's ctx, but the worker's client runs on the metrics runtime (as worker.py's does)."""
    runtime, _ = metrics_url
    client = await Client.connect(env.client.service_client.config.target_host, namespace=env.client.namespace,
                                  data_converter=env.client.data_converter, runtime=runtime,
                                  interceptors=[StartedWorkflows()])
    calendar = fixed_calendar(9 * DAY)(adapters)  # "7 working days" = 9 days, whatever the server's date
    async with build_worker(client, task_queue, adapters, replace_activities=calendar):
        yield Ctx(env=env, client=client, a=adapters, task_queue=task_queue, uid=uid)


async def test_metrics_after_a_mount_task_with_a_dispute(mctx: Ctx, metrics_url: tuple[Runtime, str],
                                                         tmp_path: Path) -> None:
    ctx, (runtime, url) = mctx, metrics_url
    task, cr1, cr2 = f"t-met-{ctx.uid}", f"cr1-{ctx.uid}", f"cr2-{ctx.uid}"
    published = await published_task(ctx, task, budget_fen=100_000, price_fen=100, days=30,
                                      client_id=f"client-{ctx.uid}")
    assert published.frozen_fen == 110_000
    for who in (cr1, cr2):
        creator(ctx.a, who)
        await api.join(ctx.client, task, who)
    mounted_at = published.published_at.replace(microsecond=0)
    await mount(ctx, task, "c1", cr1, mounted_at)
    await mount(ctx, task, "c2", cr2, mounted_at)
    await convert(ctx, task, "c1", "e1", 10, mounted_at + SECOND)
    await convert(ctx, task, "c1", "e2", 5, mounted_at + SECOND)
    await convert(ctx, task, "c1", "e2", 5, mounted_at + SECOND)  # the same batch again: counted once
    await convert(ctx, task, "c2", "e3", 7, mounted_at + SECOND)
    await convert(ctx, task, "c2", "e4", 3, mounted_at + SECOND)
    await content_when(ctx, task, "c2", lambda s: s.counted_conversions == 10)
    await api.content_signal(ctx.client, task, "c2", "void_conversions",
                             mc.VoidConversions(event_id="e4", reason="fake installs"))
    await content_when(ctx, task, "c2", lambda s: s.counted_conversions == 7)
    await content_when(ctx, task, "c1", lambda s: s.fee_fen == 1_500)

    await ctx.env.sleep(14 * DAY + SECOND)  # billing period over, publicity window open
    await violations.raise_dispute(ctx.client, task, "c1", mc.RaiseDisputeRequest(
        raised_by="creator", party_id=cr1, reason="activations missing from the report"))
    await ctx.env.sleep(9 * DAY + SECOND)  # unresolved past its deadline: escalated (AM-17)
    await content_when(ctx, task, "c1", lambda s: s.escalated)
    await violations.resolve_dispute(ctx.client, task, "c1", mc.ResolveDisputeRequest(
        dispute_id="d1", operator_id="op-1", amount_fen=1_200, note="3 activations were QA devices"))
    c1 = await finish(ctx, mounted_content_id(task, "c1"), mc.ContentResult)
    c2 = await finish(ctx, mounted_content_id(task, "c2"), mc.ContentResult)
    result = await finish(ctx, mount_task_id(task), mt.TaskResult)
    assert (c1.fee_fen, c2.fee_fen, result.refunded_fen) == (1_200, 700, 110_000 - 1_900 - 190)

    samples = scrape(url)
    mine = {"task_queue": ctx.task_queue, "kind": "mount"}
    money = assert_conservation(ctx.a, task)
    payouts = (ctx.a.ledger.balance(f"creator:{cr1}:payable").balance_fen
               + ctx.a.ledger.balance(f"creator:{cr2}:payable").balance_fen)
    expected = {
        (metrics.TASKS_PUBLISHED.name, ()): 1,
        (metrics.FROZEN_FEN.name, ()): money["frozen_fen"],
        (metrics.PIECES_MOUNTED.name, ()): 2,
        (metrics.CONVERSIONS_COUNTED.name, ()): 10 + 5 + 7 + 3,
        (metrics.CONVERSIONS_RELEASED.name, ()): 3,
        (metrics.PIECES_SETTLED.name, (("outcome", "settled"),)): 2,
        (metrics.SETTLED_FEN.name, (("to", "payee"),)): payouts,
        (metrics.SETTLED_FEN.name, (("to", "platform"),)): money["platform_fees_fen"],
        (metrics.REFUNDED_FEN.name, ()): money["refunded_fen"],
        (metrics.DISPUTES_RAISED.name, (("dispute", "fee"),)): 1,
        (metrics.DISPUTES_RESOLVED.name, (("dispute", "fee"),)): 1,
        (metrics.ESCALATIONS_OPENED.name, ()): 1,
        (metrics.ESCALATIONS_CLOSED.name, ()): 1,
    }
    assert payouts == 1_900 and money["platform_fees_fen"] == 190 and money["refunded_fen"] == 107_910
    got = {key: total(samples, key[0], **mine, **dict(key[1])) for key in expected}
    assert got == expected
    # Every counter of the list was exercised, but the stall counter (tests/test_money_stalls.py provokes stalls).
    assert {name for name, _ in expected} == set(metrics.NAMES) - {metrics.MONEY_STALLS.name}
    # Labels are the few named ones (plus the SDK's), never an id.
    ours = [labels for name, labels, _ in samples if name in metrics.NAMES]
    assert all(set(labels) <= {"kind", "outcome", "to", "dispute", "namespace", "task_queue", "workflow_type",
                               "service_name"} for labels in ours)
    # The SDK's own metrics come from the same endpoint.
    completed = "temporal_workflow_completed"
    assert total(samples, completed, task_queue=ctx.task_queue, workflow_type="MountedContentWorkflow") == 2
    assert total(samples, completed, task_queue=ctx.task_queue, workflow_type="MountTaskWorkflow") == 1
    assert total(samples, "temporal_workflow_task_execution_latency_count", task_queue=ctx.task_queue) > 0
    assert total(samples, "temporal_activity_execution_latency_count", task_queue=ctx.task_queue) > 0

    # Replaying the recorded histories (as a worker does after a cache eviction) counts nothing again.
    histories = [await ctx.client.get_workflow_handle(wid).fetch_history()
                 for wid in (mount_task_id(task), mounted_content_id(task, "c1"), mounted_content_id(task, "c2"))]
    replayer = Replayer(workflows=list(WORKFLOWS), data_converter=ctx.client.data_converter, runtime=runtime)
    for history in histories:
        await replayer.replay_workflow(history)
    again = scrape(url)
    assert {key: total(again, key[0], **mine, **dict(key[1])) for key in expected} == expected


async def test_metrics_of_a_xingguang_task_with_a_data_dispute(mctx: Ctx, metrics_url: tuple[Runtime, str]) -> None:
    """XG-6 / R-8: the same counters with kind="xingguang": an order, a piece selected and published, 100 billable
    events, a data dispute left past its deadline (escalated) and resolved at 80 events, settlement and refund."""
    ctx, (_, url) = mctx, metrics_url
    task, client_id = ids(ctx, "met")
    t0, ordered = await ordered_task(ctx, task, client_id, days=5)
    await published_piece(ctx, task, client_id, "p1", f"c-{ctx.uid}", 10_000)
    await sleep_until(ctx, t0 + 2 * DAY)
    await events(ctx, task, "d1", "p1", 100, t0 + DAY + HOUR)
    await sleep_until(ctx, t0 + 6 * DAY + HOUR)  # billing over at t0+6d: publicity window open
    await xg_api.raise_data_dispute(ctx.client, task, xgp.RaiseDataDisputeRequest(
        client_id=client_id, piece_id="p1", reason="our tracker saw 80 clicks"))
    await sleep_until(ctx, t0 + 16 * DAY)  # past its 9-day deadline: escalated
    await xg_task_when(ctx, task, lambda s: s.escalated)
    await xg_api.resolve_data_dispute(ctx.client, task, xgp.ResolveDataDisputeRequest(
        operator_id=OPERATOR, piece_id="p1", billable_events=80, note="20 bot clicks removed"))
    result = await finish(ctx, xg.xg_task_workflow_id(task), xgs.TaskResult)
    assert result.pieces["p1"].promotion_spend_fen == 80 * 50

    money = xg_money(ctx, task, client_id)
    assert money["frozen"] == ordered.terms.frozen_fen and money["escrow"] == 0
    expected = {
        (metrics.TASKS_PUBLISHED.name, ()): 1,
        (metrics.FROZEN_FEN.name, ()): money["frozen"],
        (metrics.PIECES_MOUNTED.name, ()): 1,
        (metrics.CONVERSIONS_COUNTED.name, ()): 100,
        (metrics.CONVERSIONS_RELEASED.name, ()): 20,
        (metrics.PIECES_SETTLED.name, (("outcome", "settled"),)): 1,
        (metrics.SETTLED_FEN.name, (("to", "payee"),)): money["creators"],
        (metrics.SETTLED_FEN.name, (("to", "promotion"),)): money["promotion"],
        (metrics.SETTLED_FEN.name, (("to", "platform"),)): money["platform_fee"],
        (metrics.SETTLED_FEN.name, (("to", "provider"),)): money["provider_fee"],
        (metrics.REFUNDED_FEN.name, ()): money["refund"],
        (metrics.DISPUTES_RAISED.name, (("dispute", "data"),)): 1,
        (metrics.DISPUTES_RESOLVED.name, (("dispute", "data"),)): 1,
        (metrics.ESCALATIONS_OPENED.name, ()): 1,
        (metrics.ESCALATIONS_CLOSED.name, ()): 1,
    }
    assert money["creators"] == 10_000 and money["promotion"] == 4_000
    samples = scrape(url)
    mine = {"task_queue": ctx.task_queue, "kind": "xingguang"}
    assert {key: total(samples, key[0], **mine, **dict(key[1])) for key in expected} == expected


async def test_metrics_of_a_violation_case_with_an_escalated_appeal(mctx: Ctx,
                                                                    metrics_url: tuple[Runtime, str]) -> None:
    """AM-20 / AM-21: an appeal (a dispute, dispute="appeal") unanswered past 7 working days escalates; its
    decision resolves it and closes the escalation (kind="violation")."""
    ctx, (_, url) = mctx, metrics_url
    case, party = f"v-met-{ctx.uid}", f"cr-{ctx.uid}"
    creator(ctx.a, party)
    await start_case(ctx.client, ctx.task_queue, case, party, await business_now(ctx),
                     vc.Penalty(kind=vc.PenaltyKind.BAR_FROM_MOUNT_TASKS))
    await case_update(ctx.client, case, "appeal", vc.AppealRequest(party_id=party, reason="the installs were real"),
                      vc.AppealReceipt)
    await ctx.env.sleep(9 * DAY + SECOND)
    await case_when(ctx.client, case, lambda s: s.escalated)
    decided = await case_update(ctx.client, case, "decide_appeal", vc.DecideAppealRequest(
        decision="rejected", operator_id="op-2", note="scripted installs"), vc.ViolationCaseView)
    assert (decided.stage, decided.escalated) == (vc.CaseStage.CLOSED, False)
    await finish(ctx, violation_case_id(case), vc.ViolationCaseResult)
    samples = scrape(url)
    mine = {"task_queue": ctx.task_queue, "kind": "violation"}
    got = {name: total(samples, name, **mine) for name in metrics.NAMES if total(samples, name, **mine)}
    assert got == {metrics.DISPUTES_RAISED.name: 1, metrics.DISPUTES_RESOLVED.name: 1,
                   metrics.ESCALATIONS_OPENED.name: 1, metrics.ESCALATIONS_CLOSED.name: 1}
    assert total(samples, metrics.DISPUTES_RAISED.name, **mine, dispute="appeal") == 1


def test_metrics_port_from_the_environment() -> None:
    assert telemetry.metrics_bind_address({}) is None
    assert telemetry.metrics_bind_address({"METRICS_PORT": ""}) is None
    assert telemetry.metrics_bind_address({"METRICS_PORT": "9464"}) == "0.0.0.0:9464"
    assert telemetry.metrics_bind_address({"METRICS_PORT": "9464", "METRICS_HOST": "127.0.0.1"}) == "127.0.0.1:9464"
    with pytest.raises(SystemExit, match="METRICS_PORT"):
        telemetry.metrics_bind_address({"METRICS_PORT": "ninety"})


def test_counter_names_share_one_prefix_and_end_in_total() -> None:
    assert len(set(metrics.NAMES)) == len(metrics.NAMES)
    assert all(re.fullmatch(r"xingtu_[a-z_]+_total", name) for name in metrics.NAMES)
