"""The handler's annotation picks the decoder (issue #22): the pure mapping, then each row of
the table through real flows (sync and async, single and batch) on the embedded broker.

This module uses `from __future__ import annotations`, so the handlers written out below have
string annotations that the flow must resolve, as a user's would.
"""

from __future__ import annotations

import asyncio
import collections.abc
import functools
import logging
import threading
import time
import typing
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, NewType, Optional

import msgspec
import pydantic
import pytest
from confluent_kafka import Consumer, TopicPartition
from harness import Running, committed, create_topic, produce, wait_for

from kafkito import Broker
from kafkito.flow import DecodeError, Flow, FlowError, Record, RetryPolicy
from kafkito.flow.annotations import (
    EMPTY,
    FIRST_RECORDS,
    AnnotationError,
    FirstDecodes,
    decoding_for,
    handler_decoding,
)
from kafkito.flow.codecs import decoder_for, decoder_of

StartFlow = Callable[[Flow], Running]
UserId = NewType("UserId", bytes)


class Click(pydantic.BaseModel):
    id: int
    user: str


class View(msgspec.Struct):
    id: int
    page: str


class Plain:
    """A class the flow has no way to decode into."""


# -- the pure mapping ------------------------------------------------------------------------

TABLE: list[tuple[Any, tuple[bool, Any, bool]]] = [
    # annotation: (pass_record, target, nullable)
    (EMPTY, (False, "json", True)),
    (Any, (False, "json", True)),
    (object, (False, "json", True)),
    (dict, (False, "json", True)),
    (dict[str, int], (False, "json", True)),
    (typing.Dict[str, Any], (False, "json", True)),  # noqa: UP006 - the old spelling too
    (list, (False, "json", True)),
    (list[int], (False, "json", True)),
    (collections.abc.Mapping[str, Any], (False, "json", True)),
    (Sequence[Any], (False, "json", True)),
    (dict | None, (False, "json", True)),
    (bytes, (False, "raw", False)),
    (bytes | None, (False, "raw", True)),
    (Optional[bytes], (False, "raw", True)),  # noqa: UP045 - the old spelling too
    (None | bytes, (False, "raw", True)),
    (bytearray, (False, "bytearray", False)),
    (memoryview | None, (False, "memoryview", True)),
    (UserId, (False, "raw", False)),
    (str, (False, "text", False)),
    (str | None, (False, "text", True)),
    (Click, (False, Click, False)),
    (Click | None, (False, Click, True)),
    (View, (False, View, False)),
    (Optional[View], (False, View, True)),  # noqa: UP045
    (Annotated[bytes, "meta"], (False, "raw", False)),
    (Annotated[str | None, "meta"], (False, "text", True)),
    (Optional[Annotated[Click, "meta"]], (False, Click, True)),  # noqa: UP045
    (Record, (True, "json", True)),
    (Record[bytes], (True, "raw", False)),
    (Record[bytes | None], (True, "raw", True)),
    (Record[str], (True, "text", False)),
    (Record[dict[str, int]], (True, "json", True)),
    (Record[Click], (True, Click, False)),
    (Annotated[Record[Annotated[View, 1]], 2], (True, View, False)),
]


@pytest.mark.parametrize(("annotation", "expected"), TABLE, ids=[repr(a) for a, _ in TABLE])
def test_annotation_table(annotation: Any, expected: tuple[bool, Any, bool]) -> None:
    decoding = decoding_for(annotation)
    assert decoding.problem is None
    assert (decoding.pass_record, decoding.target, decoding.nullable) == expected
    # a batch handler's list of it decodes each element the same way
    for batch in (list[annotation], Sequence[annotation]):  # type: ignore[valid-type]
        of_batch = decoding_for(batch, batch=True)
        assert of_batch.problem is None
        assert (of_batch.pass_record, of_batch.target, of_batch.nullable) == expected


def test_parameter_named_record_without_a_type_gets_records() -> None:
    assert decoding_for(EMPTY, name="record").pass_record
    assert decoding_for(Any, name="record").pass_record
    assert decoding_for(EMPTY, name="records", batch=True).pass_record
    assert decoding_for(list[Any], name="records", batch=True).pass_record
    assert decoding_for(list, name="records", batch=True).pass_record
    # a real type wins over the name: `record: bytes` is the value's bytes
    named_bytes = decoding_for(bytes, name="record")
    assert (named_bytes.pass_record, named_bytes.target) == (False, "raw")
    assert not decoding_for(EMPTY, name="value").pass_record


