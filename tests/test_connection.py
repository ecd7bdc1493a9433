"""Issue 20 item 1: every process connects as the `temporal` CLI is configured (temporalio.envconfig through
starter/connection.py): profile file, TEMPORAL_PROFILE, the standard variables, TLS, mutual TLS and API keys.

The mTLS test runs the real worker (`python worker.py`, configured by TEMPORAL_TLS_* variables) and the CLI
(configured by a temporal.toml profile) through a TLS-terminating proxy that requires a client certificate, in
front of the dev server (which has no TLS flags), and takes a task from publication to its refund (AM-3, AM-7,
AM-13), checking the money in the ledger."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from temporalio.service import TLSConfig
from temporalio.testing import WorkflowEnvironment

import worker
from starter import client as api
from starter import connection
from tests.conftest import TEST_PAYLOAD_KEYS, data_converter
from tests.tls_proxy import SERVER_NAME, make_pki, mtls_proxy
from workflows.contract.names import ALL_SEARCH_ATTRIBUTES

ROOT = Path(__file__).resolve().parents[1]
CLOUD_PROFILE = """
[profile.default]
address = "127.0.0.1:7233"

[profile.cloud]
address = "xingtu-prod.a1b2c.tmprl.cloud:7233"
namespace = "xingtu-prod.a1b2c"
api_key = "key-from-the-file"
"""


def clean_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    """This process's environment without any Temporal, ledger or key setting of the machine's user."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TEMPORAL_", "LEDGER_", "PAYLOAD_", "XINGTU_"))}
    return {**env, "PYTHONPATH": str(ROOT), "XINGTU_DATA_DIR": str(tmp_path / "data"),
            "TEMPORAL_CONFIG_FILE": str(tmp_path / "no-such-temporal.toml"), **extra}


