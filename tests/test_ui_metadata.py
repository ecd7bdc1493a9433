"""Issue 9 item 5, the Temporal UI as the operator's desk: what the code promises the UI will show.

- Every timer a workflow starts has a summary naming its window (`workflow.sleep(..., summary=...)`,
  `workflow.wait_condition(..., timeout=..., timeout_summary=...)`); no asyncio timer (it would have none).
- Every workflow type sets its current details; every start of a workflow (starter/, activities/, child
  workflows) gives it a static summary.
- The histories checked in under tests/histories/ have a summary on every timer.

The same rules on live histories: the replay tests check every fresh history with tests.ui_metadata (every timer
named with its instant in UTC+08:00, a first run's static summary), and tests/test_ui_screenshots.py checks static
summaries and current details on the dev server."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import pytest
from temporalio.client import WorkflowHistory

from tests.ui_metadata import operator_metadata_problems

ROOT = Path(__file__).resolve().parent.parent
WORKFLOW_FILES = sorted((ROOT / "workflows").glob("*.py"))
STARTER_FILES = sorted([*(ROOT / "starter").glob("*.py"), *(ROOT / "activities").glob("*.py"), ROOT / "worker.py"])
HISTORIES = sorted((ROOT / "tests" / "histories").glob("*.json"))
STARTS = {"start_workflow", "execute_workflow", "WithStartWorkflowOperation", "start_child_workflow",
          "execute_child_workflow"}
ASYNCIO_TIMERS = {"sleep", "wait_for", "timeout", "timeout_at"}


def calls(path: Path) -> list[tuple[str, str, ast.Call]]:
    """(receiver, function name, call) for every call `x.f(...)` or `f(...)` in the file."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Call):
            func = node.func
            if isinstance(func, ast.Attribute):
                receiver = func.value.id if isinstance(func.value, ast.Name) else ""
                found.append((receiver, func.attr, node))
            elif isinstance(func, ast.Name):
                found.append(("", func.id, node))
    return found


def keyword(call: ast.Call, name: str) -> ast.expr | None:
    return next((k.value for k in call.keywords if k.arg == name), None)


def where(path: Path, call: ast.Call) -> str:
    return f"{path.relative_to(ROOT)}:{call.lineno}"


def test_every_workflow_timer_has_a_summary() -> None:
    problems = []
    for path in WORKFLOW_FILES:
        for receiver, name, call in calls(path):
            if receiver == "workflow" and name == "sleep" and keyword(call, "summary") is None:
                problems.append(f"{where(path, call)}: workflow.sleep without summary=")
            timeout = keyword(call, "timeout")
            if (receiver == "workflow" and name == "wait_condition" and timeout is not None
                    and not (isinstance(timeout, ast.Constant) and timeout.value is None)
                    and keyword(call, "timeout_summary") is None):
                problems.append(f"{where(path, call)}: workflow.wait_condition with a timeout but no timeout_summary=")
            if receiver == "asyncio" and name in ASYNCIO_TIMERS:
                problems.append(f"{where(path, call)}: asyncio.{name} starts a timer with no summary: use "
                                "workflow.sleep / workflow.wait_condition with a summary")
    assert not problems, "\n".join(problems)
    assert any(name == "wait_condition" for path in WORKFLOW_FILES for _, name, _ in calls(path))  # looked at code


def test_every_workflow_type_sets_its_current_details() -> None:
    defined = [path for path in WORKFLOW_FILES if "@workflow.defn" in path.read_text(encoding="utf-8")]
    assert len(defined) >= 7
    missing = [str(path.relative_to(ROOT)) for path in defined
               if not any(r == "workflow" and n == "set_current_details" for r, n, _ in calls(path))]
    assert not missing, f"workflow modules that never call workflow.set_current_details: {missing}"


def test_every_start_of_a_workflow_gives_a_static_summary() -> None:
    problems, seen = [], 0
    for path in [*STARTER_FILES, *WORKFLOW_FILES]:
        for _, name, call in calls(path):
            if name in STARTS:
                seen += 1
                if keyword(call, "static_summary") is None:
                    problems.append(f"{where(path, call)}: {name} without static_summary=")
    assert not problems, "\n".join(problems)
    assert seen >= 6  # publish, content fan-out, order, violation notice, account, request, incident


@pytest.mark.parametrize("path", HISTORIES, ids=lambda p: p.name)
def test_checked_in_histories_name_every_timer(path: Path) -> None:
    # Recorded before timers named their instant and on the test server (which drops signal-with-start metadata):
    # only "every timer has a summary" applies to them.
    history = WorkflowHistory.from_json(path.stem, json.loads(path.read_text(encoding="utf-8")))
    assert not operator_metadata_problems(history, instants=False, static=False)



def test_a_timer_without_summary_or_instant_and_a_run_without_static_summary_are_reported() -> None:
    path = next(p for p in HISTORIES if p.name == "mount-content-settled.json")
    history = WorkflowHistory.from_json(path.stem, json.loads(path.read_text(encoding="utf-8")))
    assert operator_metadata_problems(history) == []
    first, second = [e for e in history.events if e.HasField("timer_started_event_attributes")][:2]
    first.user_metadata.summary.data = b'"billing period ends"'
    second.user_metadata.ClearField("summary")
    history.events[0].user_metadata.ClearField("summary")
    assert operator_metadata_problems(history) == [
        f"{path.stem}: timer of event {first.event_id} does not name its instant in UTC+08:00: 'billing period ends'",
        f"{path.stem}: timer of event {second.event_id} has no summary",
        f"{path.stem}: first run without a static summary",
    ]