@pytest.mark.parametrize(
    ("annotation", "batch", "named"),
    [
        (int, False, "int"),
        (float | None, False, "float"),
        (Plain, False, "Plain"),
        (type(None), False, "None"),
        (str | bytes, False, "str | bytes"),
        (Click | View, False, "Click | View"),
        (Record[int], False, "Record[int]"),
        (Record[bytes] | None, False, "Record[bytes] | None"),
        (list[int], True, "int"),
        (bytes, True, "bytes"),
        (dict[str, int], True, "dict[str, int]"),
        ("Missing", False, "Missing"),
    ],
)
def test_annotations_the_flow_cannot_decode_to_are_problems(
    annotation: Any, batch: bool, named: str
) -> None:
    problem = decoding_for(annotation, batch=batch).problem
    assert problem is not None
    assert named in problem
    assert ("list[X]" if batch and named != "int" else "decoder=") in problem  # the way out


# -- reading a handler's signature -----------------------------------------------------------


def takes_bytes(value: bytes) -> None: ...


def takes_record_of_click(record: Record[Click | None]) -> None: ...


def takes_batch_of_str(values: list[str]) -> None: ...


class Handlers:
    def method(self, value: bytes | None) -> None: ...

    def __call__(self, value: str) -> None: ...


def test_string_annotations_are_resolved_in_the_handler_module() -> None:
    assert takes_bytes.__annotations__["value"] == "bytes"  # what the flow is given
    assert decoding_for(bytes) == handler_decoding(takes_bytes, batch=False)
    record = handler_decoding(takes_record_of_click, batch=False)
    assert (record.pass_record, record.target, record.nullable) == (True, Click, True)
    batch = handler_decoding(takes_batch_of_str, batch=True)
    assert (batch.pass_record, batch.target, batch.nullable) == (False, "text", False)
    # bound methods, callable objects and partials: the function behind them
    assert handler_decoding(Handlers().method, batch=False).target == "raw"
    assert handler_decoding(Handlers(), batch=False).target == "text"
    two = functools.partial(lambda prefix, value: None)
    assert handler_decoding(two, batch=False).target == "json"

    def with_default(value: bytes, extra: int = 0) -> None: ...

    assert handler_decoding(with_default, batch=False).target == "raw"


def test_local_types_resolve_through_the_closure_or_fail_clearly() -> None:
    class Local(pydantic.BaseModel):
        n: int

    def uses_local(value: Local) -> None:
        assert isinstance(value, Local)  # the body names Local: it is in the closure

    def only_annotated(value: Local) -> None: ...

    assert handler_decoding(uses_local, batch=False).target is Local
    problem = handler_decoding(only_annotated, batch=False).problem
    assert problem is not None
    assert "'Local'" in problem
    assert "NameError" in problem
    assert "module level" in problem


def test_handlers_without_a_parameter_or_a_signature() -> None:
    with pytest.raises(AnnotationError, match="must take one parameter"):
        handler_decoding(lambda: None, batch=False)
    assert handler_decoding(print, batch=False).target == "json"  # no signature: JSON


def test_flow_refuses_an_annotation_it_cannot_decode_to() -> None:
    def handle_int(value: int) -> None: ...

    def handle_plain(value: Plain) -> None: ...

    def handle_union(record: Record[str | bytes]) -> None: ...

    def handle_batch(values: bytes) -> None: ...

    for handler, named, batch_size in [
        (handle_int, "int", None),
        (handle_plain, "Plain", None),
        (handle_union, "str | bytes", None),
        (handle_batch, "bytes", 10),
    ]:
        with pytest.raises(FlowError) as caught:
            Flow("t", handler, group_id="g", brokers="127.0.0.1:1", batch_size=batch_size)
        assert named in str(caught.value)
        assert ("list[X]" if batch_size else "decoder=") in str(caught.value)
    with pytest.raises(FlowError, match="must take one parameter"):
        Flow("t", lambda: None, group_id="g", brokers="127.0.0.1:1")
    # an explicit decoder= or model= wins, and then the annotation is the user's business
    Flow("t", handle_int, group_id="g", brokers="127.0.0.1:1", decoder=int)
    Flow("t", handle_plain, group_id="g", brokers="127.0.0.1:1", model=Click)


