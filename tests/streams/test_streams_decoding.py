"""`value=`/`key=` as Python types, by the flow's annotation rules (streams/decoding.py):
what the steps get for each type and for a tombstone, what is dead-lettered, and the types
refused when the app is built."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, Optional

import msgspec
import pydantic
import pytest
from streams_kit import Running, create_topic, produce, read_all

from kafkito.flow import Record as FlowRecord
from kafkito.streams import Record, StreamsApp, StreamsError


class Point(msgspec.Struct):
    x: int


class User(pydantic.BaseModel):
    name: str


GOOD = b'{"x": 1, "name": "ana"}'
"""A value every type decodes (JSON, an object valid as Point and as User)."""

# spec name -> (spec, the outputs [type name, repr] for GOOD then for a tombstone, or None
# when the tombstone is dead-lettered)
CASES: dict[str, tuple[Any, tuple[list[str], list[str] | None]]] = {
    "bytes": (bytes, (["bytes", repr(GOOD)], None)),
    "str": (str, (["str", repr(GOOD.decode())], None)),
    "dict": (dict, (["dict", repr({"x": 1, "name": "ana"})], ["NoneType", "None"])),
    "list": (list[int], (["dict", repr({"x": 1, "name": "ana"})], ["NoneType", "None"])),
    "any": (Any, (["dict", repr({"x": 1, "name": "ana"})], ["NoneType", "None"])),
    "bytes-or-none": (bytes | None, (["bytes", repr(GOOD)], ["NoneType", "None"])),
    "optional-str": (Optional[str], (["str", repr(GOOD.decode())], ["NoneType", "None"])),  # noqa: UP045 - the Optional spelling is what is tested
    "struct": (Point, (["Point", "Point(x=1)"], None)),
    "model": (User, (["User", repr(User(name="ana"))], None)),
    "model-or-none": (User | None, (["User", repr(User(name="ana"))], ["NoneType", "None"])),
    "name-raw": ("raw", (["bytes", repr(GOOD)], ["NoneType", "None"])),
    "name-text": ("text", (["str", repr(GOOD.decode())], ["NoneType", "None"])),
    "callable": (lambda b: len(b or b""), (["int", str(len(GOOD))], ["int", "0"])),
}


def test_each_type_decodes_as_the_flow_does(
    kafkito_bootstrap: str,
    kafkito_topic: str,
    tmp_path: Path,
    start_app: Callable[[StreamsApp], Running],
) -> None:
    app = StreamsApp(f"app-{kafkito_topic}", brokers=kafkito_bootstrap, state_dir=tmp_path)
    out = f"{kafkito_topic}-out"
    for name, (spec, _) in CASES.items():
        topic = f"{kafkito_topic}-{name}"
        create_topic(kafkito_bootstrap, topic, 1)
        # good, then a tombstone; for str invalid UTF-8, for the model a failed validation
        records: list[tuple[Any, Any, int | None, int | None]] = [
            (f"{name}/good", GOOD, None, None),
            (f"{name}/tombstone", None, None, None),
        ]
        if name == "str":
            records.append(("str/bad-utf8", b"\xff\xfe", None, None))
        if name == "model":
            records.append(("model/invalid", b'{"name": 5}', None, None))
        produce(kafkito_bootstrap, topic, records)
        app.stream(topic, value=spec).map(lambda v: [type(v).__name__, repr(v)]).to(out)
    # key=bytes: the step sees the key's bytes; a keyless record has the key None (keys are
    # always nullable: no dead letter).
    keyed = f"{kafkito_topic}-keyed"
    create_topic(kafkito_bootstrap, keyed, 1)
    produce(kafkito_bootstrap, keyed, [("k", b"1", None, None), (None, b"2", None, None)])
    app.stream(keyed, key=bytes).map_record(
        lambda r: Record("keys", [repr(r.key), r.value], r.timestamp_ms)
    ).to(out)
    start_app(app)

    want: list[tuple[str, Any]] = [("keys", ["b'k'", 1]), ("keys", ["None", 2])]
    dead_keys = {"str/bad-utf8", "model/invalid"}
    for name, (_, (good, tombstone)) in CASES.items():
        want.append((f"{name}/good", good))
        if tombstone is None:
            dead_keys.add(f"{name}/tombstone")
        else:
            want.append((f"{name}/tombstone", tombstone))
    got = read_all(kafkito_bootstrap, out, expect=len(want))
    assert sorted(got, key=str) == sorted(want, key=str)
    dead = read_all(kafkito_bootstrap, app.dead_letter_topic, expect=len(dead_keys), raw=True)
    assert sorted(k.decode() for k, _ in dead) == sorted(dead_keys)


def test_a_table_of_a_model(
    kafkito_bootstrap: str,
    kafkito_topic: str,
    tmp_path: Path,
    start_app: Callable[[StreamsApp], Running],
) -> None:
    users, visits = f"{kafkito_topic}-users", f"{kafkito_topic}-visits"
    create_topic(kafkito_bootstrap, users, 2)
    create_topic(kafkito_bootstrap, visits, 2)
    # Rows that do not decode as User (a failed validation, not JSON) are dead-lettered, and
    # their keys have no row (c had one before).
    produce(
        kafkito_bootstrap,
        users,
        [
            ("a", {"name": "ana"}, None, None),
            ("c", {"name": "cy"}, None, None),
            ("c", {"nom": 1}, None, None),
            ("d", b"{", None, None),
        ],
    )
    app = StreamsApp(f"app-{kafkito_topic}", brokers=kafkito_bootstrap, state_dir=tmp_path)
    table = app.table(users, value=User | None)
    app.stream(visits, value=Point).join(
        table, lambda p, u: [p.x, None if u is None else u.name, type(u).__name__], left=True
    ).to(f"{kafkito_topic}-out")
    start_app(app)
    produce(
        kafkito_bootstrap,
        visits,
        [(k, {"x": x}, None, None) for x, k in enumerate(["a", "b", "c", "d"], start=1)],
    )
    got = read_all(kafkito_bootstrap, f"{kafkito_topic}-out", expect=4)
    assert sorted(got) == [
        ("a", [1, "ana", "User"]),
        ("b", [2, None, "NoneType"]),
        ("c", [3, None, "NoneType"]),
        ("d", [4, None, "NoneType"]),
    ]
    dead = read_all(kafkito_bootstrap, app.dead_letter_topic, expect=2, raw=True)
    assert sorted(dead) == [(b"c", b'{"nom": 1}'), (b"d", b"{")]


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        (int, "cannot decode a record's value into int"),
        (str | bytes, "a union of several types"),
        (Optional[int], "cannot decode a record's value into int"),  # noqa: UP045
        (FlowRecord[dict], "steps get values, not Records"),  # type: ignore[type-arg]
        ("yaml", "is not a decoder name"),
        (42, "neither a type nor a callable"),
    ],
)
def test_unsupported_types_are_refused_when_the_app_is_built(
    spec: Any, message: str, tmp_path: Path
) -> None:
    app = StreamsApp("refused", brokers="localhost:1", state_dir=tmp_path)
    with pytest.raises(StreamsError, match=message) as info:
        app.stream("t", value=spec)
    assert "for topic 't'" in str(info.value)
    with pytest.raises(StreamsError, match=message):
        app.table("t2", value=spec)
    with pytest.raises(StreamsError, match="key=int"):
        app.stream("t3", key=int)
    assert not app._sources and not app._stores  # nothing half-registered
