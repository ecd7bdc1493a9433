"""Recording and replaying workflow histories (issue 7 item 4, DESIGN "Running workflows outlive code"). No tests.

Each family's replay test (tests/test_*_replay.py) drives its workflows through their interesting shapes on the
time-skipping server, replays the fresh histories with `temporalio.worker.Replayer` and, when its environment
variable is set (RECORD_MOUNT_HISTORIES, RECORD_VIOLATION_HISTORIES, RECORD_XG_HISTORIES,
RECORD_PRIVACY_HISTORIES), writes them to tests/histories/<name>.json; the checked-in files replay without a server.
Replayers use the tests' converter (tests/conftest.py data_converter): the contract converter with the payload
codec and the fixed test key, so histories with encrypted personal payloads (PR-6) replay too."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from temporalio.client import Client, WorkflowHistory
from temporalio.converter import DataConverter
from temporalio.worker import Replayer

from tests.conftest import data_converter
from tests.ui_metadata import assert_operator_metadata
from worker import workflow_runner
from workflows.account import AccountWorkflow
from workflows.contract.views import RunInfo
from workflows.data_subject_request import DataSubjectRequestWorkflow
from workflows.mount_task import MountTaskWorkflow
from workflows.mounted_content import MountedContentWorkflow
from workflows.security_incident import SecurityIncidentWorkflow
from workflows.violation_case import ViolationCaseWorkflow
from workflows.xingguang_late_claims import XingguangClaimsWorkflow
from workflows.xingguang_task import XingguangTaskWorkflow

HISTORIES = Path(__file__).parent / "histories"
# File name prefix -> the workflows its family's replay test (tests/test_<family>_replay.py) replays those files with.
FAMILIES: dict[str, tuple[type, ...]] = {
    "mount-": (MountTaskWorkflow, MountedContentWorkflow),
    "violation-": (ViolationCaseWorkflow, MountedContentWorkflow),
    "xingguang-": (XingguangTaskWorkflow, XingguangClaimsWorkflow),
    "privacy-": (DataSubjectRequestWorkflow, AccountWorkflow, SecurityIncidentWorkflow),
}


def replayer(*workflows: type, converter: DataConverter = data_converter) -> Replayer:
    # The worker's sandbox settings (passed-through modules), so that replay checks the code as the worker runs it.
    # `converter`: one bound to a test's subject keys (tests/conftest.py) replays payloads sealed with them.
    return Replayer(workflows=list(workflows), data_converter=converter, workflow_runner=workflow_runner())


def family_replayer(prefix: str) -> Replayer:
    return replayer(*FAMILIES[prefix])


async def history_json(client: Client, workflow_id: str, run_id: str | None = None) -> str:
    return (await client.get_workflow_handle(workflow_id, run_id=run_id).fetch_history()).to_json()


async def run_info(client: Client, workflow_id: str) -> RunInfo:
    """The `run` query: the messages the workflow's current run has counted towards its bound."""
    info: RunInfo = await client.get_workflow_handle(workflow_id).query("run", result_type=RunInfo)
    return info


async def until_new_run(client: Client, workflow_id: str, run_id: str, timeout: float = 30.0) -> str:
    """Waits until the workflow's latest run is not `run_id` (it continued as new); returns the new run's id."""
    for _ in range(int(timeout / 0.05)):
        latest = (await client.get_workflow_handle(workflow_id).describe()).run_id
        if latest != run_id:
            return latest
        await asyncio.sleep(0.05)
    raise AssertionError(f"{workflow_id}: run {run_id} did not continue as new within {timeout} s")


async def first_run_id(client: Client, workflow_id: str) -> str:
    """The run id of the workflow's first run (to fetch a run that later continued as new)."""
    history = await client.get_workflow_handle(workflow_id).fetch_history()
    return history.events[0].workflow_execution_started_event_attributes.first_execution_run_id


async def replay_and_maybe_record(replaying: Replayer, histories: dict[str, str], record_env: str, *,
                                  no_static_summary: Iterable[str] = ()) -> None:
    """Replay each fresh history (raises on nondeterminism), check what the UI shows of it, and write it to
    tests/histories/<name>.json when `record_env` is set. `no_static_summary`: histories of workflows started by
    signal-with-start, whose static summary the time-skipping server drops."""
    skip = set(no_static_summary)
    for name, text in histories.items():
        history = WorkflowHistory.from_json(name, text)
        assert len(history.events) > 5, name
        await replaying.replay_workflow(history)
        assert_operator_metadata(history, static=name not in skip)  # every timer named (issue 9)
        if os.environ.get(record_env):
            (HISTORIES / f"{name}.json").write_text(text, encoding="utf-8")


def checked_in(prefix: str) -> list[Path]:
    """The checked-in histories of one family, for `pytest.mark.parametrize`."""
    return sorted(HISTORIES.glob(f"{prefix}*.json"))


async def replay_checked_in(replaying: Replayer, path: Path) -> None:
    history = WorkflowHistory.from_json(path.stem, path.read_text(encoding="utf-8"))
    assert len(history.events) > 5, path.name
    await replaying.replay_workflow(history)


async def continue_as_new_by_signals(client: Client, workflow_id: str, signal: str, to_bound: Sequence[Any],
                                     after: Sequence[Any]) -> str:
    """Drive a run to its message bound with exactly `to_bound` signals, wait until it has continued as new, then
    send `after` to the next run; returns the first run's id. Signals still arriving while a run closes would leave
    a workflow task of the closed run in flight, which keeps the time-skipping test server locked."""
    first_run = await first_run_id(client, workflow_id)
    await signal_many(client, workflow_id, signal, to_bound)
    handle = client.get_workflow_handle(workflow_id, run_id=first_run)
    for _ in range(600):
        events = (await handle.fetch_history()).events
        if events[-1].HasField("workflow_execution_continued_as_new_event_attributes"):
            break
        await asyncio.sleep(0.1)
    else:
        raise AssertionError(f"{workflow_id} did not continue as new after {len(to_bound)} signals")
    await signal_many(client, workflow_id, signal, after)
    return first_run


async def signal_many(client: Client, workflow_id: str, signal: str, args: Sequence[Any], at_once: int = 100) -> None:
    """Send one signal per argument, `at_once` concurrently (to pass a workflow's message bound quickly)."""
    handle = client.get_workflow_handle(workflow_id)
    for start in range(0, len(args), at_once):
        await asyncio.gather(*(handle.signal(signal, arg) for arg in args[start:start + at_once]))
