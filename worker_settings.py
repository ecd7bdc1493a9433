"""The worker's settings, read from the environment here and only here (worker.py lists the variables): where the
server, ledger and keys are, and the worker's tuning (README "Worker tuning")."""

from __future__ import annotations

import concurrent.futures
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from starter import config, connection
from telemetry import metrics_bind_address
from workflows.contract.common import DEFAULT_TASK_QUEUE

__all__ = ["TUNING_ENV", "Settings", "WorkerTuning"]


@dataclass(frozen=True)
class WorkerTuning:
    """Worker options (README "Worker tuning"), from WORKER_* variables; the defaults suit one worker process on
    2 cores (docs/bench.md, "Limits found" 10). None leaves the SDK's default."""

    # Workflows kept in memory between tasks (sticky cache). The SDK's 1,000 is below the pieces a busy worker
    # serves: a piece signalled after eviction is rebuilt by replaying its history. Each cached instance holds its
    # sandbox's own copy of the workflow modules (worker.SANDBOX_PASSTHROUGH passes only the contract, rules and
    # ports through): measured ~250 KiB per MountedContentWorkflow sandbox and ~300 KiB per task's, so 10,000
    # cached pieces cost ~2.5 GiB; lower it on a small machine (docs/bench.md "Limits found" 3).
    max_cached_workflows: int = 10_000
    max_concurrent_workflow_tasks: int | None = None  # SDK default 100
    max_concurrent_activities: int | None = None  # SDK default 100 (async activities need no thread)
    workflow_task_pollers: int | None = None  # max_concurrent_workflow_task_polls, SDK default 5
    activity_task_pollers: int | None = None  # max_concurrent_activity_task_polls, SDK default 5
    # Threads for the synchronous activities (ledger, directory, main site): the SQLite ledger takes one writer at a
    # time anyway; PostgreSQL and remote APIs can use more. At least max_concurrent_activities when that is set.
    activity_threads: int = 16

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ) -> WorkerTuning:
        values: dict[str, int] = {}
        for name, variable in TUNING_ENV.items():
            if raw := env.get(variable, "").strip():
                least = 0 if name == "max_cached_workflows" else 1
                if not raw.isdigit() or int(raw) < least:
                    raise SystemExit(f"worker: {variable}={raw!r} must be a whole number of at least {least}")
                values[name] = int(raw)
        return cls(**values)

    def executor(self) -> concurrent.futures.ThreadPoolExecutor:
        return concurrent.futures.ThreadPoolExecutor(
            max_workers=max(self.activity_threads, self.max_concurrent_activities or 0))

    def worker_options(self) -> dict[str, Any]:
        options: dict[str, Any] = {
            "max_cached_workflows": self.max_cached_workflows,
            "max_concurrent_workflow_tasks": self.max_concurrent_workflow_tasks,
            "max_concurrent_activities": self.max_concurrent_activities,
            "max_concurrent_workflow_task_polls": self.workflow_task_pollers,
            "max_concurrent_activity_task_polls": self.activity_task_pollers,
        }
        return {name: value for name, value in options.items() if value is not None}


TUNING_ENV = {"max_cached_workflows": "WORKER_MAX_CACHED_WORKFLOWS",
              "max_concurrent_workflow_tasks": "WORKER_MAX_CONCURRENT_WORKFLOW_TASKS",
              "max_concurrent_activities": "WORKER_MAX_CONCURRENT_ACTIVITIES",
              "workflow_task_pollers": "WORKER_WORKFLOW_TASK_POLLERS",
              "activity_task_pollers": "WORKER_ACTIVITY_TASK_POLLERS",
              "activity_threads": "WORKER_ACTIVITY_THREADS"}


@dataclass(frozen=True)
class Settings:
    address: str | None
    namespace: str
    task_queue: str
    ledger_dsn: str
    port: int
    ui_port: int
    payload_keys: str | None = None
    payload_keys_file: str = ".data/payload-keys"
    codec_port: int = 8081
    metrics_bind: str | None = None
    tuning: WorkerTuning = field(default_factory=WorkerTuning)
    # The embedded run's server database and state file (starter/config.py: the checkout's .data/).
    data_dir: str = ".data"
    # `python worker.py --init`: a worker against a configured server may create a new SQLite ledger.
    init_ledger: bool = False
    # `python worker.py --role workflows|activities|both` (WORKER_ROLE): README "Worker roles".
    role: str = "both"
    # Client.connect's tls, api_key and rpc_metadata, and where the connection was configured (connection.load).
    connection_options: Mapping[str, Any] = field(default_factory=dict)
    connection_source: str = "default"

    @classmethod
    def from_env(cls) -> Settings:
        try:
            configured = connection.load(os.environ)  # the worker's own: never the embedded run's state file
        except connection.ConnectionConfigError as error:
            raise SystemExit(f"worker: {error}") from None
        return cls(
            address=configured.address,
            namespace=configured.namespace,
            connection_options=configured.options,
            connection_source=configured.source,
            task_queue=os.environ.get("TEMPORAL_TASK_QUEUE", DEFAULT_TASK_QUEUE),
            # The worker's own choice, never the state file's: the embedded run is what writes it.
            ledger_dsn=config.ledger_dsn(os.environ, state=None),
            port=int(os.environ.get("TEMPORAL_PORT", "7233")),
            ui_port=int(os.environ.get("TEMPORAL_UI_PORT", "8233")),
            payload_keys=os.environ.get("PAYLOAD_KEYS") or None,
            payload_keys_file=config.payload_key_env(os.environ, state=None)["PAYLOAD_KEYS_FILE"],
            codec_port=int(os.environ.get("PAYLOAD_CODEC_PORT", "8081")),
            metrics_bind=metrics_bind_address(),
            tuning=WorkerTuning.from_env(),
            data_dir=str(config.data_dir()),
        )
