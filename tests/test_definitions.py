"""Issue 22 item 2: workflows/contract/definitions.py, the one reader of the SDK's private definitions, gives the
name, argument and result types and named handlers of a workflow class, and an activity's registered name."""

from __future__ import annotations

from collections.abc import Sequence

import pytest
from pydantic import BaseModel
from temporalio import activity, workflow
from temporalio.common import RawValue

from workflows.contract.definitions import activity_name, handler_arg_types, workflow_definition
from workflows.contract.views import MountTaskView
from workflows.mount_task import MountTaskWorkflow


class Poke(BaseModel):
    n: int


@workflow.defn(name="DefinitionProbeWorkflow")
class DefinitionProbe:
    @workflow.run
    async def run(self, poke: Poke) -> int:
        return poke.n

    @workflow.update(name="bump", description="adds one")
    async def bump(self, poke: Poke) -> int:
        return poke.n + 1

    @workflow.signal(name="poke")
    def poke(self, poke: Poke, again: Poke) -> None:
        pass

    @workflow.query(name="peek")
    def peek(self) -> str:
        return ""

    @workflow.signal(dynamic=True)
    def any_signal(self, name: str, args: Sequence[RawValue]) -> None:
        pass


@activity.defn(name="probe.activity")
async def probe_activity() -> None:
    pass


@activity.defn(dynamic=True)
async def dynamic_activity(args: Sequence[RawValue]) -> None:
    pass


def test_issue_22_a_workflow_definition_names_its_types_and_named_handlers() -> None:
    defn = workflow_definition(DefinitionProbe)
    assert (defn.name, defn.arg_types, defn.ret_type) == ("DefinitionProbeWorkflow", (Poke,), int)
    assert list(defn.updates) == ["bump"] and list(defn.signals) == ["poke"] and list(defn.queries) == ["peek"]
    bump = defn.updates["bump"]
    assert (bump.kind, bump.arg_types, bump.ret_type, bump.description) == ("update", (Poke,), int, "adds one")
    assert defn.signals["poke"].arg_types == (Poke, Poke) and defn.signals["poke"].ret_type is None
    assert defn.queries["peek"].arg_types == () and defn.queries["peek"].ret_type is str
    assert defn.dynamic == frozenset({"signal"})
    assert defn.handlers("signal") is defn.signals


def test_issue_22_handler_arg_types_reads_one_named_handler() -> None:
    assert handler_arg_types(DefinitionProbe, "signal", "poke") == (Poke, Poke)
    assert handler_arg_types(DefinitionProbe, "update", "bump") == (Poke,)
    assert handler_arg_types(DefinitionProbe, "update", "poke") is None  # a signal, not an update
    assert handler_arg_types(DefinitionProbe, "signal", "nobody") is None  # the dynamic handler: nothing to check
    assert handler_arg_types(MountTaskWorkflow, "update", "publish") is not None


def test_issue_22_the_project_workflows_read_through_the_adapter() -> None:
    defn = workflow_definition(MountTaskWorkflow)
    assert defn.name == "MountTaskWorkflow" and defn.queries["state"].ret_type is MountTaskView
    assert defn.dynamic == frozenset()


def test_issue_22_activity_name_is_the_registered_name() -> None:
    assert activity_name(probe_activity) == "probe.activity"
    with pytest.raises(ValueError, match="dynamic"):
        activity_name(dynamic_activity)
    with pytest.raises(ValueError):
        workflow_definition(Poke)
    with pytest.raises(TypeError):
        activity_name(lambda: None)
