"""Issue 9 item 5: the Temporal UI as the operator's desk, seen by headless Chromium on the dev server's UI.

A scenario leaves what an operator looks for: a task whose period is over with three pieces awaiting settlement
(their publicity window open, AM-11), one of them with a fee dispute escalated (AM-17), an escalated violation case
against the same creator (appeal unanswered, AM-21), and that creator's account. The UI's workflow list is opened
with each visibility query of the README ("The Temporal UI as the operator's desk") and must list exactly the
expected workflow ids (read from the rendered page); the case's page must show its static summary and current
details. Each page is captured as PNG: into a temporary directory, or into docs/ui/ with UPDATE_SCREENSHOTS=1
(the pictures the README links).

Also checked here, on the dev server (the time-skipping server drops signal-with-start metadata and has no UI):
every workflow of the scenario has its static summary, and its current details end with the next deadline in
UTC+08:00. Needs Chromium (Debian package `chromium`, installed by .ci/run); skipped without it.

On the dev server windows are not crossed by skipping time: the task period ends a few seconds after publication
and "N working days" is answered by a calendar fixed at a few seconds (the real calendar: test_working_days.py)."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import urllib.parse
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import TypeVar

import pytest
import pytest_asyncio
from temporalio.api.sdk.v1 import WorkflowMetadata
from temporalio.client import Client

from starter import client as api
from starter import privacy
from starter import violations as cases
from tests.conftest import scratch_adapters
from tests.dev_server import dev_server_with_worker
from tests.headless_chromium import Chromium, Page, chromium_binary
from tests.helpers import creator, eligible_client, publish_request
from tests.violation_helpers import fixed_calendar
from worker import Adapters
from workflows.contract import account as ac
from workflows.contract import mount_task as mt
from workflows.contract import mounted_content as mc
from workflows.contract import violation_case as vc
from workflows.contract.names import account_id, mount_task_id, mounted_content_id, violation_case_id
from workflows.contract.privacy import AccountParty
from workflows.rules.clock import BUSINESS_TZ, business_time

TASK_QUEUE = "ui-screenshots"
DUE_AFTER = timedelta(seconds=3)  # every "N working days" (dispute resolution, appeal answer)
PERIOD_LEFT = timedelta(seconds=30)  # the task period ends this long after publication
DOCS_UI = Path(__file__).resolve().parent.parent / "docs" / "ui"
T = TypeVar("T")

CHROMIUM = chromium_binary()
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="no Chromium (Debian package `chromium`; .ci/run installs it)")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Desk:
    client: Client
    adapters: Adapters
    ui: str  # the UI's origin, http://127.0.0.1:port

    def url(self, path: str, query: str | None = None) -> str:
        url = f"{self.ui}/namespaces/default/{path}"
        return url if query is None else f"{url}?query={urllib.parse.quote(query)}"


@pytest_asyncio.fixture(loop_scope="session")
async def desk(tmp_path: Path) -> AsyncIterator[Desk]:
    """The dev server with its UI and a worker whose working-day calendar answers DUE_AFTER."""
    ui_port = free_port()
    with scratch_adapters(tmp_path) as adapters:
        async with dev_server_with_worker(adapters, TASK_QUEUE, fixed_calendar(DUE_AFTER)(adapters),
                                          ui_port=ui_port) as client:
            yield Desk(client, adapters, f"http://127.0.0.1:{ui_port}")


async def until(read: Callable[[], Awaitable[T]], ok: Callable[[T], bool], what: str, timeout: float = 60.0) -> T:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        value = await read()
        if ok(value):
            return value
        assert asyncio.get_running_loop().time() < deadline, f"{what}: never reached; last {value}"
        await asyncio.sleep(0.3)


async def listed(client: Client, query: str) -> set[str]:
    return {w.id async for w in client.list_workflows(query)}


@dataclass
class Scenario:
    task: str
    creator: str
    case: str
    pieces: list[str]  # workflow ids of the task's pieces
    disputed: str  # the piece whose fee dispute escalated
    account: str

    @property
    def queries(self) -> dict[str, tuple[str, set[str]]]:
        """Picture name -> (the visibility query an operator pastes into the UI, the workflow ids it lists)."""
        return {
            "escalated": ("escalated = true", {violation_case_id(self.case), self.disputed}),
            "task-pieces-awaiting-settlement": (
                f'task_id = "{self.task}" AND stage = "publicity"', set(self.pieces)),
            "creator": (f'creator_id = "{self.creator}"',
                        {*self.pieces, violation_case_id(self.case), account_id(self.account)}),
        }


async def run_scenario(dev: Client, adapters: Adapters, uid: str) -> Scenario:
    now = datetime.now(BUSINESS_TZ).replace(microsecond=0)
    task, client_id, who, case = f"t-ui-{uid}", f"client-ui-{uid}", f"cr-ui-{uid}", f"v-ui-{uid}"
    eligible_client(adapters, client_id, 1_000_000)
    creator(adapters, who)
    await api.publish_task(dev, publish_request(task, client_id, now - timedelta(days=1), now + PERIOD_LEFT,
                                                budget_fen=100_000, price_fen=100), TASK_QUEUE)
    await api.join(dev, task, who)
    contents = ["c1", "c2", "c3"]
    for content in contents:
        await api.report_mount(dev, task, mt.ReportMountRequest(content_id=content, creator_id=who, mounted_at=now))
        await api.report_conversions(dev, task, mc.ConversionBatch(
            event_id=f"{content}-e1", content_id=content, count=3, occurred_at=now + timedelta(seconds=1)))
    # The creator's account (signal-with-start) and a violation case whose appeal goes unanswered.
    await privacy.record_activity(dev, who, AccountParty.CREATOR, ac.AccountActivity(event_id="login-1",
                                                                                      occurred_at=now), TASK_QUEUE)
    await cases.issue_notice(dev, vc.ViolationCaseInput(
        case_id=case, party_kind=vc.PartyKind.CREATOR, party_id=who, notice_at=now - timedelta(hours=1),
        violation="faked conversions on content c-9", issued_by="op-7",
        penalties=[vc.Penalty(kind=vc.PenaltyKind.BAR_FROM_MOUNT_TASKS)]), TASK_QUEUE)
    await cases.appeal(dev, case, vc.AppealRequest(party_id=who, reason="the conversions were real"))
    # The task period ends: every piece enters its publicity window; the client disputes c1's fee, unresolved.
    for content in contents:
        await until(lambda c=content: api.content_state(dev, task, c),
                    lambda s: s.stage is mc.ContentStage.PUBLICITY, f"{content} in its publicity window")
    await cases.raise_dispute(dev, task, "c1", mc.RaiseDisputeRequest(
        raised_by="client", party_id=client_id, reason="activations from our own QA devices"))
    await until(lambda: api.content_state(dev, task, "c1"), lambda s: s.escalated, "c1's dispute escalated")
    await until(lambda: cases.case_state(dev, case), lambda s: s.escalated, "the case escalated")
    scenario = Scenario(task=task, creator=who, case=case, account=who,
                        pieces=[mounted_content_id(task, c) for c in contents], disputed=mounted_content_id(task, "c1"))
    for query, expected in scenario.queries.values():  # visibility is eventually consistent
        await until(lambda q=query: listed(dev, q), lambda ids, e=expected: ids == e, query)
    return scenario


async def current_details(client: Client, workflow_id: str) -> str:
    metadata = await client.get_workflow_handle(workflow_id).query("__temporal_workflow_metadata",
                                                                   result_type=WorkflowMetadata)
    return metadata.current_details


# The list's columns as an operator would set them (Temporal UI: the table's column settings, kept in the browser).
COLUMNS = ["Status", "Workflow ID", "Type", "stage", "escalated", "next_deadline_at"]


def expand_event(event_id: int) -> str:
    """JavaScript: open an event's row in the UI's event history and bring it to the top of the window."""
    row = f'tr[data-eventid="{event_id}"]'
    return (f"(() => {{ const row = document.querySelector('{row}'); if (!row) return '';"
            " row.querySelector('button[aria-label=\"Expand details\"]')?.click();"
            " row.scrollIntoView({block: 'center', inline: 'nearest'}); return ''; })()")


def keep(pictures: Path, name: str, page: Page) -> None:
    (pictures / f"{name}.png").write_bytes(page.png)


async def test_operator_desk_filters_and_details_in_the_temporal_ui(desk: Desk, uid: str, tmp_path: Path) -> None:
    dev = desk.client
    s = await run_scenario(dev, desk.adapters, uid)
    ids = {mount_task_id(s.task), violation_case_id(s.case), account_id(s.account), *s.pieces}

    # What each workflow says of itself: a static summary, and current details naming the next deadline.
    summaries = {i: await (await dev.get_workflow_handle(i).describe()).static_summary() for i in ids}
    assert summaries == {
        mount_task_id(s.task): f"authorized-mount task {s.task}",
        violation_case_id(s.case): f"violation case {s.case} against creator {s.creator}",
        account_id(s.account): f"account {s.account}",
        **{piece: f"content {piece.rsplit(':', 1)[1]} of task {s.task}" for piece in s.pieces},
    }
    details = {i: await current_details(dev, i) for i in ids}
    # The task waits for its pieces' closures in the ledger: it names its next look and the next window's close.
    task_details = details[mount_task_id(s.task)]
    assert task_details.startswith(f"task {s.task}: ended (period_over): waiting for 3 of 3 piece(s) to settle "
                                   "(0 closure(s) read from the ledger); next look at the ledger "), task_details
    assert "; next: publicity window closes " in task_details, task_details
    # Under the line, in the UI's markdown: the money picture and the counts (issue 23), from the `state` view.
    view = await api.task_state(dev, s.task)
    assert f"**Money** (fen): frozen {view.money.frozen_fen:,} · accrued {view.money.accrued_fen:,}" in task_details
    assert "**Pieces**: 3 mounted · 3 open · 0 settled" in task_details, task_details
    # An escalation says why and what to do.
    assert "**What to do**: answer the appeal: `python -m starter penalty-decide" in details[violation_case_id(s.case)]
    for workflow_id in ids:
        assert "+08:00" in details[workflow_id], (workflow_id, details[workflow_id])
    assert details[violation_case_id(s.case)].startswith(f"ESCALATED: violation case {s.case}")
    assert "fee dispute d1" in details[s.disputed] and "publicity window open until" in details[s.disputed]

    # The UI: each filter lists exactly its workflows; the case's page shows its summary and details.
    pictures = DOCS_UI if os.environ.get("UPDATE_SCREENSHOTS") else tmp_path
    pictures.mkdir(parents=True, exist_ok=True)
    assert CHROMIUM is not None
    with Chromium(CHROMIUM, timezone="Asia/Shanghai", scale=0.8) as chromium:  # the UI's "local" time is then UTC+08:00
        chromium.local_storage(desk.ui, {"namespace-workflow-table-columns": json.dumps(
            {"default": [{"label": column} for column in COLUMNS]})})
        for name, (query, expected) in s.queries.items():
            page = await asyncio.to_thread(chromium.capture, desk.url("workflows", query), sorted(expected))
            keep(pictures, name, page)
            assert not page.missing, f"{name}: {page.missing} not listed by the UI for {query}"
            shown = {i for i in ids if i in page.text}
            assert shown == expected, f"{name}: the UI lists {shown} for {query}"
        case_id = violation_case_id(s.case)
        run_id = (await dev.get_workflow_handle(case_id).describe()).run_id
        page = await asyncio.to_thread(chromium.capture, desk.url(f"workflows/{case_id}/{run_id}/user-metadata"),
                                       [case_id, summaries[case_id], "appeal waiting for an answer"])
        keep(pictures, "case-summary-and-details", page)
        assert not page.missing, f"the case's page lacks {page.missing}"
        # Timers in the event history, each with its summary: the disputed piece's window and escalation.
        handle = dev.get_workflow_handle(s.disputed)
        run_id = (await handle.describe()).run_id
        closes = (await api.content_state(dev, s.task, "c1")).publicity_window_closes_at
        timer = [e.event_id async for e in handle.fetch_history_events()
                 if e.HasField("timer_started_event_attributes")][-1]
        page = await asyncio.to_thread(
            chromium.capture, desk.url(f"workflows/{s.disputed}/{run_id}/history") + "?category=timer",
            ["Timer Started", f"publicity window closes {business_time(closes)}"], script=expand_event(timer))
        keep(pictures, "piece-timers", page)
        assert not page.missing, f"the piece's history lacks {page.missing}"
    for picture in pictures.glob("*.png"):
        assert picture.stat().st_size > 20_000, f"{picture.name}: too small to be a rendered page"
