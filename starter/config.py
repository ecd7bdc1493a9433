"""One configuration for every command (issue 20 item 2): the worker, `python -m starter`, the codec server and
the bench find the same server, ledger and payload keys wherever they are run from.

The embedded run (`python worker.py` with no Temporal server configured) writes where its server, ledger and keys
are into a state file, `run.json` in the data directory: the checkout's `.data/`, found from where this code
lives, not from the working directory (`XINGTU_DATA_DIR` moves it). Every other command reads it. What is set
explicitly wins over the state file: `LEDGER_DSN`, `PAYLOAD_KEYS` / `PAYLOAD_KEYS_FILE`, `TEMPORAL_TASK_QUEUE`,
and the Temporal connection (starter/connection.py).

A command that would create a new SQLite ledger (a path where there is none) refuses unless told to (`--init`):
a ledger made by mistake in the wrong place looks like a working one and silently holds none of the money.
"""

from __future__ import annotations

import itertools
import json
import os
import signal
import socket
import tempfile
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

from workflows.contract.common import DEFAULT_TASK_QUEUE

DATA_DIR_ENV = "XINGTU_DATA_DIR"
STATE_FILE_NAME = "run.json"


def _is_checkout(directory: Path) -> bool:
    return (directory / "worker.py").is_file() and (directory / "pyproject.toml").is_file()


def project_root() -> Path:
    """The checkout this code belongs to (starter/ is one level down); for an installed copy outside a checkout,
    the nearest checkout above the working directory, else the working directory."""
    beside_code = Path(__file__).resolve().parents[1]
    if _is_checkout(beside_code):
        return beside_code
    here = Path.cwd().resolve()
    return next((d for d in (here, *here.parents) if _is_checkout(d)), here)


def data_dir(env: Mapping[str, str] = os.environ) -> Path:
    """Where the embedded run keeps its server database, ledger, payload keys and state file."""
    configured = env.get(DATA_DIR_ENV, "").strip()
    return Path(configured).resolve() if configured else project_root() / ".data"


def state_path(env: Mapping[str, str] = os.environ) -> Path:
    return data_dir(env) / STATE_FILE_NAME


@dataclass(frozen=True)
class RunState:
    """What the embedded run writes once its server and worker are up."""

    pid: int
    temporal_address: str
    namespace: str
    task_queue: str
    ledger_dsn: str
    payload_keys_file: str
    ui_url: str
    codec_url: str | None
    started_at: str

    def running(self) -> bool:
        """Whether the process that wrote it still lives (the file stays after it stops: the ledger and keys are
        still where it says)."""
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:  # alive, another user's
            return True
        return True

    def describe(self) -> str:
        return (f"pid {self.pid}, Temporal {self.temporal_address} (namespace {self.namespace}), UI {self.ui_url}, "
                f"ledger {redact(self.ledger_dsn)}, started {self.started_at}")


def read_state(env: Mapping[str, str] = os.environ) -> RunState | None:
    path = state_path(env)
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        return RunState(**raw)
    except FileNotFoundError:
        return None
    except (ValueError, TypeError) as error:
        raise SystemExit(f"{path} is not a state file of this project ({error}): remove it") from None


def write_state(state: RunState, env: Mapping[str, str] = os.environ) -> Path:
    """Atomically, mode 0600 (a PostgreSQL DSN may carry a password)."""
    path = state_path(env)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=".run-", suffix=".json")
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        json.dump(asdict(state), out, indent=2)
        out.write("\n")
    os.replace(temporary, path)
    return path


def now_iso() -> str:
    return datetime.now(UTC).replace(microsecond=0).isoformat()


def redact(dsn: str) -> str:
    """A DSN fit for a log line: the password replaced."""
    if "://" in dsn and "@" in dsn:
        scheme, rest = dsn.split("://", 1)
        credentials, at, host = rest.rpartition("@")
        user = credentials.split(":", 1)[0]
        return f"{scheme}://{user}:***{at}{host}" if ":" in credentials else dsn
    return dsn


# ------------------------------------------------------------------ what each command uses
def ledger_dsn(env: Mapping[str, str] = os.environ, state: RunState | None = None) -> str:
    """LEDGER_DSN, else the embedded run's ledger, else the data directory's ledger.db (absolute)."""
    if explicit := env.get("LEDGER_DSN", "").strip():
        return explicit
    if state is not None:
        return state.ledger_dsn
    return str(data_dir(env) / "ledger.db")


def payload_key_env(env: Mapping[str, str] = os.environ, state: RunState | None = None) -> dict[str, str]:
    """The variables starter.codec.load_keys reads, with the key file found like the ledger."""
    key_file = env.get("PAYLOAD_KEYS_FILE", "").strip()
    if not key_file:
        key_file = state.payload_keys_file if state is not None else str(data_dir(env) / "payload-keys")
    return {"PAYLOAD_KEYS": env.get("PAYLOAD_KEYS", ""), "PAYLOAD_KEYS_FILE": key_file}


