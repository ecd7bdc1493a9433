"""How every process of the project connects to Temporal (issue 20 item 1): the worker, `python -m starter`,
`starter.client.connect()` and the bench all go through `load()` and `connect()` here.

The configuration is the `temporal` CLI's, read by the SDK's `temporalio.envconfig`: a profile of the TOML file
(`TEMPORAL_CONFIG_FILE`, default `~/.config/temporalio/temporal.toml`), chosen by `TEMPORAL_PROFILE` (default
"default"), overridden by the standard variables: TEMPORAL_ADDRESS, TEMPORAL_NAMESPACE, TEMPORAL_API_KEY,
TEMPORAL_TLS (true/false), TEMPORAL_TLS_CLIENT_CERT_PATH / _DATA, TEMPORAL_TLS_CLIENT_KEY_PATH / _DATA,
TEMPORAL_TLS_SERVER_CA_CERT_PATH / _DATA, TEMPORAL_TLS_SERVER_NAME, TEMPORAL_GRPC_META_<NAME>. An API key turns TLS
on (Temporal Cloud); a client certificate and key make it mutual TLS.

Where no server address is configured at all, the worker starts the embedded dev server and every other command
goes to that embedded run (its state file, starter/config.py), else to 127.0.0.1:7233.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from temporalio.client import Client
from temporalio.envconfig import ClientConfigProfile
from temporalio.service import TLSConfig

from starter import config
from workflows.contract.common import DEFAULT_NAMESPACE

LOCAL_ADDRESS = "127.0.0.1:7233"


class ConnectionConfigError(Exception):
    """The Temporal configuration cannot be read (an unknown profile, a malformed file, an unreadable cert)."""


class ConnectionFailed(Exception):
    """Client.connect failed; the message says where to and how it was configured."""


@dataclass(frozen=True)
class Connection:
    """Where and how to reach Temporal: `address` None when nothing names a server (the embedded run's case);
    `options` are Client.connect's `tls`, `api_key` and `rpc_metadata` as the configuration gives them."""

    address: str | None
    namespace: str = DEFAULT_NAMESPACE
    options: Mapping[str, Any] = field(default_factory=dict)
    source: str = "default"

    def describe(self) -> str:
        """For logs and error messages: never the key or certificate material."""
        tls = self.options.get("tls")
        if isinstance(tls, TLSConfig):
            security = "mTLS" if tls.client_cert else "TLS"
        else:
            security = "TLS" if tls else "plaintext"
        if self.options.get("api_key"):
            security += " + API key"
        return f"{self.address} namespace {self.namespace} ({security}; from {self.source})"


def _config_file(env: Mapping[str, str]) -> Path:
    """The TOML file envconfig reads: TEMPORAL_CONFIG_FILE, else the user's config directory's (Linux)."""
    if explicit := env.get("TEMPORAL_CONFIG_FILE"):
        return Path(explicit)
    return Path(env.get("XDG_CONFIG_HOME") or Path.home() / ".config") / "temporalio" / "temporal.toml"


def _profile_source(env: Mapping[str, str]) -> str:
    """Where the configuration came from, for messages: the profile file if there is one, and the variables."""
    parts = []
    if (path := _config_file(env)).is_file():
        parts.append(f"profile {env.get('TEMPORAL_PROFILE') or 'default'!r} of {path}")
    parts += sorted(k for k in env if k.startswith(("TEMPORAL_ADDRESS", "TEMPORAL_NAMESPACE", "TEMPORAL_API_KEY",
                                                    "TEMPORAL_TLS", "TEMPORAL_GRPC_META")) and env[k])
    return ", ".join(parts) or "default"


def load(env: Mapping[str, str] | None = None, state: config.RunState | None = None) -> Connection:
    """The connection the environment and the profile file configure (temporalio.envconfig, as the `temporal`
    CLI reads them); with no address there, the embedded run's `state` if given, else address None."""
    env = os.environ if env is None else env
    try:
        profile = ClientConfigProfile.load(override_env_vars=dict(env))
        connect_config = profile.to_client_connect_config()
    except Exception as error:  # the SDK's bridge raises its own ConfigError, OSError for unreadable files
        raise ConnectionConfigError(f"Temporal configuration ({_profile_source(env)}): {error}") from error
    options: dict[str, Any] = {key: value for key, value in connect_config.items()
                               if key in ("tls", "api_key", "rpc_metadata")}
    address = connect_config.get("target_host")
    if address:
        return Connection(address, connect_config.get("namespace") or DEFAULT_NAMESPACE, options,
                          _profile_source(env))
    if state is not None:
        return Connection(state.temporal_address, connect_config.get("namespace") or state.namespace, options,
                          f"the embedded run's {config.state_path(env)}")
    return Connection(None, connect_config.get("namespace") or DEFAULT_NAMESPACE, options)


def for_client(env: Mapping[str, str] | None = None) -> Connection:
    """What a client command uses: the configured server, else the embedded run, else 127.0.0.1:7233."""
    env = os.environ if env is None else env
    connection = load(env, config.read_state(env))
    if connection.address is None:
        return Connection(LOCAL_ADDRESS, connection.namespace, connection.options, "default")
    return connection


async def connect(connection: Connection, **client_options: Any) -> Client:
    """Client.connect with the connection's address, namespace, TLS, API key and gRPC metadata; `client_options`
    (data_converter, runtime, interceptors, ...) pass through."""
    if connection.address is None:
        raise ValueError("no Temporal server configured (the embedded run starts its own)")
    try:
        return await Client.connect(connection.address, namespace=connection.namespace,
                                    **{**connection.options, **client_options})
    except RuntimeError as error:  # the SDK's bridge: unreachable, refused handshake, bad certificate, ...
        raise ConnectionFailed(f"cannot connect to Temporal at {connection.describe()}: {error}") from error
