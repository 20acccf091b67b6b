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
# Three workers, one test file each at a time (--dist loadfile keeps a module's fixtures on one
# worker): the suite spends most of its time waiting on brokers and clients, so 3 workers on 2
# cores took it from 22 to 9 minutes. Each worker starts its own session brokers (Apache Kafka
# included). `bash scripts/test.sh -n 0` runs it serially.
exec pytest -n 3 --dist loadfile "$@"