def task_queue(env: Mapping[str, str] = os.environ, state: RunState | None = None) -> str:
    return env.get("TEMPORAL_TASK_QUEUE") or (state.task_queue if state is not None else DEFAULT_TASK_QUEUE)


class LedgerMissing(Exception):
    """The SQLite ledger a command would use does not exist, and the command was not told to create one."""


def sqlite_ledger_path(dsn: str) -> Path | None:
    """The file of a SQLite ledger DSN; None for PostgreSQL and in-memory databases."""
    if dsn.startswith(("postgresql://", "postgres://")) or dsn in (":memory:", "sqlite:///:memory:"):
        return None
    return Path(dsn.removeprefix("sqlite:///"))


def absolute_dsn(dsn: str) -> str:
    """A SQLite path made absolute (what a state file must hold, for commands run from elsewhere); others as is."""
    path = sqlite_ledger_path(dsn)
    return str(path.resolve()) if path is not None else dsn


def require_ledger(dsn: str, init: bool) -> None:
    """Refuses (LedgerMissing) to let a SQLite ledger be created where there is none unless `init`. A PostgreSQL
    database is made on purpose by whoever set LEDGER_DSN, so its tables may be created there."""
    path = sqlite_ledger_path(dsn)
    if init or path is None or path.exists():
        return
    raise LedgerMissing(
        f"no ledger at {path.resolve()}: is the run going (bash scripts/run.sh writes {state_path()}), or is "
        f"LEDGER_DSN right? To start a new ledger there, pass --init.")


def busy_ports(wanted: Mapping[str, int], host: str = "127.0.0.1") -> list[str]:
    """Which of the ports a run is about to listen on are taken, as "UI port 8233 (in use)"; [] when all free.
    SO_REUSEADDR, as servers set it, so that a port left in TIME_WAIT by a stopped run counts as free."""
    taken = []
    for role, port in wanted.items():
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind((host, port))
            except OSError as error:
                taken.append(f"{role} port {port} ({error.strerror or error})")
    return taken


def embedded_run_obstacles(data: Path, ports: Mapping[str, int]) -> list[str]:
    """Why an embedded run with this data directory and these ports cannot start: another run alive on the same
    data (its server database, ledger and keys), or ports taken; [] when it can."""
    obstacles = []
    state = read_state({DATA_DIR_ENV: str(data)})
    if state is not None and state.running() and state.pid != os.getpid():
        obstacles.append(f"an embedded run is already going with {data}: {state.describe()}; use it "
                         f"(python -m starter finds it) or stop it first")
    if taken := busy_ports(ports):
        obstacles.append("taken: " + ", ".join(taken) + "; stop what listens there or choose other ports "
                         "(TEMPORAL_PORT, TEMPORAL_UI_PORT, PAYLOAD_CODEC_PORT, METRICS_PORT)")
    return obstacles


def reap_orphaned_dev_server(data: Path) -> list[int]:
    """The embedded dev server outlives a worker killed with SIGKILL (a child process the SDK starts, not told of
    its parent's death) and keeps the ports and the file database: the next `python worker.py` would refuse to
    start. When the run recorded in `data`'s state file is dead, its dev server (the `temporal server start-dev`
    on `data`'s temporal.db) is killed here, so the run restarts on its own file and its workflows continue from
    there. Linux (/proc) only; returns the pids killed."""
    state = read_state({DATA_DIR_ENV: str(data)})
    if state is None or state.running():
        return []
    database = str((data / "temporal.db").resolve())
    killed = []
    for entry in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            args = entry.read_bytes().decode(errors="replace").split("\0")
        except OSError:
            continue
        if "start-dev" in args and (f"--db-filename={database}" in args or any(
                a == "--db-filename" and b == database for a, b in itertools.pairwise(args))):
            try:
                os.kill(int(entry.parent.name), signal.SIGKILL)
                killed.append(int(entry.parent.name))
            except ProcessLookupError:
                continue
    deadline = time.monotonic() + 10
    while killed and time.monotonic() < deadline and any(_alive(pid) for pid in killed):
        time.sleep(0.05)  # gone before the ports are checked
    return killed


def _alive(pid: int) -> bool:
    """Not yet fully exited: a killed multi-threaded process closes its sockets only when its last thread has
    gone, which may be after its main thread shows as a zombie."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        threads = sum(1 for _ in Path(f"/proc/{pid}/task").iterdir())
    except (OSError, IndexError):
        return Path(f"/proc/{pid}").exists()
    return not (state in ("Z", "X") and threads <= 1)
