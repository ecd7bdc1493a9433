"""The README's run command and example, end to end (AM-1, AM-3, AM-5 through the CLI): `worker.py` with no
TEMPORAL_ADDRESS starts the dev server + UI + worker; the starter CLI publishes the sample task; the task is found
by its task id through visibility; the UI answers; SIGINT stops everything with exit code 0."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def cli(env: dict[str, str], cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "starter", *args], env=env, cwd=cwd, capture_output=True, check=False,
                          text=True, timeout=60)


@pytest.mark.timeout(180)
def test_run_command_starts_server_ui_and_worker_and_the_readme_example_works(tmp_path: Path) -> None:
    port, ui_port = free_port(), free_port()
    env = {**os.environ, "TEMPORAL_PORT": str(port), "TEMPORAL_UI_PORT": str(ui_port),
           "PYTHONPATH": str(ROOT), "LEDGER_DSN": str(tmp_path / ".data" / "ledger.db")}
    env.pop("TEMPORAL_ADDRESS", None)
    log = (tmp_path / "worker.log").open("w")
    worker = subprocess.Popen([sys.executable, str(ROOT / "worker.py")], env=env, cwd=tmp_path, stdout=log,
                              stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 90
        while "worker running" not in (tmp_path / "worker.log").read_text():
            assert worker.poll() is None, (tmp_path / "worker.log").read_text()
            assert time.monotonic() < deadline, "worker did not start"
            time.sleep(0.5)
        client_env = {**env, "TEMPORAL_ADDRESS": f"127.0.0.1:{port}"}
        assert cli(client_env, tmp_path, "client", "demo-client", "--deposit", "1000000").returncode == 0
        assert cli(client_env, tmp_path, "creator", "cr-demo").returncode == 0
        published = cli(client_env, tmp_path, "--json", "publish", str(ROOT / "examples" / "task.json"))
        assert published.returncode == 0, published.stderr
        assert json.loads(published.stdout)["frozen_fen"] == 550_000
        joined = cli(client_env, tmp_path, "--json", "join", "demo-task-1", "cr-demo")
        assert joined.returncode == 0 and json.loads(joined.stdout)["already_joined"] is False
        refused = cli(client_env, tmp_path, "join", "demo-task-1", "nobody")
        assert refused.returncode == 2 and "creator nobody is not registered" in refused.stderr
        ledger = cli(client_env, tmp_path, "--json", "ledger", "demo-task-1")
        assert json.loads(ledger.stdout)["money"]["escrow_balance_fen"] == 550_000
        temporal = Path(sys.executable).parent / "temporal"
        found = ""
        for _ in range(40):  # visibility is eventually consistent
            found = subprocess.run([str(temporal), "workflow", "list", "--address", f"127.0.0.1:{port}",
                                    "--query", 'task_id="demo-task-1"', "-o", "json"],
                                   capture_output=True, text=True, timeout=30, check=False).stdout
            if "mount-task:demo-task-1" in found:
                break
            time.sleep(0.5)
        assert "mount-task:demo-task-1" in found
        with urllib.request.urlopen(f"http://127.0.0.1:{ui_port}/", timeout=10) as page:
            assert page.status == 200
        assert (tmp_path / ".data" / "temporal.db").exists()
    finally:
        worker.send_signal(signal.SIGINT)
        code = worker.wait(timeout=60)
        log.close()
    assert code == 0, (tmp_path / "worker.log").read_text()
