"""The benchmark harness (`python -m bench`, docs/bench.md) still runs: a tiny run, one round of a few items per
phase, on its own embedded dev server. It checks that every phase measures both paths and writes its result file;
the numbers themselves are not asserted (a tiny run on a shared machine says nothing about speed)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PHASES = ("publish", "mount", "ingest", "settle", "xingguang", "ledger_sqlite")


def test_bench_tiny_run_measures_every_phase_and_writes_results(tmp_path: Path) -> None:
    run = subprocess.run([sys.executable, "-m", "bench", "--tiny", "--out", str(tmp_path)], cwd=ROOT,
                         capture_output=True, text=True, timeout=150, check=False)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    results = {json.loads(p.read_text())["phase"]: json.loads(p.read_text()) for p in tmp_path.glob("*-tiny.json")}
    assert set(PHASES) <= set(results), sorted(results)
    for phase in PHASES:
        body = results[phase]
        assert body["rounds"] == 1 and body["size_per_round"] > 0
        assert body["project"]["median"] > 0 and body["bare"]["median"] > 0
        assert abs(body["ratio_of_medians"] - body["project"]["median"] / body["bare"]["median"]) < 0.01
        assert body["machine"]["cpus"] and body["versions"]["temporalio"]
        assert f"{phase}: project" in run.stdout
    assert "ratio" in run.stdout and "wall time" in run.stdout
