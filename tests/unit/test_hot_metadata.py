"""The hand-written Metadata encoder writes what kio writes, byte for byte, in every version."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from kafkito.errors import ErrorCode
from kafkito.protocol import codec
from kafkito.protocol.hot.metadata import METADATA_VERSIONS, encode_metadata_response

NODE = 3


def _body(version: int) -> dict[str, Any]:
    topics: list[dict[str, Any]] = [
        {
            "error_code": ErrorCode.none,
            "name": "orders",
            "topic_id": uuid.UUID("0123456789abcdef0123456789abcdef"),
            "is_internal": False,
            "partition_count": 300,  # indexes past one byte, and past a one-byte uvarint count
            "leader_epoch": 0,
            "topic_authorized_operations": 0b1111111000,
        },
        {
            "error_code": ErrorCode.none,
            "name": "__consumer_offsets",
            "topic_id": uuid.UUID(int=7),
            "is_internal": True,
            "partition_count": 1,
            "leader_epoch": 5,
            "topic_authorized_operations": -(2**31),
        },
        {
            "error_code": ErrorCode.unknown_topic_or_partition,
            "name": "missing",
            "topic_id": uuid.UUID(int=0),
            "is_internal": False,
            "partition_count": 0,
            "leader_epoch": 0,
            "topic_authorized_operations": -(2**31),
        },
    ]
    if version >= 12:  # asked by id, unknown: no name
        topics.append(
            {
                **topics[2],
                "error_code": ErrorCode.unknown_topic_id,
                "name": None,
                "topic_id": uuid.uuid4(),
            }
        )
    return {
        "throttle_time": 17,
        "brokers": [{"node_id": NODE, "host": "broker.example", "port": 9092, "rack": None}],
        "cluster_id": "kafkito-cluster",
        "controller_id": NODE,
        "topics": topics,
        "cluster_authorized_operations": 0b111000,
    }


def _as_kio_data(body: dict[str, Any]) -> dict[str, Any]:
    """The same response with partition lists, as codec.build wants it."""
    topics = []
    for topic in body["topics"]:
        data = {k: v for k, v in topic.items() if k not in ("partition_count", "leader_epoch")}
        data["partitions"] = [
            {
                "error_code": ErrorCode.none,
                "partition_index": p,
                "leader_id": NODE,
                "leader_epoch": topic["leader_epoch"],
                "replica_nodes": [NODE],
                "isr_nodes": [NODE],
                "offline_replicas": [],
            }
            for p in range(topic["partition_count"])
        ]
        topics.append(data)
    return {**body, "topics": topics}


@pytest.mark.parametrize("version", list(METADATA_VERSIONS))
def test_the_metadata_encoder_writes_kio_bytes(version: int) -> None:
    body = _body(version)
    header = codec.response_header(3, version, 99)
    expected = codec.encode_response(3, version, 99, _as_kio_data(body))
    assert expected.startswith(header)
    assert encode_metadata_response(version, body) == expected[len(header) :]


def test_a_big_topic_decodes_back() -> None:
    body = _body(12)
    body["topics"][0]["partition_count"] = 10_000
    raw = encode_metadata_response(12, body)
    header = codec.response_header(3, 12, 1)
    assert raw == codec.encode_response(3, 12, 1, _as_kio_data(body))[len(header) :]
