#!/usr/bin/env bash
# The test command: `bash scripts/test.sh [pytest arguments]`.
# Installs the project into .venv when needed, runs pytest, and exits with pytest's own verdict.
set -euo pipefail
cd "$(dirname "$0")/.."

source scripts/install.sh

# A process can abort at interpreter exit after pytest has finished (DESIGN: exit 134, PyGILState_Release).
# A tiny plugin records pytest's own exit status, so a crash during teardown cannot hide or fake a verdict.
plugin_dir=$(mktemp -d)
trap 'rm -rf "$plugin_dir"' EXIT
cat > "$plugin_dir/record_pytest_status.py" <<'PY'
import os

import pytest


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    with open(os.environ["PYTEST_STATUS_FILE"], "w") as status_file:
        status_file.write(str(int(exitstatus)))
PY
export PYTEST_STATUS_FILE="$plugin_dir/status"

set +e
PYTHONPATH="$plugin_dir${PYTHONPATH:+:$PYTHONPATH}" .venv/bin/python -m pytest -p record_pytest_status -q "$@"
exit_code=$?
set -e

if [ ! -s "$PYTEST_STATUS_FILE" ]; then
    echo "test.sh: pytest did not finish its session (process exit $exit_code)" >&2
    [ "$exit_code" -ne 0 ] || exit_code=1
    exit "$exit_code"
fi
status=$(cat "$PYTEST_STATUS_FILE")
if [ "$exit_code" -ne "$status" ]; then
    echo "test.sh: WARNING: python exited $exit_code after pytest finished with $status; reporting pytest's $status" >&2
fi
case "$status" in
    0) exit 0 ;;
    5) echo "test.sh: pytest collected no tests: that is a failure" >&2; exit 5 ;;
    *) exit "$status" ;;
esac
