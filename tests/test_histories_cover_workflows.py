"""Issue 7 item 4: every workflow type the worker registers has checked-in histories that a replay test replays, so a
change that breaks running workflows of any type fails CI, and a new workflow type without a recorded history fails
here. How to record one: README "Replay histories"."""

from __future__ import annotations

import inspect
import json
from collections.abc import Iterable
from pathlib import Path

import pytest

from tests.replay_helpers import FAMILIES, HISTORIES
from worker import WORKFLOWS
from workflows.contract.definitions import workflow_definition


def started_type(path: Path) -> tuple[str, bool, bool]:
    """(workflow type, is a continued run, ends by continuing as new) of a checked-in history."""
    events = json.loads(path.read_text(encoding="utf-8"))["events"]
    started = events[0]["workflowExecutionStartedEventAttributes"]
    return (started["workflowType"]["name"], "continuedExecutionRunId" in started,
            events[-1]["eventType"] == "EVENT_TYPE_WORKFLOW_EXECUTION_CONTINUED_AS_NEW")


def type_names(workflows: Iterable[type]) -> set[str]:
    names = set()
    for cls in workflows:
        definition = workflow_definition(cls)
        assert definition.name is not None
        names.add(definition.name)
    return names


HISTORY_FILES = sorted(HISTORIES.glob("*.json"))
RECORDED = {path.name: started_type(path) for path in HISTORY_FILES}


def test_every_registered_workflow_type_has_a_checked_in_history() -> None:
    recorded = {name for name, _, _ in RECORDED.values()}
    missing = sorted(type_names(WORKFLOWS) - recorded)
    assert not missing, (f"workflow types without a history under tests/histories/: {missing}; record one "
                         "(README: Replay histories)")


# Workflow types whose code can continue as new but whose runs cannot reach the bound in a test (nor in use).
CANNOT_BE_FORCED = {
    "ViolationCaseWorkflow": "a case takes one appeal, one decision and one complex mark (repeats are refused): a "
                             "handful of messages, never MAX_MESSAGES_PER_RUN; its continue-as-new is defensive",
}


def continues_as_new(cls: type) -> bool:
    source = inspect.getsource(inspect.getmodule(cls) or cls)
    return "workflow.continue_as_new(" in source or "continue_as_new_when_handlers_done(" in source  # common.py


def test_workflow_types_that_continue_as_new_have_both_runs_on_file() -> None:
    """A workflow whose code continues as new has on file a run that continued and a run that started from one."""
    can = type_names(cls for cls in WORKFLOWS if continues_as_new(cls))
    assert {"MountTaskWorkflow", "XingguangTaskWorkflow"} <= can  # the check reads the code
    for name in sorted(can - set(CANNOT_BE_FORCED)):
        shapes = [(continued, ends_continued) for n, continued, ends_continued in RECORDED.values() if n == name]
        assert any(ends for _, ends in shapes), f"{name}: no history of a run that continued as new"
        assert any(continued for continued, _ in shapes), f"{name}: no history of a run after continue-as-new"


@pytest.mark.parametrize("path", HISTORY_FILES, ids=lambda p: p.name)
def test_every_checked_in_history_is_replayed_by_its_family(path: Path) -> None:
    prefix = next((p for p in FAMILIES if path.name.startswith(p)), None)
    assert prefix is not None, f"{path.name}: no replay test reads it; name it {sorted(FAMILIES)}<shape>.json"
    replays = type_names(FAMILIES[prefix])
    assert RECORDED[path.name][0] in replays, f"{path.name}: the {prefix}* replay test does not register its type"
