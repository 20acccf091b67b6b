"""Differential admin tests: one scenario, run on kafkito and on Apache Kafka, equal answers.

A scenario is a function `(target) -> observations`: it talks TCP to one broker with a real
admin client (or the raw `WireClient` where a client hides the answer) and returns plain data
(dicts, lists, tuples, str, int, bool, None). `same(scenario, kafkito, kafka)` runs it on both
and asserts the normalised observations equal, printing a unified diff of the two when they
are not, so a failure reads as "kafkito said this, Kafka said that".

The reference is one Apache Kafka node (`kafka_reference`, session-wide), and kafkito's broker
runs with node id 1 like it, so node ids need no normalising. What is normalised, and why that
is legitimate (nothing else is):

* the bootstrap address and port: each broker listens on a free port of its own;
* topic ids: random UUIDs on both; a non-zero id becomes "<id>", zero stays zero (a zero id
  where Kafka has one, or the reverse, is still a difference);
* the cluster id: random per cluster on both;
* error messages are not compared unless a scenario says so: they are free text, and Kafka's
  speak of Java classes; scenarios compare error codes, which clients act on.
* one config answer of the reference is aligned by `align_config` before comparing, an
  artefact of the test set-up, never a kafkito answer: `min.insync.replicas`: Kafka 4.x's
  storage format writes it as a cluster-wide dynamic default for its eligible leader
  replicas, and the launcher writes it in server.properties; both entries (value 1, sources
  3 and 4) are dropped, leaving Kafka's default (`ELR_DEFAULT`).

Names: the reference lives for the whole session, so every scenario makes its topic and group
names unique (`unique()`), the same on both brokers. Dynamic broker configs set on the reference
are removed again by the scenario (`restore_broker_configs`), since other tests share it.
"""

from __future__ import annotations

import difflib
import pprint
import re
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from kafkito.errors import ErrorCode
from kafkito.testing.wire import WireClient

ZERO_UUID = uuid.UUID(int=0)
REFERENCE_NODE_ID = 1
"""The reference's node id; kafkito's broker is started with the same id."""


@dataclass(frozen=True)
class Target:
    """One broker under comparison."""

    name: str
    """"kafkito" or "kafka", for messages."""
    bootstrap: str
    cluster_id: str = ""

    @property
    def node(self) -> str:
        return str(REFERENCE_NODE_ID)

    def wire(self) -> WireClient:
        return WireClient(self.bootstrap.split(",")[0], timeout_s=20)

    def request(self, api_key: int, version: int, body: dict[str, Any]) -> Any:
        if _shared.get(self.bootstrap) is not None:
            return _shared[self.bootstrap].request(api_key, version, body)
        with self.wire() as client:
            return client.request(api_key, version, body)


_shared: dict[str, WireClient] = {}


@contextmanager
def one_connection(target: Target) -> Iterator[None]:
    """Send every `target.request` inside on one connection (many small requests: a new
    connection each would cost more than the request)."""
    with target.wire() as client:
        _shared[target.bootstrap] = client
        try:
            yield
        finally:
            del _shared[target.bootstrap]


def unique(prefix: str) -> str:
    """A name unique to this run, used on both brokers."""
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def code_name(code: int) -> str:
    """An error code by its Kafka name (a readable diff)."""
    try:
        return ErrorCode(int(code)).name.upper()
    except ValueError:
        return f"ERROR_{int(code)}"


def normalise(observed: Any, target: Target) -> Any:
    """`observed` with the legitimately different values replaced (see the module docstring)."""
    port = target.bootstrap.split(",")[0].rsplit(":", 1)[1]
    if isinstance(observed, dict):
        return {k: normalise(v, target) for k, v in observed.items()}
    if isinstance(observed, list):
        return [normalise(v, target) for v in observed]
    if isinstance(observed, tuple):
        return tuple(normalise(v, target) for v in observed)
    if isinstance(observed, uuid.UUID):
        return "0" if observed == ZERO_UUID else "<id>"
    if isinstance(observed, str):
        if target.cluster_id and observed == target.cluster_id:
            return "<cluster id>"
        return re.sub(rf"(127\.0\.0\.1|localhost):{port}\b", "<bootstrap>", observed)
    if isinstance(observed, int) and not isinstance(observed, bool) and str(observed) == port:
        return "<port>"
    return observed


