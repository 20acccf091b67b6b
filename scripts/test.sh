#!/usr/bin/env bash
# The whole test suite, set-up included: lint, types, then every test against real brokers.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh test
. .venv/bin/activate
echo "==> ruff" >&2
ruff check src tests bench
ruff format --check src tests bench
echo "==> mypy --strict" >&2
mypy
echo "==> pytest" >&2
exec pytest "$@"