# -- the decoders ----------------------------------------------------------------------------


def test_decoders_of_each_target() -> None:
    assert decoder_of("raw", nullable=False)(b"\x00\xff") == b"\x00\xff"
    assert decoder_of("raw", nullable=True)(None) is None
    with pytest.raises(DecodeError, match=r"tombstone.*bytes \| None"):
        decoder_of("raw", nullable=False)(None)
    assert decoder_of("text", nullable=False)("café".encode()) == "café"
    assert decoder_of("text", nullable=True)(None) is None
    with pytest.raises(DecodeError, match="not UTF-8"):
        decoder_of("text", nullable=False)(b"\xff")
    with pytest.raises(DecodeError, match=r"str \| None"):
        decoder_of("text", nullable=False)(None)
    arr = decoder_of("bytearray", nullable=False)(b"ab")
    assert type(arr) is bytearray and arr == b"ab"
    view = decoder_of("memoryview", nullable=True)(b"ab")
    assert type(view) is memoryview and view == b"ab"
    assert decoder_of("memoryview", nullable=True)(None) is None
    with pytest.raises(DecodeError):
        decoder_of("bytearray", nullable=False)(None)
    assert decoder_of("json", nullable=False)(None) is None  # JSON maps null to None, as before
    assert decoder_of(Click, nullable=True)(None) is None
    assert decoder_of(Click, nullable=True)(b'{"id": 1, "user": "u"}') == Click(id=1, user="u")
    with pytest.raises(DecodeError, match="null value"):
        decoder_of(Click, nullable=False)(None)
    # explicit names: str means UTF-8 text (it used to give "b'...'" through str(bytes))
    assert decoder_for(str)(b"abc") == "abc"
    assert decoder_for("text")(None) is None
    assert decoder_for("raw")(None) is None


def test_first_decodes_reports_once_when_the_first_records_all_fail() -> None:
    calls: list[str | None] = []
    watch = FirstDecodes(
        decoder_of("json", nullable=True), how="JSON (x)", fix="try bytes", done=calls.append
    )
    for _ in range(FIRST_RECORDS - 1):
        with pytest.raises(DecodeError):
            watch.decode(b"not json")
    assert calls == []
    with pytest.raises(DecodeError):
        watch.decode(b"not json")
    assert len(calls) == 1
    loud = calls[0]
    assert loud is not None
    assert f"the first {FIRST_RECORDS} records all failed to decode as JSON (x)" in loud
    assert "try bytes" in loud
    assert "not JSON" in loud  # the last error
    with pytest.raises(DecodeError):  # later calls still decode (and raise), never report again
        watch.decode(b"still not")
    assert watch.decode(b"1") == 1
    assert len(calls) == 1


def test_first_decodes_stays_quiet_once_a_record_decoded() -> None:
    calls: list[str | None] = []
    watch = FirstDecodes(decoder_of("json", nullable=True), how="-", fix="-", done=calls.append)
    assert watch.decode(b"[]") == []
    for _ in range(FIRST_RECORDS * 2):
        with pytest.raises(DecodeError):
            watch.decode(b"x")
    assert calls == [None]


def test_the_flow_decodes_bare_once_a_record_decoded() -> None:
    """The hot path pays nothing for the watch: after one decoded record the flow's decoder is
    the bare one chosen at construction."""
    flow = Flow("t", takes_bytes, group_id="g", brokers="127.0.0.1:1")
    watching = flow.decode
    assert flow.decode(b"x") == b"x"
    assert flow.decode is not watching
    assert flow.decode is decoder_of("raw", nullable=False)


