"""JSON Schemas of the contract, for services in other languages: `python -m workflows.contract.schemas`.

Writes one JSON Schema per workflow input and result and per argument and result of every update, signal and
query into schemas/<WorkflowType>/, plus schemas/index.json that maps workflow types, ids and message names to
those files, and schemas/index.md, the same for people. Messages are discovered from the workflow definitions
registered in workflows/registry.py (WORKFLOWS), so a new workflow or handler is covered as soon as it is
registered. `--check` exits 1 when the files on disk differ.

File names: `workflow.input.json` / `workflow.result.json` for the workflow itself, `<message>.input.json` and
`<message>.result.json` for a handler (`<message>.input.<n>.json` when a handler takes several arguments). Inputs
are schemas of what the workflow accepts (pydantic validation mode), results of what it sends back
(serialization mode).
"""

from __future__ import annotations

import argparse
import inspect
import json
import re
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import TypeAdapter

from workflows.contract import names
from workflows.contract.common import DEFAULT_NAMESPACE, DEFAULT_TASK_QUEUE
from workflows.contract.definitions import Handler, workflow_definition

SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"
SCHEMAS_DIR = Path(__file__).resolve().parents[2] / "schemas"
INDEX = "index.json"
INDEX_MD = "index.md"
GENERATOR = "python -m workflows.contract.schemas"

Kind = Literal["updates", "signals", "queries"]


class ContractError(Exception):
    """A handler whose types cannot be published (no type hints, or `Any`)."""


@dataclass(frozen=True)
class Message:
    """One handler of a workflow (or the workflow's own run method, kind "workflow")."""

    workflow_type: str
    kind: Literal["workflow", "updates", "signals", "queries"]
    name: str
    arg_types: Sequence[Any]
    ret_type: Any
    description: str | None

    @property
    def stem(self) -> str:
        return "workflow" if self.kind == "workflow" else self.name

    def arg_files(self) -> list[str]:
        if len(self.arg_types) == 1:
            return [f"{self.workflow_type}/{self.stem}.input.json"]
        return [f"{self.workflow_type}/{self.stem}.input.{n}.json" for n in range(len(self.arg_types))]

    def result_file(self) -> str | None:
        if self.ret_type is None or self.ret_type is type(None):
            return None
        return f"{self.workflow_type}/{self.stem}.result.json"


def registered_workflows() -> Sequence[type]:
    """The workflow classes the worker runs (imported late: the contract package must not need the workflows)."""
    from workflows.registry import WORKFLOWS

    return WORKFLOWS


def _description(fn: Callable[..., Any] | type, given: str | None = None) -> str | None:
    """The handler's own description, else the first paragraph of its docstring (a workflow class without one:
    its module's)."""
    doc = given or fn.__doc__
    if not doc and isinstance(fn, type):
        doc = sys.modules[fn.__module__].__doc__
    return " ".join(inspect.cleandoc(doc).split("\n\n")[0].split()) if doc else None


def _types(owner: str, arg_types: Sequence[Any] | None, fn: Callable[..., Any] | None) -> Sequence[Any]:
    if arg_types is None:
        raise ContractError(f"{owner}: argument types are unknown (add type hints)")
    if fn is not None:
        params = [p for p in inspect.signature(fn).parameters.values() if p.name != "self"]
        if len(params) != len(arg_types):
            raise ContractError(f"{owner}: every argument needs a type hint")
    for arg_type in arg_types:
        if arg_type is None or arg_type is Any:  # the SDK gives None for an argument without a type hint
            raise ContractError(f"{owner}: every argument needs a type hint (not Any) to have a schema")
    return arg_types


def messages_of(cls: type) -> list[Message]:
    """The workflow itself and each of its named updates, signals and queries, sorted by kind and name."""
    defn = workflow_definition(cls)
    assert defn.name is not None, f"{cls.__name__} is a dynamic workflow: it has no published contract"
    wf = defn.name
    found = [Message(wf, "workflow", wf, _types(f"{wf} input", defn.arg_types, defn.run_fn), defn.ret_type,
                     _description(cls))]
    handlers: list[tuple[Kind, Mapping[str, Handler]]] = [
        ("updates", defn.updates), ("signals", defn.signals), ("queries", defn.queries)]
    for kind, by_name in handlers:
        for name in sorted(by_name):  # named handlers only: dynamic ones have no contract
            handler = by_name[name]
            owner = f"{wf} {kind[:-1]} {name}"
            ret_type = handler.ret_type
            if ret_type is Any:
                raise ContractError(f"{owner}: result typed Any has no schema")
            arg_types = _types(owner, handler.arg_types, handler.fn)
            # A handler without a docstring is described by its argument's model, if that has one.
            described = _description(handler.fn, handler.description) or next(
                (_description(t) for t in arg_types if isinstance(t, type) and t.__doc__), None)
            found.append(Message(wf, kind, name, arg_types, ret_type, described))
    return found


def _schema(tp: Any, mode: Literal["validation", "serialization"]) -> dict[str, Any]:
    body = TypeAdapter(tp).json_schema(mode=mode)
    return {"$schema": SCHEMA_DIALECT, **body}


def _snake(type_name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", type_name.removesuffix("Workflow")).lower()


def workflow_id_template(workflow_type: str) -> str | None:
    """`mount-task:{task_id}` from names.mount_task_id for MountTaskWorkflow (names.<snake type>_id), if any."""
    fn = getattr(names, f"{_snake(workflow_type)}_id", None)
    if not callable(fn):
        return None
    params = list(inspect.signature(fn).parameters)
    template = fn(*("{" + p + "}" for p in params))
    return template if isinstance(template, str) else None


def _json(value: Any) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False) + "\n"


