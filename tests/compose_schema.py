"""What `docker compose config` would refuse in docker-compose.yml, checked in Python (issue 20 item 5), so that
the file is validated on every machine, with or without the docker-compose binary.

Covers the parts of the Compose specification this project's file uses: the top-level and service keys, image
references, build, depends_on (existing services, conditions, health checks, profiles), ports, volumes (named ones
declared), environment, health checks, restart policies, profiles, command/entrypoint, variable interpolation,
and duplicate keys (the Go YAML parser of Compose v2 refuses them; PyYAML silently keeps the last).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

TOP_LEVEL = {"version", "name", "services", "volumes", "networks", "secrets", "configs", "include"}
SERVICE_KEYS = {
    "image", "build", "command", "entrypoint", "environment", "env_file", "depends_on", "ports", "expose",
    "volumes", "healthcheck", "restart", "profiles", "networks", "labels", "user", "working_dir", "container_name",
    "extra_hosts", "logging", "deploy", "stop_grace_period", "stop_signal", "init", "tmpfs", "ulimits", "cap_add",
    "cap_drop", "privileged", "read_only", "shm_size", "hostname", "secrets", "configs", "mem_limit", "cpus",
    "platform", "pull_policy", "stdin_open", "tty",
}
BUILD_KEYS = {"context", "dockerfile", "args", "target", "labels", "cache_from", "network", "shm_size"}
HEALTHCHECK_KEYS = {"test", "interval", "timeout", "retries", "start_period", "start_interval", "disable"}
CONDITIONS = {"service_started", "service_healthy", "service_completed_successfully"}
RESTART = re.compile(r"^(no|always|unless-stopped|on-failure(:\d+)?)$")
DURATION = re.compile(r"^(\d+(\.\d+)?(ns|us|ms|s|m|h))+$")
PROFILE = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]+$")
SERVICE_NAME = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]*$")
# Docker's reference grammar, simplified: [registry[:port]/]path[:tag][@digest], lower-case path components.
IMAGE = re.compile(r"^(?:[a-zA-Z0-9.-]+(?::\d+)?/)?[a-z0-9]+(?:[._-][a-z0-9]+)*(?:/[a-z0-9]+(?:[._-][a-z0-9]+)*)*"
                   r"(?::[\w][\w.-]{0,127})?(?:@sha256:[0-9a-f]{64})?$")
PORT_RANGE = re.compile(r"^\d+(-\d+)?$")
IPV4 = re.compile(r"^\d{1,3}(\.\d{1,3}){3}$")
VOLUME_MODES = {"ro", "rw", "z", "Z", "cached", "delegated", "consistent", "nocopy"}
# $$ (a literal $), $NAME, ${NAME}, ${NAME:-default}, ${NAME-default}, ${NAME:?message}, ${NAME?message},
# ${NAME:+value}, ${NAME+value}; anything else after a $ is an interpolation error.
INTERPOLATION = re.compile(r"\$(?:\$|[A-Za-z_][A-Za-z0-9_]*|\{[A-Za-z_][A-Za-z0-9_]*(?:(?::?[-?+])[^}]*)?\})")


class UniqueKeyLoader(yaml.SafeLoader):
    """A safe loader that refuses a mapping key given twice."""


def _mapping_without_duplicates(loader: UniqueKeyLoader, node: yaml.MappingNode, deep: bool = False) -> Any:
    seen: set[Any] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            raise yaml.constructor.ConstructorError(None, None, f"duplicate key {key!r}", key_node.start_mark)
        seen.add(key)
    return loader.construct_mapping(node, deep=deep)


UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _mapping_without_duplicates)


def load(path: Path) -> dict[str, Any]:
    document = yaml.load(path.read_text(), Loader=UniqueKeyLoader)
    assert isinstance(document, dict), f"{path}: not a mapping"
    return document


def published_port(port: Any) -> tuple[str, str, str] | None:
    """`[ip:][host:]container[/protocol]` as (ip, host, container), ip and host "" when absent; None if invalid."""
    text, _, protocol = str(port).partition("/")
    if protocol not in ("", "tcp", "udp", "sctp"):
        return None
    parts = text.split(":")
    if len(parts) > 3:
        return None
    ip, host, container = ["", "", *parts][-3:]
    if (ip and not IPV4.match(ip)) or (host and not PORT_RANGE.match(host)) or not PORT_RANGE.match(container):
        return None
    if not all(0 < int(n) < 65536 for n in re.findall(r"\d+", f"{host}-{container}")):
        return None
    return ip, host, container


def _strings(value: Any) -> list[str]:
    """Every string in a YAML value (keys included), for the interpolation check."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for k, v in value.items() for s in (*_strings(k), *_strings(v))]
    if isinstance(value, list):
        return [s for item in value for s in _strings(item)]
    return []


def _interpolation_problems(document: dict[str, Any]) -> list[str]:
    problems = []
    for text in _strings(document):
        rest = INTERPOLATION.sub("", text)
        if "$" in rest:
            problems.append(f"invalid interpolation in {text!r}")
    return problems


def problems(document: dict[str, Any], root: Path) -> list[str]:
    """Every reason `docker compose config` (or `up`) would refuse the document, as sentences; [] when none."""
    found = _interpolation_problems(document)
    found += [f"unknown top-level key {k!r}" for k in document if k not in TOP_LEVEL and not k.startswith("x-")]
    services = document.get("services")
    if not isinstance(services, dict) or not services:
        return [*found, "no services"]
    volumes = document.get("volumes") or {}
    for name, service in services.items():
        if not SERVICE_NAME.match(name):
            found.append(f"{name}: invalid service name")
        if not isinstance(service, dict):
            found.append(f"{name}: not a mapping")
            continue
        found += [f"{name}: {problem}" for problem in _service_problems(service, services, volumes, root)]
    published: dict[str, str] = {}
    for name, service in services.items():
        for port in service.get("ports", []) if isinstance(service, dict) else []:
            parsed = published_port(port)
            if parsed and parsed[1]:
                where = f"{parsed[0] or '0.0.0.0'}:{parsed[1]}"
                if where in published:
                    found.append(f"{name}: host port {where} already published by {published[where]}")
                published[where] = name
    return found