def test_api_key_profile_builds_the_connect_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A Temporal Cloud profile with an API key: its address and namespace, the key, TLS on (as the `temporal`
    CLI does); TEMPORAL_API_KEY overrides the file's key; the worker takes it as a configured server (no embedded
    run) and the client helper passes all of it to Client.connect. The key never shows in a description."""
    (tmp_path / "temporal.toml").write_text(CLOUD_PROFILE)
    env = clean_env(tmp_path, TEMPORAL_CONFIG_FILE=str(tmp_path / "temporal.toml"), TEMPORAL_PROFILE="cloud")
    loaded = connection.load(env)
    assert (loaded.address, loaded.namespace) == ("xingtu-prod.a1b2c.tmprl.cloud:7233", "xingtu-prod.a1b2c")
    assert dict(loaded.options) == {"api_key": "key-from-the-file", "tls": True}
    assert "key-from-the-file" not in loaded.describe() and "TLS + API key" in loaded.describe()
    overridden = connection.load({**env, "TEMPORAL_API_KEY": "key-from-the-env"})
    assert overridden.options["api_key"] == "key-from-the-env"
    # Without TEMPORAL_PROFILE the file's default profile applies.
    assert connection.load({**env, "TEMPORAL_PROFILE": ""}).address == "127.0.0.1:7233"

    for key in [k for k in os.environ if k.startswith("TEMPORAL_")]:
        monkeypatch.delenv(key)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    settings = worker.Settings.from_env()
    assert settings.address == "xingtu-prod.a1b2c.tmprl.cloud:7233" and settings.namespace == "xingtu-prod.a1b2c"
    assert dict(settings.connection_options) == {"api_key": "key-from-the-file", "tls": True}
    seen: dict[str, Any] = {}

    async def fake_connect(target_host: str, **options: Any) -> str:
        seen.update(options, target_host=target_host)
        return "client"

    monkeypatch.setattr(connection.Client, "connect", fake_connect)
    assert asyncio.run(api.connect()) == "client"
    assert seen["target_host"] == "xingtu-prod.a1b2c.tmprl.cloud:7233"
    assert (seen["namespace"], seen["api_key"], seen["tls"]) == ("xingtu-prod.a1b2c", "key-from-the-file", True)


def test_mtls_variables_build_a_tls_config_and_a_bad_profile_is_refused(tmp_path: Path) -> None:
    pki = make_pki(tmp_path / "pki")
    env = clean_env(tmp_path, TEMPORAL_ADDRESS="temporal.internal:7233", TEMPORAL_NAMESPACE="ops",
                    TEMPORAL_TLS_CLIENT_CERT_PATH=str(pki.client_cert),
                    TEMPORAL_TLS_CLIENT_KEY_PATH=str(pki.client_key),
                    TEMPORAL_TLS_SERVER_CA_CERT_PATH=str(pki.ca_cert), TEMPORAL_TLS_SERVER_NAME=SERVER_NAME)
    loaded = connection.load(env)
    tls = loaded.options["tls"]
    assert isinstance(tls, TLSConfig) and tls.domain == SERVER_NAME
    assert tls.client_cert == pki.client_cert.read_bytes() and tls.client_private_key == pki.client_key.read_bytes()
    assert tls.server_root_ca_cert == pki.ca_cert.read_bytes()
    assert loaded.describe().startswith("temporal.internal:7233 namespace ops (mTLS;")
    # Nothing configured: no address (the worker starts the embedded server); the CLI goes to 127.0.0.1:7233.
    assert connection.load(clean_env(tmp_path)).address is None
    assert connection.for_client(clean_env(tmp_path)).address == connection.LOCAL_ADDRESS
    (tmp_path / "temporal.toml").write_text(CLOUD_PROFILE)
    missing = clean_env(tmp_path, TEMPORAL_CONFIG_FILE=str(tmp_path / "temporal.toml"), TEMPORAL_PROFILE="staging")
    with pytest.raises(connection.ConnectionConfigError, match="staging"):
        connection.load(missing)
    refused = subprocess.run([sys.executable, "-m", "starter", "state", "t-1"], env=missing, cwd=tmp_path,
                             capture_output=True, text=True, timeout=60, check=False)
    assert refused.returncode == 2 and "Profile 'staging' not found" in refused.stderr


def cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "starter", *args], env=env, cwd=ROOT / "docs",
                          capture_output=True, text=True, timeout=90, check=False)


@pytest.mark.timeout(300)
async def test_am_13_task_refunded_with_worker_and_cli_over_mtls(tmp_path: Path) -> None:
    pki = make_pki(tmp_path / "pki")
    server = await WorkflowEnvironment.start_local(
        dev_server_existing_path=worker.temporal_cli_path(), search_attributes=ALL_SEARCH_ATTRIBUTES,
        data_converter=data_converter)
    dev_port = int(server.client.service_client.config.target_host.rpartition(":")[2])
    task_queue = f"mtls-{uuid.uuid4().hex[:8]}"
    ledger = tmp_path / "ledger.db"
    try:
        with mtls_proxy(pki, dev_port) as (proxy_port, proxy_log):
            address = f"127.0.0.1:{proxy_port}"
            common = {"TEMPORAL_TASK_QUEUE": task_queue, "LEDGER_DSN": str(ledger), "PAYLOAD_KEYS": TEST_PAYLOAD_KEYS}
            # The worker: configured by the standard variables.
            worker_env = clean_env(
                tmp_path, **common, TEMPORAL_ADDRESS=address, TEMPORAL_TLS_SERVER_NAME=SERVER_NAME,
                TEMPORAL_TLS_SERVER_CA_CERT_PATH=str(pki.ca_cert), TEMPORAL_TLS_CLIENT_CERT_PATH=str(pki.client_cert),
                TEMPORAL_TLS_CLIENT_KEY_PATH=str(pki.client_key))
            log_path = tmp_path / "worker.log"
            with log_path.open("w") as log:
                process = await asyncio.create_subprocess_exec(
                    sys.executable, str(ROOT / "worker.py"), "--init", env=worker_env, cwd=tmp_path, stdout=log,
                    stderr=subprocess.STDOUT)
            try:
                deadline = time.monotonic() + 90
                while "worker running" not in log_path.read_text():
                    assert process.returncode is None, log_path.read_text()
                    assert time.monotonic() < deadline, "worker did not start"
                    await asyncio.sleep(0.5)
                assert "mTLS" in log_path.read_text()
                # The CLI: configured by a profile of a temporal.toml file.
                (tmp_path / "temporal.toml").write_text(f"""
[profile.secure]
address = "{address}"
[profile.secure.tls]
server_name = "{SERVER_NAME}"
server_ca_cert_path = "{pki.ca_cert}"
client_cert_path = "{pki.client_cert}"
client_key_path = "{pki.client_key}"

[profile.no-client-cert]
address = "{address}"
[profile.no-client-cert.tls]
server_name = "{SERVER_NAME}"
server_ca_cert_path = "{pki.ca_cert}"

