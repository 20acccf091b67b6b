"""codec.build: plain handler data to kio dataclasses, and the refusal of unknown keys.

A misspelled field used to be dropped silently; for `error_code` that meant an error was
answered as success (0). These tests pin the refusal and the version-independence it keeps.
"""

from __future__ import annotations

import pytest

from kafkito.errors import ErrorCode
from kafkito.protocol.codec import build, encode_response, known_fields, response_schema

PRODUCE, METADATA, API_VERSIONS = 0, 3, 18


def test_a_misspelled_field_is_refused() -> None:
    schema = response_schema(API_VERSIONS, 3)
    with pytest.raises(KeyError, match="eror_code"):
        build(schema, {"eror_code": 35, "api_keys": []})


def test_a_misspelled_nested_field_is_refused() -> None:
    body = {
        "responses": [
            {"name": "t", "partition_responses": [{"index": 0, "errorcode": 3, "base_offset": 0}]}
        ]
    }
    with pytest.raises(KeyError, match="errorcode"):
        encode_response(PRODUCE, 9, 1, body)


def test_a_field_of_a_later_version_is_dropped_from_an_older_one() -> None:
    # `log_start_offset` exists from Produce v5: a handler writes it whatever the version.
    body = {
        "responses": [
            {
                "name": "t",
                "partition_responses": [
                    {"index": 0, "error_code": 0, "base_offset": 7, "log_start_offset": 0}
                ],
            }
        ]
    }
    old = build(response_schema(PRODUCE, 3), body)
    assert not hasattr(old.responses[0].partition_responses[0], "log_start_offset")
    new = build(response_schema(PRODUCE, 9), body)
    assert new.responses[0].partition_responses[0].log_start_offset == 0


def test_known_fields_span_every_version() -> None:
    v0 = response_schema(METADATA, 0)
    assert "cluster_id" not in {f for f in v0.__dataclass_fields__}
    assert "cluster_id" in known_fields(v0)
    assert "error_codee" not in known_fields(v0)


def test_the_error_code_reaches_the_wire() -> None:
    payload = encode_response(
        API_VERSIONS, 0, 5, {"error_code": ErrorCode.unsupported_version, "api_keys": []}
    )
    assert payload[4:6] == (35).to_bytes(2, "big")
