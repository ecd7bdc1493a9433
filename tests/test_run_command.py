"""The README's run command and example, end to end (AM-1, AM-3, AM-5 through the CLI): `worker.py` with no
TEMPORAL_ADDRESS starts the dev server + UI + worker; the starter CLI publishes the sample task; the task is found
by its task id through visibility; the UI answers; SIGINT stops everything with exit code 0."""

from __future__ import annotations

import json
import os
import signal
import socket
import stat
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from starter import config, connection

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def cli(env: dict[str, str], cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "starter", *args], env=env, cwd=cwd, capture_output=True, check=False,
                          text=True, timeout=60)


def embedded_run_env(data_dir: Path) -> dict[str, str]:
    """The environment of an embedded run on free ports with its data under `data_dir`, and nothing that would
    point a command elsewhere (a developer's own TEMPORAL_*, LEDGER_DSN or keys)."""
    env = {key: value for key, value in os.environ.items()
           if not key.startswith(("TEMPORAL_", "LEDGER_", "PAYLOAD_", "XINGTU_", "METRICS_"))}
    return {**env, "PYTHONPATH": str(ROOT), "XINGTU_DATA_DIR": str(data_dir), "TEMPORAL_PORT": str(free_port()),
            "TEMPORAL_UI_PORT": str(free_port()), "PAYLOAD_CODEC_PORT": str(free_port()),
            # No temporal.toml of this machine's user may choose the server (starter/connection.py).
            "TEMPORAL_CONFIG_FILE": str(data_dir.parent / "no-temporal.toml")}


def start_worker(env: dict[str, str], cwd: Path, log_path: Path) -> subprocess.Popen[bytes]:
    log = log_path.open("w")
    try:
        return subprocess.Popen([sys.executable, str(ROOT / "worker.py")], env=env, cwd=cwd, stdout=log,
                                stderr=subprocess.STDOUT)
    finally:
        log.close()


def wait_until_running(worker: subprocess.Popen[bytes], log_path: Path) -> None:
    deadline = time.monotonic() + 90
    while "worker running" not in log_path.read_text():
        assert worker.poll() is None, log_path.read_text()
        assert time.monotonic() < deadline, "worker did not start"
        time.sleep(0.5)


def second_run(env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(ROOT / "worker.py")], env=env, cwd=cwd, capture_output=True,
                          text=True, timeout=60, check=False)


