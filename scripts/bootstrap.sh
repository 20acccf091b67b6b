#!/usr/bin/env bash
# Set up what kafkito needs on a fresh Debian/Ubuntu machine, idempotently.
#
#   scripts/bootstrap.sh demo   a virtual environment in .venv with kafkito[demo] (no root needed)
#   scripts/bootstrap.sh test   also Debian's kcat and chromium (compatibility and browser tests),
#                               a JRE and Maven with Apache Kafka's jars (the reference broker,
#                               cached in ~/.cache/kafkito) and kafkito[test] (test tools, the
#                               other Kafka clients, Tansu)
set -euo pipefail
cd "$(dirname "$0")/.."
what="${1:-test}"

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

if [ "$what" = test ] && [ "${KAFKITO_SKIP_APT:-0}" != 1 ]; then
    missing=()
    command -v kcat >/dev/null 2>&1 || missing+=(kcat)
    command -v chromium >/dev/null 2>&1 || missing+=(chromium)
    command -v java >/dev/null 2>&1 || missing+=(openjdk-17-jre-headless)
    command -v mvn >/dev/null 2>&1 || missing+=(maven)
    if [ ${#missing[@]} -gt 0 ]; then
        if command -v apt-get >/dev/null 2>&1; then
            echo "==> installing Debian packages: ${missing[*]}" >&2
            as_root apt-get update -qq
            DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq --no-install-recommends \
                "${missing[@]}" >/dev/null
        else
            echo "==> apt-get not found: install ${missing[*]} by hand for their tests" >&2
        fi
    fi
fi

PYTHON="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
    echo "==> creating .venv with $($PYTHON --version)" >&2
    "$PYTHON" -m venv .venv
fi
stamp=".venv/.kafkito-installed-$what"
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
    echo "==> installing kafkito[$what] into .venv" >&2
    .venv/bin/python -m pip install -q --upgrade pip >/dev/null
    .venv/bin/python -m pip install -q -e ".[$what]"
    touch "$stamp"
fi

if [ "$what" = test ] && [ "${KAFKITO_SKIP_APACHE_KAFKA:-0}" != 1 ]; then
    # Apache Kafka's jars, resolved by Maven once and cached (kafkito.testing.apache_kafka)
    .venv/bin/python -m kafkito.testing.apache_kafka --resolve-only >&2
fi