def diff(ours: Any, theirs: Any) -> str:
    """A unified diff of two observations, kafkito's first."""
    lines = difflib.unified_diff(
        pprint.pformat(theirs, width=100).splitlines(),
        pprint.pformat(ours, width=100).splitlines(),
        fromfile="Apache Kafka",
        tofile="kafkito",
        lineterm="",
    )
    return "\n".join(lines)


def observe(scenario: Callable[[Target], Any], target: Target) -> Any:
    return normalise(scenario(target), target)


def same(scenario: Callable[[Target], Any], kafkito: Target, kafka: Target) -> Any:
    """Run `scenario` on both brokers; assert equal observations; return them."""
    theirs = observe(scenario, kafka)
    ours = observe(scenario, kafkito)
    assert ours == theirs, f"kafkito differs from Apache Kafka:\n{diff(ours, theirs)}"
    return ours


def wait_for(condition: Callable[[], Any], what: str, timeout_s: float = 30.0) -> Any:
    """Poll `condition` until it returns something truthy (Kafka applies admin changes
    asynchronously through its metadata log); AssertionError naming `what` at the deadline."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")
        time.sleep(0.05)


def applied(target: Target, barrier: str, counter: list[int]) -> None:
    """Return once every admin change made so far is visible on `target`.

    Apache Kafka answers an admin write once its metadata log holds it and applies it to what
    DescribeConfigs reads a moment later; a read right after the write can see the old state
    (seen on a slow CI machine). Changes apply in log order, so once a later change of our own
    (a counter in `barrier`'s retention.ms) is visible, every earlier one is too. kafkito applies
    writes before answering; the barrier costs it one round trip.
    """
    counter[0] += 1
    value = str(60_000 + counter[0])
    incremental_alter(target, TOPIC, barrier, [("retention.ms", SET, value)])

    def visible() -> bool:
        _, configs = describe_configs(target, TOPIC, barrier, synonyms=False, documentation=False)
        return bool(configs["retention.ms"]["value"] == value)

    wait_for(visible, f"{target.name}: admin changes applied")


# -- wire helpers shared by the scenarios -------------------------------------------------------

TOPIC, BROKER = 2, 4
SET, DELETE, APPEND, SUBTRACT = 0, 1, 2, 3


def create_topics(
    target: Target,
    topics: list[dict[str, Any]],
    *,
    validate_only: bool = False,
    version: int = 7,
) -> Any:
    body = {
        "topics": [
            {
                "name": t["name"],
                "num_partitions": t.get("partitions", -1),
                "replication_factor": t.get("rf", -1),
                "assignments": [],
                "configs": [{"name": k, "value": v} for k, v in t.get("configs", {}).items()],
            }
            for t in topics
        ],
        "timeout": 15000,
        "validate_only": validate_only,
    }
    answer = target.request(19, version, body)
    if not validate_only:
        # Apache Kafka answers once its controller has the topic; its broker lists it in
        # Metadata a moment later (seen on a slow CI machine). Scenarios read right after.
        created = [t.name for t in answer.topics if t.error_code == 0]
        if created:
            wait_for(lambda: _listed(target, created), f"{target.name}: {created} in metadata")
    return answer


def _listed(target: Target, names: list[str]) -> bool:
    answer = target.request(
        3,
        12,
        {
            "topics": [{"name": n, "topic_id": None} for n in names],
            "allow_auto_topic_creation": False,
            "include_topic_authorized_operations": False,
        },
    )
    return all(t.error_code == 0 and len(t.partitions) > 0 for t in answer.topics)


def describe_configs(
    target: Target,
    rtype: int,
    name: str,
    keys: list[str] | None = None,
    *,
    synonyms: bool = True,
    documentation: bool = True,
    version: int = 4,
) -> tuple[str, dict[str, dict[str, Any]]]:
    """(error code name, {config name: its fields}) of one resource."""
    answer = target.request(
        32,
        version,
        {
            "resources": [
                {"resource_type": rtype, "resource_name": name, "configuration_keys": keys}
            ],
            "include_synonyms": synonyms,
            "include_documentation": documentation,
        },
    )
    result = answer.results[0]
    configs = {}
    for c in result.configs:
        value, source, synonyms = align_config(
            target,
            c.name,
            c.value,
            int(c.config_source),
            [(s.name, s.value, int(s.source)) for s in c.synonyms],
        )
        entry: dict[str, Any] = {
            "value": value,
            "source": source,
            "read_only": c.read_only,
            "sensitive": c.is_sensitive,
            "synonyms": synonyms,
        }
        if version >= 3:
            entry["type"] = int(c.config_type)
            # the text differs (ours is written for kafkito); that there is one is compared
            entry["documented"] = bool(c.documentation) if documentation else c.documentation
        configs[c.name] = entry
    return code_name(result.error_code), configs


def incremental_alter(
    target: Target,
    rtype: int,
    name: str,
    operations: list[tuple[str, int, str | None]],
    *,
    validate_only: bool = False,
    version: int = 1,
) -> str:
    answer = target.request(
        44,
        version,
        {
            "resources": [
                {
                    "resource_type": rtype,
                    "resource_name": name,
                    "configs": [
                        {"name": n, "config_operation": op, "value": v} for n, op, v in operations
                    ],
                }
            ],
            "validate_only": validate_only,
        },
    )
    return code_name(answer.responses[0].error_code)


def alter(
    target: Target,
    rtype: int,
    name: str,
    configs: dict[str, str | None],
    *,
    validate_only: bool = False,
) -> str:
    answer = target.request(
        33,
        2,
        {
            "resources": [
                {
                    "resource_type": rtype,
                    "resource_name": name,
                    "configs": [{"name": n, "value": v} for n, v in configs.items()],
                }
            ],
            "validate_only": validate_only,
        },
    )
    return code_name(answer.responses[0].error_code)


def align_config(
    target: Target,
    name: str,
    value: str | None,
    source: int,
    synonyms: list[tuple[str, str | None, int]],
) -> tuple[str | None, int, list[tuple[str, str | None, int]]]:
    """The reference's answer for one config with the test set-up's artefact aligned."""
    if target.name != "kafka":
        return value, source, synonyms
    if name == ELR_DEFAULT and source in (3, 4) and value == "1":
        synonyms = [(n, v, src) for n, v, src in synonyms if not (n == name and src in (3, 4))]
        source = synonyms[0][2] if synonyms else 5
    return value, source, synonyms


ELR_DEFAULT = "min.insync.replicas"
"""Kafka 4.x's storage format writes min.insync.replicas as a cluster-wide dynamic default (its
eligible leader replicas need it) and refuses to remove it; kafkito has no ELR. Scenarios keep
it when they replace the cluster-wide set and leave it out of what they compare."""


def cluster_defaults(target: Target) -> dict[str, dict[str, Any]]:
    """The cluster-wide dynamic broker defaults, without Kafka's ELR entry (ELR_DEFAULT)."""
    code, configs = describe_configs(target, BROKER, "")
    assert code == "NONE", code
    configs.pop(ELR_DEFAULT, None)
    return configs


@contextmanager
def restore_broker_configs(target: Target, names: list[str]) -> Iterator[None]:
    """Remove the named dynamic broker configs (both scopes) on the way out: the reference is
    shared by the whole session."""
    try:
        yield
    finally:
        for scope in ("", target.node):
            incremental_alter(target, BROKER, scope, [(n, DELETE, None) for n in names])

        def removed() -> bool:
            _, node = describe_configs(target, BROKER, target.node, names, documentation=False)
            dynamic = {n for n, c in node.items() if c["source"] in (2, 3)}
            return not dynamic and not set(names) & set(cluster_defaults(target))

        wait_for(removed, f"{target.name}: dynamic broker configs {names} removed")
