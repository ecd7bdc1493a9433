"""SPEC "The contract with other services": a JSON Schema for every workflow input, update, signal, query and
result, generated from workflows/contract (`python -m workflows.contract.schemas`) and checked in under schemas/."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from pydantic import BaseModel
from temporalio import workflow

from worker import WORKFLOWS
from workflows.contract import mount_task as mt
from workflows.contract import schemas
from workflows.contract.common import DEFAULT_TASK_QUEUE
from workflows.contract.definitions import workflow_definition
from workflows.contract.schemas import ContractError, differences, generate, messages_of, on_disk

REGENERATE = "run `python -m workflows.contract.schemas` and commit schemas/"


def test_checked_in_schemas_are_up_to_date() -> None:
    problems = differences(generate(), on_disk())
    assert not problems, f"{REGENERATE}:\n" + "\n".join(problems)


def test_every_message_of_every_registered_workflow_has_its_schemas() -> None:
    """Every workflow in worker.WORKFLOWS, and each of its updates, signals and queries, is in the index with a
    schema file per argument and one for a result that is not None."""
    index = json.loads((schemas.SCHEMAS_DIR / "index.json").read_text())
    assert index["task_queue"] == DEFAULT_TASK_QUEUE
    for cls in WORKFLOWS:
        defn = workflow_definition(cls)
        entry = index["workflows"].get(defn.name)
        assert entry is not None, f"{defn.name} has no entry in schemas/index.json: {REGENERATE}"
        assert len(entry["args"]) == len(defn.arg_types or [])
        for kind, handlers in (("updates", defn.updates), ("signals", defn.signals), ("queries", defn.queries)):
            for name, handler in handlers.items():
                published = entry[kind].get(name)
                assert published is not None, f"{defn.name} {kind} {name} has no schema: {REGENERATE}"
                assert len(published["args"]) == len(handler.arg_types or [])
                has_result = handler.ret_type not in (None, type(None))
                assert (published["result"] is not None) == has_result, (defn.name, kind, name)
                for path in [*published["args"], *([published["result"]] if has_result else [])]:
                    assert (schemas.SCHEMAS_DIR / path).is_file(), f"schemas/{path} missing: {REGENERATE}"


def test_index_names_the_ids_and_messages_of_the_contract() -> None:
    """The names SPEC lists are in the index: ids, and the messages on MountTaskWorkflow and
    MountedContentWorkflow."""
    workflows = json.loads((schemas.SCHEMAS_DIR / "index.json").read_text())["workflows"]
    task, content = workflows["MountTaskWorkflow"], workflows["MountedContentWorkflow"]
    assert task["id"] == "mount-task:{task_id}"
    assert content["id"] == "mount-content:{task_id}:{content_id}"
    assert {"publish", "join", "report_mount", "revoke_content", "revoke_all", "cancel"} <= task["updates"].keys()
    assert "revoke_authorization" in task["signals"] and "state" in task["queries"]
    assert "report_conversions" in content["signals"] and "state" in content["queries"]
    assert task["updates"]["publish"] == {
        "description": task["updates"]["publish"]["description"],
        "args": ["MountTaskWorkflow/publish.input.json"], "result": "MountTaskWorkflow/publish.result.json"}


def test_every_registered_workflow_publishes_its_id() -> None:
    """A service must be able to build each workflow's id: names.<snake type>_id exists for every workflow."""
    workflows = json.loads((schemas.SCHEMAS_DIR / "index.json").read_text())["workflows"]
    missing = [name for name, entry in workflows.items() if not entry["id"]]
    assert not missing, f"add an id function to workflows/contract/names.py for {missing}, e.g. mount_task_id"
    if "XingguangTaskWorkflow" in workflows:
        from workflows.contract.xingguang import xg_task_workflow_id

        assert workflows["XingguangTaskWorkflow"]["id"] == xg_task_workflow_id("{task_id}") == "xg-task:{task_id}"


def test_input_schema_describes_what_the_workflow_accepts() -> None:
    """publish.input.json: required ids, integer fen, date-time instants, unknown fields refused."""
    publish = json.loads((schemas.SCHEMAS_DIR / "MountTaskWorkflow/publish.input.json").read_text())
    assert publish["$schema"] == schemas.SCHEMA_DIALECT
    assert publish["title"] == "PublishTaskRequest"
    assert publish["additionalProperties"] is False
    assert set(publish["required"]) == {"task_id", "client_id"}
    budget = publish["properties"]["budget_fen"]["anyOf"][0]
    assert budget["type"] == "integer" and budget["minimum"] == 0
    start = publish["properties"]["period_start_at"]["anyOf"][0]
    assert start == {"format": "date-time", "type": "string"}
    assert publish["properties"]["billing_rule"]["anyOf"][0] == {"$ref": "#/$defs/BillingRule"}