[profile.other-ca]
address = "{address}"
[profile.other-ca.tls]
server_name = "{SERVER_NAME}"
server_ca_cert_path = "{pki.ca_cert}"
client_cert_path = "{pki.stranger_cert}"
client_key_path = "{pki.stranger_key}"
""")
                cli_env = clean_env(tmp_path, **common, TEMPORAL_CONFIG_FILE=str(tmp_path / "temporal.toml"),
                                    TEMPORAL_PROFILE="secure")
                await drive_to_refund(cli_env)
                accepted = len(proxy_log.accepted)
                assert accepted >= 2 and set(proxy_log.accepted) == {"xingtu worker"}
                # Without a client certificate, or with one of another CA, the proxy refuses the handshake.
                for profile in ("no-client-cert", "other-ca"):
                    refused = len(proxy_log.refused)
                    stranger = await asyncio.to_thread(cli, {**cli_env, "TEMPORAL_PROFILE": profile},
                                                       "state", "demo-task-1")
                    assert stranger.returncode == 1, stranger.stderr
                    assert stranger.stderr.startswith(f"Unreachable: cannot connect to Temporal at {address}"), \
                        stranger.stderr
                    assert len(proxy_log.refused) > refused, profile
                    assert "certificate" in proxy_log.refused[-1].lower(), proxy_log.refused
                assert len(proxy_log.accepted) == accepted
            finally:
                process.send_signal(signal.SIGINT)
                code = await asyncio.wait_for(process.wait(), 60)
            assert code == 0, log_path.read_text()
    finally:
        await server.shutdown()


async def drive_to_refund(env: dict[str, str]) -> None:
    """AM-3: publication freezes budget + 10% (5,500 yuan); AM-7: cancelled with nothing mounted; AM-13: all of
    it refunded to the client, the escrow empty and the ledger balanced."""
    async def run(*args: str) -> Any:
        result = await asyncio.to_thread(cli, env, "--json", *args)
        assert result.returncode == 0, result.stderr
        return json.loads(result.stdout) if result.stdout.strip().startswith(("{", "[")) else result.stdout

    topped_up = await run("client", "demo-client", "--deposit", "1000000", "--deposit-id", "dep-1")
    assert topped_up["available_fen"] == 1_000_000
    await run("creator", "cr-demo")
    published = await run("publish", str(ROOT / "examples" / "task.json"))
    assert published["frozen_fen"] == 550_000
    assert (await run("balances", "client:demo-client:available"))[0]["available_fen"] == 450_000
    cancelled = await run("cancel", "demo-task-1", "--reason", "mTLS check over", "--by", "ops-1")
    assert cancelled["ended"]["end_reason"] == "cancelled" and cancelled["ended"]["frozen_fen"] == 550_000
    # It all comes back once the pieces have closed: with none, at once (refunded, or still to come a moment).
    assert cancelled["money"]["refunded_fen"] + cancelled["money"]["refund_to_come_fen"] == 550_000
    deadline = time.monotonic() + 60
    while (state := await run("state", "demo-task-1"))["money"]["refunded_fen"] != 550_000:
        assert time.monotonic() < deadline, state
        await asyncio.sleep(0.5)
    money = await run("ledger", "demo-task-1")
    assert money["money"]["escrow_balance_fen"] == 0 and money["conservation_total"] == 0
    balances = await run("balances", "client:demo-client:available")
    assert balances == [{"account": "client:demo-client:available", "balance_fen": 1_000_000,
                         "available_fen": 1_000_000}]


def test_the_bench_connects_as_configured_by_the_profile(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Issue 20 item 1: the bench (bench/harness.py) goes to the configured server with its API key and TLS, as the
    worker and the CLI do, instead of starting a dev server of its own."""
    from bench.harness import bench_server

    (tmp_path / "temporal.toml").write_text(CLOUD_PROFILE)
    for key in [k for k in os.environ if k.startswith("TEMPORAL_")]:
        monkeypatch.delenv(key)
    monkeypatch.setenv("TEMPORAL_CONFIG_FILE", str(tmp_path / "temporal.toml"))
    monkeypatch.setenv("TEMPORAL_PROFILE", "cloud")
    seen: dict[str, Any] = {}

    class Reached(Exception):
        pass

    async def fake_connect(target_host: str, **options: Any) -> None:
        seen.update(options, target_host=target_host)
        raise Reached

    monkeypatch.setattr(connection.Client, "connect", fake_connect)

    async def enter() -> None:
        async with bench_server(1, tmp_path):
            pass

    with pytest.raises(Reached):
        asyncio.run(enter())
    assert seen["target_host"] == "xingtu-prod.a1b2c.tmprl.cloud:7233"
    assert (seen["namespace"], seen["api_key"], seen["tls"]) == ("xingtu-prod.a1b2c", "key-from-the-file", True)
