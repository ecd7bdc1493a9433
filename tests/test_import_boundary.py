"""Issue 22 item 1: one boundary between the workflows and the world, checked on the source.

Workflows import ports, the contract, the rules and each other, never `activities` (nor the worker, the starter, or a
database driver: they would sit in the workflow sandbox's import graph). Activities import the workflows' contract
and rules only (and the ports). `ports` imports no activity, worker or starter. The starter does not import the
worker. Every import counts: at module level, inside functions, inside `with workflow.unsafe.
imports_passed_through()` blocks. And no workflow calls an activity by a string name: the ports hold the names.
"""

from __future__ import annotations

import ast
import importlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from ports.port import ActivityPort

ROOT = Path(__file__).resolve().parents[1]
EXECUTE = {"execute_activity", "execute_local_activity", "start_activity", "start_local_activity"}


def modules(package: str) -> list[Path]:
    return sorted((ROOT / package).rglob("*.py"))


def imported(path: Path) -> Iterator[tuple[int, str]]:
    """(line, dotted name) of every import in the file: `from a.b import c` gives a.b.c, `import a.b` gives a.b;
    relative imports are resolved against the file's package."""
    package = path.relative_to(ROOT).with_suffix("").parts[:-1]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = ".".join(package[:len(package) - node.level + 1])
                base = f"{parent}.{base}" if base else parent
            for alias in node.names:
                yield node.lineno, f"{base}.{alias.name}"


def under(name: str, *prefixes: str) -> bool:
    return any(name == prefix or name.startswith(prefix + ".") for prefix in prefixes)


def violations(package: str, forbidden: tuple[str, ...], allowed: tuple[str, ...] = ()) -> list[str]:
    return [f"{path.relative_to(ROOT)}:{line} imports {name}"
            for path in modules(package) for line, name in imported(path)
            if under(name, *forbidden) and not under(name, *allowed)]


def test_the_import_finder_sees_imports_in_functions_and_pass_through_blocks(tmp_path: Path) -> None:
    """The checks below can fail: an import hidden in a function or a pass-through block is found."""
    source = ("from temporalio import workflow\n"
              "with workflow.unsafe.imports_passed_through():\n"
              "    from activities.ledger import SettleRequest\n"
              "def late():\n"
              "    import worker\n"
              "    from . import sibling\n")
    (tmp_path / "pkg").mkdir()
    path = tmp_path / "pkg" / "mod.py"
    path.write_text(source, encoding="utf-8")
    global ROOT
    saved, ROOT = ROOT, tmp_path
    try:
        assert [name for _, name in imported(path)] == [
            "temporalio.workflow", "activities.ledger.SettleRequest", "worker", "pkg.sibling"]
        assert violations("pkg", ("activities", "worker")) == [
            "pkg/mod.py:3 imports activities.ledger.SettleRequest", "pkg/mod.py:5 imports worker"]
    finally:
        ROOT = saved
    assert not under("temporalio.worker.Worker", "worker")


def test_workflows_never_import_activities_the_worker_the_starter_or_a_database_driver() -> None:
    assert violations("workflows", ("activities", "worker", "starter", "psycopg", "sqlite3")) == []


def test_activities_import_only_the_contract_and_the_rules_of_the_workflows() -> None:
    assert violations("activities", ("workflows",), allowed=("workflows.contract", "workflows.rules")) == []


def test_ports_import_no_activity_worker_or_starter() -> None:
    assert violations("ports", ("activities", "worker", "starter", "psycopg", "sqlite3")) == []


@pytest.mark.parametrize("module", [path.name for path in modules("starter")])
def test_the_starter_does_not_import_the_worker(module: str) -> None:
    path = ROOT / "starter" / module
    assert [f"{module}:{line} imports {name}" for line, name in imported(path) if under(name, "worker")] == []


def test_no_workflow_calls_an_activity_by_a_string_name() -> None:
    """The ports (ports/*.py) hold every activity name; a workflow calls `await ledger.SETTLE(request)`."""
    found = []
    for path in modules("workflows"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in EXECUTE
                    and node.args and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str)):
                found.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.func.attr}({node.args[0].value!r})")
    assert found == []


def test_every_activity_registers_under_a_port_name() -> None:
    """No `@activity.defn(name="...")` with a literal outside ports/: the worker and the workflows agree by
    construction, and a renamed activity is renamed in one place."""
    literal = [f"{path.relative_to(ROOT)}:{node.lineno}"
               for path in modules("activities") for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
               if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "defn"
               and any(k.arg == "name" and isinstance(k.value, ast.Constant) for k in node.keywords)]
    defined = sum(1 for path in modules("activities") for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
                  if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "defn")
    assert literal == []
    assert defined == len(port_names()) >= 58  # one activity per port


def port_names() -> set[str]:
    names = set()
    for path in modules("ports"):
        module = importlib.import_module(".".join(path.relative_to(ROOT).with_suffix("").parts))
        names |= {value.name for value in vars(module).values() if isinstance(value, ActivityPort)}
    return names


def test_tests_import_helpers_not_other_tests() -> None:
    """A test module's tests run wherever it is imported; shared code lives in helper modules (no test_ prefix)."""
    found = [f"{path.relative_to(ROOT)}:{line} imports {name}"
             for path in [*modules("tests"), *modules("bench")] for line, name in imported(path)
             if name.startswith("tests.test_")]
    assert found == []


