#!/usr/bin/env bash
# The run command: `bash scripts/run.sh`. Installs what it needs into .venv (first time only), then starts the
# embedded Temporal dev server (UI on http://localhost:8233, file database under .data/) and the worker on task
# queue `xingtu`. With TEMPORAL_ADDRESS set it connects to that server instead. Ctrl-C stops both.
set -euo pipefail
cd "$(dirname "$0")/.."

source scripts/install.sh
exec .venv/bin/python worker.py