def test_the_flow_logs_one_error_when_its_first_records_fail(
    caplog: pytest.LogCaptureFixture,
) -> None:
    def handle(value: str) -> None: ...

    flow = Flow("t", handle, group_id="g", brokers="127.0.0.1:1", name="f")
    for _ in range(FIRST_RECORDS + 2):
        with pytest.raises(DecodeError):
            flow.decode(b"\xff")
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1
    assert errors[0].startswith(f"flow f: the first {FIRST_RECORDS} records all failed")
    assert "UTF-8 text (the handler's annotation: str)" in errors[0]
    assert "annotate the handler's value bytes" in errors[0]
    assert errors[0].endswith("they go to t.dlq")
    assert flow.decode is decoder_of("text", nullable=False)
    dropping = Flow("t", handle, group_id="g", brokers="127.0.0.1:1", dead_letter=False)
    for _ in range(FIRST_RECORDS):
        with pytest.raises(DecodeError):
            dropping.decode(None)
    assert "tombstone" in caplog.records[-1].getMessage()
    assert "they are dropped" in caplog.records[-1].getMessage()


# -- through real flows ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def shared_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """One embedded broker for this module: every test uses its own topics and groups (each
    group has one member, so no initial rebalance delay is needed)."""
    data_dir = str(tmp_path_factory.mktemp("annot") / "data")
    with Broker(port=0, data_dir=data_dir, group_initial_rebalance_delay_ms=0) as bootstrap:
        yield bootstrap


@pytest.fixture
def topic() -> str:
    return f"t-{uuid.uuid4().hex[:12]}"


@dataclass(frozen=True)
class Case:
    """One row of the table: what is produced, what the handler gets, what is dead-lettered."""

    annotation: Any
    produced: list[bytes | None]
    handled: list[Any]
    dead: list[bytes | None]


MIXED: list[bytes | None] = [b"\x00\xffraw", b"caf\xc3\xa9", b'{"a": 1}', b"", None, b"[1, 2]"]
JSON_VALUES: list[bytes | None] = [b'{"a": 1}', b"not json", None, b"[1, 2]", b"3"]
CLICKS: list[bytes | None] = [b'{"id": 1, "user": "u"}', b'{"id": "x"}', b"nope", None]
VIEWS: list[bytes | None] = [b'{"id": 1, "page": "/"}', b'{"id": "x"}', b"nope", None]

CASES = {
    # the issue: a `bytes` annotation used to mean JSON, and all of these went to the DLQ
    "bytes": Case(bytes, MIXED, [v for v in MIXED if v is not None], [None]),
    "bytes|None": Case(bytes | None, MIXED, MIXED, []),
    "bytearray": Case(bytearray, MIXED, [bytearray(v) for v in MIXED if v is not None], [None]),
    "memoryview|None": Case(
        memoryview | None, MIXED, [None if v is None else memoryview(v) for v in MIXED], []
    ),
    "str": Case(str, MIXED, ["café", '{"a": 1}', "", "[1, 2]"], [b"\x00\xffraw", None]),
    "Optional[str]": Case(
        Optional[str],  # noqa: UP045
        MIXED,
        ["café", '{"a": 1}', "", None, "[1, 2]"],
        [b"\x00\xffraw"],
    ),
    "dict": Case(dict, JSON_VALUES, [{"a": 1}, None, [1, 2], 3], [b"not json"]),
    "list": Case(list[Any], JSON_VALUES, [{"a": 1}, None, [1, 2], 3], [b"not json"]),
    "Any": Case(Any, JSON_VALUES, [{"a": 1}, None, [1, 2], 3], [b"not json"]),
    "none": Case(EMPTY, JSON_VALUES, [{"a": 1}, None, [1, 2], 3], [b"not json"]),
    "pydantic": Case(Click, CLICKS, [Click(id=1, user="u")], CLICKS[1:]),
    "pydantic|None": Case(Click | None, CLICKS, [Click(id=1, user="u"), None], CLICKS[1:3]),
    "msgspec": Case(View, VIEWS, [View(id=1, page="/")], VIEWS[1:]),
    "Record[bytes]": Case(Record[bytes], MIXED, [v for v in MIXED if v is not None], [None]),
    "Record[str|None]": Case(
        Record[str | None], MIXED, ["café", '{"a": 1}', "", None, "[1, 2]"], [b"\x00\xffraw"]
    ),
}
VARIANTS = ("sync", "async", "sync-batch", "async-batch")


def handler_for(
    annotation: Any, variant: str, seen: list[Any], lock: threading.Lock
) -> Callable[..., Any]:
    """A handler of the variant, annotated as a user would write `annotation`; it notes the
    values it gets (a Record's value for Record[...] annotations)."""
    wants_record = typing.get_origin(annotation) is Record

    def note(items: list[Any]) -> None:
        if wants_record:
            assert all(isinstance(item, Record) for item in items)
            items = [item.value for item in items]
        with lock:
            seen.extend(items)

    def one(value: Any) -> None:
        note([value])

    async def one_async(value: Any) -> None:
        await asyncio.sleep(0)
        note([value])

    def batch(values: Any) -> None:
        assert isinstance(values, list)
        note(values)

    async def batch_async(values: Any) -> None:
        await asyncio.sleep(0)
        note(values)

    handler = {"sync": one, "async": one_async, "sync-batch": batch, "async-batch": batch_async}[
        variant
    ]
    name = "values" if variant.endswith("batch") else "value"
    handler.__annotations__ = {"return": None}
    if annotation is not EMPTY:
        batch_of = list[annotation]  # type: ignore[valid-type]
        handler.__annotations__[name] = batch_of if variant.endswith("batch") else annotation
    return handler


def same(got: list[Any], expected: list[Any]) -> bool:
    """Equal values of the same types (b"" and "" differ, bytearray is not bytes)."""
    return len(got) == len(expected) and all(
        type(g) is type(e) and g == e for g, e in zip(got, expected, strict=True)
    )


@pytest.mark.parametrize("name", list(CASES))
def test_each_annotation_through_sync_async_single_and_batch_flows(
    name: str, shared_broker: str, topic: str, start_flow: StartFlow
) -> None:
    """Four flows (sync, async, sync batch, async batch) read the same records with the same
    annotation; each hands over exactly the decoded values and dead-letters exactly the rest."""
    case = CASES[name]
    create_topic(shared_broker, topic)
    produce(shared_broker, topic, [(b"k", value) for value in case.produced])
    seen: dict[str, list[Any]] = {variant: [] for variant in VARIANTS}
    lock = threading.Lock()
    running = {
        variant: start_flow(
            Flow(
                topic,
                handler_for(case.annotation, variant, seen[variant], lock),
                group_id=f"g-{variant}",
                brokers=shared_broker,
                retry=RetryPolicy.none(),
                dead_letter_topic=functools.partial(lambda v, t: f"{t}.dlq-{v}", variant),
                batch_size=10 if variant.endswith("batch") else None,
                batch_timeout_s=0.05,
                commit_interval_s=0.05,
            )
        )
        for variant in VARIANTS
    }
    count = len(case.produced)
    for variant in VARIANTS:
        wait_for(
            lambda v=variant: committed(shared_broker, f"g-{v}", topic) == [count],
            what=f"{variant}: all {count} records committed",
        )
    for flow in running.values():
        flow.flow.stop()  # all at once; then wait for each
    for flow in running.values():
        flow.stop()
    dead = read_topics(shared_broker, [f"{topic}.dlq-{v}" for v in VARIANTS], len(case.dead) * 4)
    for variant in VARIANTS:
        assert same(seen[variant], case.handled), (variant, seen[variant], case.handled)
        assert dead[f"{topic}.dlq-{variant}"] == case.dead, variant


def read_topics(bootstrap: str, topics: list[str], expect: int) -> dict[str, list[bytes | None]]:
    """The values of single-partition `topics`, read by one consumer until `expect` arrived
    (then a short wait for more that should not be there)."""
    consumer = Consumer(
        {"bootstrap.servers": bootstrap, "group.id": "unused", "enable.auto.commit": False}
    )
    consumer.assign([TopicPartition(t, 0, 0) for t in topics])
    values: dict[str, list[bytes | None]] = {t: [] for t in topics}
    got = 0
    deadline = time.monotonic() + 30
    while got < expect and time.monotonic() < deadline:
        for msg in consumer.consume(100, timeout=0.2):
            if msg.error() is None:
                values[msg.topic()].append(msg.value())
                got += 1
    for msg in consumer.consume(100, timeout=0.3):
        if msg.error() is None:
            values[msg.topic()].append(msg.value())
    consumer.close()
    return values


def test_the_issue_bytes_handler_gets_every_record(
    shared_broker: str, topic: str, start_flow: StartFlow, caplog: pytest.LogCaptureFixture
) -> None:
    """Issue #22 as reported: `def handle(value: bytes)` on plain byte values, written out (a
    string annotation under `from __future__ import annotations`): every record is handled."""
    values = [f"line {i}".encode() for i in range(20)]
    produce(shared_broker, topic, [(None, v) for v in values])
    got: list[bytes] = []

    def handle(value: bytes) -> None:
        got.append(value)

    running = start_flow(Flow(topic, handle, group_id="g", brokers=shared_broker))
    wait_for(lambda: len(got) >= 20, what="20 records")
    running.stop()
    assert sorted(got) == sorted(values)  # records without a key have no order among them
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


def test_explicit_decoder_or_model_wins_over_the_annotation(
    shared_broker: str, topic: str, start_flow: StartFlow
) -> None:
    produce(shared_broker, topic, [(None, b'{"id": 7, "user": "u"}')])
    as_json: list[Any] = []
    as_model: list[Any] = []

    def handle_json(value: bytes) -> None:
        as_json.append(value)

    def handle_model(value: int) -> None:  # not decodable: model= decides
        as_model.append(value)

    start_flow(Flow(topic, handle_json, group_id="g1", brokers=shared_broker, decoder="json"))
    start_flow(Flow(topic, handle_model, group_id="g2", brokers=shared_broker, model=Click))
    wait_for(lambda: bool(as_json and as_model), what="both flows")
    assert as_json == [{"id": 7, "user": "u"}]
    assert as_model == [Click(id=7, user="u")]


def test_a_flow_whose_first_records_all_fail_to_decode_says_so_once(
    shared_broker: str, topic: str, start_flow: StartFlow, caplog: pytest.LogCaptureFixture
) -> None:
    """Plain byte values, a handler typed `dict` (JSON): one ERROR line names the annotation
    and the fix, besides the one line per dead-lettered record."""
    count = FIRST_RECORDS + 3
    produce(shared_broker, topic, [(b"k", f"plain {i}".encode()) for i in range(count)])
    calls: list[Any] = []

    def handle(value: dict[str, Any]) -> None:
        calls.append(value)

    caplog.set_level(logging.INFO, logger="kafkito.flow")
    start_flow(Flow(topic, handle, group_id="g", brokers=shared_broker, commit_interval_s=0.05))
    wait_for(lambda: committed(shared_broker, "g", topic) == [count], what="all dead-lettered")
    assert calls == []
    loud = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert len(loud) == 1, loud
    assert f"the first {FIRST_RECORDS} records all failed to decode as JSON" in loud[0]
    assert "dict[str, Any]" in loud[0]
    assert "bytes" in loud[0] and "decoder='raw'" in loud[0]
    assert f"{topic}.dlq" in loud[0]
    lines = [r for r in caplog.records if "dead-lettered" in r.getMessage()]
    assert len(lines) == count


def test_no_alarm_when_a_record_decoded_first(
    shared_broker: str, topic: str, start_flow: StartFlow, caplog: pytest.LogCaptureFixture
) -> None:
    count = FIRST_RECORDS + 3
    produce(
        shared_broker,
        topic,
        [(b"k", b'{"ok": true}')] + [(b"k", b"poison") for _ in range(count - 1)],
    )
    calls: list[Any] = []
    caplog.set_level(logging.INFO, logger="kafkito.flow")
    start_flow(
        Flow(topic, calls.append, group_id="g", brokers=shared_broker, commit_interval_s=0.05)
    )
    wait_for(lambda: committed(shared_broker, "g", topic) == [count], what="all resolved")
    assert calls == [{"ok": True}]
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


def test_unresolvable_local_annotation_fails_at_construction(tmp_path: Path) -> None:
    """A model defined inside a function and named only in the annotation cannot be found
    (the annotation is a string): the Flow says so, rather than decoding JSON silently."""

    class Order(pydantic.BaseModel):
        id: int

    def handle(value: Order) -> None: ...

    with pytest.raises(FlowError, match=r"'Order'.*module level"):
        Flow("t", handle, group_id="g", brokers="127.0.0.1:1")
    Flow("t", handle, group_id="g", brokers="127.0.0.1:1", model=Order)  # explicit: fine
