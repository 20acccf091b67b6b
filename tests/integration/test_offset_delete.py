"""OffsetDelete is durable: a deleted offset stays deleted after a restart, the others stay.

(The answers themselves are compared with Apache Kafka in tests/compat/test_differential_apis.py.)
"""

from __future__ import annotations

from pathlib import Path

from kafkito import Broker
from kafkito.testing.wire import WireClient

COMMIT, FETCH, DELETE, CREATE = 8, 9, 47, 19


def committed(client: WireClient, group: str, topic: str) -> list[tuple[int, int]]:
    body = {"group_id": group, "topics": [{"name": topic, "partition_indexes": [0, 1]}]}
    answer = client.request(FETCH, 5, body)
    return [(p.partition_index, p.committed_offset) for p in answer.topics[0].partitions]


def test_deleted_offsets_stay_deleted_after_a_restart(tmp_path: Path) -> None:
    data = str(tmp_path / "data")
    with Broker(port=0, data_dir=data) as bootstrap, WireClient(bootstrap) as client:
        created = client.request(
            CREATE,
            5,
            {
                "topics": [{"name": "od", "num_partitions": 2, "replication_factor": 1}],
                "timeout": 10_000,
                "validate_only": False,
            },
        )
        assert created.topics[0].error_code == 0
        commit = {
            "group_id": "g",
            "generation_id_or_member_epoch": -1,
            "member_id": "",
            "retention_time": -1,
            "topics": [
                {
                    "name": "od",
                    "partitions": [
                        {"partition_index": p, "committed_offset": o, "committed_metadata": ""}
                        for p, o in ((0, 5), (1, 7))
                    ],
                }
            ],
        }
        answer = client.request(COMMIT, 5, commit)
        assert [p.error_code for p in answer.topics[0].partitions] == [0, 0]
        deleted = client.request(
            DELETE,
            0,
            {"group_id": "g", "topics": [{"name": "od", "partitions": [{"partition_index": 0}]}]},
        )
        assert deleted.error_code == 0 and deleted.topics[0].partitions[0].error_code == 0
        assert committed(client, "g", "od") == [(0, -1), (1, 7)]
    with Broker(port=0, data_dir=data) as bootstrap, WireClient(bootstrap) as client:
        assert committed(client, "g", "od") == [(0, -1), (1, 7)]
