"""Admin clients of the three Python Kafka libraries, connected to the test's broker."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest
from aiokafka.admin import AIOKafkaAdminClient
from confluent_kafka.admin import AdminClient
from kafka.admin import KafkaAdminClient

ADMIN_TIMEOUT_S = 15


@pytest.fixture
def admin(broker: str) -> AdminClient:
    return AdminClient({"bootstrap.servers": broker})


@pytest.fixture
def kp_admin(broker: str) -> Iterator[KafkaAdminClient]:
    client = KafkaAdminClient(bootstrap_servers=broker, request_timeout_ms=ADMIN_TIMEOUT_S * 1000)
    try:
        yield client
    finally:
        client.close()


@pytest.fixture
async def aio_admin(broker: str) -> AsyncIterator[AIOKafkaAdminClient]:
    client = AIOKafkaAdminClient(
        bootstrap_servers=broker, request_timeout_ms=ADMIN_TIMEOUT_S * 1000
    )
    await client.start()
    try:
        yield client
    finally:
        await client.close()
