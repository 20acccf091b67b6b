#!/usr/bin/env bash
# Set up everything kafkito needs on a fresh Debian/Ubuntu machine, idempotently:
# Debian packages (kcat, for the compatibility tests), a virtual environment in .venv,
# and kafkito with its test dependencies installed in it (editable).
set -euo pipefail
cd "$(dirname "$0")/.."

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

if [ "${KAFKITO_SKIP_APT:-0}" != 1 ] && ! command -v kcat >/dev/null 2>&1; then
    if command -v apt-get >/dev/null 2>&1; then
        echo "==> installing Debian packages: kcat" >&2
        as_root apt-get update -qq
        DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq kcat >/dev/null
    else
        echo "==> apt-get not found: install kcat by hand to run its compatibility tests" >&2
    fi
fi

PYTHON="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
    echo "==> creating .venv with $($PYTHON --version)" >&2
    "$PYTHON" -m venv .venv
fi
stamp=.venv/.kafkito-installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
    echo "==> installing kafkito and its test dependencies into .venv" >&2
    .venv/bin/python -m pip install -q --upgrade pip >/dev/null
    .venv/bin/python -m pip install -q -e ".[test]"
    touch "$stamp"
fi
