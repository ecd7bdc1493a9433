"""What the patch schedule (docs/patches.md) is checked against, derived from the code and the recorded histories.
No tests here; `python -m tests.patch_audit` prints the table's derived columns.

- `patch_ids()`: every `workflow.patched(...)` / `workflow.deprecate_patch(...)` id in workflows/, read from the
  source (the argument is resolved in its module, so constants count).
- `old_paths()`: replays every history under tests/histories/ once with `workflow.patched` watched, and returns,
  per patch id, the histories for which it answered False: the runs that took the old branch. Removing that branch
  breaks exactly those (and the production runs they stand for), so they are what each retirement step still needs."""

from __future__ import annotations

import ast
import asyncio
import importlib
from collections import defaultdict
from pathlib import Path
from typing import Any

from temporalio import workflow
from temporalio.client import WorkflowHistory
from temporalio.worker import Replayer, UnsandboxedWorkflowRunner

from tests.conftest import data_converter
from tests.replay_helpers import HISTORIES
from worker import WORKFLOWS

WORKFLOWS_DIR = Path(__file__).resolve().parent.parent / "workflows"
PATCH_CALLS = ("patched", "deprecate_patch")


def patch_ids() -> dict[str, str]:
    """Patch id -> how it is asked for ("patched" or "deprecate_patch")."""
    found: dict[str, str] = {}
    for path in sorted(WORKFLOWS_DIR.glob("*.py")):
        module = importlib.import_module(f"workflows.{path.stem}")
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                    and node.func.attr in PATCH_CALLS and node.args):
                patch_id = eval(compile(ast.Expression(node.args[0]), str(path), "eval"), vars(module))
                assert isinstance(patch_id, str), (path, ast.unparse(node))
                found[patch_id] = node.func.attr
    return found


async def _old_paths() -> dict[str, set[str]]:
    taken: dict[str, set[str]] = defaultdict(set)
    current = {"history": ""}
    real_patched = workflow.patched

    def watched(patch_id: str) -> bool:
        answer = real_patched(patch_id)
        if not answer:
            taken[patch_id].add(current["history"])
        return answer

    # The unsandboxed runner: workflow code calls this module's `patched`, so the watch sees every call.
    replayer = Replayer(workflows=list(WORKFLOWS), data_converter=data_converter,
                        workflow_runner=UnsandboxedWorkflowRunner())
    workflow.patched = watched  # type: ignore[assignment]
    try:
        for path in sorted(HISTORIES.glob("*.json")):
            current["history"] = path.stem
            await replayer.replay_workflow(WorkflowHistory.from_json(path.stem, path.read_text(encoding="utf-8")))
    finally:
        workflow.patched = real_patched  # type: ignore[assignment]
    return dict(taken)


def old_paths() -> dict[str, set[str]]:
    return asyncio.run(_old_paths())


def main() -> None:
    paths: dict[str, Any] = old_paths()
    for patch_id in sorted(patch_ids()):
        histories = sorted(paths.get(patch_id, ()))
        print(f"{patch_id}: {len(histories)} on the old path: {', '.join(histories) or '-'}")


if __name__ == "__main__":
    main()
