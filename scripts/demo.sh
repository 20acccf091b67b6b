#!/usr/bin/env bash
# The main job, set-up included: start the embedded broker and run the demo against it.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh demo
exec .venv/bin/kafkito demo "$@"