def generate(workflow_classes: Iterable[type] | None = None) -> dict[str, str]:
    """Every schema file and the index, as {relative path: text}. Pure: writes nothing."""
    files: dict[str, str] = {}
    index: dict[str, Any] = {
        "generated_by": GENERATOR,
        "namespace": DEFAULT_NAMESPACE,
        "task_queue": DEFAULT_TASK_QUEUE,
        "workflows": {},
    }
    classes = list(registered_workflows() if workflow_classes is None else workflow_classes)
    for cls in sorted(classes, key=lambda c: workflow_definition(c).name or ""):
        messages = messages_of(cls)
        run, handlers = messages[0], messages[1:]
        entry: dict[str, Any] = {"id": workflow_id_template(run.workflow_type), "description": run.description}
        entry.update(_files(run, files))
        for kind in ("updates", "signals", "queries"):
            entry[kind] = {m.name: {"description": m.description, **_files(m, files)}
                           for m in handlers if m.kind == kind}
        index["workflows"][run.workflow_type] = entry
    files[INDEX] = _json(index)
    files[INDEX_MD] = _markdown(index)
    return files


def _markdown(index: dict[str, Any]) -> str:
    """schemas/index.md: the same index for people (docs/contract.md links it)."""
    lines = ["# The contract: workflows, ids and messages\n",
             (f"Generated by `{GENERATOR}` from the workflows registered in worker.py; do not edit. "
              f"Namespace `{index['namespace']}`, task queue `{index['task_queue']}`. Payloads are JSON; each "
              "link is the JSON Schema of one argument or result.\n")]

    def links(paths: list[str]) -> str:
        return ", ".join(f"[{p.split('/', 1)[1]}]({p})" for p in paths) or "none"

    for name, entry in index["workflows"].items():
        lines.append(f"## {name}\n")
        lines.append(f"Workflow id `{entry['id']}`. {entry['description'] or ''}".rstrip() + "\n")
        result = links([entry["result"]] if entry["result"] else [])
        lines.append(f"Start input: {links(entry['args'])}; result: {result}.\n")
        lines.append("| kind | name | argument | result | what it is |")
        lines.append("| --- | --- | --- | --- | --- |")
        for kind in ("updates", "signals", "queries"):
            for message, m in entry[kind].items():
                result = links([m["result"]]) if m["result"] else "none"
                description = (m["description"] or "").replace("|", "\\|")
                lines.append(f"| {kind[:-1] if kind != 'queries' else 'query'} | `{message}` | {links(m['args'])} "
                             f"| {result} | {description} |")
        lines.append("")
    return "\n".join(lines)


def _files(message: Message, files: dict[str, str]) -> dict[str, Any]:
    arg_files = message.arg_files()
    for path, arg_type in zip(arg_files, message.arg_types, strict=True):
        files[path] = _json(_schema(arg_type, "validation"))
    result = message.result_file()
    if result is not None:
        files[result] = _json(_schema(message.ret_type, "serialization"))
    return {"args": arg_files, "result": result}


def on_disk(directory: Path = SCHEMAS_DIR) -> dict[str, str]:
    """The checked-in files (every .json and .md under the directory), as {relative path: text}."""
    return {p.relative_to(directory).as_posix(): p.read_text(encoding="utf-8")
            for p in sorted(directory.rglob("*")) if p.suffix in (".json", ".md")}


def differences(expected: dict[str, str], actual: dict[str, str]) -> list[str]:
    problems = [f"missing: schemas/{p}" for p in sorted(expected.keys() - actual.keys())]
    problems += [f"stale (no such message any more): schemas/{p}" for p in sorted(actual.keys() - expected.keys())]
    problems += [f"out of date: schemas/{p}" for p in sorted(expected.keys() & actual.keys())
                 if expected[p] != actual[p]]
    return problems


def write(directory: Path = SCHEMAS_DIR) -> list[str]:
    """Writes the generated files and removes stale ones; returns what changed."""
    expected = generate()
    changes = differences(expected, on_disk(directory) if directory.exists() else {})
    for path in on_disk(directory) if directory.exists() else {}:
        if path not in expected:
            (directory / path).unlink()
    for path, text in expected.items():
        target = directory / path
        target.parent.mkdir(parents=True, exist_ok=True)
        if not target.exists() or target.read_text(encoding="utf-8") != text:
            target.write_text(text, encoding="utf-8")
    for sub in directory.iterdir():
        if sub.is_dir() and not any(sub.iterdir()):
            sub.rmdir()
    return changes


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog=GENERATOR, description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--check", action="store_true", help="only compare; exit 1 when schemas/ is out of date")
    parser.add_argument("--dir", type=Path, default=SCHEMAS_DIR, help="output directory (default: %(default)s)")
    args = parser.parse_args(argv)
    if args.check:
        problems = differences(generate(), on_disk(args.dir) if args.dir.exists() else {})
        for problem in problems:
            print(problem, file=sys.stderr)
        if problems:
            print(f"run `{GENERATOR}` and commit schemas/", file=sys.stderr)
        return 1 if problems else 0
    changes = write(args.dir)
    print("\n".join(f"wrote ({change})" for change in changes) if changes else "schemas/ is up to date")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