@pytest.mark.timeout(240)
def test_run_command_starts_server_ui_and_worker_and_the_readme_example_works(tmp_path: Path) -> None:
    """Issue 20 item 2: the CLI, run from a subdirectory of the checkout with no TEMPORAL_ADDRESS, TEMPORAL_PORT
    or LEDGER_DSN, reaches the running embedded server (on a port other than 7233) and its ledger through the
    run's state file; a second run on the same data or ports exits non-zero with the reason, before it starts
    anything."""
    data_dir = tmp_path / "data"
    env = embedded_run_env(data_dir)
    worker = start_worker(env, tmp_path, tmp_path / "worker.log")
    try:
        wait_until_running(worker, tmp_path / "worker.log")
        state = json.loads((data_dir / "run.json").read_text())
        port = env["TEMPORAL_PORT"]
        assert state["pid"] == worker.pid and state["temporal_address"] == f"127.0.0.1:{port}"
        assert state["ledger_dsn"] == str(data_dir / "ledger.db") and state["task_queue"] == "xingtu"
        assert state["payload_keys_file"] == str(data_dir / "payload-keys")
        # The CLI from elsewhere in the checkout: the state file, not the working directory, decides.
        client_env = {k: v for k, v in env.items() if k not in ("TEMPORAL_PORT", "TEMPORAL_UI_PORT")}
        subdirectory = ROOT / "docs"
        assert cli(client_env, subdirectory, "client", "demo-client", "--deposit", "1000000",
                   "--deposit-id", "dep-1").returncode == 0
        assert cli(client_env, subdirectory, "creator", "cr-demo").returncode == 0
        published = cli(client_env, subdirectory, "--json", "publish", str(ROOT / "examples" / "task.json"))
        assert published.returncode == 0, published.stderr
        assert json.loads(published.stdout)["frozen_fen"] == 550_000
        joined = cli(client_env, subdirectory, "--json", "join", "demo-task-1", "cr-demo")
        assert joined.returncode == 0 and json.loads(joined.stdout)["already_joined"] is False
        refused = cli(client_env, subdirectory, "join", "demo-task-1", "nobody")
        assert refused.returncode == 2 and "creator nobody is not registered" in refused.stderr
        ledger = cli(client_env, subdirectory, "--json", "ledger", "demo-task-1")
        money = json.loads(ledger.stdout)
        assert money["money"]["escrow_balance_fen"] == 550_000 and money["conservation_total"] == 0
        # The worker's ledger is the one the CLI wrote: the client's 10,000 yuan less the 5,500 frozen.
        balances = cli(client_env, subdirectory, "--json", "balances", "client:demo-client:")
        assert json.loads(balances.stdout) == [
            {"account": "client:demo-client:available", "balance_fen": 450_000, "available_fen": 450_000}]
        assert not (subdirectory / ".data").exists() and not (tmp_path / ".data").exists()
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
        with urllib.request.urlopen(f"http://127.0.0.1:{env['TEMPORAL_UI_PORT']}/", timeout=10) as page:
            assert page.status == 200
        assert (data_dir / "temporal.db").exists()

        # A second run on the same data directory: refused, naming the running one.
        again = second_run(env, tmp_path)
        assert again.returncode != 0 and "an embedded run is already going" in again.stderr
        assert f"pid {worker.pid}" in again.stderr
        # A second run with its own data but the first one's ports: refused, naming each taken port.
        other = {**env, "XINGTU_DATA_DIR": str(tmp_path / "other")}
        clash = second_run(other, tmp_path)
        assert clash.returncode != 0, clash.stderr
        assert f"Temporal frontend (TEMPORAL_PORT) port {port}" in clash.stderr
        assert f"UI (TEMPORAL_UI_PORT) port {env['TEMPORAL_UI_PORT']}" in clash.stderr
        assert f"codec server (PAYLOAD_CODEC_PORT) port {env['PAYLOAD_CODEC_PORT']}" in clash.stderr
        assert not (tmp_path / "other" / "run.json").exists() and not (tmp_path / "other" / "ledger.db").exists()
    finally:
        worker.send_signal(signal.SIGINT)
        code = worker.wait(timeout=60)
    assert code == 0, (tmp_path / "worker.log").read_text()
    # The state file stays after the run: the ledger and keys are still where it says, and the run is not alive.
    assert json.loads((data_dir / "run.json").read_text())["pid"] == worker.pid


def test_cli_refuses_to_create_a_ledger_unless_init(tmp_path: Path) -> None:
    """Issue 20 item 2: with no run and no ledger where the configuration points, a ledger command refuses and
    creates nothing; with --init it makes the ledger."""
    env = embedded_run_env(tmp_path / "data")
    refused = cli(env, tmp_path, "client", "c-1", "--deposit", "100", "--deposit-id", "dep-1")
    assert refused.returncode == 2 and f"no ledger at {tmp_path / 'data' / 'ledger.db'}" in refused.stderr
    assert "--init" in refused.stderr and not (tmp_path / "data").exists()
    created = cli(env, tmp_path, "--init", "--json", "client", "c-1", "--deposit", "100", "--deposit-id", "dep-1")
    assert created.returncode == 0, created.stderr
    assert json.loads(created.stdout)["available_fen"] == 100
    assert cli(env, ROOT / "docs", "--json", "balances", "client:c-1:").returncode == 0  # now it exists
    # A worker against a configured server refuses the same way (before connecting anywhere).
    worker_env = {**env, "TEMPORAL_ADDRESS": f"127.0.0.1:{free_port()}",
                  "LEDGER_DSN": str(tmp_path / "elsewhere" / "ledger.db")}
    worker = second_run(worker_env, tmp_path)
    assert worker.returncode != 0 and "no ledger at" in worker.stderr and "--init" in worker.stderr
    assert not (tmp_path / "elsewhere").exists()


