"""No wait_condition predicate of a workflow that takes updates reads a value refreshed at each workflow task
(DESIGN "Limits that shape the design"; workflows/common.py RunLength; tests/test_can_suggestion.py shows the replay
failure such a predicate causes when an update refused by its validator shares the workflow task).

A static check over workflows/*.py: every predicate given to `workflow.wait_condition` (a lambda, or a method of
the workflow it names), and the methods of the workflow class that predicate calls, must not read
`workflow.now()`, `is_continue_as_new_suggested()`, the history length or size, or `continue_as_new_due()`, except
behind `<...>.legacy and ...` (runs recorded before the patch replay as they were made). Handlers and methods
inherited from a mixin in workflows/ (MountedContentWorkflow's disputes and holds) count as the workflow's."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

WORKFLOWS = Path(__file__).resolve().parents[1] / "workflows"
PER_TASK_VALUES = {"now", "is_continue_as_new_suggested", "get_current_history_length", "get_current_history_size",
                   "continue_as_new_due"}


def mentions_legacy(node: ast.AST) -> bool:
    return any((isinstance(n, ast.Attribute) and n.attr == "legacy") or (isinstance(n, ast.Name) and n.id == "legacy")
               for n in ast.walk(node))


def unguarded(node: ast.AST) -> list[ast.AST]:
    """The nodes under `node` that new runs execute: not the operands after a `legacy and`, not the body of an
    `if <...>.legacy:` (its `else` is kept)."""
    kept: list[ast.AST] = []

    def visit(n: ast.AST) -> None:
        if isinstance(n, ast.BoolOp) and isinstance(n.op, ast.And) and mentions_legacy(n.values[0]):
            return
        if isinstance(n, ast.If) and mentions_legacy(n.test):
            for child in n.orelse:
                visit(child)
            return
        kept.append(n)
        for child in ast.iter_child_nodes(n):
            visit(child)

    visit(node)
    return kept


def call_name(n: ast.AST) -> str:
    if not isinstance(n, ast.Call):
        return ""
    return n.func.attr if isinstance(n.func, ast.Attribute) else n.func.id if isinstance(n.func, ast.Name) else ""


def per_task_reads(node: ast.AST) -> list[str]:
    """Names of per-task values `node` reads outside legacy guards."""
    return [name for n in unguarded(node) if (name := call_name(n)) in PER_TASK_VALUES]


def self_calls(node: ast.AST) -> set[str]:
    return {n.func.attr for n in unguarded(node) if isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute)
            and isinstance(n.func.value, ast.Name) and n.func.value.id == "self"}


def all_methods(cls: ast.ClassDef,
                classes: dict[str, ast.ClassDef]) -> dict[str, ast.FunctionDef | ast.AsyncFunctionDef]:
    """The class's methods and those of its bases defined in workflows/ (the class's own win)."""
    methods: dict[str, ast.FunctionDef | ast.AsyncFunctionDef] = {}
    for base in cls.bases:
        if isinstance(base, ast.Name) and base.id in classes:
            methods.update(all_methods(classes[base.id], classes))
    methods.update({f.name: f for f in cls.body if isinstance(f, ast.FunctionDef | ast.AsyncFunctionDef)})
    return methods


def takes_updates(cls: ast.ClassDef, classes: dict[str, ast.ClassDef] | None = None) -> bool:
    return any((isinstance(d, ast.Call) and isinstance(d.func, ast.Attribute) and d.func.attr == "update")
               or (isinstance(d, ast.Attribute) and d.attr == "update")
               for f in all_methods(cls, classes or {}).values() for d in f.decorator_list)


def predicates(cls: ast.ClassDef, classes: dict[str, ast.ClassDef] | None = None) -> list[tuple[int, ast.AST]]:
    methods = all_methods(cls, classes or {})
    found: list[tuple[int, ast.AST]] = []
    for call in (n for m in methods.values() for n in ast.walk(m)):
        if not (isinstance(call, ast.Call) and isinstance(call.func, ast.Attribute)
                and call.func.attr == "wait_condition" and call.args):
            continue
        predicate = call.args[0]
        found.append((call.lineno, predicate))
        named = {predicate.attr} if isinstance(predicate, ast.Attribute) else self_calls(predicate)
        seen: set[str] = set()
        while named - seen:  # the methods it calls, and theirs
            name = (named - seen).pop()
            seen.add(name)
            if name in methods:
                found.append((call.lineno, methods[name]))
                named |= self_calls(methods[name])
    return found


def every_class() -> dict[str, tuple[str, ast.ClassDef]]:
    return {node.name: (path.name, node) for path in sorted(WORKFLOWS.glob("*.py"))
            for node in ast.parse(path.read_text(encoding="utf-8")).body if isinstance(node, ast.ClassDef)}


CLASSES = every_class()
WORKFLOW_CLASSES = [(module, cls) for module, cls in CLASSES.values()
                    if any("defn" in ast.dump(d) for d in cls.decorator_list)]


@pytest.mark.parametrize(("module", "cls"), WORKFLOW_CLASSES, ids=lambda v: getattr(v, "name", v))
def test_predicates_of_a_workflow_with_updates_read_workflow_state_only(module: str, cls: ast.ClassDef) -> None:
    classes = {name: node for name, (_, node) in CLASSES.items()}
    assert takes_updates(cls, classes), f"{cls.name} takes no updates: this check would not be needed"
    offending = [(line, getattr(node, "name", "lambda"), reads) for line, node in predicates(cls, classes)
                 if (reads := per_task_reads(node))]
    assert not offending, f"{module} {cls.name}: wait_condition predicates reading per-task values: {offending}"


def test_the_check_finds_a_predicate_reading_the_suggestion() -> None:
    source = '''
@workflow.defn
class W:
    @workflow.update
    async def u(self) -> None: ...
    async def run(self) -> None:
        await workflow.wait_condition(lambda: self.done or self._due())
        await workflow.wait_condition(lambda: self.r.legacy and workflow.now() > self.t)
    def _due(self) -> bool:
        return workflow.info().is_continue_as_new_suggested()
'''
    [cls] = [n for n in ast.parse(source).body if isinstance(n, ast.ClassDef)]
    assert takes_updates(cls)
    assert [(getattr(node, "name", "lambda"), per_task_reads(node)) for _, node in predicates(cls)] == [
        ("lambda", []), ("_due", ["is_continue_as_new_suggested"]), ("lambda", [])]
