"""A fan-out whose content workflow starts wait at a gate (tests/test_task_drain.py, tests/test_typescript_client.py):
a mount's update stays in flight until the test opens it. No tests here."""

from __future__ import annotations

import asyncio

from temporalio import activity

from ports.fanout import START_CONTENT_WORKFLOW, StartContentResult
from worker import Adapters
from workflows.contract.mounted_content import MountedContentInput
from workflows.contract.names import mounted_content_id

# Mounts whose content workflow start is held until the test opens the gate: (task_id, content_id) -> gate.
GATES: dict[tuple[str, str], asyncio.Event] = {}


def held_fanout(adapters: Adapters) -> list[object]:
    @activity.defn(name=START_CONTENT_WORKFLOW.name)
    async def start_content_workflow(request: MountedContentInput) -> StartContentResult:
        if gate := GATES.get((request.task_id, request.content_id)):
            await gate.wait()
        return StartContentResult(workflow_id=mounted_content_id(request.task_id, request.content_id))

    return [start_content_workflow]
