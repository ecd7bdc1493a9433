"""The worker's metrics and logs (issue 9 items 3 and 4), configured once by worker.py.

Metrics: `runtime(metrics_bind)` builds the Temporal SDK runtime the worker's client runs on; with an address it
serves Prometheus metrics at http://<address>/metrics: the SDK's own (temporal_workflow_completed,
temporal_workflow_task_execution_latency, temporal_activity_execution_latency, poll and slot metrics, ...) and the
business counters of workflows/metrics.py.

Logs: `configure_logging()` routes structlog and the standard `logging` module (the SDK's workflow and activity
loggers, the Temporal core's logs) to one handler on stderr: JSON lines when stderr is not a terminal or
LOG_FORMAT=json, coloured key=value on a terminal (LOG_FORMAT=console forces it). Every line written from a
workflow or an activity carries workflow_id, run_id, workflow_type and the business ids in the workflow id
(task_id, content_id, case_id, ...); activity lines also activity_type, activity_id and attempt.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import MutableMapping
from typing import IO, Any

import structlog
from temporalio import activity, workflow
from temporalio.runtime import (
    LogForwardingConfig,
    LoggingConfig,
    PrometheusConfig,
    Runtime,
    TelemetryConfig,
    TelemetryFilter,
)

from workflows.logs import FIELDS, business_ids

EventDict = MutableMapping[str, Any]


# ---------------------------------------------------------------- metrics
def metrics_bind_address(environ: MutableMapping[str, str] | None = None) -> str | None:
    """METRICS_PORT (unset or empty: no metrics endpoint) on METRICS_HOST (default 0.0.0.0)."""
    env = os.environ if environ is None else environ
    port = env.get("METRICS_PORT", "").strip()
    if not port:
        return None
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise SystemExit(f"METRICS_PORT: {port!r} is not a port number")
    return f"{env.get('METRICS_HOST', '0.0.0.0')}:{port}"


def runtime(metrics_bind: str | None) -> Runtime:
    """The SDK runtime of the worker's client: Prometheus on `metrics_bind` (None: no endpoint); the Temporal
    core's warnings forwarded to Python logging (logger `temporalio.core`), so they come out as our log lines."""
    return Runtime(telemetry=TelemetryConfig(
        logging=LoggingConfig(filter=TelemetryFilter(core_level="WARN", other_level="ERROR"),
                              forwarding=LogForwardingConfig(logger=logging.getLogger("temporalio.core"))),
        metrics=PrometheusConfig(bind_address=metrics_bind) if metrics_bind else None,
    ))


# ---------------------------------------------------------------- logs
def add_temporal_context(_logger: Any, _method: str, event: EventDict) -> EventDict:
    """workflow_id, run_id, workflow_type, business ids (and activity_* in activities) on every line.

    Lines from the standard library carry the SDK loggers' `temporal_workflow` / `temporal_activity` extras;
    lines from structlog loggers are placed by asking the SDK which workflow or activity is running. A structlog
    line written by workflow code while it replays history is dropped (the SDK's logger drops its own)."""
    event.update(event.pop(FIELDS, None) or {})  # workflows.logs.wlog() lines: their fields
    wf = event.pop("temporal_workflow", None)
    act = event.pop("temporal_activity", None)
    event.pop("temporal_log", None)  # the core's raw log record (forwarded lines): its message says it all
    event.pop("__temporal_error_identifier", None)
    if act is None and activity.in_activity():
        act = activity.info()._logger_details()
    if act is not None:
        _ids(event, act.get("workflow_id"), act.get("workflow_run_id"), act.get("workflow_type"))
        for key in ("activity_type", "activity_id", "attempt"):
            event.setdefault(key, act.get(key))
    elif wf is not None:
        _ids(event, wf.get("workflow_id"), wf.get("run_id"), wf.get("workflow_type"))
        for key in ("update_name", "update_id"):
            if key in wf:
                event.setdefault(key, wf[key])
    elif workflow.in_workflow():
        if "_record" not in event and workflow.unsafe.is_replaying_history_events():
            raise structlog.DropEvent
        info = workflow.info()
        _ids(event, info.workflow_id, info.run_id, info.workflow_type)
    return event


def _ids(event: EventDict, workflow_id: str | None, run_id: str | None, workflow_type: str | None) -> None:
    event.setdefault("workflow_id", workflow_id)
    event.setdefault("run_id", run_id)
    event.setdefault("workflow_type", workflow_type)
    for key, value in business_ids(workflow_id).items():
        event.setdefault(key, value)


def log_format(stream: IO[str], environ: MutableMapping[str, str] | None = None) -> str:
    """"json" or "console": LOG_FORMAT if set, else console on a terminal and JSON otherwise."""
    wanted = (os.environ if environ is None else environ).get("LOG_FORMAT", "").strip().lower()
    if wanted in ("json", "console"):
        return wanted
    if wanted:
        raise SystemExit(f"LOG_FORMAT: {wanted!r} is neither json nor console")
    isatty = getattr(stream, "isatty", None)
    return "console" if isatty is not None and isatty() else "json"


def configure_logging(stream: IO[str] | None = None, fmt: str | None = None, level: str | None = None) -> None:
    """Once per process (worker.py's main; tests pass their own stream)."""
    out = stream if stream is not None else sys.stderr
    fmt = fmt or log_format(out)
    level_name = (level or os.environ.get("LOG_LEVEL") or "INFO").upper()
    shared: list[structlog.typing.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.stdlib.ExtraAdder(),
        structlog.stdlib.PositionalArgumentsFormatter(),
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        add_temporal_context,
    ]
    renderer: structlog.typing.Processor
    if fmt == "json":
        shared += [structlog.processors.StackInfoRenderer(), structlog.processors.format_exc_info]
        renderer = structlog.processors.JSONRenderer(sort_keys=False)
    else:
        renderer = structlog.dev.ConsoleRenderer(colors=bool(getattr(out, "isatty", lambda: False)()))
    structlog.configure(
        processors=[structlog.stdlib.filter_by_level, *shared,
                    structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=False,
    )
    handler = logging.StreamHandler(out)
    handler.setFormatter(structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared,
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
    ))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level_name)
    # The ids travel as fields: the SDK need not append them to the message text too.
    workflow.logger.workflow_info_on_message = False
    activity.logger.activity_info_on_message = False