def test_data_directory_is_the_checkouts_wherever_a_command_runs(tmp_path: Path) -> None:
    """Issue 20 item 2: without XINGTU_DATA_DIR, every command's data directory (state file, ledger, keys) is the
    checkout's .data/, also when run from outside the checkout."""
    env = {k: v for k, v in embedded_run_env(tmp_path).items() if k not in ("XINGTU_DATA_DIR", "LEDGER_DSN")}
    code = ("from starter import config; import worker; s = worker.Settings.from_env(); "
            "print(config.state_path(), s.ledger_dsn, s.payload_keys_file, s.data_dir, sep='|')")
    for cwd in (tmp_path, ROOT / "docs"):
        shown = subprocess.run([sys.executable, "-c", code], env=env, cwd=cwd, capture_output=True, text=True,
                               timeout=60, check=True).stdout.strip().split("|")
        data = ROOT / ".data"
        assert shown == [str(data / "run.json"), str(data / "ledger.db"), str(data / "payload-keys"), str(data)]


def test_set_variables_win_over_the_run_state(tmp_path: Path) -> None:
    """Issue 20 item 2: commands take the server, namespace, task queue, ledger and keys from the embedded run's
    state file, and LEDGER_DSN, the Temporal variables, TEMPORAL_TASK_QUEUE and PAYLOAD_KEYS_FILE override it."""
    env = {"XINGTU_DATA_DIR": str(tmp_path), "TEMPORAL_CONFIG_FILE": str(tmp_path / "none.toml")}
    path = config.write_state(config.RunState(
        pid=os.getpid(), temporal_address="127.0.0.1:7299", namespace="ns-run", task_queue="q-run",
        ledger_dsn="/srv/run/ledger.db", payload_keys_file="/srv/run/payload-keys", ui_url="http://localhost:8299",
        codec_url=None, started_at="2026-12-04T00:00:00+00:00"), env)
    assert path == tmp_path / "run.json" and stat.S_IMODE(path.stat().st_mode) == 0o600
    state = config.read_state(env)
    assert state is not None and state.running()
    target = connection.for_client(env)
    assert (target.address, target.namespace) == ("127.0.0.1:7299", "ns-run")
    assert config.ledger_dsn(env, state) == "/srv/run/ledger.db" and config.task_queue(env, state) == "q-run"
    assert config.payload_key_env(env, state)["PAYLOAD_KEYS_FILE"] == "/srv/run/payload-keys"
    explicit = {**env, "TEMPORAL_ADDRESS": "temporal.internal:7233", "TEMPORAL_NAMESPACE": "prod",
                "LEDGER_DSN": "postgresql://ledger@db/ledger", "TEMPORAL_TASK_QUEUE": "q-prod",
                "PAYLOAD_KEYS_FILE": "/etc/keys"}
    target = connection.for_client(explicit)
    assert (target.address, target.namespace) == ("temporal.internal:7233", "prod")
    assert config.ledger_dsn(explicit, state) == "postgresql://ledger@db/ledger"
    assert config.task_queue(explicit, state) == "q-prod"
    assert config.payload_key_env(explicit, state)["PAYLOAD_KEYS_FILE"] == "/etc/keys"
    # No run recorded and nothing set: the data directory's ledger, and the default local server.
    empty = {"XINGTU_DATA_DIR": str(tmp_path / "none"), "TEMPORAL_CONFIG_FILE": str(tmp_path / "none.toml")}
    assert config.ledger_dsn(empty, config.read_state(empty)) == str(tmp_path / "none" / "ledger.db")
    assert connection.for_client(empty).address == "127.0.0.1:7233"
