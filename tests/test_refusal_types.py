"""Issue 22 item 2, issue 23 item 2: one refusal helper, no refusal of kind ValueError, one error-type table.

Read from the source (AST), so that a new refusal cannot slip past: workflow modules raise no ValueError (a
validator's ValueError reached callers as an update failure of type "ValueError"), define no refusal helper of
their own, and every error type they raise (the literal or module constant given to `refused`, to the register's
`unchanged_refusal`, or as `type=` of an ApplicationError) is a row of docs/contract.md's "Error types" table."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
WORKFLOWS = ROOT / "workflows"
# Pydantic validators (contract models) and pure rule functions raise ValueError by design: pydantic turns the
# first into a per-field InvalidPayload/InvalidRequest answer, and the second guard arguments the workflows check
# before calling them. Neither is a refusal a caller receives from a workflow.
NOT_WORKFLOW_CODE = ("contract", "rules")
HELPERS = {"refused": 0, "unchanged_refusal": 1}  # helper name -> index of its `kind` argument
CONSTANT_SOURCES = (WORKFLOWS, ROOT / "ports")


def workflow_modules() -> list[Path]:
    return sorted(p for p in WORKFLOWS.rglob("*.py")
                  if p.relative_to(WORKFLOWS).parts[0] not in NOT_WORKFLOW_CODE)


def parsed(path: Path) -> ast.Module:
    return ast.parse(path.read_text(encoding="utf-8"), filename=str(path))


def string_constants() -> dict[str, str]:
    """Module-level `NAME = "literal"` of workflows/ and ports/ (the constants refusals are raised with)."""
    found: dict[str, str] = {}
    for source in CONSTANT_SOURCES:
        for path in source.rglob("*.py"):
            for node in parsed(path).body:
                if isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant) \
                        and isinstance(node.value.value, str):
                    for target in node.targets:
                        if isinstance(target, ast.Name):
                            found[target.id] = node.value.value
    return found


def called_name(call: ast.Call) -> str | None:
    if isinstance(call.func, ast.Name):
        return call.func.id
    if isinstance(call.func, ast.Attribute):
        return call.func.attr
    return None


class Kinds(ast.NodeVisitor):
    """The error types raised in one module: resolved ones, and expressions that resolve to no constant."""

    def __init__(self, path: Path, constants: dict[str, str]) -> None:
        self.path, self.constants = path, constants
        self.params: list[set[str]] = [set()]
        self.kinds: dict[str, list[str]] = {}
        self.unresolved: list[str] = []

    def visit_FunctionDef(self, node: ast.FunctionDef | ast.AsyncFunctionDef) -> None:
        args = node.args
        self.params.append({a.arg for a in [*args.posonlyargs, *args.args, *args.kwonlyargs]})
        self.generic_visit(node)
        self.params.pop()

    visit_AsyncFunctionDef = visit_FunctionDef

    def visit_Call(self, node: ast.Call) -> None:
        name = called_name(node)
        kind: ast.expr | None = None
        if name in HELPERS and len(node.args) > HELPERS[name]:
            kind = node.args[HELPERS[name]]
        elif name == "ApplicationError":
            kind = next((k.value for k in node.keywords if k.arg == "type"), None)
        if kind is not None:
            self.resolve(kind, node.lineno)
        self.generic_visit(node)

    def resolve(self, kind: ast.expr, line: int) -> None:
        where = f"{self.path.relative_to(ROOT)}:{line}"
        if isinstance(kind, ast.Constant) and isinstance(kind.value, str):
            self.kinds.setdefault(kind.value, []).append(where)
        elif isinstance(kind, ast.Name) and kind.id in self.constants:
            self.kinds.setdefault(self.constants[kind.id], []).append(where)
        elif isinstance(kind, ast.Name) and kind.id in self.params[-1]:
            pass  # a helper passing its caller's kind on (checked at the caller)
        else:
            self.unresolved.append(f"{where}: {ast.unparse(kind)}")


def raised_kinds() -> tuple[dict[str, list[str]], list[str]]:
    constants = string_constants()
    kinds: dict[str, list[str]] = {}
    unresolved: list[str] = []
    for path in [*workflow_modules(), *sorted((WORKFLOWS / "contract").rglob("*.py"))]:
        visitor = Kinds(path, constants)
        visitor.visit(parsed(path))
        for kind, places in visitor.kinds.items():
            kinds.setdefault(kind, []).extend(places)
        unresolved += visitor.unresolved
    return kinds, unresolved


def documented_kinds() -> set[str]:
    """The first column of the "## Error types" table of docs/contract.md (each type in backticks)."""
    text = (ROOT / "docs" / "contract.md").read_text(encoding="utf-8")
    section = text.split("\n## Error types", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("| `")]
    return {kind for row in rows for kind in re.findall(r"`([A-Za-z]+)`", row.split("|")[1])}


def raises_value_error(node: ast.AST) -> bool:
    if not isinstance(node, ast.Raise) or node.exc is None:
        return False
    raised = node.exc.func if isinstance(node.exc, ast.Call) else node.exc
    return isinstance(raised, ast.Name) and raised.id == "ValueError"


def test_issue_22_no_workflow_raises_value_error() -> None:
    raising = [f"{path.relative_to(ROOT)}:{node.lineno}" for path in workflow_modules()
               for node in ast.walk(parsed(path)) if raises_value_error(node)]
    assert raising == [], "a refusal is refused(<Type>, reasons) (workflows/refusals.py), never a ValueError"


def test_issue_22_one_refusal_helper() -> None:
    defined = [f"{path.relative_to(ROOT)}:{node.lineno}" for path in WORKFLOWS.rglob("*.py")
               for node in ast.walk(parsed(path))
               if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name == "refused"]
    assert defined == ["workflows/refusals.py:" + str(next(
        n.lineno for n in parsed(WORKFLOWS / "refusals.py").body
        if isinstance(n, ast.FunctionDef) and n.name == "refused"))]


def test_issue_23_every_raised_error_type_is_in_the_contract_table() -> None:
    kinds, unresolved = raised_kinds()
    assert unresolved == [], "error types must be literals or module constants, so that this test can read them"
    assert {"MountRefused", "RevocationRefused", "XingguangStepRefused", "InvalidPayload"} <= set(kinds)
    assert "ValueError" not in kinds
    missing = {kind: places for kind, places in kinds.items() if kind not in documented_kinds()}
    assert missing == {}, "add each to docs/contract.md, 'Error types'"


def test_issue_23_the_table_lists_no_type_the_workflows_do_not_raise() -> None:
    kinds, _ = raised_kinds()
    assert documented_kinds() - set(kinds) == set()
