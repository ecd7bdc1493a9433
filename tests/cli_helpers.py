"""Helpers for the CLI tests: an embedded run (`worker.py` with no TEMPORAL_ADDRESS: dev server + worker + ledger
under a temporary data directory, found by the CLI through its state file) and `python -m starter` as a user runs
it (a subprocess). No tests."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def isolated_env(data_dir: Path) -> dict[str, str]:
    """Nothing of the developer's own configuration (TEMPORAL_*, LEDGER_DSN, keys) may point a command elsewhere."""
    env = {key: value for key, value in os.environ.items()
           if not key.startswith(("TEMPORAL_", "LEDGER_", "PAYLOAD_", "XINGTU_", "METRICS_", "PYTHONDEVMODE"))}
    return {**env, "PYTHONPATH": str(ROOT), "XINGTU_DATA_DIR": str(data_dir), "TEMPORAL_PORT": str(free_port()),
            "TEMPORAL_UI_PORT": str(free_port()), "PAYLOAD_CODEC_PORT": str(free_port()),
            "TEMPORAL_CONFIG_FILE": str(data_dir.parent / "no-temporal.toml")}


@dataclass
class Cli:
    env: dict[str, str]
    cwd: Path

    def run(self, *args: str, timeout: float = 90) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "starter", *args], env=self.env, cwd=self.cwd,
                              capture_output=True, text=True, timeout=timeout, check=False)

    def json(self, *args: str, code: int = 0) -> Any:
        """The one JSON object the command prints with --json (given after the command: a global flag may be)."""
        done = self.run(*args, "--json")
        assert done.returncode == code, (args, done.returncode, done.stdout, done.stderr)
        assert "Traceback" not in done.stdout + done.stderr, done.stderr
        return json.loads(done.stdout)

    def until(self, args: tuple[str, ...], predicate: Callable[[Any], bool], seconds: float = 60) -> Any:
        deadline = time.monotonic() + seconds
        while True:
            shown = self.json(*args)
            if predicate(shown):
                return shown
            assert time.monotonic() < deadline, (args, shown)
            time.sleep(0.5)


@contextmanager
def embedded_run(tmp_path: Path) -> Iterator[Cli]:
    """The README's run (worker.py alone), and a CLI pointed at it by nothing but the run's state file."""
    data_dir = tmp_path / "data"
    env = isolated_env(data_dir)
    log_path = tmp_path / "worker.log"
    with log_path.open("w") as log:
        worker = subprocess.Popen([sys.executable, str(ROOT / "worker.py")], env=env, cwd=tmp_path, stdout=log,
                                  stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 120
        while "worker running" not in log_path.read_text():
            assert worker.poll() is None, log_path.read_text()
            assert time.monotonic() < deadline, "worker did not start"
            time.sleep(0.5)
        client_env = {k: v for k, v in env.items() if k not in ("TEMPORAL_PORT", "TEMPORAL_UI_PORT")}
        yield Cli(client_env, ROOT)
    finally:
        worker.send_signal(signal.SIGINT)
        try:
            worker.wait(timeout=60)
        except subprocess.TimeoutExpired:
            worker.kill()
