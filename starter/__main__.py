"""`python -m starter`: the operator's and integrator's command line. Every operator action is a command; each has
--help with an example.

Talks to Temporal and reads or writes the directory and ledger database directly, the same ones the worker uses:
from anywhere in the checkout it finds the running `scripts/run.sh` (its server, ledger, payload keys and task
queue, from the state file .data/run.json); the Temporal CLI's connection configuration (a temporal.toml profile,
TEMPORAL_PROFILE, TEMPORAL_ADDRESS, TEMPORAL_NAMESPACE, TEMPORAL_API_KEY, TEMPORAL_TLS_*; starter/connection.py),
TEMPORAL_TASK_QUEUE, LEDGER_DSN, PAYLOAD_KEYS and PAYLOAD_KEYS_FILE override it (starter/config.py); so do the
global flags --address, --namespace, --task-queue, given before or after the command. A ledger command refuses to
create a new SQLite ledger unless given --init.

Errors have one shape: `<Type>: <message>` and a line per reason (on stderr), or with --json one object
{"error": {"type", "message", "reasons": [{"field", "message"}]}} on stdout. Exit codes: 0 done (also "already
done (same key)"), 1 unknown id / not running / server unreachable, 2 refused or bad arguments, 3 internal error.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Callable, Coroutine
from typing import Any

from pydantic import ValidationError
from temporalio.client import (
    RPCTimeoutOrCancelledError,
    WorkflowFailureError,
    WorkflowQueryFailedError,
    WorkflowQueryRejectedError,
    WorkflowUpdateRPCTimeoutOrCancelledError,
)
from temporalio.service import RPCError, RPCStatusCode

from starter import (
    cli_codec,
    cli_money,
    cli_mount,
    cli_penalties,
    cli_privacy,
    cli_xingguang,
    codec,
    config,
    connection,
)
from starter import client as api
from starter.cli_common import Output, Parser, global_flags
from starter.cli_errors import CliError, Reason, invalid, refusal, report
from starter.codec_auth import CodecAuthError


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="python -m starter", description=__doc__, parents=[global_flags(suppress=False)])
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for area in (cli_mount, cli_penalties, cli_xingguang, cli_privacy, cli_money, cli_codec):
        area.add_commands(sub)
    return parser


def _wants_json(argv: list[str]) -> bool:
    """--json anywhere before a lone `--`: the error of a command line that does not parse is shaped by it too."""
    return "--json" in argv[: argv.index("--")] if "--" in argv else "--json" in argv


def _expected(err: Exception) -> CliError | None:
    """The CLI's shape of an error some input or situation is expected to cause; None for a fault."""
    if isinstance(err, CliError):
        return err
    if isinstance(err, api.Refused):
        return refusal(err.kind, err.reasons)
    if isinstance(err, ValidationError):  # a request a helper builds from the command's arguments
        return invalid(err)
    if isinstance(err, connection.ConnectionConfigError):
        return CliError("ConnectionConfigInvalid", str(err), [Reason(str(err))])
    if isinstance(err, connection.ConnectionFailed):
        return CliError("Unreachable", str(err), [Reason(str(err))], exit_code=1)
    if isinstance(err, config.LedgerMissing):
        return CliError("LedgerMissing", f"ledger: {err}", [Reason(str(err))])
    if isinstance(err, codec.PayloadKeyError):
        return CliError("PayloadKeysInvalid", f"payload keys: {err}", [Reason(str(err))])
    if isinstance(err, CodecAuthError):
        return CliError("CodecServerRefused", f"codec server: {err}", [Reason(str(err))])
    if isinstance(err, RPCError):
        if err.status is RPCStatusCode.UNAVAILABLE:
            where = connection.for_client().describe()
            return CliError("Unreachable", f"Temporal: {err.message} (is the server running at {where}?)",
                            [Reason(err.message)], exit_code=1)
        if err.status is RPCStatusCode.NOT_FOUND:
            return CliError("NotFound", f"Temporal: {err.message}", [Reason(err.message)], exit_code=1)
        return CliError("TemporalError", f"Temporal: {err.message}", [Reason(err.message)], exit_code=1)
    if isinstance(err, (WorkflowQueryFailedError, WorkflowQueryRejectedError)):
        return CliError("QueryFailed", f"the workflow did not answer: {err}", [Reason(str(err))], exit_code=1)
    if isinstance(err, (RPCTimeoutOrCancelledError, WorkflowUpdateRPCTimeoutOrCancelledError)):
        return CliError("TimedOut", f"no answer in time ({err}): is a worker running on the task queue?",
                        [Reason(str(err))], exit_code=1)
    if isinstance(err, WorkflowFailureError):
        return CliError("WorkflowFailed", f"the workflow failed: {err.cause}", [Reason(str(err.cause))], exit_code=1)
    if isinstance(err, OSError):
        return CliError("InvalidArguments", f"error: {err}", [Reason(str(err))])
    return None


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    as_json = _wants_json(argv)
    try:
        args = build_parser().parse_args(argv)
        as_json = bool(getattr(args, "json", False))
        run: Callable[[argparse.Namespace, Output], Coroutine[Any, Any, None] | None] = args.run
        pending = run(args, Output(as_json))
        if pending is not None:
            asyncio.run(pending)
    except SystemExit as done:  # --help
        return int(done.code or 0)
    except KeyboardInterrupt:
        return 130
    except Exception as err:
        shaped = _expected(err)
        if shaped is None:
            shaped = CliError("InternalError", f"{type(err).__name__}: {err}",
                              [Reason("an unexpected fault, not your input: rerun with PYTHONDEVMODE=1 for details, "
                                      "and report it with the command line")], exit_code=3)
            if os.environ.get("PYTHONDEVMODE"):
                raise
        return report(shaped, as_json)
    return 0


def exit_now(code: int) -> None:
    """Exit without interpreter finalization: the Temporal client's native runtime can abort the process at
    finalization (PyGILState_Release, exit 134) after all work is done, which would hide the real exit code."""
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    exit_now(main())
