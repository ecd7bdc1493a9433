#!/usr/bin/env bash
# Sourced by run.sh and test.sh: makes .venv and installs the project into it, again only when pyproject.toml
# changed since the last install (the stamp holds its hash).
python=${PYTHON:-python3.11}
command -v "$python" >/dev/null 2>&1 || python=python3
[ -x .venv/bin/python ] || "$python" -m venv .venv

stamp=.venv/.xingtu-installed
wanted=$(sha256sum pyproject.toml | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null || true)" != "$wanted" ]; then
    .venv/bin/python -m pip install --disable-pip-version-check -q -e '.[test,dev]'
    echo "$wanted" > "$stamp"
fi
