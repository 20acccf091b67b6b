"""The `kafkito` pytest plugin (entry point `pytest11`): registers kafkito.testing.fixtures.

Installed with kafkito, so any project's tests can ask for `kafkito_bootstrap`,
`kafkito_topic`, `kafkito_broker`, `kafkito_env` and `apache_kafka` without a conftest.
Importing it starts nothing: a broker starts when a test first asks for it.
Disable with `-p no:kafkito`.
"""

from __future__ import annotations

from kafkito.testing.fixtures import (
    apache_kafka,
    kafkito_bootstrap,
    kafkito_broker,
    kafkito_env,
    kafkito_topic,
)

__all__ = ["apache_kafka", "kafkito_bootstrap", "kafkito_broker", "kafkito_env", "kafkito_topic"]

from kafkito.testing.fixtures import pubsub_emulator

__all__ += ["pubsub_emulator"]