DETERMINISTIC = ("workflows.contract", "workflows.rules", "ports")


def test_issue_22_the_sandbox_passes_through_only_the_contract_the_rules_and_the_ports() -> None:
    """worker.SANDBOX_PASSTHROUGH names no workflow module and not the `workflows` package as a whole: the workflow
    modules are imported again in each instance's sandbox, where the sandbox's guards reach them."""
    from worker import SANDBOX_PASSTHROUGH

    assert SANDBOX_PASSTHROUGH, "the contract, rules and ports are passed through (docs/bench.md, Limits found 3)"
    assert [name for name in SANDBOX_PASSTHROUGH if not under(name, *DETERMINISTIC)] == []
    # The bench's bare baseline splits the same way (issue 21, a fair baseline): its messages module passed
    # through, its workflow module (bench.bare) imported per instance.
    from bench.harness import BARE_PASSTHROUGH

    assert BARE_PASSTHROUGH and not any(under("bench.bare", name) for name in BARE_PASSTHROUGH)


def passed_through_blocks(path: Path) -> Iterator[tuple[bool, int, str]]:
    """(inside `workflow.unsafe.imports_passed_through()`, line, module) of every module-level import."""
    def walk(nodes: list[ast.stmt], inside: bool) -> Iterator[tuple[bool, int, str]]:
        for node in nodes:
            if isinstance(node, ast.With):
                yield from walk(node.body, inside or any(
                    "imports_passed_through" in ast.unparse(item.context_expr) for item in node.items))
            elif isinstance(node, ast.If | ast.Try):
                yield from walk(node.body, inside)
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                yield inside, node.lineno, node.module
            elif isinstance(node, ast.Import):
                yield from ((inside, node.lineno, alias.name) for alias in node.names)
    yield from walk(ast.parse(path.read_text(encoding="utf-8"), str(path)).body, False)


def test_issue_22_workflow_modules_import_the_contract_rules_and_ports_passed_through_and_each_other_not() -> None:
    """A workflow module imports the contract, the rules and the ports inside `imports_passed_through()`, so a
    sandbox built without worker.workflow_runner (a plain Replayer) still shares their classes with the worker (a
    second copy of a contract model fails the first's isinstance checks); and it never imports another workflow
    module inside one, which would pass that module through after all."""
    found = []
    for path in modules("workflows"):
        if under(".".join(path.relative_to(ROOT).with_suffix("").parts), "workflows.contract", "workflows.rules"):
            continue
        for inside, line, name in passed_through_blocks(path):
            if under(name, *DETERMINISTIC) and not inside:
                found.append(f"{path.relative_to(ROOT)}:{line} imports {name} outside imports_passed_through")
            elif under(name, "workflows") and not under(name, *DETERMINISTIC) and inside:
                found.append(f"{path.relative_to(ROOT)}:{line} passes workflow module {name} through")
    assert found == []


def names_private_definition(path: Path) -> list[int]:
    return [node.lineno for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path)))
            if (isinstance(node, ast.Attribute) and node.attr == "_Definition")
            or (isinstance(node, ast.ImportFrom) and any(alias.name == "_Definition" for alias in node.names))]


def test_issue_22_only_the_definitions_adapter_reads_the_sdks_private_definitions() -> None:
    """`temporalio.workflow._Definition` and `temporalio.activity._Definition` have no public equivalent; one module
    (workflows/contract/definitions.py) reads them, and the worker, the schemas, the bench and the tests go through
    it."""
    adapter = ROOT / "workflows" / "contract" / "definitions.py"
    files = [*sorted(ROOT.glob("*.py")), *(path for package in ("workflows", "activities", "ports", "starter", "bench",
                                                                 "tests") for path in modules(package))]
    assert adapter in files and names_private_definition(adapter)
    assert [f"{path.relative_to(ROOT)}:{line}" for path in files if path != adapter
            for line in names_private_definition(path)] == []


def sandboxed_module_names(tree: ast.Module) -> set[str]:
    """Local names a test binds to a workflow module that the sandbox imports again per instance (not the
    contract, the rules or the ports): `from workflows import common`, `import workflows.common as common`."""
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names |= {alias.asname or alias.name for alias in node.names
                      if under(f"{node.module}.{alias.name}", "workflows") and (ROOT / Path(
                          *f"{node.module}.{alias.name}".split("."))).with_suffix(".py").is_file()
                      and not under(f"{node.module}.{alias.name}", *DETERMINISTIC)}
        elif isinstance(node, ast.Import):
            names |= {alias.asname for alias in node.names
                      if alias.asname and under(alias.name, "workflows") and not under(alias.name, *DETERMINISTIC)}
    return names


def test_issue_22_no_test_patches_a_workflow_module_the_sandbox_imports_again() -> None:
    """A workflow module is imported again in each instance's sandbox: a test that patches the host's copy changes
    nothing its workflows see (the bounds tests lower live in workflows.rules.run_length, passed through)."""
    found = []
    for path in [*modules("tests"), *modules("bench")]:
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        patched = sandboxed_module_names(tree)
        found += [f"{path.relative_to(ROOT)}:{node.lineno} patches {node.args[0].id}"
                  for node in ast.walk(tree)
                  if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                  and node.func.attr == "setattr" and node.args and isinstance(node.args[0], ast.Name)
                  and node.args[0].id in patched]
    assert found == []
