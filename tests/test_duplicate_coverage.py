"""Issue 7, item 3: every signal and update of every workflow type has a duplicate case (tests/duplicate_cases.py)
naming what its second delivery does and the test that delivers it twice. Fails when a workflow gains a message with
no case, when a case names a message that is gone, or a test that does not exist in the duplicate test modules."""

from __future__ import annotations

import ast
from pathlib import Path

from tests.duplicate_cases import CASES
from worker import WORKFLOWS
from workflows.contract.definitions import workflow_definition

DUPLICATE_TESTS = sorted(Path(__file__).parent.glob("test_duplicates*.py"))


def registered_messages() -> set[tuple[str, str]]:
    """Every named signal and update of every workflow the worker registers (temporalio's own definitions)."""
    found: set[tuple[str, str]] = set()
    for cls in WORKFLOWS:
        definition = workflow_definition(cls)
        assert definition.name is not None
        found |= {(definition.name, name) for name in [*definition.signals, *definition.updates]}
    return found


def duplicate_test_names() -> set[str]:
    """The test functions of the duplicate modules, read from their source (tests do not import tests)."""
    return {node.name for path in DUPLICATE_TESTS for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name.startswith("test_")}


def test_coverage_every_signal_and_update_has_a_duplicate_case() -> None:
    cases = {(case.workflow, case.message): case for case in CASES}
    assert len(cases) == len(CASES), "a message is listed twice in tests/duplicate_cases.py"
    registered = registered_messages()
    assert sorted(registered - set(cases)) == [], "messages with no duplicate case in tests/duplicate_cases.py"
    assert sorted(set(cases) - registered) == [], "tests/duplicate_cases.py names messages no workflow registers"
    tests = duplicate_test_names()
    assert sorted(c.test for c in CASES if c.test not in tests) == [], "cases naming tests that do not exist"
    assert all(case.second_delivery for case in CASES)
    assert len(registered) >= 50  # seven workflow types
