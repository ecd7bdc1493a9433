"""Logs of the worker (issue 9 item 4): structlog configured once (telemetry.configure_logging, called by
worker.py's main), JSON lines off a terminal or with LOG_FORMAT=json, coloured key=value on a terminal.

With the configuration writing to a captured stream, a mounted piece is settled (AM-12) on the time-skipping
server: its workflow's line, a line of the SDK's `workflow.logger` and the settlement activity's line each carry
event, level, timestamp, workflow_id, run_id, workflow_type and the business ids (task_id, content_id); replaying
the recorded history writes none of the workflow's lines again.
"""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import pytest
import structlog
from temporalio import activity, workflow
from temporalio.worker import Replayer

import telemetry
from starter import client as api
from tests.conftest import Ctx
from tests.helpers import DAY, content_when, convert, creator, finish, mount, published_task
from worker import WORKFLOWS
from workflows.contract import mounted_content as mc
from workflows.contract.names import mounted_content_id
from workflows.logs import business_ids

SECOND = timedelta(seconds=1)
WORKFLOW_LOGGERS = ("xingtu.workflow", "temporalio.workflow")


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.fixture
def captured() -> Iterator[io.StringIO]:
    """The worker's log configuration, writing JSON lines to a stream; the previous configuration is put back."""
    root = logging.getLogger()
    handlers, level, config = list(root.handlers), root.level, structlog.get_config()
    stream = io.StringIO()
    telemetry.configure_logging(stream, "json")
    try:
        yield stream
    finally:
        for handler in list(root.handlers):
            root.removeHandler(handler)
        for handler in handlers:
            root.addHandler(handler)
        root.setLevel(level)
        structlog.configure(**config)
        workflow.logger.workflow_info_on_message = True
        activity.logger.activity_info_on_message = True


def lines(stream: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stream.getvalue().splitlines() if line.strip()]


def one(found: list[dict[str, Any]], **match: Any) -> dict[str, Any]:
    hits = [line for line in found if all(line.get(k) == v for k, v in match.items())]
    assert len(hits) == 1, (match, [line for line in found if line.get("event") == match.get("event")])
    return hits[0]


async def test_every_line_of_a_workflow_or_activity_carries_its_ids(ctx: Ctx, captured: io.StringIO) -> None:
    task, who = f"t-log-{ctx.uid}", f"cr-{ctx.uid}"
    published = await published_task(ctx, task, budget_fen=100_000, price_fen=100, days=30,
                                      client_id=f"client-{ctx.uid}")
    creator(ctx.a, who)
    await api.join(ctx.client, task, who)
    mounted_at = published.published_at.replace(microsecond=0)
    await mount(ctx, task, "c1", who, mounted_at)
    await convert(ctx, task, "c1", "e1", 10, mounted_at + SECOND)
    await content_when(ctx, task, "c1", lambda s: s.fee_fen == 1_000)
    content = ctx.client.get_workflow_handle(mounted_content_id(task, "c1"))
    # A batch addressed to another piece: the workflow's existing `workflow.logger` warning (ignored batch).
    await content.signal("report_conversions", mc.ConversionBatch(
        event_id="e-stray", content_id="c9", count=1, occurred_at=mounted_at + SECOND))
    await ctx.env.sleep(17 * DAY + SECOND)
    result = await finish(ctx, mounted_content_id(task, "c1"), mc.ContentResult)
    assert (result.fee_fen, result.platform_fee_fen) == (1_000, 100)

    found = lines(captured)  # every line is JSON
    ids = {"workflow_id": mounted_content_id(task, "c1"), "workflow_type": "MountedContentWorkflow",
           "task_id": task, "content_id": "c1"}
    settled = one(found, event="piece settled", **ids)
    assert settled["logger"] == "xingtu.workflow" and settled["level"] == "info"
    assert (settled["kind"], settled["payee_fen"], settled["platform_fen"]) == ("mount", 1_000, 100)
    run_id = settled["run_id"]
    assert run_id and datetime.fromisoformat(settled["timestamp"]).tzinfo is not None

    stray = one(found, event="batch e-stray is for content c9, not c1: ignored", **ids)
    assert (stray["logger"], stray["level"], stray["run_id"]) == ("temporalio.workflow", "warning", run_id)

    paid = one(found, event="ledger settled", **ids)
    assert (paid["activity_type"], paid["attempt"], paid["run_id"], paid["level"]) == (
        "ledger.settle", 1, run_id, "info")
    assert (paid["fee_fen"], paid["payee_account"]) == (1_000, f"creator:{who}:payable")
    assert paid["activity_id"] and datetime.fromisoformat(paid["timestamp"]).tzinfo is not None

    published_line = one(found, event="task published", workflow_type="MountTaskWorkflow", task_id=task)
    assert published_line["frozen_fen"] == 110_000 and "content_id" not in published_line

    # Replay (a worker rebuilding the workflow from its history) writes none of the workflow's lines again.
    before = len(found)
    history = await content.fetch_history()
    await Replayer(workflows=list(WORKFLOWS), data_converter=ctx.client.data_converter).replay_workflow(history)
    again = lines(captured)[before:]
    assert not [line for line in again if line.get("logger") in WORKFLOW_LOGGERS
                and line.get("workflow_id") == ids["workflow_id"]], again


def test_format_follows_the_terminal_or_log_format() -> None:
    assert telemetry.log_format(io.StringIO(), {}) == "json"
    assert telemetry.log_format(Terminal(), {}) == "console"
    assert telemetry.log_format(Terminal(), {"LOG_FORMAT": "json"}) == "json"
    assert telemetry.log_format(io.StringIO(), {"LOG_FORMAT": "console"}) == "console"
    with pytest.raises(SystemExit, match="LOG_FORMAT"):
        telemetry.log_format(io.StringIO(), {"LOG_FORMAT": "xml"})


def test_a_terminal_gets_coloured_key_value(captured: io.StringIO) -> None:
    terminal = Terminal()
    telemetry.configure_logging(terminal)
    structlog.get_logger("xingtu.test").info("worker running", task_queue="xingtu")
    logging.getLogger("xingtu.test").warning("from the standard library")
    text = terminal.getvalue()
    assert "worker running" in text and "task_queue" in text and "xingtu" in text and "\x1b[" in text
    assert "from the standard library" in text
    assert not text.lstrip().startswith("{")


def test_business_ids_come_from_the_workflow_id() -> None:
    assert business_ids("mount-task:t-1") == {"task_id": "t-1"}
    assert business_ids("mount-content:t-1:c.2") == {"task_id": "t-1", "content_id": "c.2"}
    assert business_ids("xg-task:x1") == {"task_id": "x1"}
    assert business_ids("violation:case-7") == {"case_id": "case-7"}
    assert business_ids("something-else") == {} and business_ids(None) == {}