def _service_problems(service: dict[str, Any], services: dict[str, Any], volumes: dict[str, Any],
                      root: Path) -> list[str]:
    found = [f"unknown key {k!r}" for k in service if k not in SERVICE_KEYS and not k.startswith("x-")]
    if "image" not in service and "build" not in service:
        found.append("neither image nor build")
    if "image" in service and not IMAGE.match(str(service["image"])):
        found.append(f"invalid image reference {service['image']!r}")
    found += _build_problems(service.get("build"), root)
    found += _depends_on_problems(service, services)
    for port in service.get("ports", []):
        if published_port(port) is None:
            found.append(f"invalid port {port!r}")
    for volume in service.get("volumes", []):
        found += _volume_problems(volume, volumes, root)
    environment = service.get("environment", {})
    if isinstance(environment, list):
        found += [f"environment entry {e!r} is not NAME=value" for e in environment
                  if not re.match(r"^[A-Za-z_][A-Za-z0-9_.]*(=|$)", str(e))]
    elif isinstance(environment, dict):
        found += [f"environment {k}: a {type(v).__name__} is not a scalar" for k, v in environment.items()
                  if isinstance(v, (dict, list))]
    else:
        found.append("environment is neither a mapping nor a list")
    found += _healthcheck_problems(service.get("healthcheck"))
    if "restart" in service and not RESTART.match(str(service["restart"])):
        found.append(f"invalid restart policy {service['restart']!r}")
    for profile in service.get("profiles", []):
        if not isinstance(profile, str) or not PROFILE.match(profile):
            found.append(f"invalid profile {profile!r}")
    for key in ("command", "entrypoint"):
        value = service.get(key)
        if value is not None and not (isinstance(value, str)
                                      or (isinstance(value, list) and all(isinstance(v, str) for v in value))):
            found.append(f"{key} is neither a string nor a list of strings")
    return found


def _build_problems(build: Any, root: Path) -> list[str]:
    if build is None:
        return []
    if isinstance(build, str):
        build = {"context": build}
    if not isinstance(build, dict):
        return ["build is neither a path nor a mapping"]
    found = [f"unknown build key {k!r}" for k in build if k not in BUILD_KEYS]
    context = root / str(build.get("context", "."))
    if not context.is_dir():
        found.append(f"build context {context} is not a directory")
    elif not (context / str(build.get("dockerfile", "Dockerfile"))).is_file():
        found.append(f"no {build.get('dockerfile', 'Dockerfile')} in the build context")
    return found


def _depends_on_problems(service: dict[str, Any], services: dict[str, Any]) -> list[str]:
    depends = service.get("depends_on", {})
    if isinstance(depends, list):
        depends = {name: {"condition": "service_started"} for name in depends}
    found = []
    for dependency, spec in depends.items():
        if dependency not in services:
            found.append(f"depends on undefined service {dependency!r}")
            continue
        condition = (spec or {}).get("condition", "service_started")
        if condition not in CONDITIONS:
            found.append(f"depends on {dependency} with unknown condition {condition!r}")
        if condition == "service_healthy" and not services[dependency].get("healthcheck"):
            found.append(f"waits for {dependency} to be healthy, which has no health check")
        if services[dependency].get("profiles") and not service.get("profiles"):
            found.append(f"depends on {dependency}, which runs only in profiles {services[dependency]['profiles']}")
    return found


def _volume_problems(volume: Any, volumes: dict[str, Any], root: Path) -> list[str]:
    if isinstance(volume, dict):
        return [] if {"type", "target"} <= set(volume) else [f"volume {volume!r} lacks type or target"]
    source, _, rest = str(volume).partition(":")
    target, _, mode = rest.partition(":")
    found = []
    if not rest:  # an anonymous volume: just the container path
        target, source = source, ""
    if not target.startswith("/"):
        found.append(f"volume {volume!r}: the container path must be absolute")
    if mode and not set(mode.split(",")) <= VOLUME_MODES:
        found.append(f"volume {volume!r}: unknown mode {mode!r}")
    if source.startswith((".", "/", "~")):
        if source.startswith(".") and not (root / source).exists():
            found.append(f"volume {volume!r}: {source} does not exist")
    elif source and source not in volumes:
        found.append(f"volume {volume!r}: named volume {source!r} is not declared under volumes")
    return found


def _healthcheck_problems(check: Any) -> list[str]:
    if check is None:
        return []
    found = [f"unknown healthcheck key {k!r}" for k in check if k not in HEALTHCHECK_KEYS]
    test = check.get("test")
    if isinstance(test, list):
        if not test or test[0] not in {"CMD", "CMD-SHELL", "NONE"} or not all(isinstance(t, str) for t in test):
            found.append(f"healthcheck test {test!r} must start with CMD, CMD-SHELL or NONE")
    elif not isinstance(test, str):
        found.append("healthcheck test is neither a string nor a list")
    for key in ("interval", "timeout", "start_period", "start_interval"):
        if key in check and not DURATION.match(str(check[key])):
            found.append(f"healthcheck {key} {check[key]!r} is not a duration")
    if "retries" in check and not (isinstance(check["retries"], int) and check["retries"] >= 0):
        found.append(f"healthcheck retries {check['retries']!r} is not a whole number")
    return found
