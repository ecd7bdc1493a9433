"""The workflow modules the sandbox imports for each new instance are read from bytecode (issue 21 item 4).

With PYTHONDONTWRITEBYTECODE set, Python never writes __pycache__, so each new workflow instance compiled the
workflow modules' source again (~20% of the worker's CPU in `python -m bench publish`; docs/bench.md). The worker's
runner compiles them once, whatever that setting says.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

from worker import WORKFLOW_SOURCES, compile_for_sandbox, workflow_runner


def test_issue_21_the_runner_leaves_bytecode_for_every_workflow_module(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "dont_write_bytecode", True)
    workflow_runner()
    sources = sorted(WORKFLOW_SOURCES.rglob("*.py"))
    missing = [str(p) for p in sources if not Path(importlib.util.cache_from_source(str(p))).is_file()]
    assert sources and missing == []


def test_issue_21_bytecode_is_written_although_python_is_told_not_to(tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "dont_write_bytecode", True)
    module = tmp_path / "piece.py"
    module.write_text("RATE = 100\n", encoding="utf-8")
    compile_for_sandbox([tmp_path])
    assert Path(importlib.util.cache_from_source(str(module))).is_file()

