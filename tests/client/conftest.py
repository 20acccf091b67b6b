"""Client-library fixtures: every behaviour runs against kafkito's broker and against Tansu.

`cluster` is parametrized over both brokers. Tests that need consumer groups take
`group_cluster`, which skips the kafkito leg while kafkito's broker does not serve the group
APIs yet (checked from its live ApiVersions registry, so the tests start running the moment
the handlers land).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from clientkit import FAST_GROUP, Cluster, kafkito_serves_groups

from kafkito import Broker


@pytest.fixture(params=["kafkito", "tansu"])
def cluster(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Cluster]:
    if request.param == "tansu":
        proc = request.getfixturevalue("tansu")
        yield Cluster("tansu", proc.bootstrap, True, dict(FAST_GROUP))
        return
    with Broker(port=0, data_dir=str(tmp_path / "data")) as bootstrap:
        yield Cluster("kafkito", bootstrap, kafkito_serves_groups(), dict(FAST_GROUP))


@pytest.fixture
def group_cluster(cluster: Cluster) -> Cluster:
    if not cluster.groups:
        pytest.skip("kafkito's broker does not serve the consumer-group APIs yet")
    return cluster


@pytest.fixture
def topic() -> str:
    return f"c-{uuid.uuid4().hex[:12]}"


@pytest.fixture
def group() -> str:
    return f"g-{uuid.uuid4().hex[:12]}"
