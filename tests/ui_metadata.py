"""What the Temporal UI shows an operator, checked on a workflow's history (issue 9, "the operator's desk"):
every timer carries a summary naming its window with the instant in business time (UTC+08:00), and a first run
carries its static summary (what it is: task, piece, case ...).

The replay tests call `assert_operator_metadata` on every fresh history they record, so a new timer without a
summary fails there; tests/test_ui_metadata.py applies the timer rule to the checked-in histories too."""

from __future__ import annotations

from temporalio.api.common.v1 import Payload
from temporalio.api.enums.v1 import EventType
from temporalio.client import WorkflowHistory
from temporalio.converter import DataConverter

BUSINESS_OFFSET = "+08:00"


def _text(payload: Payload) -> str:
    if not payload.data:
        return ""
    return str(DataConverter.default.payload_converter.from_payload(payload, str))


def timer_summaries(history: WorkflowHistory) -> dict[int, str]:
    """TimerStarted event id -> its summary ("" when it has none)."""
    return {e.event_id: _text(e.user_metadata.summary) for e in history.events
            if e.event_type == EventType.EVENT_TYPE_TIMER_STARTED}


def static_summary(history: WorkflowHistory) -> str:
    return _text(history.events[0].user_metadata.summary)


def operator_metadata_problems(history: WorkflowHistory, *, instants: bool = True,
                               static: bool = True) -> list[str]:
    """Every timer has a summary (with an instant in UTC+08:00 when `instants`); a first run (not a continuation:
    continue-as-new cannot carry the static summary, the SDK has no parameter for it and the server drops it) has
    a static summary when `static` (the time-skipping test server drops it on signal-with-start)."""
    problems = []
    for event_id, summary in timer_summaries(history).items():
        if not summary.strip():
            problems.append(f"{history.workflow_id}: timer of event {event_id} has no summary")
        elif instants and BUSINESS_OFFSET not in summary:
            problems.append(f"{history.workflow_id}: timer of event {event_id} does not name its instant in "
                            f"UTC+08:00: {summary!r}")
    started = history.events[0].workflow_execution_started_event_attributes
    if static and not started.continued_execution_run_id and not static_summary(history).strip():
        problems.append(f"{history.workflow_id}: first run without a static summary")
    return problems


def assert_operator_metadata(history: WorkflowHistory, *, static: bool = True) -> None:
    problems = operator_metadata_problems(history, static=static)
    assert not problems, "\n".join(problems)