def test_result_schema_lists_the_fields_a_caller_reads() -> None:
    result = json.loads((schemas.SCHEMAS_DIR / "MountTaskWorkflow/publish.result.json").read_text())
    assert set(result["required"]) == set(mt.PublicationResult.model_fields)
    sample = mt.PublicationResult(task_id="t-1", published_at=datetime(2026, 11, 25, 10, tzinfo=timezone(
        timedelta(hours=8))), budget_fen=100_000, frozen_fen=110_000, platform_fee_fen=10_000,
        freeze_transfer_id="freeze:t-1").model_dump(mode="json")
    assert set(sample) == set(result["properties"])


# ------------------------------------------------------------------ the generator itself, on made-up workflows
class Ping(BaseModel):
    text: str


class Pong(BaseModel):
    count: int


@workflow.defn(name="SchemaProbeWorkflow")
class SchemaProbeWorkflow:
    """A probe: one of each kind of handler."""

    @workflow.run
    async def run(self, ping: Ping) -> Pong:
        return Pong(count=0)

    @workflow.update(name="bump")
    def bump(self, ping: Ping, times: int) -> Pong:
        """Adds."""
        return Pong(count=times)

    @workflow.signal(name="poke")
    def poke(self, ping: Ping) -> None:
        pass

    @workflow.query(name="peek")
    def peek(self) -> Pong:
        return Pong(count=0)


@workflow.defn(name="UntypedProbeWorkflow")
class UntypedProbeWorkflow:
    @workflow.run
    async def run(self) -> None:
        pass

    @workflow.signal(name="poke")
    def poke(self, payload) -> None:  # type: ignore[no-untyped-def]
        pass


def test_a_newly_registered_workflow_is_covered_without_listing_its_messages() -> None:
    files = generate([SchemaProbeWorkflow])
    assert sorted(files) == [
        "SchemaProbeWorkflow/bump.input.0.json", "SchemaProbeWorkflow/bump.input.1.json",
        "SchemaProbeWorkflow/bump.result.json", "SchemaProbeWorkflow/peek.result.json",
        "SchemaProbeWorkflow/poke.input.json", "SchemaProbeWorkflow/workflow.input.json",
        "SchemaProbeWorkflow/workflow.result.json", "index.json", "index.md"]
    assert json.loads(files["SchemaProbeWorkflow/bump.input.1.json"])["type"] == "integer"
    entry = json.loads(files["index.json"])["workflows"]["SchemaProbeWorkflow"]
    assert entry["id"] is None  # no names.schema_probe_id
    assert entry["description"] == "A probe: one of each kind of handler."
    assert entry["updates"]["bump"]["description"] == "Adds."
    assert entry["signals"]["poke"] == {"description": None, "args": ["SchemaProbeWorkflow/poke.input.json"],
                                        "result": None}
    assert ("| update | `bump` | [bump.input.0.json](SchemaProbeWorkflow/bump.input.0.json), "
            "[bump.input.1.json](SchemaProbeWorkflow/bump.input.1.json) "
            "| [bump.result.json](SchemaProbeWorkflow/bump.result.json) | Adds. |") in files["index.md"]
    assert "| query | `peek` | none | [peek.result.json](SchemaProbeWorkflow/peek.result.json) |" in files["index.md"]


def test_a_message_without_types_is_refused() -> None:
    with pytest.raises(ContractError, match="UntypedProbeWorkflow signal poke"):
        messages_of(UntypedProbeWorkflow)


def test_check_reports_a_missing_and_a_changed_file(tmp_path: Path) -> None:
    schemas.write(tmp_path)
    assert schemas.main(["--check", "--dir", str(tmp_path)]) == 0
    (tmp_path / "MountTaskWorkflow/join.input.json").unlink()
    (tmp_path / "MountTaskWorkflow/state.result.json").write_text("{}\n")
    (tmp_path / "MountTaskWorkflow/gone.input.json").write_text("{}\n")
    assert differences(generate(), on_disk(tmp_path)) == [
        "missing: schemas/MountTaskWorkflow/join.input.json",
        "stale (no such message any more): schemas/MountTaskWorkflow/gone.input.json",
        "out of date: schemas/MountTaskWorkflow/state.result.json",
    ]
    assert schemas.main(["--check", "--dir", str(tmp_path)]) == 1
    schemas.write(tmp_path)
    assert differences(generate(), on_disk(tmp_path)) == []
